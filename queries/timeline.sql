-- The session flame timeline of a window, in one row: sessions, concurrency change points,
-- peak concurrency and the cost incurred while sessions overlapped.
-- A session's interval is min(first_at) .. max(last_at) over its rollup rows in the window,
-- taken as half-open [started_at, ended_at): one ending when another starts does not
-- overlap it, and a session of a single instant never counts towards concurrency.
-- `sessions`: the $limit costliest sessions, ordered by start (lanes are packed by the
-- caller). `concurrency`: a sweep line over +1 (start) and -1 (end) events; `sessions`
-- running from `at` on. `parallel_usd`: each raw event's cost spread evenly over its own
-- [started_at, ended_at), summed over the stretches with two or more sessions running (a
-- running sum of cost rates along the same sweep), plus the cost of each instant event
-- at whose moment two or more sessions run, its own included.
-- Parameters: $start, $end (TIMESTAMPTZ, [start, end)), $role, $rig, $worker, $issue
--   (NULL = any), $limit (BIGINT, sessions listed, 1 to 10000).
WITH sessions AS MATERIALIZED (
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
ranked AS (
    SELECT *, row_number() OVER (ORDER BY total_usd DESC, session_id) AS cost_rank
    FROM sessions
),
spans AS MATERIALIZED (
    SELECT session_id, coalesce(started_at, ended_at) AS started_at, ended_at, cost_usd
    FROM events
    WHERE ended_at >= $start AND ended_at < $end
      AND ($role IS NULL OR role = $role)
      AND ($rig IS NULL OR rig = $rig)
      AND ($worker IS NULL OR worker = $worker)
      AND ($issue IS NULL OR issue = $issue)
),
deltas AS (
    SELECT started_at AS moment, 1 AS delta, 0.0 AS rate
    FROM sessions WHERE ended_at > started_at
    UNION ALL
    SELECT ended_at AS moment, -1 AS delta, 0.0 AS rate
    FROM sessions WHERE ended_at > started_at
    UNION ALL
    SELECT started_at, 0, cost_usd / (epoch_us(ended_at) - epoch_us(started_at))
    FROM spans WHERE ended_at > started_at
    UNION ALL
    SELECT ended_at, 0, -cost_usd / (epoch_us(ended_at) - epoch_us(started_at))
    FROM spans WHERE ended_at > started_at
),
points AS (
    SELECT moment, sum(delta) AS delta, sum(rate) AS rate FROM deltas GROUP BY moment
),
running AS MATERIALIZED (
    SELECT
        moment,
        delta,
        sum(delta) OVER w AS running,
        sum(rate) OVER w AS rate,
        lead(moment) OVER (ORDER BY moment) AS next_moment
    FROM points
    WINDOW w AS (ORDER BY moment ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
),
instants AS (
    SELECT coalesce(sum(i.cost_usd), 0) AS usd
    FROM (
        SELECT e.ended_at AS moment, e.cost_usd,
               (s.ended_at = s.started_at OR e.ended_at >= s.ended_at)::INTEGER AS outside
        FROM spans AS e JOIN sessions AS s USING (session_id)
        WHERE e.ended_at = e.started_at
    ) AS i
    ASOF JOIN running AS r ON i.moment >= r.moment
    WHERE r.running + i.outside >= 2
)
SELECT
    (SELECT count(*) FROM sessions) AS session_total,
    (
        SELECT coalesce(list(
            {
                'session_id': session_id, 'role': role, 'rig': rig, 'worker': worker,
                'parent_session_id': parent_session_id,
                'started_at': strftime(started_at, '%Y-%m-%dT%H:%M:%S.%fZ'),
                'ended_at': strftime(ended_at, '%Y-%m-%dT%H:%M:%S.%fZ'),
                'total_usd': total_usd, 'event_count': event_count,
                'started_us': epoch_us(started_at), 'ended_us': epoch_us(ended_at)
            }
            ORDER BY started_at, ended_at, session_id
        ), [])
        FROM ranked
        WHERE cost_rank <= $limit
    ) AS sessions,
    (
        SELECT coalesce(list(
            {'at': strftime(moment, '%Y-%m-%dT%H:%M:%S.%fZ'), 'sessions': running::BIGINT}
            ORDER BY moment
        ), [])
        FROM running
        WHERE delta <> 0
    ) AS concurrency,
    coalesce((SELECT max(running) FROM running), 0)::BIGINT AS max_concurrency,
    (
        SELECT strftime(moment, '%Y-%m-%dT%H:%M:%S.%fZ')
        FROM running
        WHERE running > 0 AND delta <> 0
        ORDER BY running DESC, moment
        LIMIT 1
    ) AS max_concurrency_at,
    coalesce((
        SELECT sum(rate * (epoch_us(next_moment) - epoch_us(moment)))
        FROM running
        WHERE running >= 2 AND next_moment IS NOT NULL
    ), 0) + (SELECT usd FROM instants) AS parallel_usd
