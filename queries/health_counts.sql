-- Event rows and the time span they cover, for /health.
-- Parameters: none.
SELECT
    coalesce(sum(event_count), 0)::BIGINT AS event_count,
    strftime(min(first_at), '%Y-%m-%dT%H:%M:%SZ') AS first_event_at,
    strftime(max(last_at), '%Y-%m-%dT%H:%M:%SZ') AS last_event_at
FROM hourly
