-- Burn rate, in one row: spend in the last 15 minutes, hour and 24 hours before $now, a
-- per-minute series of the last $minutes minutes (the current, partial minute last,
-- minutes without spend included), and spend since the start of today and of this month
-- (in the caller's zone) up to $now.
-- Raw events only for the last 24 hours (the ended_at filter reads only recent row
-- groups); whole hours before the current one come from the hourly rollup. Minutes are
-- numbered since the epoch (integer arithmetic, no time-zone-aware truncation per event).
-- Parameters: $now, $today, $month_start, $this_hour (start of $now's UTC hour)
--   (TIMESTAMPTZ), $minutes (BIGINT, 1 to 1440), $role, $rig, $worker, $issue
--   (NULL = any).
WITH recent AS MATERIALIZED (
    SELECT ended_at, cost_usd
    FROM events
    WHERE ended_at > $now - INTERVAL 24 HOUR AND ended_at <= $now
      AND ($role IS NULL OR role = $role)
      AND ($rig IS NULL OR rig = $rig)
      AND ($worker IS NULL OR worker = $worker)
      AND ($issue IS NULL OR issue = $issue)
),
rolled AS (
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
this_hour AS (
    SELECT
        coalesce(sum(cost_usd) FILTER (WHERE ended_at >= $today), 0) AS today_usd,
        coalesce(sum(cost_usd), 0) AS month_usd
    FROM recent
    WHERE ended_at >= $this_hour AND ended_at >= $month_start
),
bounds AS (
    SELECT
        epoch_us($now) // 60000000 - (CAST($minutes AS BIGINT) - 1) AS first_minute,
        epoch_us($now) // 60000000 AS last_minute
),
per_minute AS (
    SELECT epoch_us(ended_at) // 60000000 AS minute, sum(cost_usd) AS usd
    FROM recent, bounds
    WHERE epoch_us(ended_at) // 60000000 >= first_minute
    GROUP BY 1
),
minutes AS (
    SELECT m AS minute
    FROM bounds, range(first_minute, last_minute + 1) AS t(m)
)
SELECT
    (SELECT coalesce(sum(cost_usd), 0) FROM recent
     WHERE ended_at > $now - INTERVAL 15 MINUTE) AS usd_15m,
    (SELECT coalesce(sum(cost_usd), 0) FROM recent
     WHERE ended_at > $now - INTERVAL 1 HOUR) AS usd_1h,
    (SELECT coalesce(sum(cost_usd), 0) FROM recent) AS usd_24h,
    rolled.today_usd + this_hour.today_usd AS today_usd,
    rolled.month_usd + this_hour.month_usd AS month_usd,
    (
        SELECT list(
            {'minute': strftime(make_timestamp(minutes.minute * 60000000), '%Y-%m-%dT%H:%M:%SZ'),
             'usd': coalesce(per_minute.usd, 0)}
            ORDER BY minutes.minute
        )
        FROM minutes LEFT JOIN per_minute ON minutes.minute = per_minute.minute
    ) AS minutes
FROM rolled, this_hour
