"""The parse-tree check of ad-hoc SQL: every function DuckDB lists is classified, calls are
found whatever hides them, and only the store's tables and files can be named."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from gasometer.query.sqlcheck import SqlRefused, allow_list, check_sql

ROOTS = [Path("/srv/gm/data/events"), Path("/srv/gm/data/hourly")]
MACROS = ["daily", "totals"]


def listed_functions(types: tuple[str, ...]) -> set[str]:
    conn = duckdb.connect()
    rows = conn.execute(
        "SELECT DISTINCT function_name FROM duckdb_functions() WHERE function_type IN "
        f"({', '.join(repr(t) for t in types)})"
    ).fetchall()
    return {row[0] for row in rows}


def test_every_function_duckdb_lists_is_classified() -> None:
    """A DuckDB upgrade that brings a function fails here until someone classifies it."""
    allowed = allow_list()
    scalar = listed_functions(("scalar", "aggregate", "macro"))
    table = listed_functions(("table", "table_macro", "pragma"))
    unclassified_scalar = sorted(scalar - allowed.scalar - set(allowed.refused))
    unclassified_table = sorted(table - allowed.table - set(allowed.refused))
    assert unclassified_scalar == []
    assert unclassified_table == []
    assert allowed.files <= allowed.table
    assert not (allowed.scalar | allowed.table) & set(allowed.refused)
    stale = sorted((allowed.scalar | allowed.table | set(allowed.refused)) - scalar - table)
    assert stale == []


@pytest.mark.parametrize("name", sorted(listed_functions(("table", "table_macro", "pragma"))))
def test_each_table_function_is_allowed_or_refused_with_its_reason(name: str) -> None:
    allowed = allow_list()
    args = "'/srv/gm/data/events/a.parquet'" if name in allowed.files else ""
    sql = f'SELECT * FROM "{name}"({args})'
    if name in allowed.table:
        check_sql(sql, ROOTS, MACROS)
    else:
        with pytest.raises(SqlRefused, match=f"refused: {name}\\(\\) is not allowed; it "):
            check_sql(sql, ROOTS, MACROS)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM pandas_scan(NULL)",
        "SELECT * FROM arrow_scan(NULL, NULL, NULL)",
        "SELECT * FROM python_map_function(NULL)",
        "SELECT enable_logging/**/()",
        "SELECT * FROM enable_logging/**/()",
        "SELECT * FROM checkpoint/**/()",
        "SELECT * FROM query/**/('SELECT 1')",
        "SELECT * FROM query_table('events')",
        "SELECT * FROM system.main.\"Enable_Logging\" (level := 'trace')",
        "SELECT * FROM (SELECT * FROM glob('/etc/*'))",
        "SELECT (SELECT count(*) FROM read_text('/etc/passwd'))",
        "WITH x AS (SELECT * FROM read_csv('/etc/passwd')) SELECT * FROM x",
        "SELECT current_setting('temp_directory')",
        "SELECT * FROM duckdb_settings()",
        "SELECT 1 FROM events WHERE write_log('x') IS NULL",
        "SELECT * FROM read_parquet('/etc/passwd')",
        "SELECT * FROM read_parquet('/srv/gm/data/events/../ledger.sqlite')",
        "SELECT * FROM read_parquet('/srv/gm/data/events' || '/../ledger.sqlite')",
        "SELECT * FROM read_parquet(['/srv/gm/data/events/a.parquet', '/etc/passwd'])",
        "SELECT * FROM read_parquet('https://example.com/x.parquet')",
        "SELECT * FROM '/etc/passwd'",
        "SELECT * FROM information_schema.tables",
        "SELECT * FROM pending_events",
        "SELECT * FROM queries.nope()",
        "SELECT queries.daily()",
        "SHOW DATABASES",
        "EXPLAIN SELECT * FROM pandas_scan(NULL)",
    ],
)
def test_refused_on_the_parse_tree(sql: str) -> None:
    with pytest.raises(SqlRefused, match=r"^refused: "):
        check_sql(sql, ROOTS, MACROS)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 'enable_logging()' AS query, 1 AS checkpoint",
        "SELECT count(*), sum(cost_usd) FILTER (WHERE role = 'polecat') FROM events",
        "WITH t AS (SELECT * FROM hourly) SELECT * FROM t JOIN events USING (session_id)",
        "SELECT * FROM queries.daily(p_start := '2026-11-01')",
        "SELECT * FROM read_parquet('/srv/gm/data/events/month=2026-11/*.parquet')",
        "SELECT list_transform([1, 2], x -> x + 1), [i * 2 FOR i IN range(3)]",
        "SELECT row_number() OVER (ORDER BY ended_at) FROM events",
        "SHOW TABLES",
        "DESCRIBE events",
        "SUMMARIZE hourly",
        "EXPLAIN SELECT count(*) FROM events",
        "FROM range(10)",
    ],
)
def test_allowed_on_the_parse_tree(sql: str) -> None:
    check_sql(sql, ROOTS, MACROS)
