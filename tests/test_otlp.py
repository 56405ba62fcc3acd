"""OTLP receiver: the official OpenTelemetry SDK exporters against a real server.

Logs over OTLP/HTTP (protobuf, gzip or not), OTLP/JSON and OTLP/gRPC are checked field
by field in the store; one request seen by OTLP, the hook and the import is one event;
retries change nothing; bad bodies are 4xx with nothing stored; invalid records are a
partial success. Expected values are written out here, not computed by the receiver.
"""

from __future__ import annotations

import base64
import gzip
import json
import time
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (
    OTLPLogExporter as GrpcLogExporter,
)
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import (
    InMemoryLogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.resources import Resource

from tests.conftest import TOKEN, ServerFactory, ServerProcess, fetch_all_costs, free_port
from tests.test_disk_full import fill, small_disk  # noqa: F401 (a fixture)

AUTH = {"Authorization": f"Bearer {TOKEN}"}
BASE_NS = 1_795_000_000_000_000_000  # 2026-11-18T11:06:40Z
GT_RESOURCE = {
    "service.name": "claude-code",
    "gt.role": "polecat",
    "gt.rig": "gastown",
    "gt.actor": "gastown/polecats/Toast",
    "gt.issue": "gt-abc12",
    "gt.session": "gt-Toast",
}


def api_request(n: int, session: str, **overrides: Any) -> dict[str, Any]:
    """The attributes of one `claude_code.api_request` record as Claude Code sends them
    (numbers partly as strings)."""
    attrs: dict[str, Any] = {
        "event.name": "api_request",
        "event.timestamp": "2026-11-18T11:06:40.000Z",
        "session.id": session,
        "prompt.id": f"prompt-{n}",
        "model": "claude-opus-4-5-20251101",
        "cost_usd": 0.01 * (n + 1),
        "duration_ms": 1500 + n,
        "input_tokens": 10 + n,
        "output_tokens": str(200 + n),
        "cache_read_tokens": 1000 + n,
        "cache_creation_tokens": 50 + n,
        "speed": "normal",
        "query_source": "repl_main_thread",
        "request_id": f"req_{session}_{n}",
        "client_request_id": f"client-{n}",
    }
    attrs.update(overrides)
    return {k: v for k, v in attrs.items() if v is not None}


def make_records(
    items: list[tuple[int, dict[str, Any], str]], resource: dict[str, Any] | None = None
) -> list[ReadableLogRecord]:
    """SDK log records: (time offset in ns, attributes, body) each, under one resource."""
    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource.create(resource or GT_RESOURCE))
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = provider.get_logger("com.anthropic.claude_code.events")
    for offset, attrs, body in items:
        logger.emit(timestamp=BASE_NS + offset, body=body, attributes=attrs)
    provider.shutdown()
    return list(memory.get_finished_logs())


def requests_for(session: str, count: int, start: int = 0) -> list[ReadableLogRecord]:
    items = [
        (n * 1_000_000_000, api_request(n, session), "claude_code.api_request")
        for n in range(start, start + count)
    ]
    return make_records(items)


def expected_event(n: int, session: str) -> dict[str, Any]:
    """What the store must hold for `api_request(n, session)`, written out by hand."""
    seconds = 40 + n
    return {
        "event_id": f"req_{session}_{n}",
        "session_id": session,
        "parent_session_id": None,
        "role": "polecat",
        "rig": "gastown",
        "worker": "Toast",
        "model": "claude-opus-4-5-20251101",
        "issue": "gt-abc12",
        "source": "otlp",
        "kind": "increment",
        "revision": 0,
        "ended_at": f"2026-11-18T11:06:{seconds:02d}.000000Z",
        "started_at": f"2026-11-18T11:06:{seconds - 2:02d}.{(500 - n) * 1000:06d}Z",
        "cost_usd": pytest.approx(0.01 * (n + 1)),
        "input_tokens": 10 + n,
        "output_tokens": 200 + n,
        "cache_creation_tokens": 50 + n,
        "cache_read_tokens": 1000 + n,
    }


def stored(url: str, **params: str) -> list[dict[str, Any]]:
    events = fetch_all_costs(url, **params)
    for event in events:
        del event["id"]
    return sorted(events, key=lambda e: (e["session_id"], e["ended_at"], e["event_id"] or ""))


def http_exporter(server: ServerProcess, gzip_on: bool, token: str = TOKEN) -> OTLPLogExporter:
    return OTLPLogExporter(
        endpoint=server.url + "/v1/logs",
        headers={"Authorization": f"Bearer {token}"},
        compression=Compression.Gzip if gzip_on else Compression.NoCompression,
        timeout=10,
    )


