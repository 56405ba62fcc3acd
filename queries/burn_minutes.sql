-- Spend per minute over the last $minutes minutes up to $now (the current, partial minute
-- last), minutes without spend included; raw events filtered by ended_at.
-- Parameters: $now (TIMESTAMPTZ), $minutes (BIGINT), $role, $rig, $worker, $issue
--   (NULL = any).
WITH bounds AS (
    SELECT
        date_trunc('minute', $now) - to_minutes(CAST($minutes AS BIGINT) - 1) AS first_minute,
        date_trunc('minute', $now) AS last_minute
),
minutes AS (
    SELECT m AS minute
    FROM bounds, generate_series(first_minute, last_minute, INTERVAL 1 MINUTE) AS t(m)
),
spend AS (
    SELECT date_trunc('minute', ended_at) AS minute, sum(cost_usd) AS usd
    FROM events, bounds
    WHERE ended_at >= first_minute AND ended_at <= $now
      AND ($role IS NULL OR role = $role)
      AND ($rig IS NULL OR rig = $rig)
      AND ($worker IS NULL OR worker = $worker)
      AND ($issue IS NULL OR issue = $issue)
    GROUP BY 1
)
SELECT strftime(minutes.minute, '%Y-%m-%dT%H:%M:%SZ') AS minute, coalesce(spend.usd, 0) AS usd
FROM minutes LEFT JOIN spend ON minutes.minute = spend.minute
ORDER BY minutes.minute
