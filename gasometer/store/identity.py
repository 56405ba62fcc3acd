"""Event identities as ledger keys: a 12-byte digest of what makes an event itself.

An increment with an `event_id` is that id, whatever its `ended_at`: a streamed
response's growing versions, a resumed session's replay and the hook and the import
seeing one response all land on one key, however far apart in time they arrive. An
increment without one is its `(session_id, ended_at)`. Running totals (`kind: total`)
are not in this index: their identity is the point `(session_id, ended_at)` in the
ledger's `totals` table, which also holds the value of each point.

The keys carry no time prefix, so a lookup never depends on where an event's earlier
versions fell; the ledger's index is a B-tree of random keys that the benchmark
`benchmarks/test_dedup_index.py` measures at 10 M and 100 M identities.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable

from gasometer.model import StoredEvent
from gasometer.store.ledger import Amounts, IdentityRow


def identity_digest(session_id: str, ended_at_us: int, event_id: str | None) -> bytes:
    """The ledger key of an increment: its event_id when it has one, else (session_id,
    ended_at)."""
    raw = f"e\0{event_id}" if event_id is not None else f"s\0{session_id}\0{ended_at_us}"
    return hashlib.blake2b(raw.encode(), digest_size=12).digest()


def amounts_of(event: StoredEvent) -> Amounts:
    """The amounts a stored row carries (an increment or a revision's difference)."""
    return (
        event.cost_usd,
        event.input_tokens,
        event.output_tokens,
        event.cache_creation_tokens,
        event.cache_read_tokens,
    )


def replay_identities(
    events: Iterable[StoredEvent], lookup: Callable[[bytes], IdentityRow | None]
) -> dict[bytes, IdentityRow]:
    """The identity rows a WAL batch wrote, recomputed from its events at start-up.

    `lookup` finds an identity stored before this batch (earlier batches, then the ledger).
    Totals are skipped: their points were saved with the batch itself."""
    rows: dict[bytes, IdentityRow] = {}
    for event in events:
        if event.kind == "total":
            continue
        key = identity_digest(event.session_id, event.ended_at_us, event.event_id)
        amounts = amounts_of(event)
        if event.revision == 0:
            rows[key] = IdentityRow(0, amounts if event.event_id is not None else None)
            continue
        previous = rows.get(key) or lookup(key)
        if previous is not None and previous.amounts is not None:
            rows[key] = IdentityRow(event.revision, add_amounts(previous.amounts, amounts))
    return rows


def add_amounts(a: Amounts, b: Amounts) -> Amounts:
    """Element-wise sum of two amount vectors."""
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3], a[4] + b[4])


def minus_amounts(a: Amounts, b: Amounts) -> Amounts:
    """Element-wise difference of two amount vectors."""
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2], a[3] - b[3], a[4] - b[4])
