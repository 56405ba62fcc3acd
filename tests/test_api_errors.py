"""Bad input of every kind gets the right status and a message naming the field and the
event's index; nothing of a bad batch is stored; every error has the one JSON shape."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import ServerProcess, fetch_all_costs, free_port, server_env

GOOD = {"session_id": "ga-nux", "cost_usd": 1.5, "ended_at": "2026-11-20T10:00:00Z"}


def good(i: int) -> dict[str, Any]:
    """A valid event, distinct for each i."""
    return {**GOOD, "ended_at": f"2026-11-20T10:00:{i:02d}Z"}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the whole module: every request here is refused, so it stays empty."""
    data = tmp_path_factory.mktemp("errors") / "data"
    proc = ServerProcess(data, free_port(), server_env(GASOMETER_MAX_BODY_BYTES="1048576"))
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def assert_error(response: httpx.Response, status: int, *words: str) -> str:
    """The response is the one error shape with this status; its message holds `words`."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "status", "ok"}, body
    assert body["status"] == status and body["ok"] is False
    message: str = body["error"]
    assert isinstance(message, str) and message and "\n" not in message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    return message


def post_raw(
    srv: ServerProcess, auth: dict[str, str], body: bytes, **headers: str
) -> httpx.Response:
    return httpx.post(
        srv.url + "/api/ingest", content=body, headers={**auth, **headers}, timeout=30
    )


def dumps(value: Any) -> str:
    """JSON text; a string "<raw>X" becomes the bare literal X (e.g. 1e400)."""
    return json.dumps(value).replace('"<raw>', "").replace('e400"', "e400")


def batch_with(bad: dict[str, Any], index: int = 2, size: int = 4) -> list[dict[str, Any]]:
    """A batch of valid events with `bad` at position `index`."""
    events = [good(i) for i in range(size)]
    events[index] = bad
    return events


def without(field: str) -> dict[str, Any]:
    return {k: v for k, v in GOOD.items() if k != field}


# (name, the bad event, words the message must contain besides the index)
BAD_EVENTS: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
    ("cost as string", {**GOOD, "cost_usd": "1.5"}, ("cost_usd",)),
    ("cost as bool", {**GOOD, "cost_usd": True}, ("cost_usd",)),
    ("session_id as int", {**GOOD, "session_id": 12}, ("session_id",)),
    ("tokens as float", {**GOOD, "input_tokens": 1.5}, ("input_tokens",)),
    ("tokens as string", {**GOOD, "output_tokens": "10"}, ("output_tokens",)),
    ("negative tokens", {**GOOD, "cache_read_tokens": -1}, ("cache_read_tokens",)),
    ("role as list", {**GOOD, "role": ["mayor"]}, ("role",)),
    ("missing session_id", without("session_id"), ("session_id",)),
    ("missing cost_usd", without("cost_usd"), ("cost_usd",)),
    ("missing ended_at", without("ended_at"), ("ended_at",)),
    ("negative cost", {**GOOD, "cost_usd": -0.01}, ("cost_usd",)),
    ("huge cost", {**GOOD, "cost_usd": "<raw>1e400"}, ("cost_usd",)),
    ("ended_at without offset", {**GOOD, "ended_at": "2026-11-20T10:00:00"}, ("ended_at",)),
    ("ended_at garbage", {**GOOD, "ended_at": "yesterday"}, ("ended_at",)),
    ("ended_at as number", {**GOOD, "ended_at": 1763632800}, ("ended_at",)),
    ("ended_at date only", {**GOOD, "ended_at": "2026-11-20"}, ("ended_at",)),
    ("started_at garbage", {**GOOD, "started_at": "10 o'clock"}, ("started_at",)),
    (
        "started after ended",
        {**GOOD, "started_at": "2026-11-20T11:00:00Z"},
        ("started_at",),
    ),
    ("ended_at year 1970", {**GOOD, "ended_at": "1970-01-01T00:00:00Z"}, ("ended_at",)),
    ("session_id empty", {**GOOD, "session_id": ""}, ("session_id",)),
    ("session_id 201 chars", {**GOOD, "session_id": "s" * 201}, ("session_id",)),
    ("event_id empty", {**GOOD, "event_id": ""}, ("event_id",)),
    ("unknown field", {**GOOD, "cost": 1.0}, ("cost",)),
    ("kind unknown", {**GOOD, "kind": "delta"}, ("kind",)),
    ("event not an object", [1, 2], ()),  # type: ignore[list-item]
]


@pytest.mark.parametrize(
    ("bad", "words"), [b[1:] for b in BAD_EVENTS], ids=[b[0] for b in BAD_EVENTS]
)
def test_bad_event_in_array_names_field_and_index(
    srv: ServerProcess, auth: dict[str, str], bad: dict[str, Any], words: tuple[str, ...]
) -> None:
    body = dumps(batch_with(bad, index=2)).encode()
    response = post_raw(srv, auth, body, **{"content-type": "application/json"})
    assert_error(response, 400, "event 2", *words)


@pytest.mark.parametrize(
    ("bad", "words"), [b[1:] for b in BAD_EVENTS], ids=[b[0] for b in BAD_EVENTS]
)
def test_bad_event_in_ndjson_names_field_and_index(
    srv: ServerProcess, auth: dict[str, str], bad: dict[str, Any], words: tuple[str, ...]
) -> None:
    lines = [dumps(e) for e in batch_with(bad, index=3, size=5)]
    body = ("\n".join(lines) + "\n").encode()
    response = post_raw(srv, auth, body, **{"content-type": "application/x-ndjson"})
    assert_error(response, 400, "event 3", *words)


@pytest.mark.parametrize(
    ("bad", "words"),
    [b[1:] for b in BAD_EVENTS if isinstance(b[1], dict)],
    ids=[b[0] for b in BAD_EVENTS if isinstance(b[1], dict)],
)
def test_bad_single_object_names_field_and_index(
    srv: ServerProcess, auth: dict[str, str], bad: dict[str, Any], words: tuple[str, ...]
) -> None:
    response = post_raw(srv, auth, dumps(bad).encode())
    assert_error(response, 400, "event 0", *words)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_cost_is_refused_naming_field_and_index(
    srv: ServerProcess, auth: dict[str, str], literal: str
) -> None:
    """What Python's json.dumps writes for float('nan') and float('inf')."""
    events = [good(i) for i in range(3)]
    events[1] = {**GOOD, "cost_usd": float(literal.lower().replace("infinity", "inf"))}
    body = json.dumps(events).encode()
    assert literal.encode() in body
    message = assert_error(post_raw(srv, auth, body), 400, "event 1", "cost_usd")
    assert "finite" in message or literal in message


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b'{"session_id": "a", ', ("JSON",)),
        (b"[1, 2,", ()),
        (b"not json at all", ("JSON",)),
        (json.dumps(GOOD).encode() + b" trailing", ("JSON",)),
        (b"\xff\xfe\x00", ("JSON",)),
    ],
    ids=["truncated object", "truncated array", "text", "trailing garbage", "binary"],
)
def test_invalid_json_is_400(
    srv: ServerProcess, auth: dict[str, str], body: bytes, words: tuple[str, ...]
) -> None:
    assert_error(post_raw(srv, auth, body), 400, *words)


