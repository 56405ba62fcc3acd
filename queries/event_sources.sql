-- Raw events per source (`demo`, `import`, `hook`, `api`, …), most first: what a store
-- holds and where it came from (the live demo town runs only where all of it is `demo`).
-- Parameters: none.
SELECT source, count(*) AS event_count
FROM events
GROUP BY source
ORDER BY event_count DESC, source
