"""OTLP ingest beside plain JSON ingest: `claude_code.api_request` log records per second
over OTLP/HTTP (protobuf, batches of 512 as an exporter sends them, plain and gzip'd)
and the same responses as JSON cost events to POST /api/ingest, on one fresh server.

Size with GASOMETER_BENCH_OTLP_RECORDS (default 102,400 records per round). Run with
`make bench`, or alone: `.venv/bin/pytest benchmarks/bench_otlp.py --benchmark-enable`.
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import os
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from gasometer.model import CostEvent

from . import loadgen
from .conftest import TOKEN, Server, record

RECORDS = int(os.environ.get("GASOMETER_BENCH_OTLP_RECORDS", "102400"))
BATCH = 512
CONNECTIONS = 4
ROUNDS = 3
BASE = datetime(2026, 11, 18, 9, 0, tzinfo=UTC)
RESOURCE = {"service.name": "claude-code", "gt.role": "polecat", "gt.rig": "gastown",
            "gt.actor": "gastown/polecats/Toast", "gt.issue": "gt-abc12"}  # fmt: skip
_rounds = itertools.count()


def _kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def response(tag: str, n: int) -> dict[str, Any]:
    """One API response as Claude Code reports it (both paths send the same numbers)."""
    return {
        "session.id": f"{tag}-session-{n // 200}",
        "request_id": f"req_{tag}_{n}",
        "model": "claude-sonnet-4-5-20250929",
        "cost_usd": 0.001 * (n % 97 + 1),
        "duration_ms": 900 + n % 1000,
        "input_tokens": 3 + n % 50,
        "output_tokens": 100 + n % 900,
        "cache_read_tokens": 20_000 + n,
        "cache_creation_tokens": n % 3000,
        "ended": BASE + timedelta(milliseconds=n * 37),
    }


def otlp_body(tag: str, numbers: Sequence[int]) -> bytes:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.extend(_kv(k, v) for k, v in RESOURCE.items())
    records = resource_logs.scope_logs.add().log_records
    for n in numbers:
        fields = response(tag, n)
        ended = fields.pop("ended")
        nanos = int(ended.timestamp()) * 10**9 + ended.microsecond * 1000
        attrs = [_kv("event.name", "api_request"), *(_kv(k, v) for k, v in fields.items())]
        records.append(
            LogRecord(
                time_unix_nano=nanos,
                observed_time_unix_nano=nanos,
                body=AnyValue(string_value="claude_code.api_request"),
                attributes=attrs,
            )
        )
    return request.SerializeToString()


def otlp_requests(port: int, compress: bool) -> list[bytes]:
    tag = f"otlp{next(_rounds)}"
    out = []
    for start in range(0, RECORDS, BATCH):
        body = otlp_body(tag, range(start, min(start + BATCH, RECORDS)))
        extra = ""
        if compress:
            body = gzip.compress(body)
            extra = "Content-Encoding: gzip\r\n"
        head = (
            f"POST /v1/logs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/x-protobuf\r\n"
            f"{extra}Content-Length: {len(body)}\r\n\r\n"
        )
        out.append(head.encode() + body)
    return out


def json_requests(port: int) -> list[bytes]:
    tag = f"json{next(_rounds)}"
    events = []
    for n in range(RECORDS):
        r = response(tag, n)
        events.append(
            CostEvent(
                session_id=r["session.id"],
                cost_usd=r["cost_usd"],
                ended_at=r["ended"],
                started_at=r["ended"] - timedelta(milliseconds=r["duration_ms"]),
                model=r["model"],
                input_tokens=r["input_tokens"],
                output_tokens=r["output_tokens"],
                cache_read_tokens=r["cache_read_tokens"],
                cache_creation_tokens=r["cache_creation_tokens"],
                role="polecat",
                rig="gastown",
                worker="Toast",
                issue="gt-abc12",
                event_id=r["request_id"],
            )
        )
    batches = [events[i : i + BATCH] for i in range(0, RECORDS, BATCH)]
    return loadgen.ingest_requests(port, TOKEN, batches)


def send_otlp(port: int, requests: Sequence[bytes]) -> float:
    """Seconds to send every request over CONNECTIONS keep-alive connections (all 200)."""

    async def connection(queue: Iterator[bytes], failures: list[int]) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for request in queue:
            writer.write(request)
            status, _ = await loadgen._response(reader)
            if status != 200:
                failures.append(status)
        writer.close()

    async def run() -> float:
        queue = iter(requests)
        failures: list[int] = []
        started = time.perf_counter()
        await asyncio.gather(*(connection(queue, failures) for _ in range(CONNECTIONS)))
        assert failures == []
        return time.perf_counter() - started

    return asyncio.run(run())


@pytest.fixture(scope="module")
def fresh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(Path(tmp_path_factory.mktemp("otlp")) / "data").start()
    try:
        yield server
    finally:
        server.stop()


def _rate(benchmark: Any, make: Any, send: Any) -> list[float]:
    rates: list[float] = []

    def setup() -> tuple[tuple[list[bytes]], dict[str, Any]]:
        return (make(),), {}

    def once(requests: list[bytes]) -> None:
        rates.append(RECORDS / send(requests))

    benchmark.pedantic(once, setup=setup, rounds=ROUNDS, iterations=1)
    return sorted(rates)


def _json_seconds(port: int, requests: Sequence[bytes]) -> float:
    result = loadgen.run(port, requests, CONNECTIONS)
    assert result.failures == 0 and result.accepted == RECORDS
    return result.seconds


@pytest.mark.parametrize("compress", [False, True], ids=["protobuf", "protobuf+gzip"])
def test_otlp_log_records(benchmark: Any, fresh_server: Server, compress: bool) -> None:
    port = fresh_server.port
    rates = _rate(benchmark, lambda: otlp_requests(port, compress), lambda r: send_otlp(port, r))
    name = f"POST /v1/logs ({BATCH} records{', gzip' if compress else ''})"
    benchmark.group = "otlp vs json ingest"
    figures = {"records_per_s": round(rates[len(rates) // 2]), "best": round(rates[-1])}
    benchmark.extra_info.update(figures)
    record(name, **figures, records=RECORDS, connections=CONNECTIONS)


def test_json_ingest_same_responses(benchmark: Any, fresh_server: Server) -> None:
    port = fresh_server.port
    rates = _rate(benchmark, lambda: json_requests(port), lambda r: _json_seconds(port, r))
    benchmark.group = "otlp vs json ingest"
    figures = {"events_per_s": round(rates[len(rates) // 2]), "best": round(rates[-1])}
    benchmark.extra_info.update(figures)
    record(f"POST /api/ingest ({BATCH} events)", **figures, events=RECORDS)
