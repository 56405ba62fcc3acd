"""Ad-hoc SQL and named queries over HTTP: `POST /api/sql`, `GET /api/queries[/{name}]`.

Both run in the sandbox (gasometer.query.sandbox): checked, then run in a worker process
(ad-hoc SQL in the admin pool, named queries in the read pool) with a time limit, a row
limit and memory limits. Results come back as JSON (columns + rows), CSV or Parquet;
`X-Gasometer-Truncated` says whether rows were cut.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import Provide

from gasometer.errors import BadRequest
from gasometer.query.sandbox import (
    Limits,
    NamedQuery,
    Sandbox,
    SqlResult,
    encode,
    named_queries,
)
from gasometer.runtime import Gasometer

Format = Literal["json", "csv", "parquet"]
MEDIA_TYPES: dict[str, str] = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
}


class SqlRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of `POST /api/sql`."""

    sql: str
    format: Format = "json"


class QueriesResponse(msgspec.Struct):
    """The named queries: name, header comment, `$parameters`, and whether internal."""

    queries: list[NamedQuery]


def _sandbox(state: State) -> Sandbox:
    """The app's one sandbox (its slots cap concurrent ad-hoc statements), made on first use."""
    sandbox: Sandbox | None = getattr(state, "sandbox", None)
    if sandbox is None:
        gm: Gasometer = state.gm
        sandbox = Sandbox(gm.store.snapshot, Limits.from_settings(gm.settings))
        state.sandbox = sandbox
    return sandbox


@asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    """Stop the SQL workers when the app stops (they also die with the server process)."""
    try:
        yield
    finally:
        sandbox: Sandbox | None = getattr(app.state, "sandbox", None)
        if sandbox is not None:
            sandbox.close()


SANDBOX = {"sandbox": Provide(_sandbox, sync_to_thread=False)}


def respond(result: SqlResult, fmt: str) -> Response[bytes]:
    """A result in the asked format, with its row count and truncation in headers."""
    body = encode(result, fmt)
    headers = {
        "X-Gasometer-Rows": str(result.table.num_rows),
        "X-Gasometer-Truncated": "true" if result.truncated else "false",
    }
    return Response(body, media_type=MEDIA_TYPES[fmt], headers=headers, status_code=200)


@post("/api/sql", dependencies=SANDBOX, sync_to_thread=True, opt={"scope": "admin"})
def run_sql(data: SqlRequest, sandbox: Sandbox) -> Response[bytes]:
    """Run one read-only SELECT (or plain EXPLAIN) over `events`, `hourly` and `queries.*`."""
    return respond(sandbox.run(data.sql), data.format)


@get("/api/queries", sync_to_thread=False, opt={"scope": "read"})
def list_queries() -> QueriesResponse:
    """Every named query with its header comment; internal ones are marked `internal`."""
    return QueriesResponse(named_queries())


@get("/api/queries/{name:str}", dependencies=SANDBOX, sync_to_thread=True, opt={"scope": "read"})
def run_query(name: str, request: Request, sandbox: Sandbox) -> Response[bytes]:
    """Run a named query; query-string values bind its `$parameters` (`format` picks output)."""
    raw = dict(request.query_params)
    fmt = raw.pop("format", "json")
    if fmt not in MEDIA_TYPES:
        raise BadRequest(f"format: {fmt!r} is not one of json, csv, parquet")
    return respond(sandbox.run_named(name, raw), fmt)


routes = [run_sql, list_queries, run_query]
