"""DuckDB connections configured the one way Gasometer needs them."""

from __future__ import annotations

import duckdb


def connect(threads: int = 2, memory_limit: str = "2GB") -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection whose day and hour boundaries are UTC."""
    conn = duckdb.connect(":memory:", config={"threads": threads, "memory_limit": memory_limit})
    conn.execute("SET TimeZone = 'UTC'")
    return conn
