-- Spend since the start of today and of this month (in the caller's zone) up to $now.
-- Parameters: $today, $month_start, $now (TIMESTAMPTZ), $role, $rig, $worker, $issue
--   (NULL = any).
SELECT
    coalesce(sum(cost_usd) FILTER (WHERE hour >= $today), 0) AS today_usd,
    coalesce(sum(cost_usd), 0) AS month_usd
FROM hourly
WHERE hour >= $month_start AND hour <= $now
  AND ($role IS NULL OR role = $role)
  AND ($rig IS NULL OR rig = $rig)
  AND ($worker IS NULL OR worker = $worker)
  AND ($issue IS NULL OR issue = $issue)
