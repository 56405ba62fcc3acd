"""Importing Claude Code transcripts and Gas Town's cost log into the store.

`gasometer.importer` never imports the web framework: the CLI, the API, the hook,
tests and benchmarks all use it directly.
"""
