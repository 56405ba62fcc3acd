"""Event identities as ledger keys: the event's UTC day, then a digest of its identity.

The day prefix keeps the ledger's index local: a flush writes the identities of its
events into the key ranges of a day or two, not one random page per event, so the index
stays on disk and costs the same at 100 million events as at one. An event_id's versions
(a streamed response's growing usage, a resumed session's replay, the hook and the
import seeing one response) can fall on neighbouring days, so an event_id is looked up
under its own day and the neighbouring day nearer its time: a re-sent event_id is one
event as long as its `ended_at` moved by less than 12 hours (often more).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Iterable

from gasometer.model import StoredEvent
from gasometer.store.ledger import Amounts, IdentityRow
from gasometer.store.schema import DAY_US

_day = struct.Struct(">I")


def identity_digest(session_id: str, ended_at_us: int, event_id: str | None) -> bytes:
    """A 12-byte digest of an event's identity: its event_id when it has one, else
    (session_id, ended_at). The ledger prefixes it with the event's day."""
    raw = f"e\0{event_id}" if event_id is not None else f"s\0{session_id}\0{ended_at_us}"
    return hashlib.blake2b(raw.encode(), digest_size=12).digest()


def own_key(digest: bytes, ended_at_us: int) -> bytes:
    """The key an identity is first stored under: its own day."""
    return _day.pack(ended_at_us // DAY_US) + digest


def candidate_keys(digest: bytes, ended_at_us: int, has_event_id: bool) -> tuple[bytes, ...]:
    """Every key an earlier version of this identity may be stored under, own day first."""
    day, time_of_day = divmod(ended_at_us, DAY_US)
    if not has_event_id:
        return (_day.pack(day) + digest,)
    nearer = day - 1 if time_of_day < DAY_US // 2 else day + 1
    return (_day.pack(day) + digest, _day.pack(nearer) + digest)


def replay_identities(
    events: Iterable[StoredEvent], lookup: Callable[[bytes], IdentityRow | None]
) -> dict[bytes, IdentityRow]:
    """The identity rows a WAL batch wrote, recomputed from its events at start-up.

    `lookup` finds an identity stored before this batch (earlier batches, then the ledger)."""
    rows: dict[bytes, IdentityRow] = {}

    def find(keys: tuple[bytes, ...]) -> tuple[bytes, IdentityRow] | None:
        for key in keys:
            row = rows.get(key) or lookup(key)
            if row is not None:
                return key, row
        return None

    for event in events:
        digest = identity_digest(event.session_id, event.ended_at_us, event.event_id)
        amounts: Amounts = (
            event.cost_usd,
            event.input_tokens,
            event.output_tokens,
            event.cache_creation_tokens,
            event.cache_read_tokens,
        )
        if event.revision == 0:
            keep = amounts if event.event_id is not None and event.kind != "total" else None
            rows[own_key(digest, event.ended_at_us)] = IdentityRow(0, keep)
            continue
        found = find(candidate_keys(digest, event.ended_at_us, True))
        previous = None if found is None else found[1].amounts
        if found is None or previous is None:
            continue
        rows[found[0]] = IdentityRow(event.revision, add_amounts(previous, amounts))
    return rows


def add_amounts(a: Amounts, b: Amounts) -> Amounts:
    """Element-wise sum of two amount vectors."""
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3], a[4] + b[4])
