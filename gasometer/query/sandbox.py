"""Ad-hoc SQL that cannot escape: read-only DuckDB over `events`, `hourly` and the named queries.

Every statement runs on its own fresh in-memory DuckDB database, never on the service's query
connections. Before the user's SQL runs, that database gets
- the views `events` and `hourly` over the store's current snapshot (as the engine builds them),
- one table macro per public named query, `queries.<name>(p_<param> := …)`,
- limits: `threads`, `memory_limit`, a temp directory of its own inside the data directory
  with `max_temp_directory_size`, file access only below `events/` and `hourly/`, then
  `enable_external_access = false` and finally `lock_configuration = true` (in that order:
  DuckDB refuses to change allowed directories once external access is off).
DuckDB's switches still let `COPY … TO`, `ATTACH`, `CREATE`, `DROP`, `SET VARIABLE`, switch
pragmas and `EXPLAIN ANALYZE <write>` through, so statements are also checked by type with
`duckdb.extract_statements`: exactly one SELECT, or one plain EXPLAIN of a SELECT, calling
none of the table functions that change state from a SELECT (`enable_logging()`, …). A timer calls
`interrupt()` at the time limit; at most `max_rows` rows (and `max_bytes` bytes) come back,
and the result says when it was cut.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, NamedTuple

import duckdb
import msgspec
import pyarrow as pa

from gasometer.config import Settings
from gasometer.errors import BadRequest, GasometerError, QueryError
from gasometer.query.engine import install_views
from gasometer.resources import query_header, query_names, query_text
from gasometer.store.store import Snapshot

log = logging.getLogger("gasometer.sql")

INTERNAL_QUERIES = frozenset({"rollup_hourly", "rollup_merge", "rollup_of_exact_hours"})
"""Building blocks of the store and the engine, not answers."""

MACRO_SCHEMA = "queries"
TEMP_DIR = ".sql-tmp"
MAX_SQL_CHARS = 100_000
BATCH_ROWS = 2048

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

_WHY_FUNCTION_REFUSED = {
    "enable_logging": "it changes logging configuration (and can write log files)",
    "disable_logging": "it changes logging configuration",
    "truncate_duckdb_logs": "it changes logging state",
    "enable_profiling": "it changes profiling configuration",
    "disable_profiling": "it changes profiling configuration",
    "checkpoint": "it runs storage maintenance",
    "force_checkpoint": "it runs storage maintenance",
    "query": "it runs SQL built at run time, which cannot be checked first",
    "json_execute_serialized_sql": "it runs SQL built at run time, which cannot be checked first",
}
"""Table functions that change state although their statement types as SELECT."""


class SqlRefused(QueryError):
    """A statement the sandbox does not run; the message says why."""

    status = 400


class SqlTimeout(QueryError):
    """A statement interrupted at the time limit."""

    status = 400


class UnknownQuery(QueryError):
    """No public named query by that name."""

    status = 404


class SqlBusy(GasometerError):
    """Every sandbox slot stayed busy for the whole time limit."""

    status = 503


class Limits(NamedTuple):
    """What one ad-hoc statement may use."""

    timeout_s: float = 10.0
    max_rows: int = 100_000
    max_bytes: int = 256 * 1024 * 1024
    memory_limit: str = "1GB"
    threads: int = 2
    max_temp_size: str = "2GB"
    concurrency: int = 2

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        """The limits configured for this service."""
        return cls(
            timeout_s=settings.sql_timeout_s,
            max_rows=settings.sql_max_rows,
            memory_limit=settings.sql_memory_limit,
            threads=settings.sql_threads,
            max_temp_size=settings.sql_max_temp_size,
        )


class SqlResult(NamedTuple):
    """Rows of one statement as Arrow, their DuckDB types, whether they were cut at the
    limit, and the time taken."""

    table: pa.Table
    types: list[str]
    truncated: bool
    elapsed_s: float

    @property
    def columns(self) -> list[str]:
        """Column names, in order."""
        return list(self.table.column_names)

    def rows(self) -> list[tuple[Any, ...]]:
        """Rows as Python tuples (timestamps as aware datetimes, intervals as ISO 8601 text)."""
        columns = [column.to_pylist() for column in portable(self.table).columns]
        return list(zip(*columns, strict=True)) if columns else []


def portable(table: pa.Table) -> pa.Table:
    """`table` with top-level interval columns as ISO 8601 text (JSON, CSV and Parquet lack
    the type) and nanosecond timestamps cut to microseconds (Python's resolution)."""
    for i, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type) and field.type.unit == "ns":
            micros = pa.timestamp("us", tz=field.type.tz)
            table = table.set_column(i, field.name, table.column(i).cast(micros, safe=False))
        elif pa.types.is_interval(field.type):
            text = pa.array(
                [None if v is None else _iso_interval(v) for v in table.column(i).to_pylist()],
                pa.string(),
            )
            table = table.set_column(i, field.name, text)
    return table


