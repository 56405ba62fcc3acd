-- Merges hourly rollup rows (several files of one partition) into one row per group.
-- Reads the relation `rollup_rows` (columns of the hourly rollup); no parameters.
-- Used by compaction; sums stay sums, spans stay spans.
SELECT
    hour,
    session_id,
    parent_session_id,
    role,
    rig,
    worker,
    model,
    issue,
    sum(event_count)::BIGINT AS event_count,
    sum(cost_usd) AS cost_usd,
    sum(input_tokens)::BIGINT AS input_tokens,
    sum(output_tokens)::BIGINT AS output_tokens,
    sum(cache_creation_tokens)::BIGINT AS cache_creation_tokens,
    sum(cache_read_tokens)::BIGINT AS cache_read_tokens,
    min(first_at) AS first_at,
    max(last_at) AS last_at,
    month
FROM rollup_rows
GROUP BY ALL