def test_invalid_ndjson_line_names_its_index(srv: ServerProcess, auth: dict[str, str]) -> None:
    lines = [json.dumps(good(0)), json.dumps(good(1)), '{"session_id": ', json.dumps(good(3))]
    body = "\n".join(lines).encode()
    assert_error(
        post_raw(srv, auth, body, **{"content-type": "application/x-ndjson"}), 400, "event 2"
    )


@pytest.mark.parametrize("body", [b"", b"   \n\t ", b"[]"], ids=["empty", "blank", "empty array"])
def test_empty_body_is_400(srv: ServerProcess, auth: dict[str, str], body: bytes) -> None:
    assert_error(post_raw(srv, auth, body), 400)


def test_empty_ndjson_is_400(srv: ServerProcess, auth: dict[str, str]) -> None:
    assert_error(post_raw(srv, auth, b"\n\n", **{"content-type": "application/x-ndjson"}), 400)


def test_body_over_limit_is_413(srv: ServerProcess, auth: dict[str, str]) -> None:
    """The module's server has a 1 MiB limit; a valid batch just over it is refused."""
    events = [good(i % 60) | {"session_id": f"ga-s{i}"} for i in range(15_000)]
    body = json.dumps(events).encode()
    assert len(body) > 1024 * 1024
    assert_error(post_raw(srv, auth, body), 413)


def test_chunked_body_over_limit_is_413(srv: ServerProcess, auth: dict[str, str]) -> None:
    """No Content-Length: the limit holds for streamed bodies too."""

    def chunks() -> Iterator[bytes]:
        yield b"["
        for i in range(15_000):
            yield json.dumps(good(i % 60) | {"session_id": f"ga-c{i}"}).encode() + b","
        yield json.dumps(good(0)).encode() + b"]"

    response = httpx.post(srv.url + "/api/ingest", content=chunks(), headers=auth, timeout=30)
    assert_error(response, 413)