def _iso_interval(value: Any) -> str:
    seconds = value.nanoseconds / 1e9
    return f"P{value.months}M{value.days}DT{seconds:g}S"


# -- statement checks -----------------------------------------------------------------------


def check_sql(sql: str) -> duckdb.Statement:
    """The one statement in `sql` if the sandbox may run it; SqlRefused saying why if not."""
    if len(sql) > MAX_SQL_CHARS:
        raise SqlRefused(f"refused: SQL longer than {MAX_SQL_CHARS} characters")
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(_first_line(exc)) from exc
    if not statements:
        raise SqlRefused("refused: no SQL statement given")
    if len(statements) > 1:
        raise SqlRefused(
            f"refused: one statement per request, got {len(statements)} "
            "(a PIVOT without an IN list also counts as two)"
        )
    statement = statements[0]
    if statement.type == _STATEMENT.EXPLAIN:
        _check_explain(statement.query)
    elif statement.type != _STATEMENT.SELECT:
        why = _WHY_REFUSED.get(statement.type, f"{statement.type.name} statements are not reads")
        raise SqlRefused(f"refused: only SELECT and EXPLAIN are allowed; {why}")
    _check_functions(statement.query)
    return statement


def _check_functions(sql: str) -> None:
    """Refuse calls of the table functions that change state (`name(` in any case or quoting)."""
    tokens = duckdb.tokenize(sql)
    for i in range(len(tokens) - 1):
        if tokens[i][1] not in (duckdb.token_type.identifier, duckdb.token_type.keyword):
            continue
        name = _token_text(sql, tokens, i).strip('"').lower()
        if name in _WHY_FUNCTION_REFUSED and _token_text(sql, tokens, i + 1).startswith("("):
            raise SqlRefused(f"refused: {name}() is not allowed; {_WHY_FUNCTION_REFUSED[name]}")


def _check_explain(sql: str) -> None:
    """Plain EXPLAIN of a SELECT only: EXPLAIN ANALYZE runs its statement (writes included)."""
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
        raise QueryError(_first_line(exc)) from exc
    if len(statements) != 1 or statements[0].type != _STATEMENT.SELECT:
        raise SqlRefused("refused: EXPLAIN is allowed only for a SELECT")


def _token_text(sql: str, tokens: list[tuple[int, Any]], i: int) -> str:
    end = tokens[i + 1][0] if i + 1 < len(tokens) else len(sql)
    return sql[tokens[i][0] : end].strip()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# -- named queries --------------------------------------------------------------------------


class NamedQuery(msgspec.Struct):
    """One query of queries/: its name, header comment and declared `$parameters`."""

    name: str
    description: str
    parameters: list[str]
    internal: bool


PARAM_DEFAULTS: dict[str, str] = {
    "start": "TIMESTAMPTZ '2000-01-01 00:00:00+00'",
    "end": "TIMESTAMPTZ '2100-01-01 00:00:00+00'",
    "tz": "'UTC'",
    "group_by": "'role'",
    "limit": "100",
    "now": "current_timestamp",
}
"""SQL defaults of parameters a caller leaves out (every other one defaults to NULL = any)."""

