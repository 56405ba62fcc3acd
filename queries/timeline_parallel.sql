-- Peak concurrency and the cost incurred while more than one session ran.
-- Each session's cost is spread evenly over its interval [started_at, ended_at); a sweep
-- line carries both the running session count and the running cost rate (USD/s), and
-- `parallel_usd` sums rate x duration over the stretches with two or more sessions.
-- A session of a single instant adds its whole cost if another session runs at that instant.
-- Parameters: $start, $end (TIMESTAMPTZ, [start, end)), $role, $rig, $worker, $issue
--   (NULL = any).
WITH sessions AS (
    SELECT
        session_id,
        min(first_at) AS started_at,
        max(last_at) AS ended_at,
        sum(cost_usd) AS total_usd
    FROM hourly
    WHERE hour >= $start AND hour < $end
      AND ($role IS NULL OR role = $role)
      AND ($rig IS NULL OR rig = $rig)
      AND ($worker IS NULL OR worker = $worker)
      AND ($issue IS NULL OR issue = $issue)
    GROUP BY session_id
),
spans AS (
    SELECT *, total_usd / (epoch_us(ended_at) - epoch_us(started_at)) AS rate_per_us
    FROM sessions
    WHERE ended_at > started_at
),
deltas AS (
    SELECT started_at AS moment, 1 AS delta, rate_per_us AS rate FROM spans
    UNION ALL
    SELECT ended_at AS moment, -1 AS delta, -rate_per_us AS rate FROM spans
),
points AS (
    SELECT moment, sum(delta) AS delta, sum(rate) AS rate FROM deltas GROUP BY moment
),
running AS (
    SELECT
        moment,
        sum(delta) OVER w AS sessions,
        sum(rate) OVER w AS rate,
        lead(moment) OVER (ORDER BY moment) AS next_at
    FROM points
    WINDOW w AS (ORDER BY moment ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
),
peak AS (
    SELECT sessions AS max_concurrency, moment AS max_at
    FROM running
    ORDER BY sessions DESC, moment
    LIMIT 1
),
instants AS (
    SELECT coalesce(sum(i.total_usd), 0) AS usd
    FROM (SELECT * FROM sessions WHERE ended_at = started_at) AS i
    ASOF JOIN running AS r ON i.started_at >= r.moment
    WHERE r.sessions >= 1
)
SELECT
    coalesce((SELECT max_concurrency FROM peak), 0)::BIGINT AS max_concurrency,
    (SELECT strftime(max_at, '%Y-%m-%dT%H:%M:%S.%fZ') FROM peak WHERE max_concurrency > 0)
        AS max_concurrency_at,
    coalesce((
        SELECT sum(rate * (epoch_us(next_at) - epoch_us(moment)))
        FROM running
        WHERE sessions >= 2 AND next_at IS NOT NULL
    ), 0) + (SELECT usd FROM instants) AS parallel_usd
