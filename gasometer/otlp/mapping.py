"""Claude Code's OTLP log records and metric points as Gasometer cost events.

A `claude_code.api_request` log record is one API response: its cost, four token counts,
model, duration and `request_id` (the `requestId` of the transcript line, so the hook,
the import and OTLP name a response alike). Gas Town tags each agent's process with
`gt.*` resource attributes (`OTEL_RESOURCE_ATTRIBUTES`), which attribute its cost.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from gasometer.hook.env import EnvAttribution, parse_role_path
from gasometer.ingest.attribution import Attributor
from gasometer.model import CostEvent

API_REQUEST = "api_request"
EVENT_PREFIX = "claude_code."
LOG_SOURCE = "otlp"
METRIC_SOURCE = "otlp-metrics"
COST_METRIC = "claude_code.cost.usage"
TOKEN_METRIC = "claude_code.token.usage"
TOKEN_TYPES = {
    "input": "input_tokens",
    "output": "output_tokens",
    "cacheRead": "cache_read_tokens",
    "cacheCreation": "cache_creation_tokens",
    "cache_read": "cache_read_tokens",
    "cache_creation": "cache_creation_tokens",
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NOT_TIME = 0


class Rejected(Exception):
    """A record or data point that cannot become a cost event (the reason is the message)."""


Attributes = dict[str, Any]


def attributes(pairs: Iterable[KeyValue]) -> Attributes:
    """OTLP key/values as a plain dict of scalars (arrays, maps and bytes are skipped).

    The hot loop of the receiver: one pass, no helper call per attribute."""
    out: Attributes = {}
    for pair in pairs:
        value = pair.value
        kind = value.WhichOneof("value")
        if kind in _SCALARS:
            out[pair.key] = getattr(value, kind)
    return out


_SCALARS = frozenset(("string_value", "int_value", "double_value", "bool_value"))


def event_name(record: LogRecord, attrs: Attributes) -> str:
    """The Claude Code event name of a log record, without the `claude_code.` prefix."""
    name = record.event_name or str(attrs.get("event.name") or "")
    if not name and record.body.WhichOneof("value") == "string_value":
        name = record.body.string_value
    return name.removeprefix(EVENT_PREFIX) or "unnamed"


def from_nanos(nanos: int) -> datetime:
    """An aware UTC datetime from Unix nanoseconds."""
    return _EPOCH + timedelta(microseconds=nanos // 1000)


def number(attrs: Mapping[str, Any], key: str, *, required: bool = False) -> float | None:
    """A numeric attribute (Claude Code sends some as strings); Rejected if required and
    missing, or present and not a finite, non-negative number."""
    raw = attrs.get(key)
    if raw is None or raw == "":
        if required:
            raise Rejected(f"missing {key}")
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise Rejected(f"{key} {str(raw)[:40]!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise Rejected(f"{key} {raw!r} is not a finite, non-negative number")
    return value


def tokens(attrs: Mapping[str, Any], key: str) -> int:
    """A token count attribute, 0 when absent."""
    value = number(attrs, key)
    return 0 if value is None else int(value)


def text(attrs: Mapping[str, Any], key: str) -> str | None:
    """A non-empty string attribute, else None."""
    value = attrs.get(key)
    return str(value) if value not in (None, "") else None


def gas_town(attrs: Mapping[str, Any], attributor: Attributor) -> EnvAttribution:
    """Role, rig, worker and issue from the `gt.*` attributes: explicit values first, then
    the role path (`gastown/polecats/Toast`), the actor path, then the tmux session name."""
    role = text(attrs, "gt.role") or ""
    actor = text(attrs, "gt.actor") or ""
    worker = actor.rstrip("/").rsplit("/", 1)[-1] or text(attrs, "gt.agent")
    explicit = EnvAttribution(
        rig=text(attrs, "gt.rig"), worker=worker, issue=text(attrs, "gt.issue")
    )
    from_role = parse_role_path(role)
    if from_role.role is None and role and "/" not in role:
        from_role = from_role._replace(role=role.lower())
    found = explicit.merged_over(from_role).merged_over(parse_role_path(actor))
    session = text(attrs, "gt.session")
    if session:
        derived = attributor.from_session(session)
        if derived.role != "unknown":
            found = found.merged_over(EnvAttribution(derived.role, derived.rig, derived.worker))
    return found


def has_gas_town(attrs: Attributes) -> bool:
    """Whether any `gt.*` attribute is present."""
    return any(key.startswith("gt.") for key in attrs)


def api_request_event(
    record: LogRecord,
    attrs: Attributes,
    resource: Attributes,
    attributor: Attributor,
    resource_who: EnvAttribution | None = None,
) -> CostEvent:
    """One cost event from an `api_request` record (record attributes over resource
    attributes); Rejected when a required field is missing or invalid. `resource_who`
    is the resource's own attribution, when already worked out."""
    merged = {**resource, **attrs}
    session = text(merged, "session.id")
    if session is None:
        raise Rejected("missing session.id")
    nanos = record.time_unix_nano or record.observed_time_unix_nano
    if nanos == _NOT_TIME:
        raise Rejected("no time_unix_nano or observed_time_unix_nano")
    ended = from_nanos(nanos)
    duration = number(merged, "duration_ms")
    started = ended - timedelta(milliseconds=duration) if duration else None
    if resource_who is None or has_gas_town(attrs):
        who = gas_town(merged, attributor)
    else:
        who = resource_who
    fields = {
        "session_id": session,
        "cost_usd": number(merged, "cost_usd", required=True),
        "ended_at": ended,
        "started_at": started,
        "model": text(merged, "model"),
        "input_tokens": tokens(merged, "input_tokens"),
        "output_tokens": tokens(merged, "output_tokens"),
        "cache_creation_tokens": tokens(merged, "cache_creation_tokens"),
        "cache_read_tokens": tokens(merged, "cache_read_tokens"),
        "role": who.role,
        "rig": who.rig,
        "worker": who.worker,
        "issue": who.issue,
        "source": LOG_SOURCE,
        "event_id": text(merged, "request_id"),
    }
    return _convert(fields)


def metric_event(
    name: str,
    attrs: Attributes,
    delta: float,
    started: datetime | None,
    ended: datetime,
    event_id: str,
    attributor: Attributor,
) -> CostEvent:
    """A cost event holding one metric point's increase: its cost, or its tokens of one
    type (`type` attribute of `claude_code.token.usage`)."""
    session = text(attrs, "session.id")
    if session is None:
        raise Rejected("missing session.id (OTEL_METRICS_INCLUDE_SESSION_ID must stay on)")
    who = gas_town(attrs, attributor)
    fields: dict[str, Any] = {
        "session_id": session,
        "cost_usd": 0.0,
        "ended_at": ended,
        "started_at": started if started is not None and started <= ended else None,
        "model": text(attrs, "model"),
        "role": who.role,
        "rig": who.rig,
        "worker": who.worker,
        "issue": who.issue,
        "source": METRIC_SOURCE,
        "event_id": event_id,
    }
    if name == COST_METRIC:
        fields["cost_usd"] = delta
    else:
        kind = TOKEN_TYPES.get(str(attrs.get("type", "")))
        if kind is None:
            raise Rejected(f"token type {str(attrs.get('type'))[:40]!r} is not known")
        fields[kind] = round(delta)
    return _convert(fields)


def _convert(fields: dict[str, Any]) -> CostEvent:
    try:
        return msgspec.convert(fields, CostEvent)
    except msgspec.ValidationError as exc:
        raise Rejected(str(exc)) from None