_TYPES = {"TIMESTAMPTZ", "TIMESTAMP", "DATE", "BIGINT", "INTEGER", "DOUBLE", "BOOLEAN", "VARCHAR"}


def query_body(name: str) -> str:
    """The SQL of a named query without its header comment or a trailing semicolon."""
    lines = query_text(name).splitlines()
    body = "\n".join(line for line in lines if not line.lstrip().startswith("--"))
    return body.strip().rstrip(";")


def declared_params(name: str) -> list[str]:
    """The `$parameters` a named query uses, in order of first use."""
    return list(dict.fromkeys(re.findall(r"\$([A-Za-z_]\w*)", query_body(name))))


def param_types(name: str) -> dict[str, str]:
    """Parameter types stated in the header (`$a, $b (TIMESTAMPTZ, …)`); others are text."""
    header = query_header(name)
    header = header[header.find("Parameters:") :] if "Parameters:" in header else header
    types: dict[str, str] = {}
    waiting: list[str] = []
    for match in re.finditer(r"\$(\w+)|\((\w+)|[.;]", header):
        if match.group(1):
            waiting.append(match.group(1))
            continue
        if match.group(2) and match.group(2).upper() in _TYPES:
            types.update(dict.fromkeys(waiting, match.group(2).upper()))
        waiting = []
    return types


def named_queries(include_internal: bool = True) -> list[NamedQuery]:
    """Every named query with its header; internal ones marked (or left out)."""
    return [
        NamedQuery(name, query_header(name), declared_params(name), name in INTERNAL_QUERIES)
        for name in query_names()
        if include_internal or name not in INTERNAL_QUERIES
    ]


def public_query(name: str) -> str:
    """`name` if it is a public named query; UnknownQuery (404) otherwise."""
    if name not in query_names() or name in INTERNAL_QUERIES:
        raise UnknownQuery(f"no named query {name!r} (see GET /api/queries)")
    return name


def bind_params(name: str, raw: Mapping[str, str]) -> dict[str, Any]:
    """Query-string values converted to the types the query declares; unknown names refused."""
    declared = declared_params(name)
    unknown = sorted(set(raw) - set(declared))
    if unknown:
        listed = ", ".join(declared) or "none"
        raise BadRequest(f"unknown parameter {unknown[0]!r} for {name} (it takes: {listed})")
    types = param_types(name)
    values: dict[str, Any] = {}
    for param in declared:
        if param in raw:
            values[param] = _convert(param, raw[param], types.get(param, "VARCHAR"))
        else:
            values[param] = _default(param)
    return values


def _default(param: str) -> Any:
    defaults: dict[str, Any] = {
        "start": datetime(2000, 1, 1, tzinfo=UTC),
        "end": datetime(2100, 1, 1, tzinfo=UTC),
        "tz": "UTC",
        "group_by": "role",
        "limit": 100,
        "now": datetime.now(UTC),
    }
    return defaults.get(param)


def _convert(param: str, value: str, kind: str) -> Any:
    try:
        if kind in ("TIMESTAMPTZ", "TIMESTAMP"):
            moment = datetime.fromisoformat(value)
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        if kind == "DATE":
            return date.fromisoformat(value)
        if kind in ("BIGINT", "INTEGER"):
            return int(value)
        if kind == "DOUBLE":
            return float(value)
        if kind == "BOOLEAN":
            return {"true": True, "1": True, "false": False, "0": False}[value.lower()]
    except (ValueError, KeyError):
        raise BadRequest(f"parameter {param}: {value!r} is not a valid {kind}") from None
    return value


