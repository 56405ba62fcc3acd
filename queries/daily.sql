-- Cost per day and per role (or rig, worker, model), days cut in the zone $tz.
-- Parameters: $start, $end (TIMESTAMPTZ, [start, end)), $tz (IANA zone),
--   $group_by ('role' | 'rig' | 'worker' | 'model'),
--   $role, $rig, $worker, $issue (NULL = any).
WITH local_days AS (
    -- The zone conversion (slow: ICU) once per distinct hour, not once per rollup row.
    SELECT hour, CAST(timezone($tz, hour) AS DATE) AS date
    FROM (SELECT DISTINCT hour FROM hourly WHERE hour >= $start AND hour < $end)
)
SELECT
    local_days.date AS date,
    CASE $group_by
        WHEN 'rig' THEN rig
        WHEN 'worker' THEN worker
        WHEN 'model' THEN coalesce(model, 'unknown')
        ELSE role
    END AS key,
    sum(cost_usd) AS total_usd,
    count(DISTINCT session_id) AS session_count,
    sum(event_count)::BIGINT AS event_count,
    sum(input_tokens)::BIGINT AS input_tokens,
    sum(output_tokens)::BIGINT AS output_tokens,
    sum(cache_creation_tokens)::BIGINT AS cache_creation_tokens,
    sum(cache_read_tokens)::BIGINT AS cache_read_tokens
FROM hourly JOIN local_days USING (hour)
WHERE hour >= $start AND hour < $end
  AND ($role IS NULL OR role = $role)
  AND ($rig IS NULL OR rig = $rig)
  AND ($worker IS NULL OR worker = $worker)
  AND ($issue IS NULL OR issue = $issue)
GROUP BY ALL
ORDER BY date, key
