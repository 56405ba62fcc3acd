"""The one writer: deduplicates, turns totals into increments, and commits durably.

Requests hand their drafts to a single thread that takes everything queued, applies it
in one ledger transaction (group commit: one fsync for many requests), then makes the
batch visible to readers and to live listeners. A request is answered only after its
transaction is durable.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from gasometer.errors import IngestUnavailable, StorageFull
from gasometer.ingest.normalize import Draft
from gasometer.model import IngestResult, StoredEvent
from gasometer.store import ledger
from gasometer.store.identity import add_amounts, minus_amounts
from gasometer.store.ledger import Amounts, IdentityRow
from gasometer.store.store import Store, batch_encoder

log = logging.getLogger("gasometer.ingest")

Listener = Callable[[list[StoredEvent]], None]
MAX_GROUP_EVENTS = 50_000
ZERO: Amounts = (0.0, 0, 0, 0, 0)


@dataclass
class _Job:
    drafts: Sequence[Draft]
    future: Future[IngestResult] = field(default_factory=Future)


@dataclass
class IngestCounters:
    """Totals since start, for /health and /metrics."""

    requests: int = 0
    accepted: int = 0
    duplicates: int = 0
    commits: int = 0
    refused_full: int = 0


class Ingestor:
    """Accepts drafts from any thread; answers once they are durable."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.conn = ledger.connect(store.data_dir)
        self.listeners: list[Listener] = []
        self.counters = IngestCounters()
        self.commit_error: str | None = None
        """Why the last group commit failed, until one succeeds (then /health is degraded)."""
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="gasometer-writer", daemon=True)
        self._thread.start()

    def submit(self, drafts: Sequence[Draft]) -> Future[IngestResult]:
        """Queue drafts for the next group commit; the future resolves once durable."""
        job = _Job(drafts)
        self._queue.put(job)
        return job.future

    def ingest(self, drafts: Sequence[Draft]) -> IngestResult:
        """Store drafts and wait until they are durable (for the CLI and the importer)."""
        return self.submit(drafts).result()

    def close(self) -> None:
        """Finish queued work and stop the writer thread."""
        self._queue.put(None)
        self._thread.join()
        self.conn.close()

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            jobs = [job]
            size = len(job.drafts)
            while size < MAX_GROUP_EVENTS:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._commit(jobs)
                    return
                jobs.append(more)
                size += len(more.drafts)
            self._commit(jobs)

    def _commit(self, jobs: list[_Job]) -> None:
        try:
            if not self.store.check_free_space():
                raise StorageFull("disk full: ingest refused until space is freed")
            results, batch, batch_id = self._apply(jobs)
        except StorageFull as exc:
            self._fail(jobs, exc)
            return
        except sqlite3.OperationalError as exc:
            if "full" in str(exc).lower():
                self._fail(jobs, StorageFull("disk full: ingest refused until space is freed"))
                return
            self._fail_commit(jobs, exc)
            return
        except Exception as exc:
            self._fail_commit(jobs, exc)
            return
        self.commit_error = None
        stored = batch.stored
        if stored:
            self.store.add_pending(batch_id, time.time(), stored, batch.identities)
        self.counters.commits += 1
        for job, result in zip(jobs, results, strict=True):
            self.counters.requests += 1
            self.counters.accepted += result.accepted
            self.counters.duplicates += result.duplicates
            job.future.set_result(result)
        if stored:
            for listener in self.listeners:
                try:
                    listener(stored)
                except Exception:
                    log.exception("live listener failed")

    def _fail_commit(self, jobs: list[_Job], exc: Exception) -> None:
        """The ledger refused the commit for another reason than a full disk (a damaged
        ledger, say): nothing is acknowledged, /health turns degraded, clients may retry."""
        log.error("ingest commit failed: %s", exc)
        self.commit_error = f"ingest cannot commit: {exc}".splitlines()[0]
        self._fail(jobs, IngestUnavailable("ingest cannot commit right now (see /health)"))

    def _fail(self, jobs: list[_Job], error: Exception) -> None:
        if isinstance(error, StorageFull):
            self.counters.refused_full += len(jobs)
        for job in jobs:
            job.future.set_exception(error)

    def _apply(self, jobs: list[_Job]) -> tuple[list[IngestResult], _Batch, int]:
        with ledger.transaction(self.conn) as conn:
            batch = _Batch(conn, self.store, ledger.next_event_id(conn))
            results = [batch.add_all(job.drafts) for job in jobs]
            batch_id = ledger.next_batch_id(conn)
            if batch.stored:
                ledger.save_totals(conn, ((s, t, a) for (s, t), a in batch.new_totals.items()))
                payload = batch_encoder.encode(batch.stored)
                ledger.append_batch(conn, batch_id, len(batch.stored), payload)
                ledger.set_next_batch_id(conn, batch_id + 1)
                ledger.set_next_event_id(conn, batch.next_id)
        return results, batch, batch_id


