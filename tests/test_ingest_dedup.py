"""Deduplication is forever: replaying accepted events changes nothing, whether they are
still in the WAL, flushed to Parquet, compacted, or the server restarted in between.
A re-sent event_id with larger token counts replaces the earlier version (monotone upsert).

Costs are multiples of 1/1024, so every sum is exact whatever order DuckDB adds in.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import TOKEN, ServerFactory, ServerProcess, fetch_all_costs

HEADERS = {"Authorization": f"Bearer {TOKEN}"}
SESSIONS = ["hq-mayor", "ga-nux", "ga-crew-max", "bd-witness", "careers-polecat-slit"]
BASE = datetime(2026, 10, 28, 22, 0, tzinfo=UTC)
MINUS_7 = timezone(timedelta(hours=-7))


def make_events(count: int, seed: int, prefix: str = "") -> list[dict[str, Any]]:
    """Events over a week spanning a month boundary; a third carry an event_id."""
    rng = random.Random(seed)
    events = []
    for i in range(count):
        ended = BASE + timedelta(seconds=rng.randrange(0, 7 * 86400), microseconds=i)
        event: dict[str, Any] = {
            "session_id": prefix + rng.choice(SESSIONS),
            "cost_usd": rng.randrange(0, 8192) / 1024,
            "ended_at": ended.isoformat().replace("+00:00", "Z"),
            "input_tokens": rng.randrange(0, 10_000),
            "output_tokens": rng.randrange(0, 2_000),
        }
        if i % 3 == 0:
            event["event_id"] = f"{prefix}msg-{seed}-{i}"
        events.append(event)
    return events


def post(url: str, body: Any, **params: str) -> dict[str, int]:
    response = httpx.post(
        url + "/api/ingest", json=body, headers=HEADERS, params=params, timeout=60
    )
    assert response.status_code == 202, response.text
    result: dict[str, int] = response.json()
    return result


def state(url: str) -> dict[str, Any]:
    """Everything the read API says about the store (exact: costs are dyadic)."""
    with httpx.Client(base_url=url, timeout=30) as client:
        return {
            "events": sorted(fetch_all_costs(url, limit=500), key=lambda r: r["id"]),
            "daily": client.get("/api/stats/daily", params={"group_by": "worker"}).json(),
            "roles": client.get("/api/stats/roles").json(),
            "rigs": client.get("/api/stats/rigs").json(),
            "count": client.get("/health").json()["event_count"],
        }


def expected_total(events: list[dict[str, Any]]) -> float:
    """The cost of a set of events, counting each identity once (first version wins)."""
    seen: dict[Any, float] = {}
    for e in events:
        key = e.get("event_id") or (e["session_id"], e["ended_at"])
        seen.setdefault(key, e["cost_usd"])
    return sum(seen.values())


def replay_every_way(url: str, events: list[dict[str, Any]]) -> None:
    """Send accepted events again as an array, as NDJSON, one by one and re-dated into
    another offset: every one of them must be a duplicate."""
    assert post(url, events) == {"accepted": 0, "duplicates": len(events)}
    ndjson = "\n".join(json.dumps(e) for e in events).encode()
    response = httpx.post(
        url + "/api/ingest",
        content=ndjson,
        headers={**HEADERS, "content-type": "application/x-ndjson"},
        timeout=60,
    )
    assert response.json() == {"accepted": 0, "duplicates": len(events)}
    with httpx.Client(base_url=url, headers=HEADERS) as client:
        for e in events[:: max(1, len(events) // 25)]:
            shifted = datetime.fromisoformat(e["ended_at"]).astimezone(MINUS_7)
            again = {**e, "ended_at": shifted.isoformat(), "cost_usd": e["cost_usd"] + 1}
            assert client.post("/api/ingest", json=again).json() == {
                "accepted": 0,
                "duplicates": 1,
            }


def wait_until(predicate: Any, timeout: float = 120.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def parquet_files(data_dir: Path, dataset: str = "events") -> list[Path]:
    return sorted((data_dir / dataset).rglob("*.parquet"))


def wal_backlog(url: str) -> int:
    backlog: int = httpx.get(url + "/health").json()["wal_backlog_events"]
    return backlog


@pytest.fixture
def events() -> list[dict[str, Any]]:
    return make_events(300, seed=11)


def test_replay_while_in_the_wal(server: ServerProcess, events: list[dict[str, Any]]) -> None:
    assert post(server.url, events) == {"accepted": 300, "duplicates": 0}
    before = state(server.url)
    assert before["count"] == 300
    assert sum(r["cost_usd"] for r in before["events"]) == expected_total(events)
    replay_every_way(server.url, events)
    assert state(server.url) == before


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_replay_across_restarts(
    server: ServerProcess, events: list[dict[str, Any]], how: str
) -> None:
    post(server.url, events[:150])
    getattr(server, how)()
    server.start()
    post(server.url, events[150:])
    before = state(server.url)
    getattr(server, how)()
    server.start()
    assert state(server.url) == before
    replay_every_way(server.url, events)
    assert state(server.url) == before


def test_replay_across_flush_and_compaction(server_factory: ServerFactory) -> None:
    """Many small flushes, compaction forced (compact_min_files=2), then `gasometer compact`:
    replays at every stage are duplicates and the answers never change."""
    srv = server_factory(flush_interval_s="0.05", compact_min_files="2")
    batches = [make_events(40, seed=100 + i) for i in range(10)]
    for batch in batches:
        assert post(srv.url, batch) == {"accepted": 40, "duplicates": 0}
        wait_until(lambda: wal_backlog(srv.url) == 0, what="flush")
    everything = [e for batch in batches for e in batch]
    wait_until(
        lambda: any(p.name.startswith("c") for p in parquet_files(srv.data_dir)),
        what="background compaction",
    )
    before = state(srv.url)
    assert before["count"] == len(everything)
    assert sum(r["cost_usd"] for r in before["events"]) == expected_total(everything)
    replay_every_way(srv.url, everything)
    wait_until(lambda: wal_backlog(srv.url) == 0, what="flush")
    assert state(srv.url) == before

    srv.stop()
    run_cli("compact", "--data-dir", str(srv.data_dir))
    months = {p.parent.name for p in parquet_files(srv.data_dir)}
    assert months == {"month=2026-10", "month=2026-11"}
    for dataset in ("events", "hourly"):
        assert len(parquet_files(srv.data_dir, dataset)) == len(months), dataset
    srv.start()
    assert state(srv.url) == before
    replay_every_way(srv.url, everything)
    assert state(srv.url) == before


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "gasometer", *args], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result


def test_identity_rules(server: ServerProcess) -> None:
    """Same (session_id, ended_at) is one event whatever else differs; so is the same
    event_id whatever the session (and a time up to 12 hours off: versions of one
    streamed response, the hook and the import seeing one response)."""
    first = {"session_id": "ga-nux", "cost_usd": 1.0, "ended_at": "2026-11-20T10:00:00Z"}
    assert post(server.url, first) == {"accepted": 1, "duplicates": 0}
    same_moment = [
        {**first, "cost_usd": 5.0},
        {**first, "ended_at": "2026-11-20T10:00:00.000000+00:00"},
        {**first, "ended_at": "2026-11-20T15:30:00+05:30", "input_tokens": 99},
        {**first, "role": "mayor", "model": "claude-opus-4-5"},
    ]
    assert post(server.url, same_moment) == {"accepted": 0, "duplicates": 4}
    other = [
        {**first, "ended_at": "2026-11-20T10:00:00.000001Z"},
        {**first, "session_id": "ga-nux2"},
    ]
    assert post(server.url, other) == {"accepted": 2, "duplicates": 0}
    keyed = {"session_id": "hq-mayor", "cost_usd": 2.0, "ended_at": "2026-11-21T00:00:00Z"}
    assert post(server.url, {**keyed, "event_id": "req-1"})["accepted"] == 1
    moved = {
        **keyed,
        "event_id": "req-1",
        "session_id": "hq-deacon",
        "ended_at": "2026-11-21T00:40:00Z",
    }
    assert post(server.url, moved) == {"accepted": 0, "duplicates": 1}
    next_day = {**moved, "ended_at": "2026-11-21T11:59:00Z"}
    day_before = {**moved, "ended_at": "2026-11-20T12:01:00Z"}
    assert post(server.url, [next_day, day_before]) == {"accepted": 0, "duplicates": 2}
    rows = fetch_all_costs(server.url)
    assert sorted(r["cost_usd"] for r in rows) == [1.0, 1.0, 1.0, 2.0]


def usage(output: int, cache_read: int, cost: float, event_id: str = "msg_01") -> dict[str, Any]:
    return {
        "session_id": "ga-crew-max",
        "event_id": event_id,
        "cost_usd": cost,
        "ended_at": "2026-11-20T12:00:00Z",
        "input_tokens": 10,
        "output_tokens": output,
        "cache_read_tokens": cache_read,
        "model": "claude-sonnet-4-5",
    }


def totals_of(url: str) -> tuple[float, int, int, int]:
    (day,) = httpx.get(url + "/api/stats/daily", params={"worker": "max"}).json()["days"]
    return day["total_usd"], day["event_count"], day["output_tokens"], day["cache_read_tokens"]


def test_monotone_upsert(server_factory: ServerFactory) -> None:
    """A streamed response re-sent with larger usage replaces the earlier version; smaller,
    equal or mixed versions are duplicates; all of it survives flush, compaction, restart."""
    srv = server_factory(flush_interval_s="0.05", compact_min_files="2")
    assert post(srv.url, usage(5, 100, 0.25))["accepted"] == 1
    assert totals_of(srv.url) == (0.25, 1, 5, 100)
    assert post(srv.url, usage(40, 100, 0.5)) == {"accepted": 1, "duplicates": 0}
    assert totals_of(srv.url) == (0.5, 1, 40, 100)
    for stale in (usage(5, 100, 0.25), usage(40, 100, 0.5), usage(60, 50, 0.75)):
        assert post(srv.url, stale) == {"accepted": 0, "duplicates": 1}
    assert totals_of(srv.url) == (0.5, 1, 40, 100)
    wait_until(lambda: wal_backlog(srv.url) == 0, what="flush")
    assert post(srv.url, usage(41, 200, 0.625))["accepted"] == 1
    wait_until(lambda: wal_backlog(srv.url) == 0, what="flush")
    assert post(srv.url, [usage(50, 200, 0.75), usage(50, 300, 0.875)])["accepted"] == 2
    final = (0.875, 1, 50, 300)
    assert totals_of(srv.url) == final
    rows = fetch_all_costs(srv.url, worker="max")
    assert sorted(r["revision"] for r in rows) == [0, 1, 2, 3, 4]
    assert sum(r["cost_usd"] for r in rows) == 0.875
    wait_until(
        lambda: any(p.name.startswith("c") for p in parquet_files(srv.data_dir)),
        what="background compaction",
    )
    srv.stop()
    run_cli("compact", "--data-dir", str(srv.data_dir))
    srv.start()
    assert totals_of(srv.url) == final
    for stale in (usage(5, 100, 0.25), usage(50, 300, 0.875), usage(49, 300, 0.875)):
        assert post(srv.url, stale) == {"accepted": 0, "duplicates": 1}
    srv.kill()
    srv.start()
    assert totals_of(srv.url) == final
    assert post(srv.url, usage(51, 300, 1.0))["accepted"] == 1
    assert totals_of(srv.url) == (1.0, 1, 51, 300)
    roles = httpx.get(srv.url + "/api/stats/roles").json()["roles"]
    assert [(r["role"], r["total_usd"], r["session_count"]) for r in roles] == [("crew", 1.0, 1)]


def test_concurrent_identical_requests_store_once(server: ServerProcess) -> None:
    """Six clients send the same batch at the same moment (one group commit or several):
    exactly one copy is accepted, the rest are counted as duplicates."""
    events = make_events(200, seed=77, prefix="cc-")
    barrier = threading.Barrier(6)
    results: list[dict[str, int]] = []

    def send() -> None:
        with httpx.Client(base_url=server.url, headers=HEADERS, timeout=60) as client:
            barrier.wait()
            results.append(client.post("/api/ingest", json=events).json())

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r["accepted"] for r in results) == 200
    assert sum(r["duplicates"] for r in results) == 5 * 200
    rows = [r for r in fetch_all_costs(server.url) if r["session_id"].startswith("cc-")]
    assert len(rows) == 200 and sum(r["cost_usd"] for r in rows) == expected_total(events)
