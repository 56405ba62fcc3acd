"""Live stream under load: 50 WebSocket clients (connected, reading) while one request
ingests 95,000 events. Records the latency of GET /health requests sent meanwhile, the
server's resident memory (VmRSS sampled every 20 ms, and VmHWM), and how long the ingest
and the delivery to every client took; the same ingest without live clients for scale.
An empty store, not the benchmark data set. Run:
`.venv/bin/pytest benchmarks/bench_live.py --benchmark-enable -s`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.live_load import run

from .conftest import TOKEN, Server, record

EVENTS = 95_000


def percentile_ms(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000, 1)


@pytest.mark.parametrize("clients", [0, 50])
def test_health_latency_and_memory_during_a_95k_ingest(tmp_path: Path, clients: int) -> None:
    server = Server(tmp_path / "data").start()
    try:
        assert server.process is not None
        result = run(server.url, server.process.pid, TOKEN, clients, EVENTS)
    finally:
        server.stop()
    assert result.errors == [] and result.closed == []
    during = result.latencies_during()
    figures = {
        "health_requests": len(during),
        "health_p50_ms": percentile_ms(during, 0.5) if during else None,
        "health_p95_ms": percentile_ms(during, 0.95) if during else None,
        "health_max_ms": round(max(during) * 1000, 1) if during else None,
        "rss_before_mib": round(result.baseline_rss_mib),
        "rss_peak_mib": round(result.baseline_rss_mib + result.grew_mib),
        "ingest_answered_s": round(result.ingest_answered - result.ingest_started, 2),
        "delivered_s": round(result.all_delivered - result.ingest_started, 2),
    }
    record(f"live {clients} clients, {EVENTS} events", **figures)
    print(figures)
