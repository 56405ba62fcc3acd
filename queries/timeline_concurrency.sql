-- Concurrency change points of the flame timeline: a sweep line over +1 (session start)
-- and -1 (session end) events; `sessions` is the number running from `at` on.
-- Sessions are half-open intervals [started_at, ended_at): one ending when another starts
-- does not overlap it, and a session of a single instant never counts.
-- Parameters: $start, $end (TIMESTAMPTZ, [start, end)), $role, $rig, $worker, $issue
--   (NULL = any).
WITH sessions AS (
    SELECT session_id, min(first_at) AS started_at, max(last_at) AS ended_at
    FROM hourly
    WHERE hour >= $start AND hour < $end
      AND ($role IS NULL OR role = $role)
      AND ($rig IS NULL OR rig = $rig)
      AND ($worker IS NULL OR worker = $worker)
      AND ($issue IS NULL OR issue = $issue)
    GROUP BY session_id
),
deltas AS (
    SELECT started_at AS moment, 1 AS delta FROM sessions WHERE ended_at > started_at
    UNION ALL
    SELECT ended_at AS moment, -1 AS delta FROM sessions WHERE ended_at > started_at
),
points AS (
    SELECT moment, sum(delta) AS delta FROM deltas GROUP BY moment HAVING sum(delta) <> 0
)
SELECT
    strftime(moment, '%Y-%m-%dT%H:%M:%S.%fZ') AS "at",
    (sum(delta) OVER (ORDER BY moment ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW))::BIGINT
        AS sessions
FROM points
ORDER BY points.moment
