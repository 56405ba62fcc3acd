"""The cold part of the identity index: immutable sorted runs of keys, memory-mapped.

Identity keys are random digests, so inserting them into one B-tree dirties a page per
key: at a million identities a flush of 10,000 new ones cost half a second. Instead the
ledger's `identity` table stays small (the hot part, where flushes write), and the
store seals it, now and then, into a run: two NumPy files sorted by key, written once and
never changed (`identity/run-<n>.keys.npy` holds the first 8 key bytes as integers for a
binary search, `.rows.npy` the rest of each key, its revision and amounts). Runs of a
similar size are merged, so there are few of them; a lookup is a vectorised binary search
per run, newest first, after the hot table. Like an LSM tree, with the ledger's
`identity_runs` table saying, transactionally, which runs are live.
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from gasometer.fsutil import fsync_dir
from gasometer.store import ledger
from gasometer.store.ledger import IdentityRow

ROW = np.dtype([("lo", "<u4"), ("revision", "<i4"), ("cost", "<f8"), ("tokens", "<i8", (4,))])
"""One identity besides its first 8 key bytes; cost NaN = no amounts (not an event_id)."""


def split_keys(keys: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """12-byte keys as (first 8 bytes, last 4 bytes) integers: the runs' sort order."""
    raw = np.frombuffer(b"".join(keys), dtype=np.dtype([("hi", ">u8"), ("lo", ">u4")]))
    return raw["hi"].astype("<u8"), raw["lo"].astype("<u4")


class Run:
    """One sealed run, memory-mapped."""

    def __init__(self, directory: Path, name: str) -> None:
        self.name = name
        self.hi = np.load(directory / f"{name}.keys.npy", mmap_mode="r")
        self.rows = np.load(directory / f"{name}.rows.npy", mmap_mode="r")

    def __len__(self) -> int:
        return len(self.hi)

    def lookup(
        self, keys: Sequence[bytes], hi: np.ndarray, lo: np.ndarray
    ) -> dict[bytes, IdentityRow]:
        """The identities of `keys` found in this run (one vectorised search for all)."""
        size = len(self.hi)
        if not size:
            return {}
        start = np.searchsorted(self.hi, hi, side="left")
        at = np.minimum(start, size - 1)
        same_hi = (start < size) & (self.hi[at] == hi)
        exact = same_hi & (self.rows["lo"][at] == lo)
        found = _identities([keys[int(n)] for n in np.flatnonzero(exact)], self.rows[at[exact]])
        for n in map(int, np.flatnonzero(same_hi & ~exact)):
            index = int(start[n]) + 1
            while index < size and self.hi[index] == hi[n]:
                if self.rows["lo"][index] == lo[n]:
                    found.update(_identities([keys[n]], self.rows[index : index + 1]))
                    break
                index += 1
        return found


def _identities(keys: list[bytes], rows: np.ndarray) -> dict[bytes, IdentityRow]:
    """Identity rows from run rows (cost NaN: no amounts)."""
    revisions = rows["revision"].tolist()
    costs = rows["cost"].tolist()
    tokens = rows["tokens"].tolist()
    found = {}
    for key, revision, cost, counts in zip(keys, revisions, costs, tokens, strict=True):
        amounts = None if math.isnan(cost) else (cost, *counts)
        found[key] = IdentityRow(revision, amounts)
    return found


def write_run(directory: Path, name: str, rows: Iterable[tuple[bytes, IdentityRow]]) -> int:
    """Write a run from (key, identity) pairs, any order; a later pair for the same key
    replaces an earlier one. Durable (temp files, fsync, rename) before it returns."""
    items = dict(rows)
    keys = list(items)
    hi, lo = split_keys(keys) if keys else (np.empty(0, "<u8"), np.empty(0, "<u4"))
    table = np.zeros(len(keys), dtype=ROW)
    table["lo"] = lo
    for index, key in enumerate(keys):
        row = items[key]
        table["revision"][index] = row.revision
        if row.amounts is None:
            table["cost"][index] = np.nan
        else:
            table["cost"][index] = row.amounts[0]
            table["tokens"][index] = row.amounts[1:]
    order = np.lexsort((lo, hi))
    directory.mkdir(parents=True, exist_ok=True)
    _save(directory / f"{name}.keys.npy", hi[order])
    _save(directory / f"{name}.rows.npy", table[order])
    fsync_dir(directory)
    return len(keys)


