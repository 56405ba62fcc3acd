-- One row per day from $first_day to $last_day (days in the zone $tz) for a heat calendar,
-- days without spend included. `level` is 0 for a day without cost, else 1-4: one more
-- for each quartile (quantile_cont of the days with cost) the day's cost is above.
-- Parameters: $start, $end (TIMESTAMPTZ, [start, end)), $tz (IANA zone),
--   $first_day, $last_day (DATE), $role, $rig, $worker, $issue (NULL = any).
WITH days AS (
    SELECT CAST(d AS DATE) AS date
    FROM generate_series(CAST($first_day AS DATE), CAST($last_day AS DATE), INTERVAL 1 DAY) AS t(d)
),
spend AS (
    SELECT
        CAST(timezone($tz, hour) AS DATE) AS date,
        sum(cost_usd) AS total_usd,
        count(DISTINCT session_id) AS session_count
    FROM hourly
    WHERE hour >= $start AND hour < $end
      AND ($role IS NULL OR role = $role)
      AND ($rig IS NULL OR rig = $rig)
      AND ($worker IS NULL OR worker = $worker)
      AND ($issue IS NULL OR issue = $issue)
    GROUP BY 1
),
joined AS (
    SELECT
        days.date,
        coalesce(spend.total_usd, 0) AS total_usd,
        coalesce(spend.session_count, 0) AS session_count
    FROM days LEFT JOIN spend ON days.date = spend.date
),
cuts AS (
    SELECT quantile_cont(total_usd, [0.25, 0.5, 0.75]) AS q
    FROM joined
    WHERE total_usd > 0
)
SELECT
    strftime(joined.date, '%Y-%m-%d') AS date,
    joined.total_usd,
    joined.session_count,
    CASE
        WHEN joined.total_usd <= 0 THEN 0
        ELSE 1 + (joined.total_usd > cuts.q[1])::INTEGER
               + (joined.total_usd > cuts.q[2])::INTEGER
               + (joined.total_usd > cuts.q[3])::INTEGER
    END AS level
FROM joined, cuts
ORDER BY joined.date
