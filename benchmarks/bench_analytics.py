"""Analytics latency over HTTP, per endpoint, on the benchmark data set (target: p95 < 100 ms).

Uses the shared fixtures of benchmarks/conftest.py: `dataset` (the cached demo data set of
`--events` events) and `read_server` (a server over it), and `record` for the summary.
Windows are placed on the data set's own last full day, found through /health. Besides
wall-clock median and p95, each endpoint records the server's CPU time per request, which
load from other processes on the machine does not inflate.
Run: `.venv/bin/pytest benchmarks/bench_analytics.py --benchmark-enable [--events N]`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import Dataset, Server, record

ROUNDS = 40
P95_TARGET_MS = 100.0


@pytest.fixture(scope="module")
def client(read_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=read_server.url, timeout=120) as http:
        yield http


@pytest.fixture(scope="module")
def last_day(client: httpx.Client) -> date:
    """The last whole UTC day holding events."""
    last = client.get("/health").json()["last_event_at"]
    return datetime.fromisoformat(last.replace("Z", "+00:00")).date() - timedelta(days=1)


def endpoints(day: date) -> dict[str, str]:
    """Name -> path of every analytics read, windows on `day` where a window matters."""
    d = day.isoformat()
    hour = f"from={d}T14:00:00Z&to={d}T15:00:00Z"
    return {
        "timeline (default: last 24 h)": "/api/stats/timeline",
        "timeline (day)": f"/api/stats/timeline?from={d}&to={d}",
        "timeline (day, tz=Asia/Kolkata)": f"/api/stats/timeline?from={d}&to={d}&tz=Asia/Kolkata",
        "timeline (week, limit 500)": (
            f"/api/stats/timeline?from={(day - timedelta(days=6)).isoformat()}&to={d}&limit=500"
        ),
        "calendar (year)": "/api/stats/calendar",
        "calendar (year, tz=America/New_York)": "/api/stats/calendar?tz=America/New_York",
        "calendar (year, tz=Asia/Kolkata)": "/api/stats/calendar?tz=Asia/Kolkata",
        "treemap (all)": "/api/stats/treemap",
        "treemap (day)": f"/api/stats/treemap?from={d}&to={d}",
        "issues (all)": "/api/stats/issues",
        "costs/by-issue (role=polecat)": "/api/costs/by-issue?role=polecat",
        "burn": "/api/stats/burn",
        "burn (rig=gastown)": "/api/stats/burn?rig=gastown",
        "models (all)": "/api/stats/models",
        "export csv (1 hour)": f"/api/export?format=csv&{hour}",
        "export parquet (1 hour)": f"/api/export?format=parquet&{hour}",
        "metrics": "/metrics",
    }


NAMES = list(endpoints(date(2026, 1, 1)))


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile of `values` (share in 0..1)."""
    ordered = sorted(values)
    rank = max(1, round(share * len(ordered) + 0.5))
    return ordered[min(rank, len(ordered)) - 1]


def server_cpu_s(server: Server) -> float:
    """CPU seconds (user + system, all threads) the server process has used so far: per
    request, a latency figure that other load on the machine does not inflate."""
    assert server.process is not None
    fields = Path(f"/proc/{server.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.parametrize("name", NAMES)
def test_analytics_latency(
    benchmark: Any,
    client: httpx.Client,
    read_server: Server,
    dataset: Dataset,
    last_day: date,
    name: str,
) -> None:
    path = endpoints(last_day)[name]
    first = client.get(path)
    assert first.status_code == 200, first.text
    size = len(first.content)

    def get() -> None:
        response = client.get(path)
        assert response.status_code == 200

    benchmark.group = f"analytics latency ({dataset.events:,} events)"
    cpu_before = server_cpu_s(read_server)
    benchmark.pedantic(get, rounds=ROUNDS, iterations=1, warmup_rounds=2)
    cpu_ms = round((server_cpu_s(read_server) - cpu_before) * 1000 / (ROUNDS + 2), 1)
    times = benchmark.stats.stats.data
    median_ms = round(percentile(times, 0.5) * 1000, 1)
    p95_ms = round(percentile(times, 0.95) * 1000, 1)
    benchmark.extra_info.update(
        {"median_ms": median_ms, "p95_ms": p95_ms, "server_cpu_ms": cpu_ms, "bytes": size}
    )
    record(
        f"GET {name}",
        median_ms=median_ms,
        p95_ms=p95_ms,
        server_cpu_ms=cpu_ms,
        target_p95_ms=P95_TARGET_MS,
        response_kib=round(size / 1024, 1),
    )
