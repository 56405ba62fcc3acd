"""The store: acknowledged events on their way from the write-ahead log to Parquet.

Events arrive as committed WAL batches (`add_pending`), are visible to queries at once
through `snapshot()`, and are flushed by size or age into Hive-partitioned Parquet
(`events/month=YYYY-MM/`) together with their hourly rollup (`hourly/month=YYYY-MM/`).
Compaction merges small files into large ones. Every step publishes through one ledger
transaction, so a crash at any point leaves either the old or the new set of files.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import os
import shutil
import sqlite3
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import duckdb
import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from gasometer import duck
from gasometer.config import Settings
from gasometer.errors import GasometerError
from gasometer.faults import pause_point
from gasometer.model import StoredEvent
from gasometer.resources import query_text
from gasometer.store import catalog, ledger, retention
from gasometer.store.catalog import BATCHES_KEY, CatalogError, encode_batches, union_batches
from gasometer.store.identity import replay_identities
from gasometer.store.identity_runs import IdentityIndex
from gasometer.store.ledger import FileEntry, IdentityRow
from gasometer.store.parquet import copy_to_parquet, parquet_list_sql
from gasometer.store.schema import empty_events, events_to_arrow, month_of_us

log = logging.getLogger("gasometer.store")

DATASETS = catalog.DATASETS
ENVIRONMENT_ERRORS = (OSError, duckdb.IOException, sqlite3.OperationalError)
"""Failures of the machine (disk full, I/O), retried as they are; any other failure of
one batch's flush is that batch's own, and it is quarantined so the rest keeps flowing."""
COMPACTION_BACKOFF_S = 600.0
_batch_decoder = msgspec.msgpack.Decoder(list[StoredEvent])
batch_encoder = msgspec.msgpack.Encoder()


class PendingBatch(NamedTuple):
    """A committed WAL batch not yet in Parquet, kept in memory for queries, with the
    identities it wrote (they join the ledger's index when the batch is flushed)."""

    batch_id: int
    created_at: float
    table: pa.Table
    identities: dict[bytes, IdentityRow]


@dataclass(frozen=True)
class Snapshot:
    """A consistent view for one query: live files plus unflushed events, never both."""

    version: int
    data_dir: Path
    event_files: tuple[str, ...]
    hourly_files: tuple[str, ...]
    pending: pa.Table


class StoreLocked(GasometerError):
    """Another Gasometer process owns this data directory."""


class StoreMissing(GasometerError):
    """A read-only open of a directory that holds no Gasometer data (a typo in --data-dir)."""


class Store:
    """Owns a data directory: flushing, compaction and consistent snapshots for readers."""

    def __init__(self, settings: Settings, *, readonly: bool = False) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir.resolve()
        self.readonly = readonly
        self._lock = threading.RLock()
        self._flush_lock = threading.Lock()
        self._pending: list[PendingBatch] = []
        self._recent: dict[bytes, tuple[int, IdentityRow]] = {}
        self.raw_horizon_us: int | None = None
        """Raw events that ended before this may have been removed by retention."""
        self._files: dict[str, FileEntry] = {}
        self._version = 0
        self._snapshot: Snapshot | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock_handle: int | None = None
        self.errors: dict[str, str] = {}
        """The last failure of each background step (flush, compact, ...), until it succeeds."""
        self._compaction_skip: dict[str, float] = {}
        self._retention_due = 0.0
        if (
            readonly
            and not (self.data_dir / ledger.LEDGER_FILE).exists()
            and not catalog.has_data_files(self.data_dir)
        ):
            raise StoreMissing(
                f"{self.data_dir}: no Gasometer data here (check --data-dir or GASOMETER_DATA_DIR)"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not readonly:
            self._take_ownership()
        try:
            self.conn = open_ledger(self.data_dir)
        except BaseException:
            self._release()
            raise
        self._duck = duck.connect(threads=2, memory_limit=settings.query_memory_limit)
        if not readonly:
            self._upgrade_identity_keys()
        self.identities = IdentityIndex(
            self.data_dir / "identity", self.conn, settings.identity_seal_rows
        )
        if not readonly:
            self.identities.sweep()
            self.sweep_unfinished_writes()
        self._load()

    @property
    def last_error(self) -> str | None:
        """The background steps' current failures in one line, or None when all is well."""
        return "; ".join(self.errors.values()) or None

    # -- lifecycle -------------------------------------------------------------------

    def _take_ownership(self) -> None:
        fd = os.open(self.data_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreLocked(
                f"{self.data_dir} is in use by another gasometer process (stop it first)"
            ) from None
        self._lock_handle = fd

    def _release(self) -> None:
        if self._lock_handle is not None:
            os.close(self._lock_handle)
            self._lock_handle = None

    def _upgrade_identity_keys(self) -> None:
        """Re-key an identity index written by an earlier version, from the event files."""
        if ledger.get_meta(self.conn, "identity_format") == ledger.IDENTITY_FORMAT:
            return
        paths = [str(self.data_dir / f.path) for f in ledger.live_files(self.conn, "events")]
        if paths or self.conn.execute("SELECT 1 FROM identity LIMIT 1").fetchone():
            log.info("re-keying the identity index from %d event files", len(paths))
        ledger.replace_identity_index(self.conn, catalog.state_from_files(paths).identities)

    def _load(self) -> None:
        with self._lock:
            self.raw_horizon_us = retention.applied_horizon(self.conn)
            self._files = {f.path: f for f in ledger.live_files(self.conn)}
            self._pending = []
            self._recent = {}
            for batch_id, created, payload, indexed in ledger.pending_batches(self.conn):
                events = _batch_decoder.decode(payload)
                identities = {} if indexed else replay_identities(events, self._replay_lookup)
                self._remember(batch_id, identities)
                self._pending.append(
                    PendingBatch(batch_id, created, events_to_arrow(events), identities)
                )
            self._changed()

    def _replay_lookup(self, key: bytes) -> IdentityRow | None:
        recent = self._recent.get(key)
        return recent[1] if recent else self.identities.lookup(self.conn, [key]).get(key)

    def _remember(self, batch_id: int, identities: dict[bytes, IdentityRow]) -> None:
        for key, row in identities.items():
            self._recent[key] = (batch_id, row)

    def recent_identity(self, key: bytes) -> IdentityRow | None:
        """The identity written by a batch not yet flushed (the ledger's index has the rest)."""
        found = self._recent.get(key)
        return found[1] if found else None

    def sweep_unfinished_writes(self) -> None:
        """Remove the files of a flush or compaction that never published (and only those:
        a file the catalog does not know is left alone, see `gasometer rebuild-catalog`)."""
        with self._flush_lock:
            live = {f.path for f in ledger.live_files(self.conn)}
            unfinished = ledger.unfinished_writes(self.conn)
            for rel in unfinished:
                if rel not in live:
                    log.info("removing unpublished file %s", rel)
                    (self.data_dir / rel).unlink(missing_ok=True)
            if unfinished:
                ledger.end_writes(self.conn, unfinished)
            self.delete_retired(grace_s=0 if self._thread is None else None)

    def start(self) -> None:
        """Flush, compact and clean up in a background thread until `close()`."""
        if self._thread is None and not self.readonly:
            self._thread = threading.Thread(target=self._run, name="gasometer-flusher", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop the background thread, flush what is pending, release the directory."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if not self.readonly:
            try:
                self.flush(force=True)
            except Exception as exc:  # the WAL still holds every event
                log.warning("final flush failed, events stay in the WAL: %s", exc)
        self.conn.close()
        self._duck.close()
        self._release()

    def _run(self) -> None:
        steps = {
            "flush": lambda: self.flush(force=False),
            "compaction": self.compact,
            "cleanup": self.delete_retired,
            "identity index": self._maintain_identities,
            "retention": self._retention_if_due,
        }
        while not self._stop.wait(0.25):
            failed = False
            for name, step in steps.items():
                failed |= not self._run_step(name, step)
            if failed:
                self._stop.wait(2.0)

    def _maintain_identities(self) -> None:
        with self._flush_lock:
            self.identities.maintain(self.conn)

    def _run_step(self, name: str, step: Callable[[], object]) -> bool:
        """One background step; its failure is recorded and never stops the others."""
        try:
            step()
        except Exception as exc:
            self.errors[name] = f"{name}: {exc}"
            log.warning("background %s failed (will retry): %s", name, exc)
            return False
        self.errors.pop(name, None)
        return True

    # -- readers ---------------------------------------------------------------------

    def _changed(self) -> None:
        self._version += 1
        self._snapshot = None

    def snapshot(self) -> Snapshot:
        """The current consistent state for a reader (cheap when nothing changed)."""
        with self._lock:
            if self._snapshot is None:
                tables = [b.table for b in self._pending]
                pending = pa.concat_tables(tables) if tables else empty_events()
                by_dataset = defaultdict(list)
                for entry in self._files.values():
                    by_dataset[entry.dataset].append(str(self.data_dir / entry.path))
                self._snapshot = Snapshot(
                    version=self._version,
                    data_dir=self.data_dir,
                    event_files=tuple(sorted(by_dataset["events"])),
                    hourly_files=tuple(sorted(by_dataset["hourly"])),
                    pending=pending,
                )
            return self._snapshot

    def files(self) -> list[FileEntry]:
        """The live Parquet files."""
        with self._lock:
            return list(self._files.values())

    def wal_backlog(self) -> tuple[int, int]:
        """(batches, events) acknowledged but not yet in Parquet: the WAL's content."""
        with self._lock:
            return len(self._pending), sum(b.table.num_rows for b in self._pending)

    def pending_count(self) -> int:
        """Events acknowledged but not yet in Parquet."""
        return self.wal_backlog()[1]

    # -- writers ---------------------------------------------------------------------

    def add_pending(
        self,
        batch_id: int,
        created_at: float,
        events: Sequence[StoredEvent],
        identities: dict[bytes, IdentityRow],
    ) -> None:
        """Make a just-committed WAL batch visible to readers and to deduplication."""
        table = events_to_arrow(events)
        with self._lock:
            self._remember(batch_id, identities)
            self._pending.append(PendingBatch(batch_id, created_at, table, identities))
            self._changed()

    def check_free_space(self) -> bool:
        """True while the data directory's disk has room for more events."""
        return shutil.disk_usage(self.data_dir).free >= self.settings.min_free_bytes

    def _flush_due(self) -> bool:
        with self._lock:
            if not self._pending:
                return False
            events = sum(b.table.num_rows for b in self._pending)
            age = time.time() - self._pending[0].created_at
        return events >= self.settings.flush_max_events or age >= self.settings.flush_interval_s

    def flush(self, force: bool = True) -> int:
        """Write every pending batch to Parquet (events and hourly rollup); returns rows.

        If the batches together fail to flush, each is tried alone: one that fails alone
        for a reason of its own (not the disk) is quarantined, and the others are flushed."""
        with self._flush_lock:
            with self._lock:
                batches = list(self._pending)
            if not batches or (not force and not self._flush_due()):
                return 0
            try:
                return self._flush_batches(batches)
            except ENVIRONMENT_ERRORS:
                raise
            except Exception as exc:
                if len(batches) == 1:
                    self._quarantine(batches[0], exc)
                    return 0
                log.warning("flush of %d batches failed, isolating: %s", len(batches), exc)
            return sum(self._flush_or_quarantine(batch) for batch in batches)

    def _flush_or_quarantine(self, batch: PendingBatch) -> int:
        try:
            return self._flush_batches([batch])
        except ENVIRONMENT_ERRORS:
            raise
        except Exception as exc:
            self._quarantine(batch, exc)
            return 0

    def _flush_batches(self, batches: list[PendingBatch]) -> int:
        table = pa.concat_tables([b.table for b in batches])
        tag = f"b{batches[-1].batch_id:012d}-{uuid.uuid4().hex[:8]}"
        months = sorted(set(table.column("month").to_pylist()))
        flushed = [b.batch_id for b in batches]
        meta = {BATCHES_KEY: encode_batches(flushed)}
        planned = [f"{d}/month={m}/{tag}.parquet" for m in months for d in DATASETS]
        with self._writing(planned):
            new_files: list[FileEntry] = []
            for month in months:
                part = table.filter(pc.equal(table.column("month"), month))
                new_files += self._write_month(part, month, tag, meta)
            identities: dict[bytes, IdentityRow] = {}
            for batch in batches:
                identities.update(batch.identities)
            ledger.publish_flush(self.conn, new_files, flushed, identities)
            self.identities.hot_rows += len(identities)
        with self._lock:
            done = set(flushed)
            self._pending = [b for b in self._pending if b.batch_id not in done]
            self._forget_recent(identities, flushed[-1])
            self._files.update({f.path: f for f in new_files})
            self._changed()
        log.debug("flushed %d events into %d files", table.num_rows, len(new_files))
        return table.num_rows

    def _forget_recent(self, identities: dict[bytes, IdentityRow], last_batch: int) -> None:
        for key in identities:
            if key in self._recent and self._recent[key][0] <= last_batch:
                del self._recent[key]

    @contextlib.contextmanager
    def _writing(self, paths: list[str]) -> Iterator[None]:
        """Record the files about to be written; if publishing them fails, remove them now
        (not at the next start) and forget the intent."""
        ledger.begin_writes(self.conn, paths)
        try:
            yield
        except BaseException:
            for rel in paths:
                (self.data_dir / rel).unlink(missing_ok=True)
            with contextlib.suppress(sqlite3.Error):
                ledger.end_writes(self.conn, paths)
            raise

    def _quarantine(self, batch: PendingBatch, exc: Exception) -> None:
        """Set a batch that cannot be flushed aside, durably; it leaves every answer and
        shows in /health and /metrics until released or dropped (`gasometer quarantine`)."""
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        log.error(
            "quarantined batch %d (%d events): %s", batch.batch_id, batch.table.num_rows, reason
        )
        ledger.quarantine_batch(self.conn, batch.batch_id, reason, batch.identities)
        self.identities.hot_rows += len(batch.identities)
        with self._lock:
            self._pending = [b for b in self._pending if b.batch_id != batch.batch_id]
            self._forget_recent(batch.identities, batch.batch_id)
            self._changed()

    def quarantined(self) -> list[ledger.QuarantinedBatch]:
        """The batches set aside because they could not be flushed."""
        return ledger.quarantined(self.conn)

    def _write_month(
        self, part: pa.Table, month: str, tag: str, meta: dict[str, str]
    ) -> list[FileEntry]:
        self._duck.register("pending_events", part)
        try:
            events_sql = "SELECT * EXCLUDE (month) FROM pending_events ORDER BY ended_at, id"
            rollup_sql = (
                f"SELECT * EXCLUDE (month) FROM ({query_text('rollup_hourly')}) "
                "ORDER BY hour, session_id"
            )
            return [
                self._write_file("events", month, f"{tag}.parquet", events_sql, meta),
                self._write_file("hourly", month, f"{tag}.parquet", rollup_sql, meta),
            ]
        finally:
            self._duck.unregister("pending_events")

    def _write_file(
        self, dataset: str, month: str, name: str, sql: str, meta: dict[str, str]
    ) -> FileEntry:
        rel = f"{dataset}/month={month}/{name}"
        dest = self.data_dir / rel
        rows = copy_to_parquet(self._duck, sql, dest, meta)
        size = dest.stat().st_size
        return FileEntry(rel, dataset, month, rows, size, time.time(), meta[BATCHES_KEY])

    # -- compaction ------------------------------------------------------------------

    def compact(self, full: bool = False) -> int:
        """Merge small files of each partition; `full` merges every small file there is.

        Returns the number of files replaced. Files already at the target size are left
        alone; others are merged by size tier so each row is rewritten only a few times.
        """
        replaced = 0
        with self._flush_lock:
            groups: dict[tuple[str, str], list[FileEntry]] = defaultdict(list)
            now = time.monotonic()
            for entry in self.files():
                if entry.rows < self.settings.compact_target_rows and (
                    self._compaction_skip.get(entry.path, 0.0) <= now
                ):
                    groups[(entry.dataset, entry.partition)].append(entry)
            failures = []
            for (dataset, month), entries in sorted(groups.items()):
                for chosen in self._merge_sets(entries, full):
                    try:
                        self._merge(dataset, month, chosen)
                    except ENVIRONMENT_ERRORS:
                        raise
                    except Exception as exc:
                        failures.append(f"{dataset}/{month}: {exc}")
                        for entry in chosen:
                            self._compaction_skip[entry.path] = now + COMPACTION_BACKOFF_S
                        continue
                    replaced += len(chosen)
        if failures:
            raise RuntimeError("; ".join(failures) + " (other partitions were compacted)")
        return replaced

    def _merge_sets(self, entries: list[FileEntry], full: bool) -> list[list[FileEntry]]:
        if len(entries) < 2:
            return []
        if full:
            return [entries]
        fan_in = max(2, self.settings.compact_min_files)
        tiers: dict[int, list[FileEntry]] = defaultdict(list)
        for entry in entries:
            tiers[int(math.log(max(entry.rows, 1), fan_in))].append(entry)
        return [files for files in tiers.values() if len(files) >= fan_in]

    def _merge(self, dataset: str, month: str, chosen: list[FileEntry]) -> None:
        relation = _files_relation([str(self.data_dir / f.path) for f in chosen])
        if dataset == "events":
            sql = f"SELECT * EXCLUDE (month) FROM {relation} ORDER BY ended_at, id"
        else:
            merge = query_text("rollup_merge").replace("rollup_rows", relation)
            sql = f"SELECT * EXCLUDE (month) FROM ({merge}) ORDER BY hour, session_id"
        name = f"c{time.time_ns()}-{uuid.uuid4().hex[:8]}.parquet"
        meta = {BATCHES_KEY: union_batches(chosen)}
        rel = f"{dataset}/month={month}/{name}"
        with self._writing([rel]):
            entry = self._write_file(dataset, month, name, sql, meta)
            pause_point("compact-publish", self.data_dir)
            expected = sum(f.rows for f in chosen)
            if dataset == "events" and entry.rows != expected:
                raise RuntimeError(f"compaction of {month} wrote {entry.rows} rows, not {expected}")
            self._replace(entry, chosen)

    def _replace(self, entry: FileEntry, replaced: Sequence[FileEntry]) -> None:
        """Publish `entry` in place of `replaced` (one ledger transaction), then show it."""
        ledger.publish_compaction(self.conn, [entry], [f.path for f in replaced])
        with self._lock:
            for f in replaced:
                self._files.pop(f.path, None)
            self._files[entry.path] = entry
            self._changed()

    def rebuild_rollups(self) -> list[str]:
        """Recompute each month's hourly rollup from its raw events; returns those months.

        Months up to the retention horizon keep their rollup: their raw events may be gone,
        and the rollup is then the only record of them. Unflushed events need nothing:
        their rollup is computed at query time."""
        rebuilt = []
        with self._flush_lock:
            files = self.files()
            horizon = None if self.raw_horizon_us is None else month_of_us(self.raw_horizon_us)
            for month in sorted({f.partition for f in files if f.dataset == "events"}):
                if horizon is None or month > horizon:
                    self._rebuild_month(month, [f for f in files if f.partition == month])
                    rebuilt.append(month)
        return rebuilt

    def _rebuild_month(self, month: str, files: list[FileEntry]) -> None:
        relation = _files_relation(
            [str(self.data_dir / f.path) for f in files if f.dataset == "events"]
        )
        rollup = query_text("rollup_hourly").replace("FROM pending_events", f"FROM {relation}")
        sql = f"SELECT * EXCLUDE (month) FROM ({rollup}) ORDER BY hour, session_id"
        name = f"r{time.time_ns()}-{uuid.uuid4().hex[:8]}.parquet"
        replaced = [f for f in files if f.dataset == "hourly"]
        meta = {BATCHES_KEY: union_batches(replaced)}
        with self._writing([f"hourly/month={month}/{name}"]):
            entry = self._write_file("hourly", month, name, sql, meta)
            self._replace(entry, replaced)

    def apply_retention(self, days: float, now: float | None = None) -> retention.Outcome:
        """Retire raw event files wholly older than `days` (rollups stay; see retention.py)."""
        with self._flush_lock, self._lock:
            outcome = retention.apply(self, days, now)
            self.raw_horizon_us = retention.applied_horizon(self.conn)
            for path in outcome.files:
                self._files.pop(path, None)
            self._changed()
        if outcome.files:
            log.info("retention retired %d files (%d rows)", len(outcome.files), outcome.rows)
        return outcome

    def _retention_if_due(self) -> None:
        days = self.settings.retention_days
        if days is not None and time.monotonic() >= self._retention_due:
            self._retention_due = time.monotonic() + retention.INTERVAL_S
            self.apply_retention(days)

    def delete_retired(self, grace_s: float | None = None) -> int:
        """Delete files replaced by compaction once readers can no longer hold them."""
        grace = self.settings.retired_file_grace_s if grace_s is None else grace_s
        paths = ledger.retired_files(self.conn, time.time() - grace)
        for rel in paths:
            (self.data_dir / rel).unlink(missing_ok=True)
        if paths:
            ledger.forget_retired(self.conn, paths)
        return len(paths)


def _files_relation(paths: list[str]) -> str:
    """Several Parquet files as one relation (older files may lack newer columns)."""
    return (
        f"read_parquet({parquet_list_sql(paths)}, hive_partitioning = true, union_by_name = true)"
    )


def open_ledger(data_dir: Path) -> sqlite3.Connection:
    """Open the ledger of a data directory, refusing (with how to recover) when it is
    missing beside existing data files, or unreadable."""
    path = data_dir / ledger.LEDGER_FILE
    if not path.exists() and catalog.has_data_files(data_dir):
        raise CatalogError(
            f"{path.name} is missing but {data_dir} holds data files; nothing was changed. "
            f"Recreate it from the files with: gasometer rebuild-catalog --data-dir {data_dir}"
        )
    try:
        conn = ledger.connect(data_dir)
        verdict = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
        if verdict != "ok":
            conn.close()
            raise sqlite3.DatabaseError(verdict)
        return conn
    except sqlite3.DatabaseError as exc:
        raise CatalogError(
            f"{path.name} in {data_dir} is unreadable ({exc}); nothing was changed. "
            f"Recreate it from the files with: gasometer rebuild-catalog --data-dir {data_dir}"
        ) from None
