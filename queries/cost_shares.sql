-- Cost per role or per rig in a window, with each one's share of the total.
-- Parameters: $start, $end (TIMESTAMPTZ, [start, end)), $by ('role' | 'rig'),
--   $role, $rig, $worker, $issue (NULL = any).
SELECT
    CASE $by WHEN 'rig' THEN rig ELSE role END AS key,
    sum(cost_usd) AS total_usd,
    count(DISTINCT session_id) AS session_count,
    coalesce(sum(cost_usd) / nullif(sum(sum(cost_usd)) OVER (), 0), 0) AS share
FROM hourly
WHERE hour >= $start AND hour < $end
  AND ($role IS NULL OR role = $role)
  AND ($rig IS NULL OR rig = $rig)
  AND ($worker IS NULL OR worker = $worker)
  AND ($issue IS NULL OR issue = $issue)
GROUP BY ALL
ORDER BY total_usd DESC, key
