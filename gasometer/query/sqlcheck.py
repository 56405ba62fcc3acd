"""Which ad-hoc statements may run: checked on DuckDB's own parse tree, before anything runs.

Two steps, both without executing anything:
1. `duckdb.extract_statements` types the text: exactly one SELECT, or one plain EXPLAIN of a
   SELECT (EXPLAIN ANALYZE executes its statement).
2. `json_serialize_sql` gives the statement's parse tree; every function call, table function
   and table reference in it is checked against the allow-list in `sql_functions.toml`. A
   name DuckDB parses as a call is a call whatever comments, quotes, case or schema surround
   it (`enable_logging/**/()`, `system.main."Enable_Logging"()`), and a name in a string is
   only a string. Tables are `events`, `hourly`, the statement's own CTEs and the
   `queries.<name>(…)` macros; file-reading table functions only on the store's own files.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import tomllib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import duckdb

from gasometer.errors import QueryError

MAX_SQL_CHARS = 100_000
TABLES = frozenset({"events", "hourly"})
MACRO_SCHEMA = "queries"
ALLOWLIST_FILE = Path(__file__).with_name("sql_functions.toml")

_STATEMENT = duckdb.StatementType
_WHY_REFUSED = {
    _STATEMENT.COPY: "COPY reads or writes files",
    _STATEMENT.EXPORT: "EXPORT writes files",
    _STATEMENT.ATTACH: "ATTACH opens or creates database files",
    _STATEMENT.DETACH: "DETACH changes the attached databases",
    _STATEMENT.LOAD: "INSTALL and LOAD add extensions",
    _STATEMENT.SET: "SET, RESET, USE, SET VARIABLE and PRAGMA x = y change configuration or state",
    _STATEMENT.PRAGMA: "PRAGMA switches change configuration",
    _STATEMENT.CALL: "CALL and CHECKPOINT run procedures",
    _STATEMENT.CREATE: "CREATE changes the catalog",
    _STATEMENT.DROP: "DROP changes the catalog",
    _STATEMENT.ALTER: "ALTER changes the catalog",
    _STATEMENT.INSERT: "INSERT writes data",
    _STATEMENT.UPDATE: "UPDATE writes data",
    _STATEMENT.DELETE: "DELETE and TRUNCATE write data",
    _STATEMENT.MERGE_INTO: "MERGE writes data",
    _STATEMENT.TRANSACTION: "transactions are not needed for reads",
    _STATEMENT.VACUUM: "VACUUM and ANALYZE change storage",
    _STATEMENT.PREPARE: "PREPARE keeps state between statements",
    _STATEMENT.EXECUTE: "EXECUTE runs prepared state",
}
_SHOWABLE = frozenset({"tables", "events", "hourly", ""})


class SqlRefused(QueryError):
    """A statement the sandbox does not run; the message says why."""

    status = 400


class AllowList(NamedTuple):
    """The classified functions: allowed scalar and table functions, file readers, refusals."""

    scalar: frozenset[str]
    table: frozenset[str]
    files: frozenset[str]
    refused: dict[str, str]


@functools.cache
def allow_list() -> AllowList:
    """The allow-list as read from sql_functions.toml (refusal reasons spelled out)."""
    data = tomllib.loads(ALLOWLIST_FILE.read_text())
    reasons: dict[str, str] = data["reasons"]
    allowed = data["allowed"]
    return AllowList(
        scalar=frozenset(allowed["scalar"].split()),
        table=frozenset(allowed["table"].split()),
        files=frozenset(allowed["files"].split()),
        refused={name: reasons[key] for name, key in data["refused"].items()},
    )


def check_sql(
    sql: str, file_roots: Sequence[Path] = (), macros: Sequence[str] = ()
) -> duckdb.Statement:
    """The one statement in `sql` if it may run; SqlRefused saying why if not.

    `file_roots`: directories whose Parquet files `read_parquet` and friends may name;
    `macros`: the `queries.<name>` table macros a statement may call."""
    if len(sql) > MAX_SQL_CHARS:
        raise SqlRefused(f"refused: SQL longer than {MAX_SQL_CHARS} characters")
    statement = _one_statement(sql)
    select = statement.query
    if statement.type == _STATEMENT.EXPLAIN:
        select = _explained_select(statement.query)
    elif statement.type != _STATEMENT.SELECT:
        why = _WHY_REFUSED.get(statement.type, f"{statement.type.name} statements are not reads")
        raise SqlRefused(f"refused: only SELECT and EXPLAIN are allowed; {why}")
    TreeCheck(parse_tree(select), file_roots, frozenset(macros)).run()
    return statement


def _one_statement(sql: str) -> duckdb.Statement:
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(first_line(exc)) from exc
    if not statements:
        raise SqlRefused("refused: no SQL statement given")
    if len(statements) > 1:
        raise SqlRefused(
            f"refused: one statement per request, got {len(statements)} "
            "(a PIVOT without an IN list also counts as two)"
        )
    return statements[0]


def _explained_select(sql: str) -> str:
    """The SELECT of a plain EXPLAIN; EXPLAIN ANALYZE runs its statement (writes included)."""
    tokens = duckdb.tokenize(sql)
    words = [_token_text(sql, tokens, i).upper() for i in range(len(tokens))]
    start = 1
    if len(words) > 1 and words[1] == "(":
        close = words.index(")", 1) if ")" in words else len(words) - 1
        if {"ANALYZE", "ANALYSE"} & set(words[1:close]):
            raise SqlRefused("refused: EXPLAIN ANALYZE executes its statement; use plain EXPLAIN")
        start = close + 1
    if len(words) > start and words[start] in ("ANALYZE", "ANALYSE"):
        raise SqlRefused("refused: EXPLAIN ANALYZE executes its statement; use plain EXPLAIN")
    inner = sql[tokens[start][0] :] if len(tokens) > start else ""
    try:
        statements = duckdb.extract_statements(inner)
    except duckdb.Error as exc:
        raise QueryError(first_line(exc)) from exc
    if len(statements) != 1 or statements[0].type != _STATEMENT.SELECT:
        raise SqlRefused("refused: EXPLAIN is allowed only for a SELECT")
    return statements[0].query


def _token_text(sql: str, tokens: list[tuple[int, Any]], i: int) -> str:
    end = tokens[i + 1][0] if i + 1 < len(tokens) else len(sql)
    return sql[tokens[i][0] : end].strip()


_parser = threading.local()


def parse_tree(select: str) -> dict[str, Any]:
    """DuckDB's parse tree of one SELECT (`json_serialize_sql`), parsed only, never bound."""
    conn: duckdb.DuckDBPyConnection | None = getattr(_parser, "conn", None)
    if conn is None:
        conn = duckdb.connect(":memory:", config={"threads": 1})
        _parser.conn = conn
    row = conn.execute("SELECT json_serialize_sql($sql)", {"sql": select}).fetchone()
    tree: dict[str, Any] = json.loads(row[0]) if row else {"error": True}
    if tree.get("error"):
        message = tree.get("error_message", "cannot be parsed")
        raise SqlRefused(f"refused: this statement cannot be checked ({message})")
    return tree


