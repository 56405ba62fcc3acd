-- Which of the given sessions hold request-level events from a path other than OTLP
-- metrics (hook, import, OTLP records, the API with an event_id). The OTLP receiver runs
-- it at start-up for the sessions whose metric-derived events are not yet retracted.
-- Parameters: $sessions (VARCHAR: session ids, one per line).
SELECT DISTINCT session_id
FROM events
WHERE list_contains(string_split($sessions, chr(10)), session_id)
  AND event_id IS NOT NULL
  AND source <> 'otlp-metrics'
ORDER BY session_id
