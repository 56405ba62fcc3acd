"""Ad-hoc SQL that cannot escape or take the server down: checked, then run in a worker.

A statement is first checked on DuckDB's parse tree against an allow-list
(gasometer.query.sqlcheck), then sent to a worker process (gasometer.query.pool,
gasometer.query.worker) with the store's current snapshot. The worker runs it on a fresh
in-memory DuckDB database holding the views `events` and `hourly` (and the `queries.*`
macros), confined to the store's files, under DuckDB's memory limit, an OS cap on its
allocated memory and a time limit; a worker that does not answer in time is killed. Ad-hoc SQL
and named queries use separate pools, so callers of one never wait for the other's slots.
Errors reach the caller without paths: the data directory, HOME and the working directory
are replaced by placeholders.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any, NamedTuple

import duckdb
import msgspec
import pyarrow as pa

from gasometer.config import Settings
from gasometer.errors import QueryError
from gasometer.query.named import (
    INTERNAL_QUERIES,
    NamedQuery,
    UnknownQuery,
    bind_params,
    named_queries,
    param_specs,
    param_types,
    public_names,
    public_query,
    query_body,
)
from gasometer.query.pool import SqlBusy, SqlCrashed, SqlTimeout, SqlTooBig, WorkerPool
from gasometer.query.sqlcheck import MACRO_SCHEMA, SqlRefused, check_sql, first_line
from gasometer.query.worker import Param, Reply, Request, WorkerLimits, ipc_to_table, table_to_ipc
from gasometer.query.worker import param_text as _param_text
from gasometer.store.store import Snapshot

__all__ = [
    "INTERNAL_QUERIES",
    "NamedQuery",
    "SqlBusy",
    "SqlCrashed",
    "SqlRefused",
    "SqlTimeout",
    "SqlTooBig",
    "UnknownQuery",
    "bind_params",
    "check_sql",
    "named_queries",
    "param_types",
]

TEMP_DIR = ".sql-tmp"


class Limits(NamedTuple):
    """What one statement may use, and how many run at once per pool."""

    timeout_s: float = 10.0
    max_rows: int = 100_000
    max_bytes: int = 256 * 1024 * 1024
    memory_limit: str = "1GB"
    threads: int = 2
    max_temp_size: str = "2GB"
    concurrency: int = 2
    read_concurrency: int = 2
    worker_memory: str = "2GB"

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        """The limits configured for this service."""
        return cls(
            timeout_s=settings.sql_timeout_s,
            max_rows=settings.sql_max_rows,
            memory_limit=settings.sql_memory_limit,
            threads=settings.sql_threads,
            max_temp_size=settings.sql_max_temp_size,
            concurrency=settings.sql_workers,
            read_concurrency=settings.named_query_workers,
            worker_memory=settings.sql_worker_memory,
        )

    def for_worker(self) -> WorkerLimits:
        """The part of the limits the worker enforces itself."""
        return WorkerLimits(
            timeout_s=self.timeout_s,
            max_rows=self.max_rows,
            max_bytes=self.max_bytes,
            memory_limit=self.memory_limit,
            threads=self.threads,
            max_temp_size=self.max_temp_size,
        )


_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
_UNITS |= {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_size(text: str) -> int:
    """Bytes in a size such as `3GB` or `512MiB` (DuckDB's units: GB = 1000³, GiB = 1024³)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    if not match or match.group(2).upper() not in _UNITS:
        raise QueryError(f"not a size: {text!r} (e.g. 3GB, 512MiB)")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


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


# -- the sandbox ----------------------------------------------------------------------------


class Sandbox:
    """Runs checked, limited, read-only SQL in worker processes: ad-hoc statements in the
    admin pool, named queries in the read pool."""

    def __init__(self, snapshot: Callable[[], Snapshot], limits: Limits) -> None:
        self.snapshot = snapshot
        self.limits = limits
        self._pools: dict[str, WorkerPool] = {}
        self._lock = threading.Lock()
        self._pending: tuple[int, bytes] | None = None

    def pool(self, name: str) -> WorkerPool:
        """The `admin` or `read` pool, made on first use."""
        with self._lock:
            if name not in self._pools:
                size = self.limits.concurrency if name == "admin" else self.limits.read_concurrency
                cwd = self.snapshot().data_dir / TEMP_DIR
                cwd.mkdir(parents=True, exist_ok=True)
                max_bytes = parse_size(self.limits.worker_memory)
                self._pools[name] = WorkerPool(name, size, max_bytes, cwd)
            return self._pools[name]

    def warm(self) -> None:
        """Start a worker in each pool in the background."""
        for name in ("admin", "read"):
            self.pool(name).warm()

    def close(self) -> None:
        """Stop every worker."""
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()

    def run(self, sql: str) -> SqlResult:
        """Run one ad-hoc statement (checked first: SqlRefused says why it was not run)."""
        snapshot = self.snapshot()
        roots = [snapshot.data_dir / "events", snapshot.data_dir / "hourly"]
        statement = check_sql(sql, roots, public_names())
        macros = MACRO_SCHEMA in sql.lower()
        result = self._run("admin", snapshot, sql, None, macros=macros)
        if statement.type == duckdb.StatementType.EXPLAIN:  # plans name the store's files
            result = result._replace(table=scrub_table(result.table, snapshot.data_dir))
        return result

    def run_named(self, name: str, raw_params: Mapping[str, str]) -> SqlResult:
        """Run a public named query with parameters from a query string, each held to the
        bounds its header declares, in the read pool."""
        sql = query_body(public_query(name))
        values = bind_params(name, raw_params)
        specs = param_specs(name)
        params = [Param(p, specs[p].kind, _param_text(v)) for p, v in values.items()]
        return self._run("read", self.snapshot(), sql, params, macros=False)

    def _run(
        self,
        pool: str,
        snapshot: Snapshot,
        sql: str,
        params: list[Param] | None,
        *,
        macros: bool,
    ) -> SqlResult:
        temp = snapshot.data_dir / TEMP_DIR / uuid.uuid4().hex
        temp.mkdir(parents=True)
        try:
            request = Request(
                sql=sql,
                params=params,
                check=params is None,
                macros=macros,
                data_dir=str(snapshot.data_dir),
                temp_dir=str(temp),
                event_files=list(snapshot.event_files),
                hourly_files=list(snapshot.hourly_files),
                pending=self._pending_ipc(snapshot),
                version=snapshot.version,
                limits=self.limits.for_worker(),
            )
            limits = self.limits
            try:
                reply = self.pool(pool).run(request, limits.timeout_s, limits.timeout_s)
            except QueryError as exc:
                raise type(exc)(scrub(str(exc), snapshot.data_dir)) from None
            return self._result(reply, snapshot.data_dir)
        finally:
            shutil.rmtree(temp, ignore_errors=True)

    def _pending_ipc(self, snapshot: Snapshot) -> bytes:
        cached = self._pending
        if cached is None or cached[0] != snapshot.version:
            cached = (snapshot.version, table_to_ipc(snapshot.pending))
            self._pending = cached
        return cached[1]

    def _result(self, reply: Reply, data_dir: Path) -> SqlResult:
        if reply.ok:
            return SqlResult(
                ipc_to_table(reply.table), reply.types, reply.truncated, reply.elapsed_s
            )
        limits = self.limits
        message = scrub(reply.error, data_dir)
        if reply.kind == "refused":
            raise SqlRefused(message)
        if reply.kind == "timeout":
            raise SqlTimeout(f"statement interrupted at the time limit of {limits.timeout_s:g} s")
        if reply.kind == "memory":
            raise SqlTooBig(
                f"statement needs more than the memory limit of {limits.memory_limit} "
                f"and temp space of {limits.max_temp_size}: {message}"
            )
        raise QueryError(message)


def scrub_table(table: pa.Table, data_dir: Path) -> pa.Table:
    """`table` with its text columns scrubbed like error messages."""
    for i, field in enumerate(table.schema):
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
            values = [None if v is None else scrub(v, data_dir) for v in table[i].to_pylist()]
            table = table.set_column(i, field.name, pa.array(values, field.type))
    return table


def scrub(message: str, data_dir: Path) -> str:
    """`message` without the data directory, HOME or the working directory in it."""
    places = {
        str(data_dir): "<data_dir>",
        os.path.realpath(data_dir): "<data_dir>",
        os.path.expanduser("~"): "<home>",
        os.getcwd(): "<cwd>",
    }
    for path in sorted(places, key=len, reverse=True):
        if len(path) > 1:
            message = message.replace(path, places[path])
    return message


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
            f"cannot write this result as {fmt} ({types}): {first_line(exc)}; "
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
