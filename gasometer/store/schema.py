"""The Arrow schema of the event log, and StoredEvent rows turned into Arrow tables."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import date, timedelta

import pyarrow as pa
from msgspec.structs import astuple

from gasometer.model import StoredEvent

UTC_US = pa.timestamp("us", tz="UTC")
AMOUNTS = pa.struct(
    [
        ("cost_usd", pa.float64()),
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("cache_creation_tokens", pa.int64()),
        ("cache_read_tokens", pa.int64()),
    ]
)

EVENT_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("event_id", pa.string()),
        ("session_id", pa.string()),
        ("parent_session_id", pa.string()),
        ("role", pa.string()),
        ("rig", pa.string()),
        ("worker", pa.string()),
        ("model", pa.string()),
        ("issue", pa.string()),
        ("source", pa.string()),
        ("kind", pa.string()),
        ("revision", pa.int32()),
        ("started_at", UTC_US),
        ("ended_at", UTC_US),
        ("cost_usd", pa.float64()),
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("cache_creation_tokens", pa.int64()),
        ("cache_read_tokens", pa.int64()),
        ("running_total", AMOUNTS),
        ("month", pa.string()),
    ]
)
"""`month` (YYYY-MM of ended_at, UTC) is the Hive partition key: a directory, not a column.
`running_total` is set on `kind: total` rows only: the session's total the row came from.
Files written before it existed lack the column; readers use `union_by_name`."""

_FIELD_OF_COLUMN = {
    "started_at": "started_at_us",
    "ended_at": "ended_at_us",
}


DAY_US = 86_400_000_000
_AMOUNT_NAMES = tuple(f.name for f in AMOUNTS)


@functools.cache
def _month(day: int) -> str:
    """YYYY-MM of a day numbered from the epoch (cached: a batch spans few days)."""
    return (date(1970, 1, 1) + timedelta(days=day)).strftime("%Y-%m")


def month_of_us(micros: int) -> str:
    """The partition (YYYY-MM, UTC) of a moment in microseconds since the epoch."""
    return _month(micros // DAY_US)


def events_to_arrow(events: Sequence[StoredEvent]) -> pa.Table:
    """A table in EVENT_SCHEMA, `month` included, from stored event rows."""
    if not events:
        return empty_events()
    rows = [astuple(e) for e in events]
    by_field = dict(zip(StoredEvent.__struct_fields__, zip(*rows, strict=True), strict=True))
    columns: list[pa.Array] = []
    for field in EVENT_SCHEMA:
        if field.name == "month":
            days = by_field["ended_at_us"]
            columns.append(pa.array([month_of_us(us) for us in days], type=pa.string()))
        else:
            values = by_field[_FIELD_OF_COLUMN.get(field.name, field.name)]
            if field.name == "running_total":
                values = tuple(_amounts_dict(v) for v in values)
            columns.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(columns, schema=EVENT_SCHEMA)


def _amounts_dict(values: tuple | None) -> dict | None:
    return None if values is None else dict(zip(_AMOUNT_NAMES, values, strict=True))


def empty_events() -> pa.Table:
    """An empty table in EVENT_SCHEMA, for views over a store with nothing in it yet."""
    return EVENT_SCHEMA.empty_table()
