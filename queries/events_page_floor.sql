-- A lower bound on the ended_at of a page of events_page: the start of the latest hour
-- from which on the hourly rollup counts at least $limit matching events. Only hours
-- wholly inside [$start, $before) are counted (undercounting only lowers the bound), so
-- the page's rows all end at or after it. Passed as the page query's $start, it lets
-- DuckDB skip every older Parquet row group. NULL when the rollup holds too few events.
-- Parameters: $start, $before (TIMESTAMPTZ: the window's end or the cursor, whichever
--   is earlier), $role, $rig, $worker, $issue, $session_id (NULL = any),
--   $limit (BIGINT, rows, 1 to 10000).
WITH per_hour AS (
    SELECT hour, sum(event_count) AS events
    FROM hourly
    WHERE hour >= $start AND hour + INTERVAL 1 HOUR <= $before
      AND ($role IS NULL OR role = $role)
      AND ($rig IS NULL OR rig = $rig)
      AND ($worker IS NULL OR worker = $worker)
      AND ($issue IS NULL OR issue = $issue)
      AND ($session_id IS NULL OR session_id = $session_id)
    GROUP BY hour
),
running AS (
    SELECT hour, sum(events) OVER (ORDER BY hour DESC) AS newer_events
    FROM per_hour
)
SELECT max(hour) AS floor
FROM running
WHERE newer_events >= $limit
