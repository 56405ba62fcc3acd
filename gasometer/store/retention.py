"""Retention: raw event files older than `retention_days` go, whole files at a time.

A raw event file is retired only when every row in it ended before the horizon (the
`ended_at` maximum in its Parquet statistics says so without reading rows); compaction
merges per month, so old months leave as whole files. The hourly rollups are never
touched: history, calendars and per-bead totals stay exact, only raw drill-down ends at
the horizon. Retiring is one ledger transaction (catalog rows out, `retired` rows in,
horizon recorded), like compaction's publish; the files themselves are deleted by the
store after the grace period, so a crash leaves the old or the new state, and readers
holding an older snapshot keep their files until then.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gasometer.store import ledger
from gasometer.store.ledger import FileEntry
from gasometer.store.schema import DAY_US

if TYPE_CHECKING:
    from gasometer.store.store import Store

INTERVAL_S = 3600.0
"""How often the store's background loop applies retention (first run at start-up)."""

HORIZON_KEY = "retention_horizon_us"


class Outcome(msgspec.Struct):
    """What one retention run did: the horizon it applied and the files it retired."""

    horizon: str
    files: list[str]
    rows: int


class Status(msgspec.Struct):
    """What raw data is kept and since when (for /health)."""

    retention_days: float | None
    retention_horizon: str | None
    raw_events_since: str | None


def horizon_us(days: float, now: float | None = None) -> int:
    """The instant (µs since the epoch, UTC) before which raw events may go."""
    moment = time.time() if now is None else now
    return int(moment * 1_000_000) - int(days * DAY_US)


def iso(us: int) -> str:
    """A UTC instant in microseconds as RFC 3339 text."""
    return datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_bounds_cache: dict[str, tuple[int, int] | None] = {}
_bounds_lock = threading.Lock()


def ended_at_bounds(path: Path) -> tuple[int, int] | None:
    """(min, max) of `ended_at` in µs from a Parquet file's statistics; None if unknown.

    Files are immutable and their names never reused, so answers are cached by path.
    """
    key = str(path)
    with _bounds_lock:
        if key in _bounds_cache:
            return _bounds_cache[key]
    bounds = _read_bounds(path)
    with _bounds_lock:
        _bounds_cache[key] = bounds
    return bounds


def _forget_except(live: set[str]) -> None:
    """Drop cached bounds of files no longer live (compaction renames files all the time)."""
    with _bounds_lock:
        for key in [k for k in _bounds_cache if k not in live]:
            del _bounds_cache[key]


def _read_bounds(path: Path) -> tuple[int, int] | None:
    meta = pq.ParquetFile(path).metadata
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    if "ended_at" not in names or meta.num_row_groups == 0:
        return None
    column = names.index("ended_at")
    lows, highs = [], []
    for group in range(meta.num_row_groups):
        stats = meta.row_group(group).column(column).statistics
        if stats is None or not stats.has_min_max:
            return None
        lows.append(_micros(stats.min))
        highs.append(_micros(stats.max))
    return min(lows), max(highs)


def _micros(value: object) -> int:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(moment.timestamp() * 1_000_000)
    return int(value)  # type: ignore[call-overload]


def expired_files(data_dir: Path, files: Sequence[FileEntry], horizon: int) -> list[FileEntry]:
    """Raw event files whose every row ended before `horizon` (µs); rollups never expire."""
    horizon_month = iso(horizon)[:7]
    expired = []
    for entry in files:
        if entry.dataset != "events" or entry.partition > horizon_month:
            continue
        bounds = ended_at_bounds(data_dir / entry.path)
        if bounds is not None and bounds[1] < horizon:
            expired.append(entry)
    return expired


def publish(conn: sqlite3.Connection, paths: Sequence[str], horizon: int) -> None:
    """Atomically: the files leave the catalog, enter `retired`, and the horizon is recorded."""
    with ledger.transaction(conn):
        conn.executemany("DELETE FROM files WHERE path = ?", ((p,) for p in paths))
        now = time.time()
        conn.executemany("INSERT OR REPLACE INTO retired VALUES (?, ?)", ((p, now) for p in paths))
        conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)",
            (HORIZON_KEY, horizon),
        )


def applied_horizon(conn: sqlite3.Connection) -> int | None:
    """The latest horizon retention has applied (µs), or None if it never ran."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (HORIZON_KEY,)).fetchone()
    return int(row[0]) if row else None


def apply(store: Store, days: float, now: float | None = None) -> Outcome:
    """Retire every raw event file wholly older than `days` (the store holds its own locks)."""
    horizon = horizon_us(days, now)
    expired = expired_files(store.data_dir, store.files(), horizon)
    paths = [entry.path for entry in expired]
    publish(store.conn, paths, horizon)
    return Outcome(iso(horizon), paths, sum(entry.rows for entry in expired))


def status(store: Store) -> Status:
    """The retention setting, the horizon last applied, and the oldest raw event still held."""
    horizon = applied_horizon(store.conn)  # before the files: never newer than them
    lows = []
    live = [store.data_dir / f.path for f in store.files() if f.dataset == "events"]
    _forget_except({str(path) for path in live})
    for path in live:
        bounds = ended_at_bounds(path)
        if bounds is not None:
            lows.append(bounds[0])
    pending = store.snapshot().pending
    if pending.num_rows:
        low = pc.min(pending.column("ended_at")).as_py()
        if low is not None:
            lows.append(int(low.timestamp() * 1_000_000))
    return Status(
        retention_days=store.settings.retention_days,
        retention_horizon=None if horizon is None else iso(horizon),
        raw_events_since=iso(min(lows)) if lows else None,
    )
