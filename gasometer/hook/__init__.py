"""The live capture path: `gasometer hook`, run by Claude Code at Stop, SubagentStop and
SessionEnd, reads what the transcripts gained since its last run and sends it to the server.

Nothing here imports the server, DuckDB or pyarrow: the hook must start in milliseconds.
"""
