-- All-time cost, events and tokens per role, rig and model (NULL model as 'unknown'),
-- for the Prometheus counters of GET /metrics.
-- Parameters: none.
SELECT
    role, rig, coalesce(model, 'unknown') AS model,
    sum(cost_usd) AS cost_usd,
    sum(event_count)::BIGINT AS event_count,
    sum(input_tokens)::BIGINT AS input_tokens,
    sum(output_tokens)::BIGINT AS output_tokens,
    sum(cache_creation_tokens)::BIGINT AS cache_creation_tokens,
    sum(cache_read_tokens)::BIGINT AS cache_read_tokens
FROM hourly
GROUP BY ALL
ORDER BY role, rig, model