def test_default_limit_is_10_mib(server: ServerProcess, auth: dict[str, str]) -> None:
    """The default server refuses an 11 MiB body and accepts a 9 MiB one."""
    pad = " " * (11 * 1024 * 1024)
    big = (json.dumps(good(0))[:-1] + "," + '"role": "crew"' + pad + "}").encode()
    assert_error(post_raw(server, auth, big), 413)
    small = (json.dumps(good(0))[:-1] + pad[: 9 * 1024 * 1024] + "}").encode()
    response = post_raw(server, auth, small)
    assert response.status_code == 202, response.text


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dGVzdDp0ZXN0"},
        {"Authorization": "test-token-0123456789"},
        {"Authorization": "Bearer test-token-0123456789x"},
    ],
    ids=["missing", "wrong", "empty", "basic", "no scheme", "longer"],
)
def test_missing_or_wrong_token_is_401(srv: ServerProcess, headers: dict[str, str]) -> None:
    response = httpx.post(srv.url + "/api/ingest", json=GOOD, headers=headers, timeout=30)
    assert_error(response, 401)


def test_batch_with_one_invalid_event_stores_none(srv: ServerProcess, auth: dict[str, str]) -> None:
    events = [good(i) | {"session_id": f"ga-batch{i}"} for i in range(50)]
    events[49]["cost_usd"] = -1
    assert_error(post_raw(srv, auth, json.dumps(events).encode()), 400, "event 49")
    ndjson = "\n".join(json.dumps(e) for e in events).encode()
    assert_error(post_raw(srv, auth, ndjson, **{"content-type": "application/x-ndjson"}), 400)
    stored = [e for e in fetch_all_costs(srv.url) if e["session_id"].startswith("ga-batch")]
    assert stored == []
    events[49]["cost_usd"] = 1
    response = post_raw(srv, auth, json.dumps(events).encode())
    assert response.json() == {"accepted": 50, "duplicates": 0}


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/nothing-here", 404),
        ("GET", "/api/stats/nothing", 404),
        ("POST", "/api/costs", 405),
        ("DELETE", "/api/ingest", 405),
        ("GET", "/api/ingest", 405),
        ("PUT", "/health", 405),
    ],
)
def test_404_and_405_use_the_error_shape(
    srv: ServerProcess, auth: dict[str, str], method: str, path: str, status: int
) -> None:
    response = httpx.request(method, srv.url + path, headers=auth, timeout=30)
    assert_error(response, status)


@pytest.mark.parametrize(
    ("path", "params", "words"),
    [
        ("/api/costs", {"limit": "0"}, ("limit",)),
        ("/api/costs", {"limit": "10001"}, ("limit",)),
        ("/api/costs", {"limit": "ten"}, ("limit",)),
        ("/api/costs", {"cursor": "not-a-cursor"}, ("cursor",)),
        ("/api/costs", {"from": "last week"}, ("from",)),
        ("/api/costs", {"to": "2026-11-20T10:00:00"}, ("to",)),
        ("/api/costs", {"from": "2026-11-20", "to": "2026-11-10"}, ("to",)),
        ("/api/stats/daily", {"tz": "Mars/Olympus_Mons"}, ("tz",)),
        ("/api/stats/daily", {"group_by": "colour"}, ("group_by",)),
        ("/api/stats/summary", {"tz": "Nowhere"}, ("tz",)),
        ("/api/stats/roles", {"from": "2026-13-45"}, ("from",)),
        ("/api/stats/rigs", {"to": "tomorrow"}, ("to",)),
        ("/api/costs", {"from": "0001-01-01", "tz": "Asia/Kolkata"}, ("from",)),
        ("/api/costs", {"to": "9999-12-31"}, ("to",)),
        ("/api/stats/daily", {"from": "0001-01-01T00:00:00+05:00"}, ("from",)),
        ("/api/stats/summary", {"to": "9999-12-31", "tz": "America/Los_Angeles"}, ("to",)),
        ("/api/costs", {"cursor": "OTk5OTk5OTk5OTk5OTk5OTk5OTk6MQ=="}, ("cursor",)),
    ],
)
def test_bad_query_parameters_are_400(
    srv: ServerProcess, path: str, params: dict[str, str], words: tuple[str, ...]
) -> None:
    assert_error(httpx.get(srv.url + path, params=params, timeout=30), 400, *words)


def test_server_log_has_no_tracebacks(srv: ServerProcess) -> None:
    """Every refusal above was a clean 4xx, not an exception escaping a handler."""
    assert "Traceback" not in srv.log_text()
