"""The spool: events the server has not acknowledged yet, one durable file per batch.

A batch is written to a temporary name, fsynced and renamed into the spool (then the
directory is fsynced), so a crash leaves either the whole batch or none of it. Runs send
the spool oldest first under a drain lock; a batch leaves the spool only once the server
has stored it. Resending after a crash is safe: the server deduplicates by event id.

Bound: a batch that would take a non-empty spool past `max_bytes` is refused and the caller
keeps its read offset, so the events stay in the transcript (nothing is dropped) and are
read again once the spool drains (an empty spool takes any batch, so progress is always
possible). A batch the server rejects as invalid moves to `rejected/`.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gasometer.fsutil import fsync_dir
from gasometer.hook.files import file_lock, write_atomic
from gasometer.hook.send import Outcome

MAX_EVENTS_PER_FILE = 2000
MAX_REJECTED_FILES = 200
MAX_POST_BYTES = 4 * 1024 * 1024
Sender = Callable[[bytes, str, float], tuple[Outcome, str]]
_seq = itertools.count()


@dataclass
class DrainResult:
    """What one drain did."""

    sent: int = 0
    rejected: int = 0
    left: int = 0
    error: str | None = None


class Spool:
    """A directory of NDJSON batch files named `<time_ns>-<pid>-<seq>.<kind>.ndjson`."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes

    def pending(self) -> list[Path]:
        """Batch files waiting, oldest first."""
        try:
            names = [e.name for e in os.scandir(self.directory) if e.name.endswith(".ndjson")]
        except FileNotFoundError:
            return []
        return [self.directory / n for n in sorted(n for n in names if not n.startswith("."))]

    def size(self) -> int:
        """Bytes waiting in the spool."""
        total = 0
        for path in self.pending():
            try:
                total += path.stat().st_size
            except FileNotFoundError:
                continue
        return total

    def add(self, kind: str, lines: Sequence[bytes]) -> bool:
        """Durably add NDJSON lines as one or more batches; False (nothing added) if they
        would take a non-empty spool past its bound."""
        if not lines:
            return True
        self.directory.mkdir(parents=True, exist_ok=True)
        incoming = sum(len(line) + 1 for line in lines)
        held = self.size()
        if held and held + incoming > self.max_bytes:
            return False
        for start in range(0, len(lines), MAX_EVENTS_PER_FILE):
            part = lines[start : start + MAX_EVENTS_PER_FILE]
            name = f"{time.time_ns():020d}-{os.getpid():08d}-{next(_seq):06d}.{kind}.ndjson"
            write_atomic(self.directory / name, b"\n".join(part) + b"\n", durable=True)
        return True

    def drain(self, send: Sender, deadline: float) -> DrainResult:
        """Send waiting batches oldest first until done, the server fails, or the deadline."""
        result = DrainResult()
        wait = min(0.5, max(deadline - time.monotonic() - 0.2, 0.0))
        with file_lock(self.directory / ".drain.lock", wait) as acquired:
            if not acquired:
                result.left = len(self.pending())
                return result
            done: set[Path] = set()
            while True:
                batch = [p for p in self.pending() if p not in done]
                if not batch or not self._send_all(batch, send, deadline, result, done):
                    break
        result.left = len(self.pending())
        return result

    def _send_all(
        self, batch: list[Path], send: Sender, deadline: float, result: DrainResult, done: set[Path]
    ) -> bool:
        for group in _groups(batch):
            bodies = [(p, _read(p)) for p in group]
            done.update(p for p, body in bodies if body is None)
            files = [(p, b) for p, b in bodies if b is not None]
            if files and not self._send_group(files, send, deadline, result, done):
                return False
        return True

    def _send_group(
        self,
        files: list[tuple[Path, bytes]],
        send: Sender,
        deadline: float,
        result: DrainResult,
        done: set[Path],
    ) -> bool:
        """One POST for consecutive batches; if the server rejects it, each batch alone,
        so only the invalid one is set aside."""
        remaining = deadline - time.monotonic()
        if remaining <= 0.05:
            return False
        kind = _kind(files[0][0])
        outcome, detail = send(b"".join(b for _, b in files), kind, min(remaining, 1.0))
        if outcome is Outcome.RETRY:
            result.error = detail
            return False
        if outcome is Outcome.REJECTED and len(files) > 1:
            return all(self._send_group([f], send, deadline, result, done) for f in files)
        for path, _ in files:
            if outcome is Outcome.SENT:
                path.unlink(missing_ok=True)
                result.sent += 1
            else:
                self._reject(path)
                result.rejected += 1
                result.error = detail
            done.add(path)
        return True

    def _reject(self, path: Path) -> None:
        rejected = self.directory / "rejected"
        rejected.mkdir(exist_ok=True)
        os.replace(path, rejected / path.name)
        fsync_dir(self.directory)
        kept = sorted(rejected.iterdir())
        for old in kept[: max(len(kept) - MAX_REJECTED_FILES, 0)]:
            old.unlink(missing_ok=True)


def _kind(path: Path) -> str:
    return "total" if path.name.endswith(".total.ndjson") else "increment"


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _groups(paths: list[Path]) -> list[list[Path]]:
    """Consecutive batches of one kind, up to MAX_POST_BYTES per POST (at least one each),
    so a long backlog drains in few requests while keeping its order."""
    groups: list[list[Path]] = []
    size = 0
    for path in paths:
        try:
            length = path.stat().st_size
        except FileNotFoundError:
            length = 0
        last = groups[-1] if groups else None
        if last and _kind(last[0]) == _kind(path) and size + length <= MAX_POST_BYTES:
            last.append(path)
            size += length
        else:
            groups.append([path])
            size = length
    return groups
