-- Cost per role, rig and worker (the leaves of the treemap), from the hourly rollup.
-- Parameters: $start, $end (TIMESTAMPTZ, [start, end)), $role, $rig, $worker, $issue
--   (NULL = any).
SELECT role, rig, worker, sum(cost_usd) AS total_usd
FROM hourly
WHERE hour >= $start AND hour < $end
  AND ($role IS NULL OR role = $role)
  AND ($rig IS NULL OR rig = $rig)
  AND ($worker IS NULL OR worker = $worker)
  AND ($issue IS NULL OR issue = $issue)
GROUP BY ALL
ORDER BY role, rig, worker
