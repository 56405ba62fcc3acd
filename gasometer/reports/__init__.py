"""ccusage-style usage reports (`gasometer daily|weekly|monthly|session|blocks`).

`source` fetches rows from a data directory (through gasometer.query) or from a running
server (through its read API); `build` turns them into report rows; `render` prints them.
"""

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
