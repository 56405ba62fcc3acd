"""What `GET /health` and `gasometer health` report about a store."""

from __future__ import annotations

from typing import Any

import msgspec

from gasometer import __version__
from gasometer.query.engine import QueryEngine
from gasometer.store import retention
from gasometer.store.store import Store


class Health(msgspec.Struct):
    """Is the service well, and what does it hold.

    Rollups (and so `event_count`, `first_event_at`) keep everything; raw events are kept
    from `raw_events_since` on, `retention_horizon` being the last horizon applied.
    `otlp`: the OTLP receiver's counters (records, api_request events, other event
    names, metric points), filled by the server only.
    """

    status: str
    version: str
    event_count: int
    first_event_at: str | None
    last_event_at: str | None
    partitions: list[str]
    files: int
    wal_backlog_events: int
    wal_backlog_batches: int
    disk_ok: bool
    last_error: str | None
    quarantined_batches: int = 0
    quarantined_events: int = 0
    retention_days: float | None = None
    retention_horizon: str | None = None
    raw_events_since: str | None = None
    otlp: dict[str, Any] | None = None


def health_report(store: Store, engine: QueryEngine, ingest_error: str | None = None) -> Health:
    """The health of a store (shared by `GET /health` and `gasometer health`): degraded
    while the disk is full, ingest cannot commit, a background step fails, or a batch sits
    in quarantine."""
    count, first, last = engine.run("health_counts", {}).rows[0]
    files = store.files()
    batches, events = store.wal_backlog()
    disk_ok = store.check_free_space()
    errors = [e for e in (ingest_error, store.last_error) if e]
    quarantined = store.quarantined()
    if quarantined:
        errors.append(f"{len(quarantined)} batch(es) in quarantine: see `gasometer quarantine`")
    error = "; ".join(errors) or None
    kept = retention.status(store)
    return Health(
        status="ok" if disk_ok and error is None else "degraded",
        version=__version__,
        event_count=count,
        first_event_at=first,
        last_event_at=last,
        partitions=sorted({f.partition for f in files if f.dataset == "events"}),
        files=len(files),
        wal_backlog_events=events,
        wal_backlog_batches=batches,
        disk_ok=disk_ok,
        last_error=error,
        quarantined_batches=len(quarantined),
        quarantined_events=sum(q.events for q in quarantined),
        retention_days=kept.retention_days,
        retention_horizon=kept.retention_horizon,
        raw_events_since=kept.raw_events_since,
    )
