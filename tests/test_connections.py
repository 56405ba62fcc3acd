"""Connection hygiene over a real server: half-sent requests and idle keep-alive
connections are closed by the server after their timeouts, and connections beyond
`max_connections` get a 503 in the JSON error shape."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import TOKEN, ServerFactory

HALF_SENT = 300
PARTS = (
    b"",  # connected, sends nothing
    b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n",  # headers never finished
    b"POST /api/ingest HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n"
    b"Authorization: Bearer " + TOKEN.encode() + b"\r\n\r\n[{",  # body cut
)


@contextlib.contextmanager
def sockets(port: int, count: int, part: bytes = b"") -> Iterator[list[socket.socket]]:
    opened = []
    try:
        for i in range(count):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(part or PARTS[i % len(PARTS)])
            opened.append(sock)
        yield opened
    finally:
        for sock in opened:
            sock.close()


def read_to_end(sock: socket.socket, timeout: float = 120.0) -> bytes:
    """Everything the server sends until it closes the connection (fails if it does not)."""
    sock.settimeout(timeout)
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


def test_half_sent_requests_are_closed_by_the_server(server_factory: ServerFactory) -> None:
    srv = server_factory(request_timeout_s="2", keep_alive_timeout_s="1")
    with sockets(srv.port, HALF_SENT) as half_sent:
        assert httpx.get(srv.url + "/health", timeout=60).status_code == 200
        answers = [read_to_end(sock) for sock in half_sent]
    timed_out = [a for a in answers if a.startswith(b"HTTP/1.1 408")]
    assert len(timed_out) == HALF_SENT, {a[:300] for a in answers}
    body = json.loads(timed_out[0].split(b"\r\n\r\n", 1)[1])
    assert body == {"error": "request not received in time", "status": 408, "ok": False}
    assert httpx.get(srv.url + "/health", timeout=60).status_code == 200


def test_idle_keep_alive_connections_are_closed(server_factory: ServerFactory) -> None:
    srv = server_factory(keep_alive_timeout_s="1")
    request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with sockets(srv.port, 1, request) as (sock,):
        answer = read_to_end(sock)
    assert answer.startswith(b"HTTP/1.1 200") and answer.count(b"HTTP/1.1") == 1


def test_connections_beyond_the_cap_get_a_json_503(server_factory: ServerFactory) -> None:
    srv = server_factory(max_connections="20", request_timeout_s="300")
    request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    with sockets(srv.port, 25, b"GET / HTTP/1.1\r\n"):
        answers = []
        for _ in range(20):
            with sockets(srv.port, 1, request) as (sock,):
                answers.append(read_to_end(sock))
            if answers[-1].startswith(b"HTTP/1.1 503"):
                break
    busy = answers[-1]
    assert busy.startswith(b"HTTP/1.1 503"), answers
    assert json.loads(busy.split(b"\r\n\r\n", 1)[1]) == {
        "error": "too many connections, retry later",
        "status": 503,
        "ok": False,
    }
    assert httpx.get(srv.url + "/health", timeout=60).status_code == 200


@pytest.mark.parametrize("setting", ["request_timeout_s=0", "max_connections=0"])
def test_limits_must_be_positive(setting: str) -> None:
    from gasometer.config import load_settings
    from gasometer.errors import ConfigError

    name, value = setting.split("=")
    with pytest.raises(ConfigError):
        load_settings({name: value}, environ={})
