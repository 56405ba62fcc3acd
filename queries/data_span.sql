-- The first and last hour holding any spend (NULLs when the store is empty).
-- Parameters: none.
SELECT min(hour) AS first_hour, max(hour) AS last_hour FROM hourly
