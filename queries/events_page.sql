-- Raw events, newest first, one page at a time (keyset pagination on ended_at, id).
-- Parameters: $start, $end (TIMESTAMPTZ, [start, end)), $role, $rig, $worker, $issue,
--   $session_id (NULL = any), $after_ts (TIMESTAMPTZ) and $after_id (BIGINT): the last
--   row of the previous page (NULL for the first page), $limit (BIGINT, rows, 1 to 10000).
SELECT
    id, event_id, session_id, parent_session_id, role, rig, worker, model, issue, source,
    kind, revision,
    strftime(started_at, '%Y-%m-%dT%H:%M:%S.%fZ') AS started_at,
    strftime(ended_at, '%Y-%m-%dT%H:%M:%S.%fZ') AS ended_at,
    cost_usd, input_tokens, output_tokens, cache_creation_tokens, cache_read_tokens,
    epoch_us(ended_at) AS ended_at_us
FROM (
    -- The page first, formatted after: ORDER BY on the raw columns (not the string
    -- aliases of the outer SELECT) lets DuckDB skip row groups and format 100 rows.
    SELECT *
    FROM events
    WHERE ended_at >= $start AND ended_at < $end
      AND ($role IS NULL OR role = $role)
      AND ($rig IS NULL OR rig = $rig)
      AND ($worker IS NULL OR worker = $worker)
      AND ($issue IS NULL OR issue = $issue)
      AND ($session_id IS NULL OR session_id = $session_id)
      AND ($after_ts IS NULL OR ended_at < $after_ts OR (ended_at = $after_ts AND id < $after_id))
    ORDER BY ended_at DESC, id DESC
    LIMIT $limit
) AS page
ORDER BY page.ended_at DESC, page.id DESC
