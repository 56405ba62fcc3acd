"""Ingest throughput over HTTP with durability on, into a store of `--events` events.

Targets on 2 cores: single-event requests >= 2,000/s, batched >= 50,000 events/s. The
client is a raw asyncio load generator on several keep-alive connections.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

import httpx

from gasometer.demo import generate_events
from gasometer.model import CostEvent

from . import loadgen
from .conftest import TOKEN, Dataset, Server, ledger_mib, record

SINGLE_REQUESTS = 10_000
SINGLE_CONNECTIONS = 32
BATCH_SIZE = 1_000
BATCH_REQUESTS = 100
BATCH_CONNECTIONS = 4
ROUNDS = 3
_seeds = itertools.count(1_000)


def fresh_events(count: int) -> list[CostEvent]:
    """Demo events never stored before (a seed of their own, so their own event ids)."""
    return list(itertools.chain.from_iterable(generate_events(count, 2, next(_seeds))))


def percentile_ms(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000, 1)


def run_rounds(
    benchmark: Any, server: Server, make: Any, connections: int
) -> list[loadgen.LoadResult]:
    """Run ROUNDS load runs, each on requests prepared (untimed) beforehand."""
    results: list[loadgen.LoadResult] = []

    def setup() -> tuple[tuple[list[bytes]], dict[str, Any]]:
        return (make(),), {}

    def once(requests: list[bytes]) -> None:
        results.append(loadgen.run(server.port, requests, connections))

    benchmark.pedantic(once, setup=setup, rounds=ROUNDS, iterations=1)
    for result in results:
        assert result.failures == 0
        assert result.duplicates == 0
    return results


def test_ingest_single_event_requests(
    benchmark: Any, ingest_server: Server, dataset: Dataset
) -> None:
    def make() -> list[bytes]:
        events = fresh_events(SINGLE_REQUESTS)
        return loadgen.ingest_requests(ingest_server.port, TOKEN, [[e] for e in events])

    benchmark.group = f"ingest ({dataset.events:,} events stored)"
    results = run_rounds(benchmark, ingest_server, make, SINGLE_CONNECTIONS)
    rates = sorted(r.requests_per_s for r in results)
    latencies = [x for r in results for x in r.latencies]
    figures = {
        "requests_per_s": round(rates[len(rates) // 2]),
        "best_requests_per_s": round(rates[-1]),
        "request_p50_ms": percentile_ms(latencies, 0.5),
        "request_p95_ms": percentile_ms(latencies, 0.95),
        "connections": SINGLE_CONNECTIONS,
        "target_requests_per_s": 2_000,
    }
    benchmark.extra_info.update(figures)
    record("POST /api/ingest (1 event)", **figures)


def test_ingest_batched_requests(benchmark: Any, ingest_server: Server, dataset: Dataset) -> None:
    def make() -> list[bytes]:
        events = fresh_events(BATCH_SIZE * BATCH_REQUESTS)
        batches = [events[i : i + BATCH_SIZE] for i in range(0, len(events), BATCH_SIZE)]
        return loadgen.ingest_requests(ingest_server.port, TOKEN, batches)

    benchmark.group = f"ingest ({dataset.events:,} events stored)"
    results = run_rounds(benchmark, ingest_server, make, BATCH_CONNECTIONS)
    rates = sorted(r.events_per_s for r in results)
    figures = {
        "events_per_s": round(rates[len(rates) // 2]),
        "best_events_per_s": round(rates[-1]),
        "batch": BATCH_SIZE,
        "connections": BATCH_CONNECTIONS,
        "target_events_per_s": 50_000,
    }
    benchmark.extra_info.update(figures)
    record(f"POST /api/ingest ({BATCH_SIZE} events)", **figures)


def stored_events(server: Server, days: int) -> list[CostEvent]:
    """Up to 1,000 stored events from each of `days` days spread over the whole history,
    read back through GET /api/costs, as a client that re-sends them would send them."""
    out: list[CostEvent] = []
    with httpx.Client(base_url=server.url, timeout=300) as http:
        health = http.get("/health").json()
        first = datetime.fromisoformat(health["first_event_at"]).date()
        last = datetime.fromisoformat(health["last_event_at"]).date()
        span = (last - first).days
        for n in range(days):
            day = (first + timedelta(days=span * n // max(days - 1, 1))).isoformat()
            page = http.get("/api/costs", params={"from": day, "to": day, "limit": 1000})
            out += [_as_sent(row) for row in page.json()["events"] if row["revision"] == 0]
    return out


def _as_sent(row: dict[str, Any]) -> CostEvent:
    return CostEvent(
        session_id=row["session_id"],
        cost_usd=row["cost_usd"],
        started_at=datetime.fromisoformat(row["started_at"]) if row["started_at"] else None,
        ended_at=datetime.fromisoformat(row["ended_at"]),
        role=row["role"],
        worker=row["worker"],
        rig=row["rig"],
        model=row["model"],
        input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"],
        cache_creation_tokens=row["cache_creation_tokens"],
        cache_read_tokens=row["cache_read_tokens"],
        issue=row["issue"],
        parent_session_id=row["parent_session_id"],
        event_id=row["event_id"],
    )


def test_replay_of_old_events_and_dedup_footprint(
    benchmark: Any, ingest_server: Server, dataset: Dataset
) -> None:
    """Events re-sent from anywhere in the history are all duplicates; dedup state size."""
    replays = stored_events(ingest_server, days=20)
    batches = [replays[i : i + BATCH_SIZE] for i in range(0, len(replays), BATCH_SIZE)]
    requests = loadgen.ingest_requests(ingest_server.port, TOKEN, batches)
    results: list[loadgen.LoadResult] = []

    def once() -> None:
        results.append(loadgen.run(ingest_server.port, requests, BATCH_CONNECTIONS))

    benchmark.group = f"ingest ({dataset.events:,} events stored)"
    benchmark.pedantic(once, rounds=ROUNDS, iterations=1)
    assert len(replays) >= 10_000
    for result in results:
        assert result.failures == 0 and result.accepted == 0
        assert result.duplicates == len(replays)
    rates = sorted(r.events_per_s for r in results)
    figures = {
        "duplicates_per_s": round(rates[len(rates) // 2]),
        "ledger_mib": ledger_mib(ingest_server.data_dir),
        **ingest_server.memory(),
    }
    benchmark.extra_info.update(figures)
    record("replay (all duplicates) + footprint", **figures)
