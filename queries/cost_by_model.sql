-- Cost and tokens per model (NULL model as 'unknown'), costliest first, with the cache-read
-- share: cache-read tokens over all input-side tokens (input + cache writes + cache reads).
-- (No session count: counting distinct sessions would cost more than the rest together.)
-- Parameters: $start, $end (TIMESTAMPTZ, [start, end)), $role, $rig, $worker, $issue
--   (NULL = any).
SELECT
    coalesce(model, 'unknown') AS model,
    sum(cost_usd) AS total_usd,
    sum(event_count)::BIGINT AS event_count,
    sum(input_tokens)::BIGINT AS input_tokens,
    sum(output_tokens)::BIGINT AS output_tokens,
    sum(cache_creation_tokens)::BIGINT AS cache_creation_tokens,
    sum(cache_read_tokens)::BIGINT AS cache_read_tokens,
    coalesce(
        sum(cache_read_tokens)
        / nullif(sum(input_tokens) + sum(cache_creation_tokens) + sum(cache_read_tokens), 0),
        0
    ) AS cache_read_share
FROM hourly
WHERE hour >= $start AND hour < $end
  AND ($role IS NULL OR role = $role)
  AND ($rig IS NULL OR rig = $rig)
  AND ($worker IS NULL OR worker = $worker)
  AND ($issue IS NULL OR issue = $issue)
GROUP BY 1
ORDER BY total_usd DESC, model
