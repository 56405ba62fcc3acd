"""The ledger: Gasometer's durable state besides the Parquet files themselves.

One SQLite database (WAL mode, fsync on every commit) holds
- `batches`: the write-ahead log, acknowledged events not yet in Parquet;
- `identity`: every event identity ever accepted (dedup is forever), with the amounts
  of its latest version so a larger re-sent version can replace it;
- `totals`: the running-total points of `kind: total` sessions;
- `files`: the catalog of live Parquet files; a file on disk not listed here is an
  orphan of an interrupted flush or compaction and is removed at start-up;
- `retired`: files replaced by compaction, deleted once no reader can still hold them.
Every change to these tables is one transaction, so a crash leaves the old or the new state.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import msgspec

LEDGER_FILE = "ledger.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY, created_at REAL NOT NULL,
    events INTEGER NOT NULL, payload BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS identity (
    key BLOB PRIMARY KEY, revision INTEGER NOT NULL DEFAULT 0,
    cost REAL, input INTEGER, output INTEGER, cache_creation INTEGER, cache_read INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS totals (
    session_id TEXT NOT NULL, ended_at_us INTEGER NOT NULL, cost REAL NOT NULL,
    input INTEGER NOT NULL, output INTEGER NOT NULL,
    cache_creation INTEGER NOT NULL, cache_read INTEGER NOT NULL,
    PRIMARY KEY (session_id, ended_at_us)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, dataset TEXT NOT NULL, partition TEXT NOT NULL,
    rows INTEGER NOT NULL, bytes INTEGER NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS retired (path TEXT PRIMARY KEY, retired_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

Amounts = tuple[float, int, int, int, int]
"""cost_usd, input, output, cache creation and cache read tokens."""


class IdentityRow(msgspec.Struct, frozen=True, gc=False):
    """What the ledger remembers of one accepted event identity."""

    revision: int
    amounts: Amounts | None


class FileEntry(NamedTuple):
    """One live Parquet file of the catalog; `path` is relative to the data directory."""

    path: str
    dataset: str
    partition: str
    rows: int
    bytes: int
    created_at: float


def connect(data_dir: Path) -> sqlite3.Connection:
    """Open (creating if needed) the ledger, durable on every commit."""
    data_dir.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        data_dir / LEDGER_FILE, isolation_level=None, check_same_thread=False, timeout=30
    )
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA cache_size=-65536")
    conn.executescript(_SCHEMA)
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One atomic, durable change: committed (fsync'd) on success, rolled back on error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def next_event_id(conn: sqlite3.Connection) -> int:
    """The id the next stored event row gets (ids are unique and increase)."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'next_event_id'").fetchone()
    return int(row[0]) if row else 1


def set_next_event_id(conn: sqlite3.Connection, value: int) -> None:
    """Record the next free event id (inside the batch's transaction)."""
    conn.execute(
        "INSERT INTO meta(key, value) VALUES ('next_event_id', ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (value,),
    )


def _identity_row(row: tuple) -> IdentityRow:
    amounts = None if row[1] is None else (row[1], row[2], row[3], row[4], row[5])
    return IdentityRow(row[0], amounts)


def lookup_identity(conn: sqlite3.Connection, key: bytes) -> IdentityRow | None:
    """The remembered version of an event identity, or None if never seen."""
    row = conn.execute(
        "SELECT revision, cost, input, output, cache_creation, cache_read "
        "FROM identity WHERE key = ?",
        (key,),
    ).fetchone()
    return None if row is None else _identity_row(row)


def lookup_identities(conn: sqlite3.Connection, keys: Sequence[bytes]) -> dict[bytes, IdentityRow]:
    """The remembered versions of many identities at once (absent keys are left out)."""
    found: dict[bytes, IdentityRow] = {}
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            "SELECT key, revision, cost, input, output, cache_creation, cache_read "
            f"FROM identity WHERE key IN ({marks})",
            chunk,
        )
        found.update((row[0], _identity_row(row[1:])) for row in rows)
    return found


def _save_identities(conn: sqlite3.Connection, rows: dict[bytes, IdentityRow]) -> None:
    conn.executemany(
        "INSERT OR REPLACE INTO identity VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            (key, row.revision, *(row.amounts if row.amounts is not None else (None,) * 5))
            for key, row in sorted(rows.items())
        ),
    )


