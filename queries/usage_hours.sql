-- Cost, sessions and tokens per UTC hour and role (or rig, worker, model), hours with
-- spend only: the Cost River's short ranges (GET /api/stats/hourly) and what
-- `gasometer blocks` cuts into 5-hour billing windows. first_at/last_at: the hour's first
-- and last activity. In the window's partial edge hours `hourly` holds raw events at
-- their own time: `hour` is truncated so they fall into their hour.
-- Parameters: $start, $end (TIMESTAMPTZ, [start, end)),
--   $group_by ('role' | 'rig' | 'worker' | 'model'),
--   $role, $rig, $worker, $issue (NULL = any).
SELECT
    date_trunc('hour', hour) AS hour,
    CASE $group_by
        WHEN 'rig' THEN rig
        WHEN 'worker' THEN worker
        WHEN 'model' THEN coalesce(model, 'unknown')
        ELSE role
    END AS key,
    min(first_at) AS first_at,
    max(last_at) AS last_at,
    sum(cost_usd) AS total_usd,
    count(DISTINCT session_id) AS session_count,
    sum(event_count)::BIGINT AS event_count,
    sum(input_tokens)::BIGINT AS input_tokens,
    sum(output_tokens)::BIGINT AS output_tokens,
    sum(cache_creation_tokens)::BIGINT AS cache_creation_tokens,
    sum(cache_read_tokens)::BIGINT AS cache_read_tokens
FROM hourly
WHERE hour >= $start AND hour < $end
  AND ($role IS NULL OR role = $role)
  AND ($rig IS NULL OR rig = $rig)
  AND ($worker IS NULL OR worker = $worker)
  AND ($issue IS NULL OR issue = $issue)
GROUP BY ALL
ORDER BY hour, key
