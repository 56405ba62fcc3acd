-- Cost per UTC hour and per role (or rig, worker, model): the Cost River's short ranges.
-- Rows only for hours with spend; `hour` is the start of the UTC hour (RFC 3339, Z).
-- Reads `hourly` (raw events at their own time in the partial hours at the window edges).
-- Parameters: $start, $end (TIMESTAMPTZ, [start, end), at most 45 days apart: checked by
--   the caller), $group_by ('role' | 'rig' | 'worker' | 'model'),
--   $role, $rig, $worker, $issue (NULL = any).
SELECT
    strftime(date_trunc('hour', hour), '%Y-%m-%dT%H:%M:%SZ') AS hour,
    CASE $group_by
        WHEN 'rig' THEN rig
        WHEN 'worker' THEN worker
        WHEN 'model' THEN coalesce(model, 'unknown')
        ELSE role
    END AS key,
    sum(cost_usd) AS total_usd,
    count(DISTINCT session_id) AS session_count,
    sum(event_count)::BIGINT AS event_count
FROM hourly
WHERE hour >= $start AND hour < $end
  AND ($role IS NULL OR role = $role)
  AND ($rig IS NULL OR rig = $rig)
  AND ($worker IS NULL OR worker = $worker)
  AND ($issue IS NULL OR issue = $issue)
GROUP BY ALL
ORDER BY hour, key
