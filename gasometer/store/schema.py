"""The Arrow schema of the event log, and StoredEvent rows turned into Arrow tables."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pyarrow as pa

from gasometer.model import StoredEvent

UTC_US = pa.timestamp("us", tz="UTC")

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
        ("month", pa.string()),
    ]
)
"""`month` (YYYY-MM of ended_at, UTC) is the Hive partition key: a directory, not a column."""

_FIELD_OF_COLUMN = {
    "started_at": "started_at_us",
    "ended_at": "ended_at_us",
}


def month_of(ended_at_us: int) -> str:
    """The partition (YYYY-MM, UTC) an event belongs to."""
    return datetime.fromtimestamp(ended_at_us / 1e6, UTC).strftime("%Y-%m")


def events_to_arrow(events: Sequence[StoredEvent]) -> pa.Table:
    """A table in EVENT_SCHEMA, `month` included, from stored event rows."""
    columns = []
    for field in EVENT_SCHEMA:
        if field.name == "month":
            values: list = [month_of(e.ended_at_us) for e in events]
        else:
            attr = _FIELD_OF_COLUMN.get(field.name, field.name)
            values = [getattr(e, attr) for e in events]
        columns.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(columns, schema=EVENT_SCHEMA)


def empty_events() -> pa.Table:
    """An empty table in EVENT_SCHEMA, for views over a store with nothing in it yet."""
    return EVENT_SCHEMA.empty_table()
