"""A load scenario shared by a test and a benchmark: many live clients connected and
reading while one large ingest request goes through, with the server's memory sampled from
/proc and other requests (GET /health) timed meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

EVENT_MARK = b'{"id":'


def rss_kib(pid: int, name: str = "VmRSS") -> int:
    """One memory figure of a process (VmRSS, VmHWM) in KiB, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise LookupError(name)


@dataclass
class LoadResult:
    """What the scenario saw."""

    baseline_rss_mib: float
    peak_rss_mib: float
    hwm_rss_mib: float
    health: list[tuple[float, float, int]] = field(default_factory=list)
    """(sent at, latency in s, status) of every GET /health."""
    ingest_started: float = 0.0
    ingest_answered: float = 0.0
    all_delivered: float = 0.0
    events_per_client: list[int] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    @property
    def grew_mib(self) -> float:
        """How far the server's resident memory rose above its level before the ingest."""
        return max(self.peak_rss_mib, self.hwm_rss_mib) - self.baseline_rss_mib

    def latencies_during(self) -> list[float]:
        """Latencies of the /health requests sent between the ingest and full delivery."""
        return [
            lat for at, lat, _ in self.health if self.ingest_started <= at <= self.all_delivered
        ]


def body(events: int, session: str = "ga-load") -> list[dict[str, object]]:
    """`events` distinct minimal events (one session, distinct times)."""
    return [
        {"session_id": session, "cost_usd": 0.001, "ended_at": f"2026-11-20T10:00:00.{i:06d}Z"}
        for i in range(events)
    ]


def run(
    url: str, pid: int, token: str, clients: int = 50, events: int = 95_000, timeout: float = 600
) -> LoadResult:
    """Connect `clients` readers (in a process of their own, so that their work does not
    slow this process's requests), post `events` in one request, wait until every reader
    has them all (or was closed), polling /health and the server's memory all along."""
    cmd = [sys.executable, "-m", "tests.live_load", url, str(clients), str(events), str(timeout)]
    root = Path(__file__).resolve().parent.parent
    readers = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=root)
    try:
        assert readers.stdout is not None
        if readers.stdout.readline().strip() != "ready":
            raise AssertionError("live readers did not connect")
        result = _run(url, pid, token, readers, events, timeout)
    finally:
        if readers.poll() is None:
            readers.kill()
        readers.wait()
    return result


def _run(
    url: str, pid: int, token: str, readers: subprocess.Popen[str], events: int, timeout: float
) -> LoadResult:
    result = LoadResult(rss_kib(pid) / 1024, 0.0, 0.0)
    stop = threading.Event()

    def sample_memory() -> None:
        while not stop.is_set():
            result.peak_rss_mib = max(result.peak_rss_mib, rss_kib(pid) / 1024)
            stop.wait(0.02)

    def poll_health() -> None:
        try:
            with httpx.Client(base_url=url, timeout=120) as client:
                while not stop.is_set():
                    sent = time.monotonic()
                    status = client.get("/health").status_code
                    result.health.append((sent, time.monotonic() - sent, status))
                    stop.wait(0.02)
        except BaseException as exc:
            result.errors.append(exc)

    helpers = [threading.Thread(target=f) for f in (sample_memory, poll_health)]
    for helper in helpers:
        helper.start()
    try:
        payload = body(events)
        result.ingest_started = time.monotonic()
        answer = httpx.post(
            url + "/api/ingest",
            json=payload,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )
        result.ingest_answered = time.monotonic()
        if answer.status_code != 202:
            raise AssertionError(f"ingest answered {answer.status_code}: {answer.text}")
        assert readers.stdout is not None
        report = json.loads(readers.stdout.readline())
        result.all_delivered = time.monotonic()
        result.events_per_client = report["events"]
        result.closed = report["closed"]
        time.sleep(0.3)
    finally:
        stop.set()
        for helper in helpers:
            helper.join()
        result.hwm_rss_mib = rss_kib(pid, "VmHWM") / 1024
    print(
        f"ingest answered after {result.ingest_answered - result.ingest_started:.1f} s, "
        f"all delivered after {result.all_delivered - result.ingest_started:.1f} s"
    )
    return result


async def read_all(url: str, clients: int, events: int, timeout: float) -> dict[str, Any]:
    """Connect the clients, say "ready", then read until each has `events` events or is
    closed; the counts and close reasons."""
    ws_url = url.replace("http://", "ws://") + "/ws/live"
    conns = [await connect(ws_url, open_timeout=30, ping_interval=None) for _ in range(clients)]
    counts = [0] * clients
    closed: list[str] = []

    async def read(i: int) -> None:
        try:
            while counts[i] < events:
                frame = await conns[i].recv(decode=False)
                counts[i] += frame.count(EVENT_MARK)
        except ConnectionClosed as exc:
            closed.append(str(exc))

    print("ready", flush=True)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(read(i) for i in range(clients))), timeout)
    for conn in conns:
        await conn.close()
    return {"events": counts, "closed": closed}


if __name__ == "__main__":
    target, n, count, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    print(json.dumps(asyncio.run(read_all(target, n, count, limit))), flush=True)