def otlp_json(records: list[ReadableLogRecord]) -> bytes:
    """OTLP/JSON of SDK records: protobuf's JSON mapping with trace/span ids as hex."""
    tree = json_format.MessageToDict(encode_logs(records))

    def to_hex(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: base64.b64decode(v).hex() if k in ("traceId", "spanId") else to_hex(v)
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [to_hex(v) for v in node]
        return node

    return json.dumps(to_hex(tree)).encode()


@pytest.fixture
def grpc_server(server_factory: ServerFactory) -> ServerProcess:
    return server_factory(otlp_grpc_port=str(free_port()))


def grpc_port(server: ServerProcess) -> int:
    return int(server.env["GASOMETER_OTLP_GRPC_PORT"])


@pytest.mark.parametrize("gzip_on", [False, True], ids=["plain", "gzip"])
def test_http_protobuf_records_stored_field_by_field(server: ServerProcess, gzip_on: bool) -> None:
    session = "8c1e0b9e-0000-4000-8000-00000000000a"
    other = [
        (0, {"event.name": "user_prompt", "session.id": session}, "claude_code.user_prompt"),
        (1, {"event.name": "tool_result", "session.id": session}, "claude_code.tool_result"),
        (2, {"event.name": "tool_result", "session.id": session}, "claude_code.tool_result"),
    ]
    records = requests_for(session, 5) + make_records(other)
    assert http_exporter(server, gzip_on).export(records) == LogRecordExportResult.SUCCESS

    assert stored(server.url) == [expected_event(n, session) for n in range(5)]
    health = httpx.get(server.url + "/health").json()["otlp"]
    assert health["log_records"] == 8
    assert health["other_events"] == {"tool_result": 2, "user_prompt": 1}
    metrics = httpx.get(server.url + "/metrics").text
    assert 'gasometer_otlp_other_events_total{event="tool_result"} 2' in metrics


@pytest.mark.parametrize("gzip_on", [False, True], ids=["plain", "gzip"])
def test_otlp_json_records_stored_field_by_field(server: ServerProcess, gzip_on: bool) -> None:
    session = "json-session"
    body = otlp_json(requests_for(session, 3))
    headers = {**AUTH, "Content-Type": "application/json"}
    if gzip_on:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    answer = httpx.post(server.url + "/v1/logs", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json() == {}
    assert stored(server.url) == [expected_event(n, session) for n in range(3)]


def test_otlp_json_hex_trace_ids_and_int64_strings(server: ServerProcess) -> None:
    record = {
        "timeUnixNano": str(BASE_NS),
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "body": {"stringValue": "claude_code.api_request"},
        "attributes": [
            {"key": k, "value": {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}}
            for k, v in api_request(0, "hexsession", cost_usd="0.01").items()
        ],
    }
    tree = {"resourceLogs": [{"resource": {}, "scopeLogs": [{"logRecords": [record]}]}]}
    answer = httpx.post(server.url + "/v1/logs", json=tree, headers=AUTH)
    assert answer.status_code == 200, answer.text
    [event] = stored(server.url)
    assert (event["event_id"], event["input_tokens"], event["role"]) == (
        "req_hexsession_0",
        10,
        "unknown",
    )


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_grpc_records_stored_field_by_field(grpc_server: ServerProcess, compressed: bool) -> None:
    session = "grpc-session"
    exporter = GrpcLogExporter(
        endpoint=f"127.0.0.1:{grpc_port(grpc_server)}",
        insecure=True,
        headers={"authorization": f"Bearer {TOKEN}"},
        compression=grpc.Compression.Gzip if compressed else grpc.Compression.NoCompression,
        timeout=10,
    )
    records = requests_for(session, 4)
    assert exporter.export(records) == LogRecordExportResult.SUCCESS
    assert exporter.export(records) == LogRecordExportResult.SUCCESS  # a retry: no change
    exporter.shutdown()
    assert stored(grpc_server.url) == [expected_event(n, session) for n in range(4)]


def test_grpc_refuses_missing_token_and_garbage(grpc_server: ServerProcess) -> None:
    channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port(grpc_server)}")
    export = channel.unary_unary(
        "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
        request_serializer=None,
        response_deserializer=None,
    )
    valid = encode_logs(requests_for("grpc-bad", 2)).SerializeToString()
    cases = [
        (valid, (), grpc.StatusCode.UNAUTHENTICATED),
        (valid, (("authorization", "Bearer wrong"),), grpc.StatusCode.UNAUTHENTICATED),
        (valid[:-7], (("authorization", f"Bearer {TOKEN}"),), grpc.StatusCode.INVALID_ARGUMENT),
        (b"\xff" * 40, (("authorization", f"Bearer {TOKEN}"),), grpc.StatusCode.INVALID_ARGUMENT),
    ]
    oversized = b"\0" * (10 * 1024 * 1024 + 1)  # over max_body_bytes, plain and gzip'd
    token = (("authorization", f"Bearer {TOKEN}"),)
    cases += [(oversized, token, grpc.StatusCode.RESOURCE_EXHAUSTED)]
    for body, metadata, code in cases:
        with pytest.raises(grpc.RpcError) as caught:
            export(body, metadata=metadata, timeout=10)
        assert caught.value.code() == code
    with pytest.raises(grpc.RpcError) as caught:
        export(oversized, metadata=token, timeout=10, compression=grpc.Compression.Gzip)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    channel.close()
    assert stored(grpc_server.url) == []


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    (path / ".claude" / "projects").mkdir(parents=True)
    return path


def transcript_lines(session: str, ns: list[int], cwd: str) -> str:
    """Claude Code transcript lines for the same responses as `api_request(n, session)`."""
    lines = []
    for n in ns:
        usage = {
            "input_tokens": 10 + n,
            "output_tokens": 200 + n,
            "cache_read_input_tokens": 1000 + n,
            "cache_creation_input_tokens": 50 + n,
        }
        lines.append(
            {
                "type": "assistant",
                "sessionId": session,
                "cwd": cwd,
                "requestId": f"req_{session}_{n}",
                "timestamp": f"2026-11-18T11:06:{40 + n:02d}.000Z",
                "message": {"id": f"msg_{n}", "model": "claude-opus-4-5-20251101", "usage": usage},
            }
        )
    return "".join(json.dumps(line) + "\n" for line in lines)


def test_otlp_hook_and_import_count_each_request_once(
    server_factory: ServerFactory, home: Path, tmp_path: Path
) -> None:
    server = server_factory()
    server.stop()
    server.env["HOME"] = str(home)
    server.start()
    session = "shared-session"
    cwd = "/town/gastown/polecats/Toast"
    # Requests 0-2: the import first, then OTLP. Requests 3-5: OTLP first, then the hook.
    imported = home / ".claude" / "projects" / "old" / f"{session}.jsonl"
    imported.parent.mkdir(parents=True, exist_ok=True)
    imported.write_text(transcript_lines(session, [0, 1, 2], cwd))
    started = httpx.post(server.url + "/api/import", json={"paths": [str(imported)]}, headers=AUTH)
    assert started.status_code == 202, started.text
    while httpx.get(server.url + "/api/import/status").json()["state"] == "running":
        time.sleep(0.05)
    assert httpx.get(server.url + "/api/import/status").json()["accepted"] == 3

    exporter = http_exporter(server, gzip_on=True)
    assert exporter.export(requests_for(session, 6)) == LogRecordExportResult.SUCCESS

    live = home / ".claude" / "projects" / "-town-gastown-polecats-Toast" / f"{session}.jsonl"
    live.parent.mkdir()
    live.write_text(transcript_lines(session, [3, 4, 5], cwd))
    hook_input = {"session_id": session, "transcript_path": str(live), "hook_event_name": "Stop"}
    answer = httpx.post(server.url + "/api/hooks/claude", json=hook_input, headers=AUTH)
    assert answer.status_code == 200, answer.text

    events = stored(server.url)
    assert [e["event_id"] for e in events] == [f"req_{session}_{n}" for n in range(6)]
    assert [e["source"] for e in events] == ["import"] * 3 + ["otlp"] * 3
    assert all(e["revision"] == 0 for e in events)
    assert sum(e["output_tokens"] for e in events) == sum(200 + n for n in range(6))
    daily = httpx.get(server.url + "/api/stats/daily").json()["days"]
    assert sum(d["event_count"] for d in daily) == 6


def test_partial_success_stores_the_valid_records(server: ServerProcess) -> None:
    session = "partial"
    items = [
        (0, api_request(0, session), "claude_code.api_request"),
        (1, api_request(1, session, cost_usd=None), "claude_code.api_request"),
        (2, api_request(2, session, **{"session.id": None}), "claude_code.api_request"),
        (3, api_request(3, session, cost_usd=-1.0), "claude_code.api_request"),
        (4, api_request(4, session, input_tokens="many"), "claude_code.api_request"),
        (5, api_request(5, session), "claude_code.api_request"),
        (6, {"event.name": "api_error", "session.id": session}, "claude_code.api_error"),
    ]
    body = encode_logs(make_records(items)).SerializeToString()
    headers = {**AUTH, "Content-Type": "application/x-protobuf"}
    answer = httpx.post(server.url + "/v1/logs", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    response = ExportLogsServiceResponse.FromString(answer.content)
    assert response.partial_success.rejected_log_records == 4
    message = response.partial_success.error_message
    assert "missing cost_usd" in message and "missing session.id" in message
    assert [e["event_id"] for e in stored(server.url)] == [
        f"req_{session}_0",
        f"req_{session}_5",
    ]


def bomb(size: int) -> bytes:
    return gzip.compress(b"\0" * size, compresslevel=9)


def test_bad_payloads_are_4xx_and_store_nothing(server_factory: ServerFactory) -> None:
    limit = 256 * 1024
    server = server_factory(max_body_bytes=str(limit))
    valid = encode_logs(requests_for("bad", 3)).SerializeToString()
    protobuf = {**AUTH, "Content-Type": "application/x-protobuf"}
    gzipped = {**protobuf, "Content-Encoding": "gzip"}
    json_headers = {**AUTH, "Content-Type": "application/json"}
    cases = [
        ("truncated protobuf", valid[:-9], protobuf, 400),
        ("garbage protobuf", b"\xff\xff\xff\xff" * 8, protobuf, 400),
        ("wrong content type", valid, {**AUTH, "Content-Type": "text/plain"}, 415),
        ("no content type", valid, AUTH, 415),
        ("unknown encoding", valid, {**protobuf, "Content-Encoding": "br"}, 415),
        ("invalid JSON", b'{"resourceLogs": [', json_headers, 400),
        ("JSON not an object", b"[1, 2]", json_headers, 400),
        ("JSON wrong types", b'{"resourceLogs": "no", "resourceMetrics": 3}', json_headers, 400),
        (
            "JSON non-hex trace id",
            b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "zz"}]}]}]}',
            json_headers,
            400,
        ),
        ("not gzip", valid, gzipped, 400),
        ("truncated gzip", gzip.compress(valid)[:-12], gzipped, 400),
        ("oversized", b"\0" * (limit + 1), protobuf, 413),
        ("gzip bomb", bomb(64 * 1024 * 1024), gzipped, 413),
        ("no token", valid, {"Content-Type": "application/x-protobuf"}, 401),
        ("wrong token", valid, {**protobuf, "Authorization": "Bearer nope"}, 401),
    ]
    for path in ("/v1/logs", "/v1/metrics"):
        for name, body, headers, status in cases:
            answer = httpx.post(server.url + path, content=body, headers=headers, timeout=30)
            assert answer.status_code == status, (path, name, answer.text)
            assert answer.json()["ok"] is False, name
    assert len(bomb(64 * 1024 * 1024)) < limit
    assert stored(server.url) == []
    assert httpx.get(server.url + "/health").json()["status"] == "ok"


