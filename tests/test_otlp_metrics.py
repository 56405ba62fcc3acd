"""OTLP metrics: `claude_code.cost.usage` and `claude_code.token.usage` count only for
sessions that send no `api_request` log records, and never twice: delta and cumulative
temporality (a restarted exporter too), retries, and records arriving after metrics.

Points are produced by the OpenTelemetry SDK and sent with its OTLP exporters.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcMetricExporter,
)
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)
from opentelemetry.sdk._logs.export import LogRecordExportResult
from opentelemetry.sdk.metrics import Counter, MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    InMemoryMetricReader,
    MetricExportResult,
    MetricsData,
)
from opentelemetry.sdk.resources import Resource

from tests.conftest import TOKEN, ServerFactory, ServerProcess, fetch_all_costs, free_port
from tests.test_otlp import AUTH, GT_RESOURCE, http_exporter, requests_for, transcript_lines

TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens")


class ClaudeMeters:
    """Claude Code's two cost meters on an SDK MeterProvider read on demand."""

    def __init__(self, temporality: AggregationTemporality) -> None:
        self.reader = InMemoryMetricReader(preferred_temporality={Counter: temporality})
        self.provider = MeterProvider(
            metric_readers=[self.reader], resource=Resource.create(GT_RESOURCE)
        )
        meter = self.provider.get_meter("com.anthropic.claude_code")
        self.cost = meter.create_counter("claude_code.cost.usage", unit="USD")
        self.tokens = meter.create_counter("claude_code.token.usage", unit="tokens")

    def spend(self, session: str, usd: float, **tokens: int) -> None:
        model = {"session.id": session, "model": "claude-sonnet-4-5"}
        if usd:
            self.cost.add(usd, model)
        for kind, count in tokens.items():
            self.tokens.add(count, {**model, "type": kind})

    def collect(self) -> MetricsData:
        data = self.reader.get_metrics_data()
        assert data is not None
        return data

    def close(self) -> None:
        self.provider.shutdown()


@contextmanager
def meters(temporality: AggregationTemporality) -> Iterator[ClaudeMeters]:
    claude = ClaudeMeters(temporality)
    try:
        yield claude
    finally:
        claude.close()


