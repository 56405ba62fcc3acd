-- calendar.sql for zones whose midnight is not on a UTC hour (e.g. Asia/Kolkata): whole
-- rollup hours for every hour inside one local day, and raw events only for the UTC
-- hours that hold a local midnight ($split_hours, as hours since the epoch: integer
-- arithmetic, not a time-zone-aware truncation per event), each event dated by its own time.
-- One row per day from $first_day to $last_day, days without spend included; `level`
-- 0 for a day without cost, else 1 plus the number of quartiles it is above.
-- Parameters: $start, $end (TIMESTAMPTZ, [start, end)), $tz (IANA zone),
--   $first_day, $last_day (DATE), $split_hours (BIGINT[], at least one),
--   $role, $rig, $worker, $issue (NULL = any).
WITH days AS (
    SELECT CAST(d AS DATE) AS date
    FROM generate_series(CAST($first_day AS DATE), CAST($last_day AS DATE), INTERVAL 1 DAY) AS t(d)
),
split AS (
    SELECT unnest(CAST($split_hours AS BIGINT[])) AS hour_number
),
spend_rows AS (
    SELECT CAST(timezone($tz, hour) AS DATE) AS date, session_id, cost_usd
    FROM hourly
    WHERE hour >= $start AND hour < $end
      AND epoch_us(hour) // 3600000000 NOT IN (SELECT hour_number FROM split)
      AND ($role IS NULL OR role = $role)
      AND ($rig IS NULL OR rig = $rig)
      AND ($worker IS NULL OR worker = $worker)
      AND ($issue IS NULL OR issue = $issue)
    UNION ALL
    SELECT CAST(timezone($tz, ended_at) AS DATE) AS date, session_id, cost_usd
    FROM events
    WHERE ended_at >= $start AND ended_at < $end
      AND epoch_us(ended_at) // 3600000000 IN (SELECT hour_number FROM split)
      AND ($role IS NULL OR role = $role)
      AND ($rig IS NULL OR rig = $rig)
      AND ($worker IS NULL OR worker = $worker)
      AND ($issue IS NULL OR issue = $issue)
),
spend AS (
    SELECT date, sum(cost_usd) AS total_usd, count(DISTINCT session_id) AS session_count
    FROM spend_rows
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
