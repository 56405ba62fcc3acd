-- Cost per role in a window, with each role's share of the total.
-- Parameters: $start, $end (TIMESTAMPTZ, [start, end)), $rig, $worker, $issue (NULL = any).
SELECT
    role,
    sum(cost_usd) AS total_usd,
    count(DISTINCT session_id) AS session_count,
    coalesce(sum(cost_usd) / nullif(sum(sum(cost_usd)) OVER (), 0), 0) AS share
FROM hourly
WHERE hour >= $start AND hour < $end
  AND ($rig IS NULL OR rig = $rig)
  AND ($worker IS NULL OR worker = $worker)
  AND ($issue IS NULL OR issue = $issue)
GROUP BY role
ORDER BY total_usd DESC, role
