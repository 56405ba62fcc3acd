"""Read latency over HTTP, per endpoint, on the benchmark data set (target: p95 < 100 ms)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .conftest import Dataset, Server, ledger_mib, record

ROUNDS = 60
P95_TARGET_MS = 100.0

ENDPOINTS = {
    "daily": "/api/stats/daily",
    "daily_by_model": "/api/stats/daily?group_by=model",
    "summary": "/api/stats/summary",
    "roles": "/api/stats/roles",
    "rigs": "/api/stats/rigs",
    "costs": "/api/costs",
    "health": "/health",
}


@pytest.fixture(scope="module")
def client(read_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=read_server.url, timeout=60) as http:
        yield http


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile of `values` (share in 0..1)."""
    ordered = sorted(values)
    rank = max(1, round(share * len(ordered) + 0.5))
    return ordered[min(rank, len(ordered)) - 1]


def measure(benchmark: Any, name: str, get: Any, dataset: Dataset) -> None:
    """Time `get` ROUNDS times after warm-up; record median and p95 in ms."""
    benchmark.group = f"read latency ({dataset.events:,} events)"
    benchmark.pedantic(get, rounds=ROUNDS, iterations=1, warmup_rounds=3)
    times = benchmark.stats.stats.data
    median_ms = round(percentile(times, 0.5) * 1000, 1)
    p95_ms = round(percentile(times, 0.95) * 1000, 1)
    benchmark.extra_info.update({"median_ms": median_ms, "p95_ms": p95_ms})
    record(f"GET {name}", median_ms=median_ms, p95_ms=p95_ms, target_p95_ms=P95_TARGET_MS)


@pytest.mark.parametrize("name", list(ENDPOINTS))
def test_read_latency(benchmark: Any, client: httpx.Client, dataset: Dataset, name: str) -> None:
    path = ENDPOINTS[name]
    first = client.get(path)
    assert first.status_code == 200, first.text
    if name == "health":
        assert first.json()["event_count"] >= dataset.events

    def get() -> None:
        response = client.get(path)
        assert response.status_code == 200

    measure(benchmark, path, get, dataset)


def test_read_latency_costs_filtered_next_page(
    benchmark: Any, client: httpx.Client, dataset: Dataset
) -> None:
    params: dict[str, Any] = {"role": "polecat", "rig": "gastown", "limit": 100}
    first = client.get("/api/costs", params=params).json()
    assert len(first["events"]) == 100 and first["next_cursor"]
    assert {e["role"] for e in first["events"]} == {"polecat"}
    params["cursor"] = first["next_cursor"]

    def get() -> None:
        response = client.get("/api/costs", params=params)
        assert response.status_code == 200

    measure(benchmark, "/api/costs?role&rig&cursor", get, dataset)


def test_read_server_footprint(read_server: Server, dataset: Dataset) -> None:
    """Memory of a server holding the whole data set, after the read benchmarks."""
    parquet = sum(p.stat().st_size for p in dataset.data_dir.rglob("*.parquet"))
    figures = {
        **read_server.memory(),
        "ledger_mib": ledger_mib(dataset.data_dir),
        "parquet_mib": round(parquet / 2**20, 1),
        "build_seconds": dataset.info.get("build_seconds"),
    }
    record("read server footprint", **figures)