def exporter(server: ServerProcess, transport: str) -> Any:
    if transport == "grpc":
        port = server.env["GASOMETER_OTLP_GRPC_PORT"]
        return GrpcMetricExporter(
            endpoint=f"127.0.0.1:{port}",
            insecure=True,
            headers={"authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )
    return OTLPMetricExporter(endpoint=server.url + "/v1/metrics", headers=AUTH, timeout=10)


def totals(server: ServerProcess, session: str) -> dict[str, Any]:
    events = fetch_all_costs(server.url, session_id=session)
    out: dict[str, Any] = {"cost_usd": round(sum(e["cost_usd"] for e in events), 9)}
    for field in TOKEN_FIELDS:
        out[field] = sum(e[field] for e in events)
    return out


def expected(usd: float, inp: int = 0, out: int = 0, write: int = 0, read: int = 0) -> dict:
    return {
        "cost_usd": usd,
        "input_tokens": inp,
        "output_tokens": out,
        "cache_creation_tokens": write,
        "cache_read_tokens": read,
    }


@pytest.fixture
def server(server_factory: ServerFactory) -> ServerProcess:
    return server_factory(otlp_grpc_port=str(free_port()))


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_delta_points_count_once_even_when_resent(server: ServerProcess, transport: str) -> None:
    session = f"metrics-only-{transport}"
    send = exporter(server, transport)
    with meters(AggregationTemporality.DELTA) as claude:
        claude.spend(session, 0.25, input=100, output=50, cacheRead=1000, cacheCreation=10)
        first = claude.collect()
        claude.spend(session, 0.5, output=25)
        second = claude.collect()
    for data in (first, second, first, second):  # every export retried once
        assert send.export(data) == MetricExportResult.SUCCESS
    assert totals(server, session) == expected(0.75, 100, 75, 10, 1000)
    events = fetch_all_costs(server.url, session_id=session)
    assert {e["source"] for e in events} == {"otlp-metrics"}
    assert {(e["role"], e["rig"], e["worker"], e["issue"]) for e in events} == {
        ("polecat", "gastown", "Toast", "gt-abc12")
    }


def test_cumulative_points_and_a_restarted_exporter(server: ServerProcess) -> None:
    session = "cumulative"
    send = exporter(server, "http")
    with meters(AggregationTemporality.CUMULATIVE) as claude:
        claude.spend(session, 0.25, output=100)
        first = claude.collect()
        claude.spend(session, 0.5, output=50)
        second = claude.collect()
    for data in (first, second, first, second):  # retries, and one arriving late
        assert send.export(data) == MetricExportResult.SUCCESS
    assert totals(server, session) == expected(0.75, out=150)
    with meters(AggregationTemporality.CUMULATIVE) as restarted:  # a new start time
        restarted.spend(session, 0.125, output=20)
        again = restarted.collect()
    assert send.export(again) == MetricExportResult.SUCCESS
    assert send.export(again) == MetricExportResult.SUCCESS
    assert totals(server, session) == expected(0.875, out=170)


def test_records_arriving_after_metrics_replace_them(server: ServerProcess) -> None:
    session = "late-records"
    send = exporter(server, "grpc")
    with meters(AggregationTemporality.DELTA) as claude:
        claude.spend(session, 0.9, input=5, output=500)
        before = claude.collect()
        claude.spend(session, 0.4, output=300)
        after = claude.collect()
    assert send.export(before) == MetricExportResult.SUCCESS
    assert totals(server, session) == expected(0.9, 5, 500)

    records = requests_for(session, 2)  # costs 0.01 + 0.02, tokens as api_request() says
    assert http_exporter(server, True).export(records) == LogRecordExportResult.SUCCESS
    records_only = expected(0.03, 10 + 11, 200 + 201, 50 + 51, 1000 + 1001)
    assert totals(server, session) == records_only
    assert send.export(after) == MetricExportResult.SUCCESS  # ignored: the session has records
    assert send.export(before) == MetricExportResult.SUCCESS
    assert http_exporter(server, False).export(records) == LogRecordExportResult.SUCCESS
    assert totals(server, session) == records_only

    health = httpx.get(server.url + "/health").json()["otlp"]
    assert health["retractions"] == 3  # one cost and two token points
    assert health["metric_points_ignored"] == 2 + 3


def test_metrics_of_sessions_with_records_are_ignored(server: ServerProcess) -> None:
    session = "records-first"
    assert http_exporter(server, False).export(requests_for(session, 3)) == (
        LogRecordExportResult.SUCCESS
    )
    records_only = totals(server, session)
    with meters(AggregationTemporality.CUMULATIVE) as claude:
        claude.spend(session, 2.0, output=1000)
        data = claude.collect()
    assert exporter(server, "http").export(data) == MetricExportResult.SUCCESS
    assert totals(server, session) == records_only


def test_points_without_session_are_a_partial_success(server: ServerProcess) -> None:
    with meters(AggregationTemporality.DELTA) as claude:
        claude.spend("kept", 0.5)
        claude.cost.add(0.25, {"model": "claude-sonnet-4-5"})
        claude.tokens.add(10, {"session.id": "kept", "type": "mystery"})
        data = claude.collect()
    body = encode_metrics(data).SerializeToString()
    headers = {**AUTH, "Content-Type": "application/x-protobuf"}
    answer = httpx.post(server.url + "/v1/metrics", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    response = ExportMetricsServiceResponse.FromString(answer.content)
    assert response.partial_success.rejected_data_points == 2
    assert "missing session.id" in response.partial_success.error_message
    assert totals(server, "kept") == expected(0.5)


def hook_events(session: str, count: int) -> list[dict[str, Any]]:
    """What the hook posts for `count` responses of a session (with their request ids)."""
    return [
        {
            "session_id": session,
            "event_id": f"req_{session}_{n}",
            "source": "hook",
            "cost_usd": 0.125,
            "ended_at": f"2026-11-18T11:0{n}:00Z",
            "model": "claude-sonnet-4-5",
            "output_tokens": 40,
        }
        for n in range(count)
    ]


def wait_for_totals(server: ServerProcess, session: str, want: dict[str, Any]) -> None:
    """Poll until the session's totals are `want` (the retractor works in the background)."""
    deadline = time.monotonic() + 60
    while totals(server, session) != want:
        assert time.monotonic() < deadline, totals(server, session)
        time.sleep(0.1)


def test_hook_responses_replace_metrics_too(server: ServerProcess) -> None:
    send = exporter(server, "http")
    hook_only = expected(0.375, out=120)
    # Metrics first, then the hook's responses for the same session.
    with meters(AggregationTemporality.DELTA) as claude:
        claude.spend("metrics-then-hook", 0.9, output=300)
        first = claude.collect()
        claude.spend("metrics-then-hook", 0.2, output=30)
        later = claude.collect()
    assert send.export(first) == MetricExportResult.SUCCESS
    answer = httpx.post(
        server.url + "/api/ingest", json=hook_events("metrics-then-hook", 3), headers=AUTH
    )
    assert answer.status_code == 202, answer.text
    wait_for_totals(server, "metrics-then-hook", hook_only)
    assert send.export(later) == MetricExportResult.SUCCESS
    assert totals(server, "metrics-then-hook") == hook_only
    # The hook first, then metrics.
    answer = httpx.post(
        server.url + "/api/ingest", json=hook_events("hook-then-metrics", 3), headers=AUTH
    )
    assert answer.status_code == 202, answer.text
    with meters(AggregationTemporality.CUMULATIVE) as claude:
        claude.spend("hook-then-metrics", 0.9, output=300)
        data = claude.collect()
    assert send.export(data) == MetricExportResult.SUCCESS
    wait_for_totals(server, "hook-then-metrics", hook_only)


def test_offline_import_is_reconciled_at_start(server: ServerProcess, tmp_path: Path) -> None:
    session = "imported-offline"
    with meters(AggregationTemporality.DELTA) as claude:
        claude.spend(session, 0.9, output=300)
        data = claude.collect()
    assert exporter(server, "http").export(data) == MetricExportResult.SUCCESS
    server.stop()
    transcript = tmp_path / "t" / f"{session}.jsonl"
    transcript.parent.mkdir()
    transcript.write_text(transcript_lines(session, [0, 1], "/town/gastown/polecats/Toast"))
    command = [sys.executable, "-m", "gasometer", "import", str(transcript)]
    done = subprocess.run(
        [*command, "--data-dir", str(server.data_dir)],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    server.start()

    def net(source: str) -> float:
        events = fetch_all_costs(server.url, session_id=session)
        return round(sum(e["cost_usd"] for e in events if e["source"] == source), 9)

    deadline = time.monotonic() + 60
    while net("otlp-metrics") != 0:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    want = expected(net("import"), 10 + 11, 200 + 201, 50 + 51, 1000 + 1001)
    assert totals(server, session) == want
