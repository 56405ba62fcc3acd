-- Cost of events that ended in the last hour before $now, in USD (= USD per hour).
-- Parameters: $now (TIMESTAMPTZ), $role, $rig, $worker, $issue (NULL = any).
SELECT coalesce(sum(cost_usd), 0) AS usd
FROM events
WHERE ended_at > $now - INTERVAL 1 HOUR AND ended_at <= $now
  AND ($role IS NULL OR role = $role)
  AND ($rig IS NULL OR rig = $rig)
  AND ($worker IS NULL OR worker = $worker)
  AND ($issue IS NULL OR issue = $issue)
