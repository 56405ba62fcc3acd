"""How far each imported file has been read: `import_state.sqlite` in the data directory.

A file's position advances only after the events read up to it are durable in the store,
so a crash mid-import makes the next run re-read (and deduplicate) at most the last
batch: never double-counted, never lost. A file that was replaced (other inode, shorter
than its position, or different first bytes) is read again from the start.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

STATE_FILE = "import_state.sqlite"
HEAD_BYTES = 4096

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, offset INTEGER NOT NULL, size INTEGER NOT NULL,
    inode INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    head_len INTEGER NOT NULL, head BLOB NOT NULL, updated_at REAL NOT NULL
) WITHOUT ROWID;
"""


class FileMark(NamedTuple):
    """The position reached in one file, and what the file looked like then."""

    path: str
    offset: int
    size: int
    inode: int
    mtime_ns: int
    head_len: int
    head: bytes


def head_digest(path: Path, length: int) -> bytes:
    """A hash of the first `length` bytes of a file (b"" if unreadable)."""
    try:
        with open(path, "rb") as f:
            return hashlib.blake2b(f.read(length), digest_size=16).digest()
    except OSError:
        return b""


def mark_for(path: Path, offset: int) -> FileMark:
    """The mark recording that `path` has been read up to `offset`."""
    st = os.stat(path)
    head_len = min(offset, HEAD_BYTES)
    return FileMark(
        str(path), offset, st.st_size, st.st_ino, st.st_mtime_ns, head_len,
        head_digest(path, head_len),
    )  # fmt: skip


class ImportState:
    """The per-file positions of every import into one data directory."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(
            data_dir / STATE_FILE, isolation_level=None, check_same_thread=False, timeout=30
        )
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.executescript(_SCHEMA)

    def get(self, path: Path) -> FileMark | None:
        """The stored mark of a file, if it was ever imported."""
        row = self.conn.execute(
            "SELECT path, offset, size, inode, mtime_ns, head_len, head FROM files WHERE path = ?",
            (str(path),),
        ).fetchone()
        return None if row is None else FileMark(*row)

    def start_offset(self, path: Path, size: int, inode: int, mtime_ns: int) -> int | None:
        """Where to resume reading `path`; None when nothing changed since the last read."""
        mark = self.get(path)
        if mark is None:
            return 0
        if mark.inode == inode and mark.size == size and mark.mtime_ns == mtime_ns:
            return None if mark.offset >= size else mark.offset
        if mark.inode != inode or size < mark.offset:
            return 0
        if head_digest(path, mark.head_len) != mark.head:
            return 0
        return mark.offset

    def advance(self, marks: Iterable[FileMark]) -> None:
        """Record new positions in one durable transaction (call after ingest is durable)."""
        now = time.time()
        rows = [(*m, now) for m in marks]
        if not rows:
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.executemany(
                "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows
            )
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def close(self) -> None:
        """Close the state database."""
        self.conn.close()
