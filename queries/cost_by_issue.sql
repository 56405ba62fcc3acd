-- Cost per bead (issue), costliest first; events without an issue form one row, issue NULL.
-- duration_s spans the bead's first to last activity; usd_per_hour = total_usd per hour
-- of that span (NULL when the span is zero).
-- Parameters: $start, $end (TIMESTAMPTZ, [start, end)), $role, $rig, $worker, $issue
--   (NULL = any), $limit (BIGINT, rows).
SELECT
    issue,
    sum(cost_usd) AS total_usd,
    count(DISTINCT session_id) AS session_count,
    sum(event_count)::BIGINT AS event_count,
    sum(input_tokens)::BIGINT AS input_tokens,
    sum(output_tokens)::BIGINT AS output_tokens,
    sum(cache_creation_tokens)::BIGINT AS cache_creation_tokens,
    sum(cache_read_tokens)::BIGINT AS cache_read_tokens,
    strftime(min(first_at), '%Y-%m-%dT%H:%M:%S.%fZ') AS first_at,
    strftime(max(last_at), '%Y-%m-%dT%H:%M:%S.%fZ') AS last_at,
    (epoch_us(max(last_at)) - epoch_us(min(first_at))) / 1e6 AS duration_s,
    sum(cost_usd) * 3.6e9 / nullif(epoch_us(max(last_at)) - epoch_us(min(first_at)), 0)
        AS usd_per_hour
FROM hourly
WHERE hour >= $start AND hour < $end
  AND ($role IS NULL OR role = $role)
  AND ($rig IS NULL OR rig = $rig)
  AND ($worker IS NULL OR worker = $worker)
  AND ($issue IS NULL OR issue = $issue)
GROUP BY issue
ORDER BY total_usd DESC, issue NULLS LAST
LIMIT $limit
