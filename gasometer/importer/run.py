"""`gasometer import`: find transcript files, read what is new, ingest, remember where.

Files are read in order; their events are ingested in batches through the same path as
HTTP (validation, dedup, WAL) and only then is each file's new position recorded, in one
transaction per batch. Progress is one mutable `ImportProgress` that the CLI draws as a
progress bar and `GET /api/import/status` returns.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import msgspec

from gasometer.errors import ConfigError, GasometerError
from gasometer.faults import pause_point
from gasometer.importer.gtcosts import default_costs_file, is_costs_file, read_costs
from gasometer.importer.layout import DEFAULT_RULES, Layout, parse_rules
from gasometer.importer.state import FileMark, ImportState, mark_for
from gasometer.importer.transcript import SOURCE, TranscriptChunk, read_transcript
from gasometer.ingest.normalize import normalize
from gasometer.model import CostEvent, IngestResult
from gasometer.pricing import PricingTable, default_table
from gasometer.runtime import Gasometer

log = logging.getLogger("gasometer.importer")

ImportStateName = Literal["idle", "running", "finished", "error"]
Ingest = Callable[[list[CostEvent]], IngestResult]
BATCH_EVENTS = 5_000
BATCH_BYTES = 16 * 1024 * 1024
KNOWN_LINE_TYPES = frozenset(
    {"user", "assistant", "summary", "system", "progress", "file-history-snapshot",
     "queue-operation", "attachment", "untyped"}
)  # fmt: skip
MODEL_NAME = re.compile(r"(?:[a-z0-9.-]{1,40}[./:])?claude-[a-z0-9.@:-]{1,80}")
OTHER = "other"


class ImportProgress(msgspec.Struct, kw_only=True):
    """Where an import stands, and its end summary once `state` is `finished`."""

    state: ImportStateName = "idle"
    files_total: int = 0
    files_done: int = 0
    files_unchanged: int = 0
    files_failed: int = 0
    bytes_total: int = 0
    bytes_done: int = 0
    lines: int = 0
    responses: int = 0
    accepted: int = 0
    duplicates: int = 0
    bad_lines: int = 0
    skipped_lines: int = 0
    skipped_types: dict[str, int] = {}
    """Per known line type; any other type counts as "other" (the status shows no content)."""
    unknown_models: dict[str, int] = {}
    """Per model name; a name that does not look like a Claude model id counts as "other"."""
    synthetic: int = 0
    truncated_files: int = 0
    started_at: float | None = None
    elapsed_s: float = 0.0
    error: str | None = None

    @property
    def unknown_responses(self) -> int:
        """Responses of models the pricing table does not know (stored at cost 0)."""
        return sum(self.unknown_models.values())


def default_paths(
    environ: Mapping[str, str] | None = None, *, gt_costs: bool = False
) -> list[Path]:
    """Claude's `projects/` folders (CLAUDE_CONFIG_DIR list, else ~/.claude and
    ~/.config/claude), those that exist; with `gt_costs`, Gas Town's costs.jsonl too.

    The cost log is opt-in: it records the same sessions' spend as the transcripts, so
    importing both by default would count that money twice."""
    env = os.environ if environ is None else environ
    home = Path(env.get("HOME") or Path.home())
    configured = [p.strip() for p in env.get("CLAUDE_CONFIG_DIR", "").split(",") if p.strip()]
    roots = [Path(p) for p in configured] or [home / ".claude", home / ".config" / "claude"]
    found = [r / "projects" for r in roots if (r / "projects").is_dir()]
    costs = default_costs_file(env)
    if gt_costs and costs.is_file():
        found.append(costs)
    return found


class NothingToImport(GasometerError):
    """A path given to import does not exist, or no default folder was found."""


def check_paths(
    paths: Sequence[Path] | None,
    environ: Mapping[str, str] | None = None,
    *,
    gt_costs: bool = False,
) -> list[Path]:
    """The paths to import: the given ones (each must exist), else the default ones."""
    if paths:
        missing = [i for i, p in enumerate(paths) if not p.exists()]
        if missing:
            named = ", ".join(f"{str(paths[i])[:200]}" for i in missing[:3])
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            raise NothingToImport(f"no such file or folder: {named}{more}")
        return list(paths)
    found = default_paths(environ, gt_costs=gt_costs)
    if not found:
        raise NothingToImport(
            "no Claude transcripts found in ~/.claude/projects, ~/.config/claude/projects "
            "or $CLAUDE_CONFIG_DIR; pass the folder or files to import"
        )
    return found


def discover(paths: Iterable[Path], roots: Sequence[Path] | None = None) -> list[Path]:
    """Every `.jsonl` file under the given folders, and the given files, deduplicated;
    with `roots`, only files whose resolved path lies inside one (a symlink out is skipped)."""
    seen: dict[str, Path] = {}
    for path in paths:
        if path.is_dir():
            found = [f for f in sorted(path.rglob("*.jsonl")) if f.is_file()]
        else:
            found = [path] if path.is_file() else []
        for f in found:
            real = f.resolve()
            if roots is None or any(real.is_relative_to(r) for r in roots):
                seen.setdefault(str(real), real)
    return list(seen.values())


@dataclass
class _Plan:
    path: Path
    start: int
    size: int


@dataclass
class _Batch:
    events: list[CostEvent] = field(default_factory=list)
    marks: dict[str, FileMark] = field(default_factory=dict)
    bytes: int = 0


class Importer:
    """Imports files into one open Gasometer, incrementally and idempotently."""

    def __init__(
        self,
        gm: Gasometer,
        *,
        pricing: PricingTable | None = None,
        layout: Layout | None = None,
        ingest: Ingest | None = None,
        batch_events: int = BATCH_EVENTS,
        batch_bytes: int = BATCH_BYTES,
        on_progress: Callable[[ImportProgress], None] | None = None,
        roots: Sequence[Path] | None = None,
    ) -> None:
        self.gm = gm
        self.roots = roots
        self.pricing = pricing or default_table()
        town = gm.settings.town_dir
        prefixes = gm.attributor.rig_prefixes if gm.attributor is not None else {}
        try:
            rules = [*parse_rules(gm.settings.cwd_rules), *DEFAULT_RULES]
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self.layout = layout or Layout(None if town is None else str(town), prefixes, rules)
        self.ingest = ingest
        self._in_flight: list[tuple[list[Future[IngestResult]], list[FileMark]]] = []
        self.batch_events = batch_events
        self.batch_bytes = batch_bytes
        self.on_progress = on_progress
        self.progress = ImportProgress()

    def _submit(self, events: list[CostEvent]) -> Future[IngestResult]:
        """Hand a batch to the writer without waiting (parsing goes on meanwhile)."""
        if self.ingest is not None:
            done: Future[IngestResult] = Future()
            try:
                done.set_result(self.ingest(events))
            except Exception as exc:
                done.set_exception(exc)
            return done
        drafts = normalize(events, self.gm.attributor, default_source=SOURCE)
        return self.gm.ingestor.submit(drafts)

    def run(self, paths: Sequence[Path] | None = None) -> ImportProgress:
        """Import the given files and folders (default: Claude's and Gas Town's)."""
        p = self.progress
        p.state, p.started_at, p.error = "running", time.time(), None
        self._in_flight = []
        began = time.perf_counter()
        state = ImportState(self.gm.settings.data_dir)
        try:
            files = discover(check_paths(paths), self.roots)
            plans = self._plan(state, files)
            self._notify()
            self._import(state, plans)
            p.state = "finished"
        except Exception as exc:
            p.state, p.error = "error", str(exc) or type(exc).__name__
            raise
        finally:
            p.elapsed_s = time.perf_counter() - began
            state.close()
            self._notify()
        return p

    def _plan(self, state: ImportState, files: list[Path]) -> list[_Plan]:
        p = self.progress
        p.files_total = len(files)
        plans = []
        for path in files:
            try:
                st = os.stat(path)
            except OSError:
                p.files_failed += 1
                continue
            start = state.start_offset(path, st.st_size, st.st_ino, st.st_mtime_ns)
            if start is None:
                p.files_done += 1
                p.files_unchanged += 1
                continue
            plans.append(_Plan(path, start, st.st_size))
            p.bytes_total += max(0, st.st_size - start)
        return plans

    def _import(self, state: ImportState, plans: list[_Plan]) -> None:
        batch = _Batch()
        for plan in plans:
            offset = plan.start
            while True:
                try:
                    chunk = self._read(plan.path, offset)
                    mark = mark_for(plan.path, chunk.offset)
                except OSError as exc:
                    log.warning("cannot read %s: %s", plan.path, exc)
                    self.progress.files_failed += 1
                    break
                self._count(chunk)
                self._notify()
                batch.events.extend(chunk.events)
                batch.bytes += chunk.bytes_read
                if chunk.offset != offset or plan.start == 0:
                    batch.marks[str(plan.path)] = mark
                if chunk.bytes_read == 0 or chunk.offset >= plan.size:
                    if chunk.pending_bytes:
                        self.progress.truncated_files += 1
                    break
                offset = chunk.offset
                if self._full(batch):
                    batch = self._commit(state, batch)
            self.progress.files_done += 1
            if self._full(batch):
                batch = self._commit(state, batch)
        self._commit(state, batch, last=True)

    def _read(self, path: Path, offset: int) -> TranscriptChunk:
        if is_costs_file(path):
            return read_costs(path, offset, max_bytes=self.batch_bytes)
        return read_transcript(
            path, offset, attribution=self.layout, pricing=self.pricing, max_bytes=self.batch_bytes
        )

    def _full(self, batch: _Batch) -> bool:
        return len(batch.events) >= self.batch_events or batch.bytes >= self.batch_bytes

    def _count(self, chunk: TranscriptChunk) -> None:
        p = self.progress
        p.lines += chunk.lines
        p.bytes_done += chunk.bytes_read
        p.responses += len(chunk.events)
        p.bad_lines += chunk.bad_lines
        p.synthetic += chunk.synthetic
        for kind, n in chunk.skipped.items():
            name = kind if kind in KNOWN_LINE_TYPES else OTHER
            p.skipped_types[name] = p.skipped_types.get(name, 0) + n
            p.skipped_lines += n
        for model, n in chunk.unknown_models.items():
            name = model if MODEL_NAME.fullmatch(model) else OTHER
            p.unknown_models[name] = p.unknown_models.get(name, 0) + n

    def _commit(self, state: ImportState, batch: _Batch, *, last: bool = False) -> _Batch:
        """Submit the batch; record a batch's file positions only once it is durable.

        One batch is in flight while the next is parsed; the one before it is waited for
        here, in order, so positions never run ahead of what the store holds."""
        size = self.batch_events
        futures = [
            self._submit(batch.events[i : i + size]) for i in range(0, len(batch.events), size)
        ]
        self._in_flight.append((futures, list(batch.marks.values())))
        while len(self._in_flight) > (0 if last else 1):
            done, marks = self._in_flight.pop(0)
            for future in done:
                result = future.result()
                self.progress.accepted += result.accepted
                self.progress.duplicates += result.duplicates
            state.advance(marks)
            pause_point("import-advanced", self.gm.settings.data_dir)
        self._notify()
        return _Batch()

    def _notify(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.progress)
