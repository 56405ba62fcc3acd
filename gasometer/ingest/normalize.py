"""From wire events to drafts: decoded, validated, attributed, ready for the ledger."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import msgspec

from gasometer.errors import BadRequest
from gasometer.ingest.attribution import Attributor
from gasometer.model import CostEvent, EventKind
from gasometer.store.identity import identity_digest
from gasometer.store.ledger import Amounts

MIN_YEAR, MAX_YEAR = 2000, 2100
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Draft(NamedTuple):
    """A validated event before deduplication: what the writer thread needs."""

    digest: bytes
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
    kind: EventKind
    amounts: Amounts


_one = msgspec.json.Decoder(CostEvent)
_many = msgspec.json.Decoder(list[CostEvent])


def decode_body(body: bytes, ndjson: bool) -> list[CostEvent]:
    """Decode one object, an array of objects, or NDJSON; errors name the event's index."""
    if ndjson:
        events = []
        for index, line in enumerate(ln for ln in body.splitlines() if ln.strip()):
            try:
                events.append(_one.decode(line))
            except msgspec.DecodeError as exc:
                raise BadRequest(f"event {index}: {exc}") from exc
        return events
    stripped = body.lstrip()
    if not stripped:
        raise BadRequest("empty body: send a JSON object, a JSON array or NDJSON")
    try:
        if stripped[:1] == b"[":
            return _many.decode(body)
        return [_one.decode(body)]
    except msgspec.DecodeError as exc:
        raise BadRequest(_with_index(str(exc))) from exc


def _with_index(message: str) -> str:
    """msgspec says `at $[3].cost_usd`; say `event 3: ... (field cost_usd)` as well."""
    if " - at `$[" in message:
        head, path = message.split(" - at `$[", 1)
        index, _, rest = path.partition("]")
        field = rest.strip("`").lstrip(".")
        where = f" (field {field})" if field else ""
        return f"event {index}: {head}{where}"
    return message.replace(" - at `$.", " - field `")


def to_micros(value: datetime) -> int:
    """Microseconds since the epoch (UTC) of an aware datetime, exactly."""
    return (value - _EPOCH) // timedelta(microseconds=1)


def normalize(
    events: Sequence[CostEvent],
    attributor: Attributor,
    *,
    default_source: str = "api",
    kind: EventKind | None = None,
) -> list[Draft]:
    """Validate what msgspec cannot and fill attribution; one bad event fails the batch."""
    drafts = []
    for index, event in enumerate(events):
        try:
            drafts.append(_draft(event, attributor, default_source, kind))
        except BadRequest as exc:
            raise BadRequest(f"event {index}: {exc}") from exc
    return drafts


def _draft(
    event: CostEvent, attributor: Attributor, default_source: str, kind: EventKind | None
) -> Draft:
    for name in ("ended_at", "started_at"):
        value = getattr(event, name)
        if value is not None and not MIN_YEAR <= value.year <= MAX_YEAR:
            raise BadRequest(f"{name} {value.isoformat()} is outside {MIN_YEAR}-{MAX_YEAR}")
    ended = to_micros(event.ended_at)
    started = None if event.started_at is None else to_micros(event.started_at)
    if started is not None and started > ended:
        raise BadRequest("started_at is after ended_at")
    derived = attributor.from_session(event.session_id)
    amounts: Amounts = (
        event.cost_usd,
        event.input_tokens,
        event.output_tokens,
        event.cache_creation_tokens,
        event.cache_read_tokens,
    )
    return Draft(
        digest=identity_digest(event.session_id, ended, event.event_id),
        session_id=event.session_id,
        ended_at_us=ended,
        started_at_us=started,
        role=event.role or derived.role,
        rig=event.rig or derived.rig,
        worker=event.worker or derived.worker,
        model=event.model,
        issue=event.issue or event.work_item,
        parent_session_id=event.parent_session_id,
        source=event.source or default_source,
        event_id=event.event_id,
        kind=kind or event.kind,
        amounts=amounts,
    )