def install_macros(conn: duckdb.DuckDBPyConnection) -> None:
    """Each public named query as a table macro `queries.<name>(p_<param> := default, …)`.

    Parameters carry a `p_` prefix because DuckDB resolves a macro parameter named like a
    column (`role`) to the column.
    """
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {MACRO_SCHEMA}")
    for name in query_names():
        if name in INTERNAL_QUERIES or not name.isidentifier():
            continue
        params = declared_params(name)
        args = ", ".join(f"p_{p} := {PARAM_DEFAULTS.get(p, 'NULL')}" for p in params)
        body = re.sub(r"\$([A-Za-z_]\w*)", r"p_\1", query_body(name))
        try:
            conn.execute(f'CREATE MACRO {MACRO_SCHEMA}."{name}"({args}) AS TABLE {body}')
        except duckdb.Error as exc:  # one odd query must not take the others down
            log.warning("named query %s is not available as a macro: %s", name, _first_line(exc))


# -- the sandbox ----------------------------------------------------------------------------


class Sandbox:
    """Runs checked, limited, read-only SQL on a fresh DuckDB database per statement."""

    def __init__(self, snapshot: Callable[[], Snapshot], limits: Limits) -> None:
        self.snapshot = snapshot
        self.limits = limits
        self._slots = threading.BoundedSemaphore(limits.concurrency)

    def run(self, sql: str) -> SqlResult:
        """Run one ad-hoc statement (checked first: SqlRefused says why it was not run)."""
        statement = check_sql(sql)
        macros = MACRO_SCHEMA in sql.lower()
        return self._run(lambda conn: conn.execute(statement), macros=macros)

    def run_named(self, name: str, raw_params: Mapping[str, str]) -> SqlResult:
        """Run a public named query with parameters from a query string, under the same limits."""
        sql = query_body(public_query(name))
        params = bind_params(name, raw_params)
        return self._run(lambda conn: conn.execute(sql, params), macros=False)

    def _run(
        self,
        execute: Callable[[duckdb.DuckDBPyConnection], duckdb.DuckDBPyConnection],
        *,
        macros: bool,
    ) -> SqlResult:
        if not self._slots.acquire(timeout=self.limits.timeout_s):
            raise SqlBusy(f"all {self.limits.concurrency} SQL slots are busy; try again shortly")
        try:
            snapshot = self.snapshot()
            temp = snapshot.data_dir / TEMP_DIR / uuid.uuid4().hex
            temp.mkdir(parents=True)
            try:
                conn = self._connect(snapshot, temp, macros)
                try:
                    return self._fetch(conn, execute)
                finally:
                    conn.close()
            finally:
                shutil.rmtree(temp, ignore_errors=True)
        finally:
            self._slots.release()

    def _connect(self, snapshot: Snapshot, temp: Path, macros: bool) -> duckdb.DuckDBPyConnection:
        """A fresh database with the views (and macros if asked for) installed, then locked."""
        limits = self.limits
        conn = duckdb.connect(
            ":memory:",
            config={
                "threads": limits.threads,
                "memory_limit": limits.memory_limit,
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
            },
        )
        try:
            conn.execute("SET TimeZone = 'UTC'")
            install_views(conn, snapshot)
            if macros:
                install_macros(conn)
            for statement in lockdown(snapshot.data_dir, temp, limits):
                conn.execute(statement)
        except BaseException:
            conn.close()
            raise
        return conn

    def _fetch(
        self,
        conn: duckdb.DuckDBPyConnection,
        execute: Callable[[duckdb.DuckDBPyConnection], duckdb.DuckDBPyConnection],
    ) -> SqlResult:
        """Rows up to the limits, under a timer that interrupts the statement."""
        limits = self.limits
        fired = threading.Event()

        def interrupt() -> None:
            fired.set()
            with contextlib.suppress(duckdb.Error):  # the statement may have just ended
                conn.interrupt()

        timer = threading.Timer(limits.timeout_s, interrupt)
        began = time.perf_counter()
        timer.start()
        try:
            relation = execute(conn)
            types = [str(column[1]) for column in relation.description or []]
            reader = relation.to_arrow_reader(BATCH_ROWS)
            batches: list[pa.RecordBatch] = []
            rows = size = 0
            truncated = False
            for batch in reader:
                batches.append(batch)
                rows += batch.num_rows
                size += batch.nbytes
                if rows > limits.max_rows or size > limits.max_bytes:
                    truncated = True
                    break
            table = pa.Table.from_batches(batches, schema=reader.schema)
        except duckdb.InterruptException as exc:
            if fired.is_set():
                raise SqlTimeout(
                    f"statement interrupted at the time limit of {limits.timeout_s:g} s"
                ) from exc
            raise QueryError("statement interrupted") from exc
        except duckdb.OutOfMemoryException as exc:
            raise QueryError(
                f"statement needs more than the memory limit of {limits.memory_limit} "
                f"and temp space of {limits.max_temp_size}: {_first_line(exc)}"
            ) from exc
        except duckdb.Error as exc:
            raise QueryError(_first_line(exc)) from exc
        finally:
            timer.cancel()
        elapsed = time.perf_counter() - began
        return SqlResult(table.slice(0, limits.max_rows), types, truncated, elapsed)


