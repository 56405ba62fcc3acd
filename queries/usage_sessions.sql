-- Cost and tokens per session and model for the $limit most recently active sessions
-- (what `gasometer session` lists), with each session's attribution and activity span.
-- Parameters: $start, $end (TIMESTAMPTZ, [start, end)), $role, $rig, $worker, $issue
--   (NULL = any), $limit (BIGINT, 1 to 10000: sessions listed).
WITH picked AS MATERIALIZED (
    SELECT *
    FROM hourly
    WHERE hour >= $start AND hour < $end
      AND ($role IS NULL OR role = $role)
      AND ($rig IS NULL OR rig = $rig)
      AND ($worker IS NULL OR worker = $worker)
      AND ($issue IS NULL OR issue = $issue)
),
recent AS (
    SELECT session_id, max(last_at) AS last_active
    FROM picked
    GROUP BY session_id
    ORDER BY last_active DESC, session_id
    LIMIT $limit
)
SELECT
    session_id,
    coalesce(model, 'unknown') AS model,
    min(role) AS role,
    min(rig) AS rig,
    min(worker) AS worker,
    max(parent_session_id) AS parent_session_id,
    min(first_at) AS first_at,
    max(last_at) AS last_at,
    sum(cost_usd) AS total_usd,
    sum(event_count)::BIGINT AS event_count,
    sum(input_tokens)::BIGINT AS input_tokens,
    sum(output_tokens)::BIGINT AS output_tokens,
    sum(cache_creation_tokens)::BIGINT AS cache_creation_tokens,
    sum(cache_read_tokens)::BIGINT AS cache_read_tokens
FROM picked JOIN recent USING (session_id)
GROUP BY session_id, model
ORDER BY max(recent.last_active), session_id, model
