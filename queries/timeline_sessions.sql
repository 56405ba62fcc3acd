-- Sessions active in a window for the flame timeline, from the hourly rollup.
-- A session's interval is min(first_at) .. max(last_at) over its rollup rows in the window.
-- When more than $limit sessions match, the $limit costliest are kept.
-- Parameters: $start, $end (TIMESTAMPTZ, [start, end)), $role, $rig, $worker, $issue
--   (NULL = any), $limit (BIGINT, sessions returned).
WITH sessions AS (
    SELECT
        session_id,
        min(role) AS role,
        min(rig) AS rig,
        min(worker) AS worker,
        max(parent_session_id) AS parent_session_id,
        min(first_at) AS started_at,
        max(last_at) AS ended_at,
        sum(cost_usd) AS total_usd,
        sum(event_count)::BIGINT AS event_count
    FROM hourly
    WHERE hour >= $start AND hour < $end
      AND ($role IS NULL OR role = $role)
      AND ($rig IS NULL OR rig = $rig)
      AND ($worker IS NULL OR worker = $worker)
      AND ($issue IS NULL OR issue = $issue)
    GROUP BY session_id
),
kept AS (
    SELECT *, count(*) OVER () AS session_total
    FROM sessions
    ORDER BY total_usd DESC, session_id
    LIMIT $limit
)
SELECT
    session_id, role, rig, worker, parent_session_id,
    strftime(started_at, '%Y-%m-%dT%H:%M:%S.%fZ') AS started_at,
    strftime(ended_at, '%Y-%m-%dT%H:%M:%S.%fZ') AS ended_at,
    total_usd, event_count,
    epoch_us(started_at) AS started_us,
    epoch_us(ended_at) AS ended_us,
    session_total
FROM kept
ORDER BY started_at, ended_at, session_id