class TreeCheck:
    """A walk over a parse tree that refuses every call or table not on the allow-list."""

    def __init__(self, tree: dict[str, Any], roots: Sequence[Path], macros: frozenset[str]):
        self.tree = tree
        self.roots = [os.path.normpath(str(root)) + os.sep for root in roots]
        self.macros = macros
        self.allowed = allow_list()
        self.ctes = set(_cte_names(tree))

    def run(self) -> None:
        """Walk the whole tree; SqlRefused at the first refused name."""
        self._walk(self.tree)

    def _walk(self, node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                self._walk(item)
            return
        if not isinstance(node, dict):
            return
        kind = node.get("type")
        if kind == "TABLE_FUNCTION":
            self._table_function(node["function"])
            self._walk(node["function"].get("children", []))
            return
        if kind == "BASE_TABLE":
            self._table(node)
        elif kind == "SHOW_REF":
            self._show(node)
        elif node.get("class") in ("FUNCTION", "WINDOW") and "function_name" in node:
            self._function(node)
        for value in node.values():
            if isinstance(value, dict | list):
                self._walk(value)

    def _function(self, node: dict[str, Any]) -> None:
        name = str(node["function_name"]).lower()
        if str(node.get("schema", "")).lower() == MACRO_SCHEMA:
            raise SqlRefused(f"refused: {MACRO_SCHEMA}.{name} is a table macro; use it in FROM")
        if name not in self.allowed.scalar:
            raise SqlRefused(f"refused: {name}() is not allowed; {self._why(name)}")

    def _table_function(self, node: dict[str, Any]) -> None:
        name = str(node["function_name"]).lower()
        if str(node.get("schema", "")).lower() == MACRO_SCHEMA:
            if name not in self.macros:
                raise SqlRefused(f"refused: no named query {MACRO_SCHEMA}.{name}")
            return
        if name not in self.allowed.table:
            raise SqlRefused(f"refused: {name}() is not allowed; {self._why(name)}")
        if name in self.allowed.files:
            self._paths(name, node.get("children", []))

    def _why(self, name: str) -> str:
        return self.allowed.refused.get(name, "it is not on the allow-list of functions")

    def _paths(self, name: str, args: list[Any]) -> None:
        """File functions may only name the store's own files, as constant absolute paths."""
        paths = _constant_strings(args[0]) if args else None
        if not paths:
            raise SqlRefused(f"refused: {name}() takes constant paths of the store's files here")
        for path in paths:
            normal = os.path.normpath(path)
            if "://" in path or not any(normal.startswith(root) for root in self.roots):
                raise SqlRefused(
                    f"refused: {name}() may read only the store's own Parquet files "
                    "(below events/ and hourly/ of the data directory)"
                )

    def _table(self, node: dict[str, Any]) -> None:
        name = str(node.get("table_name", ""))
        schema = str(node.get("schema_name", "")).lower()
        if name.lower() in self.ctes and not schema:
            return
        if name.lower() in TABLES and schema in ("", "main", "temp"):
            return
        shown = name if len(name) <= 40 and "/" not in name else "this table"
        raise SqlRefused(
            f"refused: {shown} cannot be queried; use events, hourly, "
            f"{MACRO_SCHEMA}.<name>(…) or a CTE"
        )

    def _show(self, node: dict[str, Any]) -> None:
        name = str(node.get("table_name", "")).strip('"').lower()
        if name not in _SHOWABLE:
            raise SqlRefused("refused: SHOW and DESCRIBE work on tables, events and hourly")


def _cte_names(node: Any) -> Iterator[str]:
    if isinstance(node, list):
        for item in node:
            yield from _cte_names(item)
    elif isinstance(node, dict):
        cte_map = node.get("cte_map")
        if isinstance(cte_map, dict):
            for entry in cte_map.get("map", []):
                yield str(entry.get("key", "")).lower()
        for value in node.values():
            yield from _cte_names(value)


def _constant_strings(node: Any) -> list[str] | None:
    """The strings of a constant VARCHAR or a list of only those; None for anything else."""
    if not isinstance(node, dict):
        return None
    if node.get("class") == "CONSTANT":
        value = node.get("value", {})
        if value.get("type", {}).get("id") == "VARCHAR" and not value.get("is_null"):
            return [str(value["value"])]
        return None
    if node.get("class") == "FUNCTION" and node.get("function_name") == "list_value":
        found: list[str] = []
        for child in node.get("children", []):
            strings = _constant_strings(child)
            if strings is None:
                return None
            found += strings
        return found
    return None


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (DuckDB adds hints and context below it)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
