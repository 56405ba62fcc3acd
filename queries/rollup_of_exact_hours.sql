-- Raw events shaped as hourly rollup rows, one row per event at its own time (`hour` =
-- its ended_at), for the hours the rollup cannot cut (window edges, off-hour midnights).
-- Reads the view `events`. Parameters: $exact_hours (BIGINT[], UTC hours numbered from
-- the epoch), $exact_from and $exact_to (TIMESTAMPTZ: the span they cover, for pruning).
SELECT
    ended_at AS hour,
    session_id,
    parent_session_id,
    role,
    rig,
    worker,
    model,
    issue,
    CAST(revision = 0 AS BIGINT) AS event_count,
    cost_usd,
    input_tokens,
    output_tokens,
    cache_creation_tokens,
    cache_read_tokens,
    coalesce(started_at, ended_at) AS first_at,
    ended_at AS last_at,
    month
FROM events
WHERE ended_at >= $exact_from AND ended_at < $exact_to
  AND epoch_us(ended_at) // 3600000000 IN (SELECT unnest(CAST($exact_hours AS BIGINT[])))
