-- Spend in the last 15 minutes, hour and 24 hours before $now (raw events; the ended_at
-- filter reads only recent row groups).
-- Parameters: $now (TIMESTAMPTZ), $role, $rig, $worker, $issue (NULL = any).
SELECT
    coalesce(sum(cost_usd) FILTER (WHERE ended_at > $now - INTERVAL 15 MINUTE), 0) AS usd_15m,
    coalesce(sum(cost_usd) FILTER (WHERE ended_at > $now - INTERVAL 1 HOUR), 0) AS usd_1h,
    coalesce(sum(cost_usd), 0) AS usd_24h
FROM events
WHERE ended_at > $now - INTERVAL 24 HOUR AND ended_at <= $now
  AND ($role IS NULL OR role = $role)
  AND ($rig IS NULL OR rig = $rig)
  AND ($worker IS NULL OR worker = $worker)
  AND ($issue IS NULL OR issue = $issue)
