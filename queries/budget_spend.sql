-- Spend per role and rig since $month_start, and the part of it since $day_start: the
-- starting point of budget alerts (later commits add their events in memory).
-- Parameters: $month_start, $day_start (TIMESTAMPTZ).
SELECT
    role, rig,
    coalesce(sum(cost_usd) FILTER (WHERE hour >= $day_start), 0) AS day_usd,
    sum(cost_usd) AS month_usd
FROM hourly
WHERE hour >= $month_start
GROUP BY ALL
