"""The ledger: Gasometer's durable state besides the Parquet files themselves.

One SQLite database (WAL mode, fsync on every commit) holds
- `batches`: the write-ahead log, acknowledged events not yet in Parquet;
- `quarantine`: batches that could not be flushed, set aside (never dropped silently)
  so that everything else keeps flowing; `gasometer quarantine` inspects and releases them;
- `identity`: every increment identity ever accepted (dedup is forever), with the amounts
  of its latest version so a larger re-sent version can replace it; the table holds the
  newest ones, `identity_runs` names the sealed runs holding the rest (identity_runs.py);
- `totals`: the running-total points of `kind: total` sessions (each point's largest value);
- `files`: the catalog of live Parquet files, with the WAL batches each one holds;
- `writing`: files being written by a flush or compaction not yet published; only these
  are removed as orphans (a file the catalog does not know is never deleted);
- `retired`: files replaced by compaction, deleted once no reader can still hold them.
Every change to these tables is one transaction, so a crash leaves the old or the new state.
Everything here but the WAL can be rebuilt from the Parquet files (`gasometer rebuild-catalog`).
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
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY, created_at REAL NOT NULL, events INTEGER NOT NULL,
    payload BLOB NOT NULL, error TEXT NOT NULL, quarantined_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS writing (path TEXT PRIMARY KEY, started_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS identity_runs (
    name TEXT PRIMARY KEY, seq INTEGER NOT NULL, rows INTEGER NOT NULL);
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
    rows INTEGER NOT NULL, bytes INTEGER NOT NULL, created_at REAL NOT NULL,
    batches TEXT NOT NULL DEFAULT '');
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
    """One live Parquet file of the catalog; `path` is relative to the data directory.

    `batches` names the WAL batches whose rows it holds (`1-40,42`, see store/catalog.py),
    as the file's own metadata does: a file whose batches another file also holds is a
    replaced copy, which is how a lost catalog is rebuilt without counting anything twice."""

    path: str
    dataset: str
    partition: str
    rows: int
    bytes: int
    created_at: float
    batches: str = ""


IDENTITY_FORMAT = 2
"""Version of the identity keys: 2 = digest only (1 prefixed the event's UTC day)."""


def connect(data_dir: Path, name: str = LEDGER_FILE) -> sqlite3.Connection:
    """Open (creating if needed) the ledger, durable on every commit."""
    data_dir.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        data_dir / name, isolation_level=None, check_same_thread=False, timeout=30
    )
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA cache_size=-65536")
    conn.executescript(_SCHEMA)
    _add_missing_columns(conn)
    return conn


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    """Bring a ledger written by an earlier version up to this schema."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(files)")}
    if "batches" not in columns:
        conn.execute("ALTER TABLE files ADD COLUMN batches TEXT NOT NULL DEFAULT ''")
    columns = {row[1] for row in conn.execute("PRAGMA table_info(batches)")}
    if "indexed" not in columns:
        conn.execute("ALTER TABLE batches ADD COLUMN indexed INTEGER NOT NULL DEFAULT 0")


def get_meta(conn: sqlite3.Connection, key: str) -> int | None:
    """An integer kept in the ledger's `meta` table, or None."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else int(row[0])


def set_meta(conn: sqlite3.Connection, key: str, value: int) -> None:
    """Set an integer in the `meta` table (inside the caller's transaction, if any)."""
    conn.execute(
        "INSERT INTO meta(key, value) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


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
    return get_meta(conn, "next_event_id") or 1


def set_next_event_id(conn: sqlite3.Connection, value: int) -> None:
    """Record the next free event id (inside the batch's transaction)."""
    set_meta(conn, "next_event_id", value)


def _identity_row(row: tuple) -> IdentityRow:
    amounts = None if row[1] is None else (row[1], row[2], row[3], row[4], row[5])
    return IdentityRow(row[0], amounts)


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


def replace_identity_index(conn: sqlite3.Connection, rows: dict[bytes, IdentityRow]) -> None:
    """Atomically: the identity index becomes exactly `rows` (a rebuild or a key upgrade)."""
    with transaction(conn):
        conn.execute("DELETE FROM identity")
        conn.execute("DELETE FROM identity_runs")
        save_identities(conn, rows)
        set_meta(conn, "identity_format", IDENTITY_FORMAT)


def save_identities(conn: sqlite3.Connection, rows: dict[bytes, IdentityRow]) -> None:
    """Add or update identities, in key order (inside the caller's transaction)."""
    conn.executemany(
        "INSERT OR REPLACE INTO identity VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            (key, row.revision, *(row.amounts if row.amounts is not None else (None,) * 5))
            for key, row in sorted(rows.items())
        ),
    )