def test_retry_after_503_changes_nothing(
    server_factory: ServerFactory,
    small_disk: Path,  # noqa: F811 (the fixture imported above)
) -> None:
    server = server_factory(
        data_dir=small_disk / "data",
        min_free_bytes=str(4 * 1024 * 1024),
        otlp_grpc_port=str(free_port()),
    )
    session = "full-disk"
    records = requests_for(session, 4)
    fill(small_disk, leave=1024 * 1024)

    body = encode_logs(records).SerializeToString()
    headers = {**AUTH, "Content-Type": "application/x-protobuf"}
    refused = httpx.post(server.url + "/v1/logs", content=body, headers=headers)
    assert refused.status_code == 503, refused.text
    assert refused.headers["retry-after"] == "30"
    grpc_exporter = GrpcLogExporter(
        endpoint=f"127.0.0.1:{grpc_port(server)}",
        insecure=True,
        headers={"authorization": f"Bearer {TOKEN}"},
        timeout=2,
    )
    assert grpc_exporter.export(records) == LogRecordExportResult.FAILURE
    exporter = OTLPLogExporter(
        endpoint=server.url + "/v1/logs", headers=AUTH, timeout=2, compression=Compression.Gzip
    )
    assert exporter.export(records) == LogRecordExportResult.FAILURE
    assert stored(server.url) == []

    (small_disk / "ballast").unlink()
    assert exporter.export(records) == LogRecordExportResult.SUCCESS
    first = stored(server.url)
    assert first == [expected_event(n, session) for n in range(4)]
    assert exporter.export(records) == LogRecordExportResult.SUCCESS
    assert grpc_exporter.export(records) == LogRecordExportResult.SUCCESS
    assert stored(server.url) == first


def test_gzip_bomb_is_refused_without_inflating_it() -> None:
    import tracemalloc

    from gasometer.errors import PayloadTooLarge
    from gasometer.otlp.decode import inflate

    huge = bomb(128 * 1024 * 1024)  # 128 MiB of zeros, about 130 KB compressed
    limit = 1024 * 1024
    assert inflate(gzip.compress(b"x" * limit), "gzip", limit) == b"x" * limit
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooLarge):
            inflate(huge, "gzip", limit)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * limit
