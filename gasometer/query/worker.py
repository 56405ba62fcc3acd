"""The SQL worker: a process of its own that runs one statement at a time for the server.

Started by gasometer.query.pool as `python -m gasometer.query.worker --max-bytes N`. It caps
its own writable memory with `setrlimit(RLIMIT_DATA)` (so a statement that builds a huge list
fails here, not in the server), exits when the server dies, says `ready`,
then answers requests read from stdin on stdout: each message is a 4-byte big-endian length
and a msgpack body. A statement runs on a fresh in-memory DuckDB database: the views
`events` and `hourly` over the snapshot the server sent, the `queries.*` macros if asked,
then the lockdown (allowed directories, temp space, no external access, locked
configuration). A timer interrupts DuckDB at the time limit; the server kills the process
if even that does not land.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import sys
import threading
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any, BinaryIO

import duckdb
import msgspec
import pyarrow as pa

BATCH_ROWS = 2048


class Param(msgspec.Struct, array_like=True):
    """One bound parameter of a named query: name, declared type, value as text (or NULL)."""

    name: str
    kind: str
    text: str | None


class WorkerLimits(msgspec.Struct, kw_only=True):
    """What one statement may use inside the worker."""

    timeout_s: float
    max_rows: int
    max_bytes: int
    memory_limit: str
    threads: int
    max_temp_size: str


class Request(msgspec.Struct, kw_only=True):
    """One statement for the worker, with the snapshot it reads."""

    sql: str
    params: list[Param] | None = None
    check: bool = True
    macros: bool = False
    data_dir: str
    temp_dir: str
    event_files: list[str]
    hourly_files: list[str]
    pending: bytes
    version: int
    limits: WorkerLimits


class Reply(msgspec.Struct, kw_only=True):
    """A worker's answer: rows as Arrow IPC, or an error of a kind the server maps to a status."""

    ok: bool
    table: bytes = b""
    types: list[str] = []
    truncated: bool = False
    elapsed_s: float = 0.0
    error: str = ""
    kind: str = ""


_encoder = msgspec.msgpack.Encoder()
_requests = msgspec.msgpack.Decoder(Request)


def write_message(stream: BinaryIO, body: bytes) -> None:
    """One framed message: length (4 bytes, big-endian), then the body."""
    stream.write(len(body).to_bytes(4, "big") + body)
    stream.flush()


def read_message(stream: BinaryIO) -> bytes | None:
    """The next framed message, or None at end of input."""
    head = stream.read(4)
    if len(head) < 4:
        return None
    size = int.from_bytes(head, "big")
    body = stream.read(size)
    return body if len(body) == size else None


def table_to_ipc(table: pa.Table) -> bytes:
    """An Arrow table as one IPC stream."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def ipc_to_table(body: bytes) -> pa.Table:
    """The Arrow table of one IPC stream."""
    return pa.ipc.open_stream(pa.py_buffer(body)).read_all()


def param_value(param: Param) -> Any:
    """A parameter's Python value from its declared type and text."""
    if param.text is None:
        return None
    if param.kind in ("TIMESTAMPTZ", "TIMESTAMP"):
        return datetime.fromisoformat(param.text)
    if param.kind == "DATE":
        return date.fromisoformat(param.text)
    if param.kind in ("BIGINT", "INTEGER"):
        return int(param.text)
    if param.kind == "DOUBLE":
        return float(param.text)
    if param.kind == "BOOLEAN":
        return param.text == "true"
    return param.text


