"""POST /api/ingest: cost events in, answered once they are durable."""

from __future__ import annotations

import asyncio
from typing import Literal

from litestar import Request, post
from litestar.params import Parameter

from gasometer.errors import BadRequest, PayloadTooLarge
from gasometer.ingest.normalize import Draft, decode_body, normalize
from gasometer.model import IngestResult
from gasometer.runtime import Gasometer

NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl")
INLINE_BODY_BYTES = 16 * 1024
"""Bodies up to this size (well under a millisecond of work) are decoded on the event
loop; larger ones in a worker thread, so that a large body never holds up other requests."""


@post("/api/ingest", status_code=202, opt={"scope": "ingest"})
async def ingest_events(
    request: Request,
    gm: Gasometer,
    kind: Literal["increment", "total"] | None = Parameter(query="kind", default=None),
) -> IngestResult:
    """Accept one event, a JSON array or NDJSON; 202 once durable, with duplicates counted.

    A batch with any invalid event stores none of it. `?kind=total` marks every event as
    a session's running total. A large body is decoded off the event loop.
    """
    body = await request.body()
    if len(body) > gm.settings.max_body_bytes:
        raise PayloadTooLarge(f"body over {gm.settings.max_body_bytes} bytes")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    ndjson = content_type in NDJSON_TYPES
    if len(body) <= INLINE_BODY_BYTES:
        drafts = _drafts(gm, body, ndjson, kind)
    else:
        drafts = await asyncio.to_thread(_drafts, gm, body, ndjson, kind)
    return await asyncio.wrap_future(gm.ingestor.submit(drafts))


def _drafts(
    gm: Gasometer, body: bytes, ndjson: bool, kind: Literal["increment", "total"] | None
) -> list[Draft]:
    """Decode, validate and attribute a request body (blocking)."""
    events = decode_body(body, ndjson=ndjson)
    if not events:
        raise BadRequest("no events in body")
    return normalize(events, gm.attributor, kind=kind)


routes = [ingest_events]