class _Batch:
    """The dedup and total-to-increment rules, applied to one transaction's drafts."""

    def __init__(self, conn: sqlite3.Connection, store: Store, next_id: int) -> None:
        self.conn = conn
        self.store = store
        self.next_id = next_id
        self.stored: list[StoredEvent] = []
        self.known: dict[bytes, IdentityRow] = {}
        self.identities: dict[bytes, IdentityRow] = {}
        self.points: dict[str, dict[int, Amounts]] = {}
        self.new_totals: dict[tuple[str, int], Amounts] = {}

    def prefetch(self, drafts: Sequence[Draft]) -> None:
        """Every increment's identity, looked up in unflushed batches, then in one query."""
        missing = []
        for draft in drafts:
            key = draft.digest
            if draft.kind == "total" or key in self.known:
                continue
            row = self.store.recent_identity(key)
            if row is not None:
                self.known[key] = row
            else:
                missing.append(key)
        self.known.update(self.store.identities.lookup(self.conn, missing))

    def add_all(self, drafts: Sequence[Draft]) -> IngestResult:
        """Apply the rules to one request's drafts, in order."""
        self.prefetch(drafts)
        accepted = sum(self.add(draft) for draft in drafts)
        return IngestResult(accepted=accepted, duplicates=len(drafts) - accepted)

    def add(self, draft: Draft) -> bool:
        """Store the draft (or the part of it that is new); False if it is a duplicate."""
        if draft.kind == "total":
            return self._add_total(draft)
        key = draft.digest
        seen = self.known.get(key)
        if seen is None:
            amounts = draft.amounts if draft.event_id is not None else None
            self._remember(key, IdentityRow(0, amounts))
            self._store(draft, 0, draft.amounts)
            return True
        if seen.amounts and _grew(seen.amounts, draft.amounts):
            revision = seen.revision + 1
            self._remember(key, IdentityRow(revision, draft.amounts))
            self._store(draft, revision, minus_amounts(draft.amounts, seen.amounts))
            return True
        return False

    def _remember(self, key: bytes, row: IdentityRow) -> None:
        self.known[key] = row
        self.identities[key] = row

    def _add_total(self, draft: Draft) -> bool:
        """A running-total point: new, or larger than the same point seen before (a point
        is one moment of one session, whatever event_id it comes with). The stored
        increment is what the point changes in the session's value."""
        points = self.points.get(draft.session_id)
        if points is None:
            points = ledger.session_totals(self.conn, draft.session_id)
            self.points[draft.session_id] = points
        old = points.get(draft.ended_at_us)
        if old is not None and not _larger_total(draft.amounts, old):
            return False
        before = session_value(points)
        points[draft.ended_at_us] = draft.amounts
        self.new_totals[(draft.session_id, draft.ended_at_us)] = draft.amounts
        increment = minus_amounts(session_value(points), before)
        self._store(draft, 0 if old is None else 1, increment, running_total=draft.amounts)
        return True

    def _store(
        self,
        draft: Draft,
        revision: int,
        amounts: Amounts,
        running_total: Amounts | None = None,
    ) -> None:
        self.stored.append(
            StoredEvent(
                id=self.next_id,
                session_id=draft.session_id,
                ended_at_us=draft.ended_at_us,
                started_at_us=draft.started_at_us,
                role=draft.role,
                rig=draft.rig,
                worker=draft.worker,
                model=draft.model,
                issue=draft.issue,
                parent_session_id=draft.parent_session_id,
                source=draft.source,
                event_id=draft.event_id,
                kind=draft.kind,
                revision=revision,
                cost_usd=amounts[0],
                input_tokens=amounts[1],
                output_tokens=amounts[2],
                cache_creation_tokens=amounts[3],
                cache_read_tokens=amounts[4],
                running_total=running_total,
            )
        )
        self.next_id += 1


def session_value(points: dict[int, Amounts]) -> Amounts:
    """A session's cost from its running-total points: the sum of each run's last total,
    taken in time order, where a run ends when the total falls (the agent started a new
    transcript)."""
    total = ZERO
    run_end: Amounts | None = None
    for _, amounts in sorted(points.items()):
        if run_end is not None and amounts[0] < run_end[0]:
            total = add_amounts(total, run_end)
        run_end = amounts
    return total if run_end is None else add_amounts(total, run_end)


def _larger_total(new: Amounts, old: Amounts) -> bool:
    """A later report of the same point: more cost, or as much cost and more tokens."""
    return (new[0], sum(new[1:])) > (old[0], sum(old[1:]))


def _grew(old: Amounts, new: Amounts) -> bool:
    """A later version of a streamed response: no count smaller, some count larger."""
    no_smaller = all(n >= o for n, o in zip(new[1:], old[1:], strict=True))
    return no_smaller and sum(new[1:]) > sum(old[1:])