def merge_runs(directory: Path, name: str, runs: Sequence[Run]) -> int:
    """Write one run holding several (later runs in `runs` win for a key in both)."""
    hi = np.concatenate([run.hi for run in runs])
    rows = np.concatenate([run.rows for run in runs])
    age = np.concatenate([np.full(len(run), n, dtype=np.int32) for n, run in enumerate(runs)])
    order = np.lexsort((-age, rows["lo"], hi))
    hi, rows = hi[order], rows[order]
    keep = np.ones(len(hi), dtype=bool)
    keep[1:] = (hi[1:] != hi[:-1]) | (rows["lo"][1:] != rows["lo"][:-1])
    directory.mkdir(parents=True, exist_ok=True)
    _save(directory / f"{name}.keys.npy", hi[keep])
    _save(directory / f"{name}.rows.npy", rows[keep])
    fsync_dir(directory)
    return int(keep.sum())


def _save(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        np.save(handle, array)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def remove_run(directory: Path, name: str) -> None:
    """Delete a run's files (once no live run list names it)."""
    for suffix in (".keys.npy", ".rows.npy"):
        with contextlib.suppress(FileNotFoundError):
            (directory / f"{name}{suffix}").unlink()


SEAL_ROWS = 200_000
"""Identities the ledger's table holds before they are sealed into a run: small enough
that a flush's inserts dirty few pages, large enough that runs stay few."""
FAN_IN = 8


class IdentityIndex:
    """Every identity ever accepted: the ledger's `identity` table, then the sealed runs.

    Lookups may run on any thread; sealing and merging run on the store's background
    thread under its flush lock (so the table does not change meanwhile). A new run joins
    the lookup list before the table rows it holds are deleted, so a concurrent lookup
    finds each identity in one place or both, never in neither."""

    def __init__(self, directory: Path, conn: sqlite3.Connection, seal_rows: int = SEAL_ROWS):
        self.directory = directory
        self.seal_rows = seal_rows
        self.runs: list[Run] = [Run(directory, name) for name, _ in ledger.identity_runs(conn)]
        self.hot_rows = conn.execute("SELECT count(*) FROM identity").fetchone()[0]

    def lookup(self, conn: sqlite3.Connection, keys: Sequence[bytes]) -> dict[bytes, IdentityRow]:
        """The latest version of each known key (absent keys are left out)."""
        found = ledger.lookup_identities(conn, keys)
        missing = [k for k in keys if k not in found]
        for run in reversed(self.runs):
            if not missing:
                break
            hi, lo = split_keys(missing)
            hits = run.lookup(missing, hi, lo)
            if hits:
                found.update(hits)
                missing = [k for k in missing if k not in hits]
        return found

    def sweep(self) -> None:
        """Remove run files no live run names (left by a crash mid-seal or mid-merge)."""
        live = {run.name for run in self.runs}
        if self.directory.is_dir():
            for path in self.directory.iterdir():
                if path.name.split(".")[0] not in live:
                    path.unlink()

    def maintain(self, conn: sqlite3.Connection) -> None:
        """Seal the table into a run once it holds `seal_rows`, then merge similar runs."""
        if self.hot_rows >= self.seal_rows:
            self.seal(conn)
        self._merge(conn)

    def seal(self, conn: sqlite3.Connection) -> None:
        """Move every identity of the table into a new run."""
        rows = ledger.hot_identities(conn)
        if not rows:
            return
        name = f"run-{time.time_ns()}"
        count = write_run(self.directory, name, rows)
        self.runs = [*self.runs, Run(self.directory, name)]
        ledger.seal_identities(conn, name, count)
        self.hot_rows = 0

    def _merge(self, conn: sqlite3.Connection) -> None:
        while len(self.runs) >= FAN_IN:
            tail = self.runs[-FAN_IN:]
            if len({self._level(run) for run in tail}) != 1:
                return
            name = f"run-{time.time_ns()}"
            count = merge_runs(self.directory, name, tail)
            self.runs = [*self.runs[:-FAN_IN], Run(self.directory, name)]
            ledger.replace_runs(conn, [run.name for run in tail], name, count)
            for run in tail:
                remove_run(self.directory, run.name)

    def _level(self, run: Run) -> int:
        return max(0, int(math.log(max(len(run), 1) / self.seal_rows, FAN_IN)))

    def size(self) -> int:
        """Identities in runs and table (a key in several counts several times)."""
        return self.hot_rows + sum(len(run) for run in self.runs)
