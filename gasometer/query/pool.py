"""A small pool of SQL worker processes (gasometer.query.worker) that may crash or be killed.

Each pool has its own slots (a semaphore): the admin pool runs ad-hoc SQL, the read pool
runs named queries, so neither can use up the other's capacity. A request takes an idle
worker (or starts one), sends it the statement and waits until the time limit plus a
grace period; a worker that has not answered by then is killed (SIGKILL), as is one that
died, ran out of memory or served `MAX_USES` statements. A replacement starts in the
background, so the next request finds a fresh process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path

import msgspec

from gasometer.errors import GasometerError, QueryError
from gasometer.query.worker import Reply, Request

log = logging.getLogger("gasometer.sql")

GRACE_S = 2.0
"""How long past the time limit a worker may take to answer (DuckDB's interrupt lands
within milliseconds unless a single operator, like building one huge list, ignores it)."""
START_TIMEOUT_S = 30.0
MAX_USES = 200


class SqlTimeout(QueryError):
    """A statement stopped at the time limit (interrupted, or its worker killed)."""

    status = 422


class SqlTooBig(QueryError):
    """A statement that needed more memory than its worker may have."""

    status = 422


class SqlCrashed(QueryError):
    """A statement whose worker process died; the server itself is untouched."""

    status = 422


class SqlBusy(GasometerError):
    """Every slot of a pool stayed busy for the whole time limit."""

    status = 503


class WorkerGone(Exception):
    """The worker closed its pipe or was killed before it answered."""


_replies = msgspec.msgpack.Decoder(Reply)
_encoder = msgspec.msgpack.Encoder()


class WorkerProcess:
    """One worker process and its two pipes."""

    def __init__(self, max_bytes: int, cwd: Path) -> None:
        began = time.perf_counter()
        cmd = [sys.executable, "-m", "gasometer.query.worker", "--max-bytes", str(max_bytes)]
        self.process = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=cwd,
            env=worker_env(),
        )
        self.uses = 0
        try:
            ready = self._read(time.monotonic() + START_TIMEOUT_S)
        except (TimeoutError, WorkerGone):
            ready = b""
        if ready != b"ready":
            self.kill()
            raise WorkerGone("the SQL worker did not start")
        self.startup_s = time.perf_counter() - began

    @property
    def pid(self) -> int:
        """The worker's process id."""
        return self.process.pid

    def call(self, request: Request, deadline: float) -> Reply:
        """Send one request and wait for its reply until `deadline` (monotonic seconds)."""
        self.uses += 1
        body = _encoder.encode(request)
        stdin = self.process.stdin
        assert stdin is not None
        try:
            stdin.write(len(body).to_bytes(4, "big") + body)
            stdin.flush()
        except OSError as exc:
            raise WorkerGone("the SQL worker is gone") from exc
        try:
            return _replies.decode(self._read(deadline))
        except msgspec.DecodeError as exc:
            raise WorkerGone("the SQL worker sent a reply that cannot be read") from exc

    def _read(self, deadline: float) -> bytes:
        head = self._read_exact(4, deadline)
        return self._read_exact(int.from_bytes(head, "big"), deadline)

    def _read_exact(self, size: int, deadline: float) -> bytes:
        stdout = self.process.stdout
        assert stdout is not None
        fd = stdout.fileno()
        chunks: list[bytes] = []
        left = size
        while left:
            wait = deadline - time.monotonic()
            if wait <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], wait)
            if not ready:
                continue
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                raise WorkerGone(self._death())
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _death(self) -> str:
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "the SQL worker closed its pipe"
        if code < 0:
            return f"the statement stopped its worker process ({signal.Signals(-code).name})"
        return f"the statement stopped its worker process (exit status {code})"

    def alive(self) -> bool:
        """Whether the process still runs."""
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the worker and reap it."""
        with contextlib.suppress(OSError):
            self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        for pipe in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):
                if pipe is not None:
                    pipe.close()


def worker_env() -> dict[str, str]:
    """The environment a worker starts with: enough to run Python, nothing else of ours."""
    keep = ("PATH", "LANG", "LC_ALL", "PYTHONPATH", "TZ", "VIRTUAL_ENV")
    return {k: v for k, v in os.environ.items() if k in keep}


class WorkerPool:
    """At most `size` workers, each running one statement at a time."""

    def __init__(self, name: str, size: int, max_bytes: int, cwd: Path) -> None:
        self.name = name
        self.size = size
        self.max_bytes = max_bytes
        self.cwd = cwd
        self.slots = threading.BoundedSemaphore(size)
        self._idle: list[WorkerProcess] = []
        self._busy: set[WorkerProcess] = set()
        self._lock = threading.Lock()
        self._closed = False
        self.last_startup_s: float | None = None
        self._finalizer = weakref.finalize(self, _kill_all, self._idle)

    def warm(self) -> None:
        """Start one worker in the background, so the first statement does not wait for it."""
        threading.Thread(target=self._replace, name=f"sql-{self.name}-warm", daemon=True).start()

    def run(self, request: Request, wait_s: float, timeout_s: float) -> Reply:
        """Run one request on a worker; SqlBusy if no slot frees within `wait_s`."""
        if not self.slots.acquire(timeout=wait_s):
            raise SqlBusy(f"all {self.size} {self.name} SQL slots are busy; try again shortly")
        try:
            return self._run(request, timeout_s)
        finally:
            self.slots.release()

    def _run(self, request: Request, timeout_s: float) -> Reply:
        worker = self._take()
        with self._lock:
            self._busy.add(worker)
        keep = False
        try:
            reply = worker.call(request, time.monotonic() + timeout_s + GRACE_S)
            keep = reply.ok or reply.kind in ("query", "refused")
            return reply
        except TimeoutError:
            log.warning("killed %s SQL worker %d at the time limit", self.name, worker.pid)
            raise SqlTimeout(f"statement stopped at the time limit of {timeout_s:g} s") from None
        except WorkerGone as exc:
            log.warning("%s SQL worker %d died: %s", self.name, worker.pid, exc)
            raise SqlCrashed(str(exc)) from None
        finally:
            with self._lock:
                self._busy.discard(worker)
            if keep and worker.uses < MAX_USES and worker.alive():
                self._give_back(worker)
            else:
                worker.kill()
                if not self._closed:
                    self.warm()

    def _take(self) -> WorkerProcess:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.alive():
                    return worker
                worker.kill()
        return self._start()

    def _start(self) -> WorkerProcess:
        try:
            worker = WorkerProcess(self.max_bytes, self.cwd)
        except (OSError, WorkerGone) as exc:
            raise SqlCrashed("the SQL worker could not start") from exc
        self.last_startup_s = worker.startup_s
        return worker

    def _give_back(self, worker: WorkerProcess) -> None:
        with self._lock:
            if self._closed or len(self._idle) >= self.size:
                worker.kill()
            else:
                self._idle.append(worker)

    def _replace(self) -> None:
        with self._lock:
            if self._closed or len(self._idle) >= self.size:
                return
        try:
            worker = self._start()
        except SqlCrashed:
            log.warning("a %s SQL worker could not start", self.name)
            return
        self._give_back(worker)

    def pids(self, busy: bool = False) -> list[int]:
        """Process ids of the idle (or the busy) workers, for tests and metrics."""
        with self._lock:
            return [w.pid for w in (self._busy if busy else self._idle)]

    def close(self) -> None:
        """Kill every idle worker; busy ones are killed when their statement returns."""
        with self._lock:
            self._closed = True
            idle, self._idle[:] = list(self._idle), []
        _kill_all(idle)


def _kill_all(workers: list[WorkerProcess]) -> None:
    for worker in list(workers):
        worker.kill()
