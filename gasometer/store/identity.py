"""Event identities as ledger keys: the event's UTC hour, then a digest of its identity.

The hour prefix keeps the ledger's index local (a commit touches a few pages, not one
page per event). An event_id's versions (a streamed response's growing usage, a resumed
session's replay) can fall in neighbouring hours, so an event_id is looked up in its own
hour and the hours on either side; a response never streams for longer than that.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Iterable

from gasometer.model import StoredEvent
from gasometer.store.ledger import Amounts, IdentityRow

HOUR_US = 3_600_000_000
_hour = struct.Struct(">I")


def identity_digest(session_id: str, ended_at_us: int, event_id: str | None) -> bytes:
    """A 12-byte digest of an event's identity: its event_id when it has one, else
    (session_id, ended_at). The ledger prefixes it with the event's hour (see writer)."""
    raw = f"e\0{event_id}" if event_id is not None else f"s\0{session_id}\0{ended_at_us}"
    return hashlib.blake2b(raw.encode(), digest_size=12).digest()


def own_key(digest: bytes, ended_at_us: int) -> bytes:
    """The key an identity is first stored under: its own hour."""
    return _hour.pack(ended_at_us // HOUR_US) + digest


def candidate_keys(digest: bytes, ended_at_us: int, has_event_id: bool) -> tuple[bytes, ...]:
    """Every key an earlier version of this identity may be stored under, own hour first."""
    hour = ended_at_us // HOUR_US
    if not has_event_id:
        return (_hour.pack(hour) + digest,)
    return tuple(_hour.pack(h) + digest for h in (hour, hour - 1, hour + 1))


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
