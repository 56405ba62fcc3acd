-- Cost per rig in a window, with each rig's share of the total.
-- Parameters: $start, $end (TIMESTAMPTZ, [start, end)), $role, $worker, $issue (NULL = any).
SELECT
    rig,
    sum(cost_usd) AS total_usd,
    count(DISTINCT session_id) AS session_count,
    coalesce(sum(cost_usd) / nullif(sum(sum(cost_usd)) OVER (), 0), 0) AS share
FROM hourly
WHERE hour >= $start AND hour < $end
  AND ($role IS NULL OR role = $role)
  AND ($worker IS NULL OR worker = $worker)
  AND ($issue IS NULL OR issue = $issue)
GROUP BY rig
ORDER BY total_usd DESC, rig