def lockdown(data_dir: Path, temp: Path, limits: Limits) -> list[str]:
    """The settings that confine a sandbox connection, in the only order DuckDB accepts."""
    allowed = ", ".join(_literal(f"{data_dir / d}/") for d in ("events", "hourly"))
    return [
        f"SET allowed_directories = [{allowed}, {_literal(f'{temp}/')}]",
        f"SET temp_directory = {_literal(str(temp))}",
        f"SET max_temp_directory_size = {_literal(limits.max_temp_size)}",
        "SET python_enable_replacements = false",
        "SET enable_external_access = false",
        "SET lock_configuration = true",
    ]


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# -- output ---------------------------------------------------------------------------------

_json = msgspec.json.Encoder(enc_hook=str, decimal_format="number")


class SqlJson(msgspec.Struct):
    """A result as JSON: column names and DuckDB types, rows as arrays, whether rows were cut."""

    columns: list[str]
    types: list[str]
    rows: list[tuple[Any, ...]]
    row_count: int
    truncated: bool
    elapsed_ms: float


def as_json(result: SqlResult) -> SqlJson:
    """The JSON shape of a result (timestamps become RFC 3339 strings when encoded)."""
    return SqlJson(
        columns=result.columns,
        types=result.types,
        rows=result.rows(),
        row_count=result.table.num_rows,
        truncated=result.truncated,
        elapsed_ms=round(result.elapsed_s * 1000, 3),
    )


def encode(result: SqlResult, fmt: str) -> bytes:
    """A result as `json`, `csv` or `parquet`; a type the format cannot hold is a QueryError."""
    encoders = {"json": encode_json, "csv": encode_csv, "parquet": encode_parquet}
    try:
        return encoders[fmt](result)
    except (pa.ArrowException, ValueError, TypeError) as exc:
        types = ", ".join(f"{f.name} {f.type}" for f in result.table.schema)
        raise QueryError(
            f"cannot write this result as {fmt} ({types}): {_first_line(exc)}; "
            "cast the column in SQL, e.g. ::VARCHAR"
        ) from exc


def encode_json(result: SqlResult) -> bytes:
    """A result encoded as JSON (values msgspec cannot encode become strings)."""
    return _json.encode(as_json(result))


def encode_csv(result: SqlResult) -> bytes:
    """A result as CSV with a header row; timestamps in ISO 8601, NULL as an empty field."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(result.columns)
    writer.writerows(tuple(_csv_value(v) for v in row) for row in result.rows())
    return out.getvalue().encode()


def _csv_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict | list):
        return _json.encode(value).decode()
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    return value


def encode_parquet(result: SqlResult) -> bytes:
    """A result as one Parquet file (zstd), types kept as DuckDB gave them."""
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(portable(result.table), sink, compression="zstd")
    return bytes(sink.getvalue().to_pybytes())
