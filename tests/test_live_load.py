"""50 live clients (connected, reading) and one 95,000-event ingest: the server's memory
stays bounded and other requests are still answered (their latency: benchmarks/)."""

from __future__ import annotations

from tests.conftest import TOKEN, ServerProcess
from tests.live_load import run

CLIENTS, EVENTS = 50, 95_000
MAX_GROWTH_MIB = 500


def test_fifty_live_clients_through_a_95k_event_ingest(server: ServerProcess) -> None:
    assert server.process is not None
    result = run(server.url, server.process.pid, TOKEN, CLIENTS, EVENTS)
    assert result.errors == []
    assert result.closed == []
    assert result.events_per_client == [EVENTS] * CLIENTS
    assert all(status == 200 for _, _, status in result.health)
    assert result.latencies_during(), "no request was answered during the ingest"
    print(
        f"server RSS {result.baseline_rss_mib:.0f} MiB before, peak "
        f"{result.baseline_rss_mib + result.grew_mib:.0f} MiB; "
        f"{len(result.latencies_during())} /health answered meanwhile"
    )
    assert result.grew_mib < MAX_GROWTH_MIB
