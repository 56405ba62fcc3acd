-- Total cost, sessions and events in one window; the building block of the summary.
-- Parameters: $start, $end (TIMESTAMPTZ, [start, end)),
--   $role, $rig, $worker, $issue (NULL = any).
SELECT
    coalesce(sum(cost_usd), 0) AS total_usd,
    count(DISTINCT session_id) AS session_count,
    coalesce(sum(event_count), 0)::BIGINT AS event_count
FROM hourly
WHERE hour >= $start AND hour < $end
  AND ($role IS NULL OR role = $role)
  AND ($rig IS NULL OR rig = $rig)
  AND ($worker IS NULL OR worker = $worker)
  AND ($issue IS NULL OR issue = $issue)
