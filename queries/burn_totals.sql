-- Spend since the start of today and of this month (in the caller's zone) up to $now:
-- whole hours from the hourly rollup, the current partial hour from raw events.
-- Parameters: $today, $month_start, $this_hour (start of $now's UTC hour), $now
--   (TIMESTAMPTZ), $role, $rig, $worker, $issue (NULL = any).
WITH rolled AS (
    SELECT
        coalesce(sum(cost_usd) FILTER (WHERE hour >= $today), 0) AS today_usd,
        coalesce(sum(cost_usd), 0) AS month_usd
    FROM hourly
    WHERE hour >= $month_start AND hour < $this_hour
      AND ($role IS NULL OR role = $role)
      AND ($rig IS NULL OR rig = $rig)
      AND ($worker IS NULL OR worker = $worker)
      AND ($issue IS NULL OR issue = $issue)
),
recent AS (
    SELECT
        coalesce(sum(cost_usd) FILTER (WHERE ended_at >= $today), 0) AS today_usd,
        coalesce(sum(cost_usd), 0) AS month_usd
    FROM events
    WHERE ended_at >= $this_hour AND ended_at >= $month_start AND ended_at <= $now
      AND ($role IS NULL OR role = $role)
      AND ($rig IS NULL OR rig = $rig)
      AND ($worker IS NULL OR worker = $worker)
      AND ($issue IS NULL OR issue = $issue)
)
SELECT rolled.today_usd + recent.today_usd, rolled.month_usd + recent.month_usd
FROM rolled, recent