def hot_identities(conn: sqlite3.Connection) -> list[tuple[bytes, IdentityRow]]:
    """Every identity in the ledger's table (the part not sealed into runs yet)."""
    rows = conn.execute(
        "SELECT key, revision, cost, input, output, cache_creation, cache_read FROM identity"
    )
    return [(bytes(r[0]), _identity_row(r[1:])) for r in rows.fetchall()]


def identity_runs(conn: sqlite3.Connection) -> list[tuple[str, int]]:
    """The sealed identity runs, oldest first: (name, rows)."""
    return conn.execute("SELECT name, rows FROM identity_runs ORDER BY seq").fetchall()


def seal_identities(conn: sqlite3.Connection, name: str, rows: int) -> None:
    """Atomically: the identity table's rows now live in the run `name` (already on disk)."""
    with transaction(conn):
        seq = conn.execute("SELECT coalesce(max(seq), 0) + 1 FROM identity_runs").fetchone()[0]
        conn.execute("INSERT INTO identity_runs VALUES (?, ?, ?)", (name, seq, rows))
        conn.execute("DELETE FROM identity")


def replace_runs(conn: sqlite3.Connection, merged: Sequence[str], name: str, rows: int) -> None:
    """Atomically: the run `name` takes the place of the runs it merged (their newest seq)."""
    with transaction(conn):
        marks = ",".join("?" * len(merged))
        seq = conn.execute(
            f"SELECT max(seq) FROM identity_runs WHERE name IN ({marks})", list(merged)
        ).fetchone()[0]
        conn.execute(f"DELETE FROM identity_runs WHERE name IN ({marks})", list(merged))
        conn.execute("INSERT INTO identity_runs VALUES (?, ?, ?)", (name, seq, rows))


def session_totals(conn: sqlite3.Connection, session_id: str) -> dict[int, Amounts]:
    """Every running-total point of a session: its value by `ended_at` (µs)."""
    rows = conn.execute(
        "SELECT ended_at_us, cost, input, output, cache_creation, cache_read FROM totals "
        "WHERE session_id = ?",
        (session_id,),
    ).fetchall()
    return {r[0]: (r[1], r[2], r[3], r[4], r[5]) for r in rows}


def save_totals(conn: sqlite3.Connection, rows: Iterable[tuple[str, int, Amounts]]) -> None:
    """Remember running-total points (a point's new, larger value replaces the old)."""
    conn.executemany(
        "INSERT OR REPLACE INTO totals VALUES (?, ?, ?, ?, ?, ?, ?)",
        ((s, t, *a) for s, t, a in rows),
    )


def append_batch(conn: sqlite3.Connection, batch_id: int, events: int, payload: bytes) -> None:
    """Write one acknowledged batch to the write-ahead log."""
    conn.execute(
        "INSERT INTO batches(id, created_at, events, payload) VALUES (?, ?, ?, ?)",
        (batch_id, time.time(), events, payload),
    )


def next_batch_id(conn: sqlite3.Connection) -> int:
    """The id of the next WAL batch (never reused, even after batches are flushed)."""
    return get_meta(conn, "next_batch_id") or 1


def set_next_batch_id(conn: sqlite3.Connection, value: int) -> None:
    """Record the next free batch id."""
    set_meta(conn, "next_batch_id", value)


def pending_batches(conn: sqlite3.Connection) -> list[tuple[int, float, bytes, int]]:
    """Every batch still in the write-ahead log, oldest first:
    (id, created_at, payload, indexed), `indexed` when its identities are in the index
    already (a batch released from quarantine)."""
    return conn.execute(
        "SELECT id, created_at, payload, indexed FROM batches ORDER BY id"
    ).fetchall()


class QuarantinedBatch(NamedTuple):
    """A batch set aside because it could not be flushed."""

    id: int
    created_at: float
    events: int
    error: str
    quarantined_at: float


def quarantine_batch(
    conn: sqlite3.Connection, batch_id: int, error: str, identities: dict[bytes, IdentityRow]
) -> None:
    """Atomically: move a WAL batch to quarantine and index its identities, so that its
    events stay deduplicated (and counted once if the batch is released)."""
    with transaction(conn):
        conn.execute(
            "INSERT INTO quarantine SELECT id, created_at, events, payload, ?, ? "
            "FROM batches WHERE id = ?",
            (error, time.time(), batch_id),
        )
        conn.execute("DELETE FROM batches WHERE id = ?", (batch_id,))
        save_identities(conn, identities)


