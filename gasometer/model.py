"""The payloads that cross Gasometer's edges: what clients send and what is stored.

`CostEvent` is the wire format accepted by `POST /api/ingest` (and produced by the
transcript importer and the hook). `StoredEvent` is one row of the event log: the
event after attribution, deduplication and total-to-increment conversion.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

FAR_PAST = datetime(2000, 1, 1, tzinfo=UTC)
FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)
"""Events must end in [FAR_PAST, FAR_FUTURE): the window every default answer covers."""

NO_CONTROLS = r"\A[^\x00-\x1f\x7f]*\Z"
"""Text fields refuse every C0 control character and DEL (NUL, tab, newline, escape...):
they end up in labels, logs, CSV and terminals, where none of them belongs."""
SessionId = Annotated[str, Meta(min_length=1, max_length=200, pattern=NO_CONTROLS)]
ShortText = Annotated[str, Meta(max_length=500, pattern=NO_CONTROLS)]
MAX_TOKENS = 10_000_000_000
"""Per event and token type: far above any request or session (1 M-token context windows),
and low enough that 900 million maximal events still sum exactly in a 64-bit column."""
MAX_COST_USD = 1_000_000.0
"""Per event: finite, and summed in float64 where it stays exact to the cent far beyond."""
Tokens = Annotated[int, Meta(ge=0, le=MAX_TOKENS)]
Cost = Annotated[float, Meta(ge=0, le=MAX_COST_USD)]
"""Finite, non-negative, and at most MAX_COST_USD (which also rules out NaN and inf)."""
AwareTime = Annotated[datetime, Meta(tz=True)]
EventKind = Literal["increment", "total"]

TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens")


class CostEvent(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, gc=False):
    """One cost report, as sent by a client.

    With `kind="total"` the numbers are the session's running total so far (Gas Town's
    own Stop hook); otherwise they are the cost of [started_at, ended_at] alone.
    """

    session_id: SessionId
    cost_usd: Cost
    ended_at: AwareTime
    started_at: AwareTime | None = None
    role: ShortText | None = None
    worker: ShortText | None = None
    rig: ShortText | None = None
    model: ShortText | None = None
    input_tokens: Tokens = 0
    output_tokens: Tokens = 0
    cache_creation_tokens: Tokens = 0
    cache_read_tokens: Tokens = 0
    issue: ShortText | None = None
    work_item: ShortText | None = None
    parent_session_id: ShortText | None = None
    source: ShortText | None = None
    event_id: SessionId | None = None
    kind: EventKind = "increment"


class StoredEvent(msgspec.Struct, kw_only=True, array_like=True, gc=False):
    """One row of the event log (Parquet `events/`), amounts already as increments.

    `revision` is 0 for an event's first version; a later, larger version of the same
    `event_id` is stored as a further row holding only the difference, so that every
    query stays a plain sum and `event_count` counts rows with `revision = 0`.
    """

    id: int
    session_id: str
    ended_at_us: int
    started_at_us: int | None
    role: str
    rig: str
    worker: str
    model: str | None
    issue: str | None
    parent_session_id: str | None
    source: str
    event_id: str | None
    kind: str
    revision: int
    cost_usd: float
    input_tokens: int
    output_tokens: int
    cache_creation_tokens: int
    cache_read_tokens: int
    running_total: tuple[float, int, int, int, int] | None = None
    """For `kind: total` rows, the point itself (the session's total at `ended_at`), so
    the ledger's running-total state can be rebuilt from the Parquet files alone."""


class IngestResult(msgspec.Struct):
    """What `POST /api/ingest` answers once the events are durable."""

    accepted: int
    duplicates: int


class ErrorBody(msgspec.Struct):
    """The one JSON error shape of every endpoint."""

    error: str
    status: int
    ok: bool = False
