-- Hourly rollup of raw events: one row per UTC hour, session and attribution.
-- Reads the relation `pending_events` (columns of the event log); no parameters.
-- Used by the flusher for each new batch and by the `hourly` view for unflushed events.
SELECT
    date_trunc('hour', ended_at) AS hour,
    session_id,
    parent_session_id,
    role,
    rig,
    worker,
    model,
    issue,
    count(*) FILTER (WHERE revision = 0) AS event_count,
    sum(cost_usd) AS cost_usd,
    sum(input_tokens)::BIGINT AS input_tokens,
    sum(output_tokens)::BIGINT AS output_tokens,
    sum(cache_creation_tokens)::BIGINT AS cache_creation_tokens,
    sum(cache_read_tokens)::BIGINT AS cache_read_tokens,
    min(coalesce(started_at, ended_at)) AS first_at,
    max(ended_at) AS last_at,
    strftime(date_trunc('hour', ended_at), '%Y-%m') AS month
FROM pending_events
GROUP BY ALL
