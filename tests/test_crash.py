"""Crash safety: a server SIGKILLed at random moments while clients ingest concurrently
(and while it flushes and compacts constantly) keeps every acknowledged event exactly once,
and nothing of a request it did not acknowledge is half-written.

Every event is a pure function of (thread, request, index), so whatever the store holds
can be traced back to the request that sent it and checked field by field.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from gasometer.faults import PAUSE_ENV, marker
from tests.conftest import TOKEN, ServerProcess, fetch_all_costs, free_port, server_env

HEADERS = {"Authorization": f"Bearer {TOKEN}"}
BASE = datetime(2026, 10, 31, 23, 59, 0, tzinfo=UTC)
"""Events straddle a month boundary, so flushes and compactions touch two partitions."""
THREADS = 4
KILLS = 6
SEED = 20261123

Key = tuple[int, int, int]
"""(thread, request, index) of one event."""


def make_event(t: int, r: int, i: int) -> dict[str, Any]:
    ended = BASE + timedelta(seconds=r % 120, microseconds=r * 1000 + i)
    event: dict[str, Any] = {
        "session_id": f"ga-crash{t}",
        "ended_at": ended.isoformat().replace("+00:00", "Z"),
        "cost_usd": ((t * 7 + r * 13 + i) % 4096) / 1024,
        "input_tokens": r * 1000 + i,
        "output_tokens": t,
        "cache_read_tokens": i,
    }
    if i % 4 == 0:
        event["event_id"] = f"t{t}-r{r}-i{i}"
    return event


def key_of(row: dict[str, Any]) -> Key:
    """Trace a stored row back to the (thread, request, index) that produced it."""
    t = int(row["session_id"].removeprefix("ga-crash"))
    r, i = divmod(row["input_tokens"], 1000)
    return t, r, i


@dataclass
class Journal:
    """What every client thread sent, and which requests the server acknowledged."""

    sent: dict[tuple[int, int], int] = field(default_factory=dict)
    acked: set[tuple[int, int]] = field(default_factory=set)
    failed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    errors: list[BaseException] = field(default_factory=list)
    """What went wrong in a client thread (a failed check included): re-raised by `check`."""

    def check(self) -> None:
        """Fail the test (in the main thread) with the first error of a client thread."""
        if self.errors:
            raise self.errors[0]

    def acked_count(self) -> int:
        with self.lock:
            return len(self.acked)


def wait_for_acks(journal: Journal, count: int, timeout: float = 120) -> None:
    """Wait until at least `count` requests were acknowledged (a generous limit: reaching
    it means the server stopped taking work, not that it was slow)."""
    deadline = time.monotonic() + timeout
    while journal.acked_count() < count:
        journal.check()
        assert time.monotonic() < deadline, f"fewer than {count} requests acknowledged"
        time.sleep(0.01)


def run_client(url: str, t: int, journal: Journal, stop: threading.Event) -> None:
    """`client_loop`, with any exception kept for the main thread to raise."""
    try:
        client_loop(url, t, journal, stop)
    except BaseException as exc:
        journal.errors.append(exc)


def client_loop(url: str, t: int, journal: Journal, stop: threading.Event) -> None:
    rng = random.Random(SEED + t)
    r = 0
    with httpx.Client(base_url=url, headers=HEADERS, timeout=10) as client:
        while not stop.is_set():
            size = rng.choice([1, 1, 5, 20, 60])
            batch = [make_event(t, r, i) for i in range(size)]
            with journal.lock:
                journal.sent[(t, r)] = size
            try:
                response = client.post("/api/ingest", json=batch)
                if response.status_code == 202:
                    assert response.json() == {"accepted": size, "duplicates": 0}
                    with journal.lock:
                        journal.acked.add((t, r))
            except httpx.HTTPError:
                with journal.lock:
                    journal.failed += 1
                time.sleep(0.1)  # the server is down: fewer requests to replay at the end
            r += 1


def test_sigkill_at_random_moments_loses_and_doubles_nothing(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    env = server_env(
        GASOMETER_FLUSH_INTERVAL_S="0.05",
        GASOMETER_COMPACT_MIN_FILES="2",
        GASOMETER_RETIRED_FILE_GRACE_S="0.5",
        GASOMETER_LOG_LEVEL="info",
    )
    srv = ServerProcess(tmp_path / "data", free_port(), env).start()
    try:
        _random_kills(srv, rng)
    finally:
        srv.kill()


def _random_kills(srv: ServerProcess, rng: random.Random) -> None:
    journal, stop = Journal(), threading.Event()
    threads = [
        threading.Thread(target=run_client, args=(srv.url, t, journal, stop), daemon=True)
        for t in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    acked_before_kill = []
    try:
        for _ in range(KILLS):
            # Kill only once the (re)started server has acknowledged new work, then at a
            # random moment after that: every kill interrupts a server that was ingesting.
            wait_for_acks(journal, journal.acked_count() + rng.randint(5, 40))
            time.sleep(rng.uniform(0, 0.3))
            srv.kill()
            acked_before_kill.append(journal.acked_count())
            time.sleep(rng.uniform(0, 0.2))
            srv.start()
        wait_for_acks(journal, journal.acked_count() + 5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    journal.check()
    assert not any(thread.is_alive() for thread in threads)
    assert all(b > a for a, b in zip([0, *acked_before_kill], acked_before_kill, strict=False))
    srv.kill()
    srv.start()

    rows = fetch_all_costs(srv.url, limit=5000)
    check_store(rows, journal)
    assert httpx.get(srv.url + "/health").json()["event_count"] == len(rows)
    replay_everything(srv.url, journal, {(t, r) for t, r, _ in map(key_of, rows)})
    srv.stop()
    check_sql(srv.data_dir, sum(journal.sent.values()))
    orphans = srv.log_text().count("removing unpublished file")
    print(
        f"\nacked {len(journal.acked)} of {len(journal.sent)} requests, "
        f"{journal.failed} failed, {orphans} orphan files swept after kills"
    )


def check_store(rows: list[dict[str, Any]], journal: Journal) -> None:
    """Acknowledged: all there, once. Others: all or nothing. Every field as sent."""
    keys = [key_of(row) for row in rows]
    doubled = [k for k, n in Counter(keys).items() if n > 1]
    assert not doubled, f"stored twice: {doubled[:5]}"
    stored: dict[tuple[int, int], set[int]] = defaultdict(set)
    for row, (t, r, i) in zip(rows, keys, strict=True):
        assert (t, r) in journal.sent, f"never sent: {(t, r, i)}"
        sent = make_event(t, r, i)
        assert parse_time(row["ended_at"]) == parse_time(sent["ended_at"])
        assert row["cost_usd"] == sent["cost_usd"]
        assert (row["output_tokens"], row["cache_read_tokens"]) == (t, i)
        assert row["event_id"] == sent.get("event_id")
        assert (row["role"], row["rig"], row["worker"]) == ("polecat", "ga", f"crash{t}")
        stored[(t, r)].add(i)
    for request in journal.acked:
        assert stored.get(request) == set(range(journal.sent[request])), f"lost: {request}"
    for request, indexes in stored.items():
        assert indexes == set(range(journal.sent[request])), f"half-written: {request}"


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def replay_everything(url: str, journal: Journal, stored: set[tuple[int, int]]) -> None:
    """Re-send every request: stored ones are duplicates, the rest are accepted whole."""
    with httpx.Client(base_url=url, headers=HEADERS, timeout=30) as client:
        for (t, r), size in sorted(journal.sent.items()):
            batch = [make_event(t, r, i) for i in range(size)]
            result = client.post("/api/ingest", json=batch).json()
            want = (
                {"accepted": 0, "duplicates": size}
                if (t, r) in stored
                else {
                    "accepted": size,
                    "duplicates": 0,
                }
            )
            assert result == want, (t, r)


def check_sql(data_dir: Path, events: int) -> None:
    """Over the Parquet files and the WAL, outside the server: each event exactly once."""
    query = (
        "SELECT count(*) AS n, count(DISTINCT (session_id, ended_at)) AS distinct_events, "
        "sum(input_tokens) AS tokens FROM events"
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "gasometer",
            "sql",
            query,
            "--format",
            "json",
            "--data-dir",
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    n, distinct, _ = result["rows"][0]
    assert n == distinct == events


def test_sigkill_during_cli_compaction_loses_and_doubles_nothing(tmp_path: Path) -> None:
    """`gasometer compact` killed between writing a merged file and publishing it (a pause
    point), then at random moments, then run to the end: same events."""
    env = server_env(GASOMETER_FLUSH_INTERVAL_S="0.02", GASOMETER_COMPACT_MIN_FILES="100000")
    srv = ServerProcess(tmp_path / "data", free_port(), env).start()
    journal = Journal()
    with httpx.Client(base_url=srv.url, headers=HEADERS, timeout=30) as client:
        for r in range(24):
            batch = [make_event(0, r, i) for i in range(50)]
            assert client.post("/api/ingest", json=batch).status_code == 202
            journal.sent[(0, r)] = 50
            journal.acked.add((0, r))
            while client.get("/health").json()["wal_backlog_events"]:
                time.sleep(0.02)
    srv.stop()
    small_files = len(list((srv.data_dir / "events").rglob("*.parquet")))
    assert small_files == 24
    rng = random.Random(SEED)
    cmd = [sys.executable, "-m", "gasometer", "compact", "--data-dir", str(srv.data_dir)]
    for _ in range(3):
        kill_at_publish(cmd, srv.data_dir)
    interrupted = sum(
        kill_once_compacting(cmd, srv.data_dir, rng.uniform(0, 0.03)) for _ in range(3)
    )
    print(f"\ncompaction killed before publishing 3 times, then mid-way {interrupted} of 3")
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    files = list((srv.data_dir / "events").rglob("*.parquet"))
    assert len(files) == len({f.parent for f in files}) >= 1
    srv.start()
    check_store(fetch_all_costs(srv.url, limit=5000), journal)
    srv.stop()
    check_sql(srv.data_dir, 24 * 50)


def kill_at_publish(cmd: list[str], data_dir: Path) -> None:
    """Run `gasometer compact` paused after it wrote a merged file and before it publishes
    it (`GASOMETER_PAUSE_AT`), and SIGKILL it there."""
    mark = marker(data_dir, "compact-publish")
    before = set(data_dir.rglob("*.parquet"))
    env = {**os.environ, PAUSE_ENV: "compact-publish"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not mark.exists():
            assert proc.poll() is None, "compaction ended without reaching its publish step"
            assert time.monotonic() < deadline, "compaction never reached its publish step"
            time.sleep(0.01)
        written = {p.name for p in set(data_dir.rglob("*.parquet")) - before}
        assert any(name.startswith("c") for name in written), written
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    mark.unlink()


def kill_once_compacting(cmd: list[str], data_dir: Path, delay: float) -> bool:
    """Run `gasometer compact`; SIGKILL it `delay` seconds after it starts writing a
    file. True if it was killed before it finished."""
    before = set(data_dir.rglob("*"))
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None:
        if any(p.name.startswith((".c", "c")) for p in set(data_dir.rglob("*")) - before):
            time.sleep(delay)
            break
        time.sleep(0.001)
    killed = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return killed


def upsert_version(k: int, v: int) -> dict[str, Any]:
    """Version v (1–6) of streamed response k: usage and cost only grow."""
    return {
        "session_id": "ga-crew-stream",
        "event_id": f"resp-{k}",
        "ended_at": (BASE + timedelta(minutes=k, seconds=v)).isoformat().replace("+00:00", "Z"),
        "cost_usd": v / 8,
        "input_tokens": 100,
        "output_tokens": 10 * v,
        "cache_read_tokens": 1000 * k,
    }


def test_sigkill_during_monotone_upserts_keeps_the_largest_version(tmp_path: Path) -> None:
    """Growing versions of 30 responses, the server killed four times: each response is
    counted once, at a version at least as large as the largest acknowledged one, and
    replaying every version converges on the largest."""
    env = server_env(GASOMETER_FLUSH_INTERVAL_S="0.05", GASOMETER_COMPACT_MIN_FILES="2")
    srv = ServerProcess(tmp_path / "data", free_port(), env).start()
    rng = random.Random(SEED + 1)
    acked: dict[int, int] = {}
    done = threading.Event()
    errors: list[BaseException] = []
    pauses = [rng.uniform(0.1, 0.5) for _ in range(4)]

    def killer() -> None:
        try:
            for pause in pauses:
                time.sleep(pause)
                srv.kill()
                srv.start()
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    with httpx.Client(base_url=srv.url, headers=HEADERS, timeout=10) as client:
        while not done.is_set():
            for v in range(1, 7):
                for k in rng.sample(range(30), 30):
                    try:
                        response = client.post("/api/ingest", json=upsert_version(k, v))
                    except httpx.HTTPError:
                        time.sleep(0.02)
                        continue
                    if response.status_code == 202 and response.json()["accepted"]:
                        acked[k] = max(acked.get(k, 0), v)
    thread.join()
    if errors:
        raise errors[0]
    rows = fetch_all_costs(srv.url, limit=5000, session_id="ga-crew-stream")
    by_response: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_response[int(row["event_id"].removeprefix("resp-"))].append(row)
    for k, versions in acked.items():
        stored = by_response[k]
        assert [r["revision"] for r in stored].count(0) == 1, k
        output = sum(r["output_tokens"] for r in stored)
        assert output >= 10 * versions and output % 10 == 0, (k, output, versions)
        assert sum(r["cost_usd"] for r in stored) == output / 80
    with httpx.Client(base_url=srv.url, headers=HEADERS, timeout=60) as client:
        for k in range(30):
            for v in range(1, 7):
                assert client.post("/api/ingest", json=upsert_version(k, v)).status_code == 202
    srv.kill()
    srv.start()
    days = httpx.get(srv.url + "/api/stats/daily", params={"worker": "stream"}).json()["days"]
    totals = [sum(d[name] for d in days) for name in ("event_count", "output_tokens", "total_usd")]
    assert totals == [30, 30 * 60, 30 * 6 / 8]
    srv.stop()