def quarantined(conn: sqlite3.Connection) -> list[QuarantinedBatch]:
    """Every quarantined batch, oldest first."""
    rows = conn.execute(
        "SELECT id, created_at, events, error, quarantined_at FROM quarantine ORDER BY id"
    )
    return [QuarantinedBatch(*row) for row in rows.fetchall()]


def quarantined_payload(conn: sqlite3.Connection, batch_id: int) -> bytes | None:
    """The stored events of one quarantined batch (msgpack), or None."""
    row = conn.execute("SELECT payload FROM quarantine WHERE id = ?", (batch_id,)).fetchone()
    return None if row is None else bytes(row[0])


def release_quarantined(conn: sqlite3.Connection, batch_id: int) -> bool:
    """Put a quarantined batch back into the WAL (its identities are indexed already)."""
    with transaction(conn):
        moved = conn.execute(
            "INSERT INTO batches(id, created_at, events, payload, indexed) "
            "SELECT id, created_at, events, payload, 1 FROM quarantine WHERE id = ?",
            (batch_id,),
        ).rowcount
        conn.execute("DELETE FROM quarantine WHERE id = ?", (batch_id,))
    return moved > 0


def drop_quarantined(conn: sqlite3.Connection, batch_id: int) -> bool:
    """Discard a quarantined batch for good (its identities stay: re-sending is a duplicate)."""
    with transaction(conn):
        return conn.execute("DELETE FROM quarantine WHERE id = ?", (batch_id,)).rowcount > 0


def begin_writes(conn: sqlite3.Connection, paths: Sequence[str]) -> None:
    """Record files about to be written, before they exist (so only they can be orphans)."""
    now = time.time()
    with transaction(conn):
        conn.executemany("INSERT OR REPLACE INTO writing VALUES (?, ?)", ((p, now) for p in paths))


def end_writes(conn: sqlite3.Connection, paths: Sequence[str]) -> None:
    """Forget write intents (after their files were published or removed)."""
    with transaction(conn):
        conn.executemany("DELETE FROM writing WHERE path = ?", ((p,) for p in paths))


def unfinished_writes(conn: sqlite3.Connection) -> list[str]:
    """Files a flush or compaction began and never published."""
    return [r[0] for r in conn.execute("SELECT path FROM writing ORDER BY path").fetchall()]


def live_files(conn: sqlite3.Connection, dataset: str | None = None) -> list[FileEntry]:
    """The catalog: live Parquet files, optionally of one dataset (`events` or `hourly`)."""
    sql = "SELECT path, dataset, partition, rows, bytes, created_at, batches FROM files"
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
        add_files(conn, new_files)
        save_identities(conn, identities)
        conn.executemany("DELETE FROM batches WHERE id = ?", ((b,) for b in flushed_batch_ids))
        _done_writing(conn, new_files)


def publish_compaction(
    conn: sqlite3.Connection, new_files: Sequence[FileEntry], replaced: Sequence[str]
) -> None:
    """Atomically: compacted files go live and the files they replace are retired."""
    with transaction(conn):
        add_files(conn, new_files)
        _done_writing(conn, new_files)
        conn.executemany("DELETE FROM files WHERE path = ?", ((p,) for p in replaced))
        now = time.time()
        conn.executemany(
            "INSERT OR REPLACE INTO retired VALUES (?, ?)", ((p, now) for p in replaced)
        )


def add_files(conn: sqlite3.Connection, entries: Sequence[FileEntry]) -> None:
    """Add files to the catalog (inside the caller's transaction)."""
    conn.executemany("INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?)", entries)


def _done_writing(conn: sqlite3.Connection, entries: Sequence[FileEntry]) -> None:
    conn.executemany("DELETE FROM writing WHERE path = ?", ((e.path,) for e in entries))


def retired_files(conn: sqlite3.Connection, older_than: float) -> list[str]:
    """Retired files whose grace period has passed (no reader can still be using them)."""
    rows = conn.execute("SELECT path FROM retired WHERE retired_at <= ?", (older_than,))
    return [r[0] for r in rows.fetchall()]


def forget_retired(conn: sqlite3.Connection, paths: Sequence[str]) -> None:
    """Drop retired files from the ledger once they are gone from disk."""
    with transaction(conn):
        conn.executemany("DELETE FROM retired WHERE path = ?", ((p,) for p in paths))
