"""Self-describing Parquet files, and the ledger's catalog rebuilt from them.

Every file Gasometer writes carries, in its Parquet key-value metadata, the WAL batches
whose rows it holds (`gasometer.batches`, e.g. `1-40,42`). A flush writes a batch's rows
once per dataset; compaction and the rollup rebuild write a file holding the union of the
files they replace. So among the files on disk, one whose batches another file also holds
is a replaced copy still waiting for deletion, and the live set is the files no other file
covers. From the live event files the identity index, the running-total points and the
id counters are recomputed; `rebuild_catalog` writes them into a new ledger, atomically.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import msgspec
import pyarrow.parquet as pq

from gasometer.errors import GasometerError
from gasometer.faults import pause_point
from gasometer.fsutil import fsync_dir
from gasometer.store import ledger
from gasometer.store.identity import identity_digest
from gasometer.store.ledger import FileEntry, IdentityRow
from gasometer.store.parquet import parquet_list_sql
from gasometer.store.retention import iso

BATCHES_KEY = "gasometer.batches"
DATASETS = ("events", "hourly")
REBUILDING = ledger.LEDGER_FILE + ".rebuilding"


class CatalogError(GasometerError):
    """The ledger (catalog, identity index, WAL) is missing or unreadable."""

    status = 503


# -- batch sets ------------------------------------------------------------------------


def encode_batches(ids: Iterable[int]) -> str:
    """A set of batch ids as compact ranges: {1, 2, 3, 7} -> "1-3,7"."""
    parts: list[str] = []
    ordered = sorted(set(ids))
    start = prev = None
    for value in [*ordered, None]:
        if value is not None and prev is not None and value == prev + 1:
            prev = value
            continue
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = value
    return ",".join(parts)


def decode_batches(text: str) -> set[int]:
    """The batch ids of a range string (the inverse of `encode_batches`)."""
    ids: set[int] = set()
    for part in filter(None, text.split(",")):
        low, _, high = part.partition("-")
        ids.update(range(int(low), int(high or low) + 1))
    return ids


def union_batches(entries: Iterable[FileEntry]) -> str:
    """The batches of several files together (what a file replacing them holds)."""
    ids: set[int] = set()
    for entry in entries:
        ids |= decode_batches(entry.batches)
    return encode_batches(ids)


# -- files on disk ---------------------------------------------------------------------


def data_files(data_dir: Path) -> Iterator[Path]:
    """Every finished Parquet file under the datasets (temp files start with a dot)."""
    for dataset in DATASETS:
        root = data_dir / dataset
        if root.is_dir():
            yield from (p for p in sorted(root.rglob("*.parquet")) if not p.name.startswith("."))


def has_data_files(data_dir: Path) -> bool:
    """True if the directory holds any event or rollup file."""
    return next(data_files(data_dir), None) is not None


@dataclass
class FoundFile:
    """A Parquet file found on disk, with what its metadata says."""

    entry: FileEntry
    batches: set[int] = field(default_factory=set)
    described: bool = True


def read_file(data_dir: Path, path: Path) -> FoundFile:
    """Describe one data file from its footer (rows, batches) and its place (dataset, month)."""
    meta = pq.read_metadata(path)
    rel = path.relative_to(data_dir).as_posix()
    dataset, partition_dir = rel.split("/")[:2]
    kv = meta.metadata or {}
    raw = kv.get(BATCHES_KEY.encode())
    text = raw.decode() if raw else ""
    stat = path.stat()
    entry = FileEntry(
        rel,
        dataset,
        partition_dir.removeprefix("month="),
        meta.num_rows,
        stat.st_size,
        stat.st_mtime,
        text,
    )
    return FoundFile(entry, decode_batches(text), raw is not None)


def choose_live(found: list[FoundFile]) -> list[FoundFile]:
    """The files no other file of the same dataset and month covers (the rest are replaced
    copies; a flush writes one file per month with the same batches).

    Of two files with the same batches, the newer is kept (a rollup rebuilt in place)."""
    live = []
    for candidate in found:
        if not candidate.described or not candidate.batches:
            live.append(candidate)
            continue
        covered = any(
            other is not candidate
            and other.entry.dataset == candidate.entry.dataset
            and other.entry.partition == candidate.entry.partition
            and candidate.batches <= other.batches
            and (
                candidate.batches < other.batches
                or (other.entry.created_at, other.entry.path)
                > (candidate.entry.created_at, candidate.entry.path)
            )
            for other in found
        )
        if not covered:
            live.append(candidate)
    return live


# -- identity state from event files ---------------------------------------------------


class Rebuilt(msgspec.Struct):
    """The ledger state recomputed from the live event files."""

    identities: dict[bytes, IdentityRow]
    totals: list[tuple[str, int, tuple[float, int, int, int, int]]]
    next_event_id: int
    events: int
    totals_without_points: int
    last_event_at_us: int | None


def state_from_files(paths: list[str]) -> Rebuilt:
    """Identity index, running-total points and counters of the given event files."""
    if not paths:
        return Rebuilt({}, [], 1, 0, 0, None)
    conn = duckdb.connect()
    try:
        relation = f"read_parquet({parquet_list_sql(paths)}, union_by_name = true)"
        conn.execute(f"CREATE VIEW ev AS SELECT * FROM {relation}")
        if "running_total" not in {r[0] for r in conn.execute("DESCRIBE ev").fetchall()}:
            conn.execute(
                f"CREATE OR REPLACE VIEW ev AS SELECT *, NULL AS running_total FROM {relation}"
            )
        return _rebuilt(conn)
    finally:
        conn.close()


def _rebuilt(conn: duckdb.DuckDBPyConnection) -> Rebuilt:
    identities: dict[bytes, IdentityRow] = {}
    versions = conn.execute(
        "SELECT event_id, max(revision), sum(cost_usd), sum(input_tokens), sum(output_tokens), "
        "sum(cache_creation_tokens), sum(cache_read_tokens) FROM ev "
        "WHERE kind <> 'total' AND event_id IS NOT NULL GROUP BY event_id"
    )
    for rows in iter(lambda: versions.fetchmany(100_000), []):
        for event_id, revision, cost, inp, out, created, read in rows:
            amounts = (float(cost), int(inp), int(out), int(created), int(read))
            identities[identity_digest("", 0, event_id)] = IdentityRow(revision, amounts)
    plain = conn.execute(
        "SELECT DISTINCT session_id, epoch_us(ended_at) FROM ev "
        "WHERE kind <> 'total' AND event_id IS NULL"
    )
    for rows in iter(lambda: plain.fetchmany(100_000), []):
        for session_id, ended in rows:
            identities[identity_digest(session_id, ended, None)] = IdentityRow(0, None)
    points = conn.execute(
        "SELECT session_id, epoch_us(ended_at), arg_max(running_total, "
        "(running_total.cost_usd, running_total.input_tokens + running_total.output_tokens "
        "+ running_total.cache_creation_tokens + running_total.cache_read_tokens)) "
        "FROM ev WHERE kind = 'total' AND running_total IS NOT NULL GROUP BY ALL"
    ).fetchall()
    totals = [
        (
            session,
            ended,
            (
                float(p["cost_usd"]),
                int(p["input_tokens"]),
                int(p["output_tokens"]),
                int(p["cache_creation_tokens"]),
                int(p["cache_read_tokens"]),
            ),
        )
        for session, ended, p in points
    ]
    max_id, events, last, orphan_totals = conn.execute(
        "SELECT max(id), count(*) FILTER (WHERE revision = 0), epoch_us(max(ended_at)), "
        "count(*) FILTER (WHERE kind = 'total' AND running_total IS NULL) FROM ev"
    ).fetchone() or (None, 0, None, 0)
    return Rebuilt(identities, totals, (max_id or 0) + 1, events, orphan_totals, last)


# -- the rebuild -----------------------------------------------------------------------


class RebuildReport(msgspec.Struct):
    """What `gasometer rebuild-catalog` recreated, and up to when the files reach."""

    files: int
    replaced_copies: int
    files_without_metadata: int
    events: int
    identities: int
    total_points: int
    totals_without_points: int
    last_event_at: str | None
    newest_file_written_at: str | None
    ledger: str
    previous_ledger: str | None


Progress = Callable[[str], None]


def rebuild_catalog(data_dir: Path, progress: Progress | None = None) -> RebuildReport:
    """Recreate the ledger from the Parquet files: catalog, identity index, totals, counters.

    The new ledger is written beside the old one and renamed into place only when
    complete, so an interrupted rebuild leaves the directory as it was; the previous ledger
    (if any) is kept as `ledger.sqlite.replaced-<time>`. Events that were only in the lost
    write-ahead log cannot come back: the report says up to when the files reach."""
    say = progress or (lambda _: None)
    data_dir = data_dir.resolve()
    _remove_ledger_files(data_dir, REBUILDING)
    found = [read_file(data_dir, path) for path in data_files(data_dir)]
    say(f"found {len(found)} data files")
    live = choose_live(found)
    event_paths = [str(data_dir / f.entry.path) for f in live if f.entry.dataset == "events"]
    say(f"{len(live)} live files; reading the identities of {len(event_paths)} event files")
    state = state_from_files(event_paths)
    batches = set().union(*(f.batches for f in found)) if found else set()
    conn = ledger.connect(data_dir, REBUILDING)
    try:
        with ledger.transaction(conn):
            ledger.add_files(conn, [f.entry for f in live])
            ledger.save_totals(conn, state.totals)
            ledger.set_next_event_id(conn, state.next_event_id)
            ledger.set_next_batch_id(conn, max(batches, default=0) + 1)
        say(f"writing {len(state.identities)} identities")
        ledger.replace_identity_index(conn, state.identities)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    pause_point("rebuild-written", data_dir)
    previous = _swap_in(data_dir)
    newest = max((f.entry.created_at for f in found), default=None)
    return RebuildReport(
        files=len(live),
        replaced_copies=len(found) - len(live),
        files_without_metadata=sum(not f.described for f in found),
        events=state.events,
        identities=len(state.identities),
        total_points=len(state.totals),
        totals_without_points=state.totals_without_points,
        last_event_at=_iso(state.last_event_at_us),
        newest_file_written_at=None if newest is None else _iso(int(newest * 1e6)),
        ledger=str(data_dir / ledger.LEDGER_FILE),
        previous_ledger=previous,
    )


def _swap_in(data_dir: Path) -> str | None:
    """Move the old ledger aside and the rebuilt one into place (a rename each)."""
    current = data_dir / ledger.LEDGER_FILE
    previous = None
    if current.exists():
        aside = data_dir / f"{ledger.LEDGER_FILE}.replaced-{time.strftime('%Y%m%dT%H%M%S')}"
        os.replace(current, aside)
        previous = str(aside)
    _remove_ledger_files(data_dir, ledger.LEDGER_FILE)
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(data_dir / f"{REBUILDING}{suffix}")
    with open(data_dir / REBUILDING, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(data_dir / REBUILDING, current)
    fsync_dir(data_dir)
    return previous


def _remove_ledger_files(data_dir: Path, name: str) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(data_dir / f"{name}{suffix}")


def _iso(micros: int | None) -> str | None:
    return None if micros is None else iso(micros)
