-- Raw events in a window for export, in storage order (file by file, each file by
-- ended_at; unflushed events last): no sort, so the first rows stream at once and memory
-- stays flat however many rows match.
-- Parameters: $start, $end (TIMESTAMPTZ, [start, end)), $role, $rig, $worker, $issue
--   (NULL = any).
SELECT
    id, event_id, session_id, parent_session_id, role, rig, worker, model, issue, source,
    kind, revision, started_at, ended_at,
    cost_usd, input_tokens, output_tokens, cache_creation_tokens, cache_read_tokens
FROM events
WHERE ended_at >= $start AND ended_at < $end
  AND ($role IS NULL OR role = $role)
  AND ($rig IS NULL OR rig = $rig)
  AND ($worker IS NULL OR worker = $worker)
  AND ($issue IS NULL OR issue = $issue)
