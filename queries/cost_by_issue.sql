-- Cost per bead (issue), costliest first; events without an issue form one row, issue NULL.
-- duration_s spans the bead's first to last activity; usd_per_hour = total_usd per hour
-- of that span (NULL when the span is zero).
-- Two steps: rank beads by cost reading only issue and cost, then count sessions, tokens
-- and the activity span for the $limit costliest only (half the work on a large store).
-- Parameters: $start, $end (TIMESTAMPTZ, [start, end)), $role, $rig, $worker, $issue
--   (NULL = any), $limit (BIGINT, rows, 1 to 10000).
WITH top AS (
    SELECT issue, sum(cost_usd) AS total_usd
    FROM hourly
    WHERE hour >= $start AND hour < $end
      AND ($role IS NULL OR role = $role)
      AND ($rig IS NULL OR rig = $rig)
      AND ($worker IS NULL OR worker = $worker)
      AND ($issue IS NULL OR issue = $issue)
    GROUP BY issue
    ORDER BY total_usd DESC, issue NULLS LAST
    LIMIT $limit
),
detail AS (
    SELECT
        h.issue,
        any_value(top.total_usd) AS total_usd,
        count(DISTINCT h.session_id) AS session_count,
        sum(h.event_count)::BIGINT AS event_count,
        sum(h.input_tokens)::BIGINT AS input_tokens,
        sum(h.output_tokens)::BIGINT AS output_tokens,
        sum(h.cache_creation_tokens)::BIGINT AS cache_creation_tokens,
        sum(h.cache_read_tokens)::BIGINT AS cache_read_tokens,
        min(h.first_at) AS first_at,
        max(h.last_at) AS last_at
    FROM hourly AS h
    JOIN top ON h.issue IS NOT DISTINCT FROM top.issue
    WHERE h.hour >= $start AND h.hour < $end
      AND ($role IS NULL OR h.role = $role)
      AND ($rig IS NULL OR h.rig = $rig)
      AND ($worker IS NULL OR h.worker = $worker)
      AND ($issue IS NULL OR h.issue = $issue)
    GROUP BY h.issue
)
SELECT
    issue, total_usd, session_count, event_count,
    input_tokens, output_tokens, cache_creation_tokens, cache_read_tokens,
    strftime(first_at, '%Y-%m-%dT%H:%M:%S.%fZ') AS first_at,
    strftime(last_at, '%Y-%m-%dT%H:%M:%S.%fZ') AS last_at,
    (epoch_us(last_at) - epoch_us(first_at)) / 1e6 AS duration_s,
    total_usd * 3.6e9 / nullif(epoch_us(last_at) - epoch_us(first_at), 0) AS usd_per_hour
FROM detail
ORDER BY total_usd DESC, issue NULLS LAST