def session_totals(conn: sqlite3.Connection, session_id: str) -> list[tuple[int, Amounts]]:
    """Every running-total point of a session, oldest first."""
    rows = conn.execute(
        "SELECT ended_at_us, cost, input, output, cache_creation, cache_read FROM totals "
        "WHERE session_id = ? ORDER BY ended_at_us",
        (session_id,),
    ).fetchall()
    return [(r[0], (r[1], r[2], r[3], r[4], r[5])) for r in rows]


def save_totals(conn: sqlite3.Connection, rows: Iterable[tuple[str, int, Amounts]]) -> None:
    """Remember running-total points."""
    conn.executemany(
        "INSERT OR IGNORE INTO totals VALUES (?, ?, ?, ?, ?, ?, ?)",
        ((s, t, *a) for s, t, a in rows),
    )


def append_batch(conn: sqlite3.Connection, batch_id: int, events: int, payload: bytes) -> None:
    """Write one acknowledged batch to the write-ahead log."""
    conn.execute(
        "INSERT INTO batches VALUES (?, ?, ?, ?)", (batch_id, time.time(), events, payload)
    )


def next_batch_id(conn: sqlite3.Connection) -> int:
    """The id of the next WAL batch (never reused, even after batches are flushed)."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'next_batch_id'").fetchone()
    return int(row[0]) if row else 1


def set_next_batch_id(conn: sqlite3.Connection, value: int) -> None:
    """Record the next free batch id."""
    conn.execute(
        "INSERT INTO meta(key, value) VALUES ('next_batch_id', ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (value,),
    )


def pending_batches(conn: sqlite3.Connection) -> list[tuple[int, float, bytes]]:
    """Every batch still in the write-ahead log, oldest first: (id, created_at, payload)."""
    return conn.execute("SELECT id, created_at, payload FROM batches ORDER BY id").fetchall()


def live_files(conn: sqlite3.Connection, dataset: str | None = None) -> list[FileEntry]:
    """The catalog: live Parquet files, optionally of one dataset (`events` or `hourly`)."""
    sql = "SELECT path, dataset, partition, rows, bytes, created_at FROM files"
    rows = (
        conn.execute(sql + " ORDER BY path").fetchall()
        if dataset is None
        else conn.execute(sql + " WHERE dataset = ? ORDER BY path", (dataset,)).fetchall()
    )
    return [FileEntry(*r) for r in rows]


def publish_flush(
    conn: sqlite3.Connection,
    new_files: Sequence[FileEntry],
    flushed_batch_ids: Sequence[int],
    identities: dict[bytes, IdentityRow],
) -> None:
    """Atomically: the flushed batches leave the WAL, their Parquet files go live and
    their identities join the ledger's index (in key order, so pages are written once)."""
    with transaction(conn):
        _add_files(conn, new_files)
        _save_identities(conn, identities)
        conn.executemany("DELETE FROM batches WHERE id = ?", ((b,) for b in flushed_batch_ids))


def publish_compaction(
    conn: sqlite3.Connection, new_files: Sequence[FileEntry], replaced: Sequence[str]
) -> None:
    """Atomically: compacted files go live and the files they replace are retired."""
    with transaction(conn):
        _add_files(conn, new_files)
        conn.executemany("DELETE FROM files WHERE path = ?", ((p,) for p in replaced))
        now = time.time()
        conn.executemany(
            "INSERT OR REPLACE INTO retired VALUES (?, ?)", ((p, now) for p in replaced)
        )


def _add_files(conn: sqlite3.Connection, entries: Sequence[FileEntry]) -> None:
    conn.executemany("INSERT INTO files VALUES (?, ?, ?, ?, ?, ?)", entries)


def retired_files(conn: sqlite3.Connection, older_than: float) -> list[str]:
    """Retired files whose grace period has passed (no reader can still be using them)."""
    rows = conn.execute("SELECT path FROM retired WHERE retired_at <= ?", (older_than,))
    return [r[0] for r in rows.fetchall()]


def forget_retired(conn: sqlite3.Connection, paths: Sequence[str]) -> None:
    """Drop retired files from the ledger once they are gone from disk."""
    with transaction(conn):
        conn.executemany("DELETE FROM retired WHERE path = ?", ((p,) for p in paths))
