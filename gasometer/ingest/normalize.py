"""From wire events to drafts: decoded, validated, attributed, ready for the ledger."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

import msgspec

from gasometer.errors import BadRequest
from gasometer.ingest.attribution import Attributor
from gasometer.model import FAR_FUTURE, FAR_PAST, CostEvent, EventKind
from gasometer.store.identity import identity_digest
from gasometer.store.ledger import Amounts

_EPOCH_ORDINAL = datetime(1970, 1, 1).toordinal()


class Draft(msgspec.Struct, frozen=True, gc=False):
    """A validated event before deduplication: what the writer thread needs.

    `digest` is the identity key of an increment (empty for a total, whose identity is
    its point in the ledger's `totals` table)."""

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
                raise BadRequest(f"event {index}: {_explain(line, exc, 0)}") from exc
        return events
    stripped = body.lstrip()
    if not stripped:
        raise BadRequest("empty body: send a JSON object, a JSON array or NDJSON")
    try:
        if stripped[:1] == b"[":
            return _many.decode(body)
        return [_one.decode(body)]
    except msgspec.DecodeError as exc:
        single = stripped[:1] != b"["
        message = _explain(body, exc, 0 if single else None)
        raise BadRequest(f"event 0: {message}" if single else message) from exc


def _explain(body: bytes, exc: msgspec.DecodeError, index: int | None) -> str:
    """One line naming the field (and, in an array, the event index) of a decode error."""
    if isinstance(exc, msgspec.ValidationError):
        return _with_index(_plain(str(exc)))
    constant = _non_finite(body)
    if constant is not None:
        where, field, literal = constant
        event = "" if index is not None else f"event {where}: "
        return f"{event}{literal} is not a valid number (field {field}: must be finite)"
    return f"invalid JSON: {exc}"


class _Constant(NamedTuple):
    literal: str


def _non_finite(body: bytes) -> tuple[int, str, str] | None:
    """(event index, field, literal) of the first NaN/Infinity in a body that is valid
    JSON but for such literals (Python's json.dumps writes them), else None."""
    try:
        value = json.loads(body, parse_constant=_Constant)
    except ValueError:
        return None
    items = value if isinstance(value, list) else [value]
    for index, item in enumerate(items):
        if isinstance(item, dict):
            for field, v in item.items():
                if isinstance(v, _Constant):
                    return index, field, v.literal
    return None


def _plain(message: str) -> str:
    """msgspec names the control-character pattern (the only one) by its regex; say what it
    means."""
    if "matching regex" in message:
        _head, sep, tail = message.partition(" - at ")
        return "control characters (NUL, tab, newline...) are not allowed" + (sep + tail)
    return message


def _with_index(message: str) -> str:
    """msgspec says `at $[3].cost_usd`; say `event 3: ... (field cost_usd)` instead."""
    if " - at `$[" in message:
        head, path = message.split(" - at `$[", 1)
        index, _, rest = path.partition("]")
        field = rest.strip("`").lstrip(".")
        where = f" (field {field})" if field else ""
        return f"event {index}: {head}{where}"
    if " - at `$." in message:
        head, path = message.split(" - at `$.", 1)
        return f"{head} (field {path.strip('`')})"
    return message


def to_micros(value: datetime) -> int:
    """Microseconds since the epoch (UTC) of an aware datetime, exactly."""
    offset = value.utcoffset()
    if offset:
        value = value - offset  # the same instant's UTC wall-clock fields
    seconds = (value.toordinal() - _EPOCH_ORDINAL) * 86_400 + (
        value.hour * 3600 + value.minute * 60 + value.second
    )
    return seconds * 1_000_000 + value.microsecond


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
    ended = _in_range("ended_at", event.ended_at)
    started = None if event.started_at is None else _in_range("started_at", event.started_at)
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
    kind = kind or event.kind
    return Draft(
        digest=b"" if kind == "total" else identity_digest(event.session_id, ended, event.event_id),
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
        kind=kind,
        amounts=amounts,
    )


_LOWEST_US = to_micros(FAR_PAST)
_HIGHEST_US = to_micros(FAR_FUTURE)


def _in_range(name: str, value: datetime) -> int:
    """The moment in µs, if inside the window every default answer covers (in UTC)."""
    micros = to_micros(value)
    if not _LOWEST_US <= micros < _HIGHEST_US:
        raise BadRequest(
            f"{name} {value.isoformat()} is outside 2000-01-01T00:00:00Z to 2100-01-01T00:00:00Z"
        )
    return micros