def param_text(value: Any) -> str | None:
    """The text a parameter value travels as (the inverse of `param_value`)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


# -- running one statement ------------------------------------------------------------------


def run(request: Request) -> Reply:
    """Run one request; every failure becomes a Reply with a kind, never an exception."""
    from gasometer.query.sqlcheck import SqlRefused, first_line

    try:
        conn = connect(request)
    except SqlRefused as exc:
        return Reply(ok=False, error=str(exc), kind="refused")
    except duckdb.Error as exc:
        return Reply(ok=False, error=first_line(exc), kind="query")
    try:
        return fetch(conn, request)
    finally:
        conn.close()


def connect(request: Request) -> duckdb.DuckDBPyConnection:
    """A fresh database with the views (and macros if asked for) installed, then locked."""
    from gasometer.query.engine import install_views
    from gasometer.query.named import install_macros, public_names
    from gasometer.query.sqlcheck import check_sql
    from gasometer.store.store import Snapshot

    data_dir = Path(request.data_dir)
    if request.check:
        roots = [data_dir / "events", data_dir / "hourly"]
        check_sql(request.sql, roots, public_names() if request.macros else ())
    limits = request.limits
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
        snapshot = Snapshot(
            version=request.version,
            data_dir=data_dir,
            event_files=tuple(request.event_files),
            hourly_files=tuple(request.hourly_files),
            pending=ipc_to_table(request.pending),
        )
        install_views(conn, snapshot)
        if request.macros:
            install_macros(conn)
        for statement in lockdown(data_dir, Path(request.temp_dir), limits):
            conn.execute(statement)
    except BaseException:
        conn.close()
        raise
    return conn


def lockdown(data_dir: Path, temp: Path, limits: WorkerLimits) -> list[str]:
    """The settings that confine a connection, in the only order DuckDB accepts."""
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


def fetch(conn: duckdb.DuckDBPyConnection, request: Request) -> Reply:
    """Rows up to the limits, under a timer that interrupts the statement."""
    from gasometer.query.sqlcheck import first_line

    limits = request.limits
    fired = threading.Event()

    def interrupt() -> None:
        fired.set()
        with contextlib.suppress(duckdb.Error):  # the statement may have just ended
            conn.interrupt()

    timer = threading.Timer(limits.timeout_s, interrupt)
    began = time.perf_counter()
    timer.start()
    try:
        params = {p.name: param_value(p) for p in request.params or []}
        relation = conn.execute(request.sql, params) if params else conn.execute(request.sql)
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
        table = pa.Table.from_batches(batches, schema=reader.schema).slice(0, limits.max_rows)
        body = table_to_ipc(table)
    except duckdb.InterruptException:
        kind = "timeout" if fired.is_set() else "query"
        return Reply(ok=False, error="statement interrupted", kind=kind)
    except (duckdb.OutOfMemoryException, MemoryError, pa.ArrowMemoryError) as exc:
        return Reply(ok=False, error=first_line(exc), kind="memory")
    except duckdb.Error as exc:
        return Reply(ok=False, error=first_line(exc), kind="query")
    finally:
        timer.cancel()
    elapsed = time.perf_counter() - began
    return Reply(ok=True, table=body, types=types, truncated=truncated, elapsed_s=elapsed)


# -- the process ----------------------------------------------------------------------------


def _die_with_parent() -> None:
    """Exit as soon as the server that started this process is gone (reparented), even in
    the middle of a statement. (PR_SET_PDEATHSIG would follow the thread that started the
    worker, not the server process, so a watchdog thread polls instead.)"""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def serve(max_bytes: int) -> int:
    """Cap memory, say ready, then answer requests until stdin closes."""
    _die_with_parent()
    if max_bytes > 0:
        resource.setrlimit(resource.RLIMIT_DATA, (max_bytes, max_bytes))
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but framed replies may reach the server's pipe
    write_message(stdout, b"ready")
    while True:
        body = read_message(stdin)
        if body is None:
            return 0
        try:
            reply = run(_requests.decode(body))
        except MemoryError:
            reply = Reply(ok=False, error="out of memory", kind="memory")
        write_message(stdout, _encoder.encode(reply))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the worker process."""
    parser = argparse.ArgumentParser(prog="gasometer-sql-worker")
    parser.add_argument("--max-bytes", type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.pop("HOME", None)
    return serve(args.max_bytes)


if __name__ == "__main__":
    sys.exit(main())
