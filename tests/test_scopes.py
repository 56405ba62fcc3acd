"""Every route declares a scope, and each scope is enforced on a real server.

Both tests are generated from the app's own route table (`app.routes`): a new route
without a scope fails the first, and the second probes every route with no credentials
and with an ingest, a read and an admin token (and a read session cookie).
"""

from __future__ import annotations

import base64
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from litestar.handlers import HTTPRouteHandler
from litestar.routes import HTTPRoute, WebSocketRoute

from gasometer.api.app import create_app
from gasometer.api.auth import ROUTE_SCOPES
from tests.conftest import (
    ADMIN_TOKEN,
    INGEST_TOKEN,
    READ_TOKEN,
    ServerProcess,
    free_port,
    make_settings,
    server_env,
)

Probe = tuple[str, str, str]
"""(method or WS, concrete path, scope)."""
PATH_VALUES = {"name": "daily", "file_path": "index.html", "path": "swagger"}
CREDENTIALS: dict[str, str | None] = {
    "none": None,
    "ingest": INGEST_TOKEN,
    "read": READ_TOKEN,
    "admin": ADMIN_TOKEN,
}
ALLOWED = {
    "public": {"none", "ingest", "read", "admin"},
    "ingest": {"ingest", "admin"},
    "read": {"read", "admin"},
    "admin": {"admin"},
}


def _is_litestar_options(handler: HTTPRouteHandler) -> bool:
    """Litestar adds an OPTIONS handler per path (it answers `Allow` only, no data)."""
    return handler.http_methods == {"OPTIONS"} and "scope" not in handler.opt


def route_table(tmp_path: Path) -> list[Probe]:
    """Every (method, path, scope) of the app; fails on a handler without a valid scope."""
    app = create_app(make_settings(tmp_path / "table"))
    probes: list[Probe] = []
    missing: list[str] = []
    for route in app.routes:
        path = re.sub(r"\{(\w+):\w+\}", lambda m: PATH_VALUES.get(m[1], "x"), route.path)
        if isinstance(route, WebSocketRoute):
            handlers = [("WS", route.route_handler)]
        else:
            assert isinstance(route, HTTPRoute)
            handlers = [
                (method, h)
                for h in route.route_handlers
                if not _is_litestar_options(h)
                for method in sorted(h.http_methods)
            ]
        for method, handler in handlers:
            scope = handler.opt.get("scope")
            if scope not in ROUTE_SCOPES:
                missing.append(f"{method} {route.path}")
            else:
                probes.append((method, path, scope))
    assert not missing, f"routes without a scope in opt: {missing}"
    return probes


def test_every_route_declares_a_scope(tmp_path: Path) -> None:
    probes = route_table(tmp_path)
    paths = {(m, p) for m, p, _ in probes}
    scopes = {(m, p): s for m, p, s in probes}
    assert ("POST", "/api/ingest") in paths and ("WS", "/ws/live") in paths
    assert scopes[("POST", "/api/sql")] == "admin"
    assert scopes[("POST", "/api/import")] == "admin"
    assert scopes[("GET", "/api/import/status")] == "read"
    assert scopes[("GET", "/metrics")] == "read"
    assert scopes[("GET", "/api/export")] == "read"
    assert scopes[("POST", "/api/hooks/claude")] == "ingest"


@pytest.fixture
def closed_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A loopback server with reads closed (`public_read = false`); HOME is empty so an
    admin's default import reads nothing of the developer's."""
    home = tmp_path / "home"
    home.mkdir()
    env = server_env(GASOMETER_PUBLIC_READ="false", HOME=str(home), CLAUDE_CONFIG_DIR="")
    proc = ServerProcess(tmp_path / "data", free_port(), env)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def session_cookie(client: httpx.Client) -> str:
    """A dashboard session opened with the read token."""
    response = client.post("/api/session", json={"token": READ_TOKEN})
    assert response.status_code == 204, response.text
    return response.cookies["gasometer_session"]


def ws_status(port: int, headers: dict[str, str]) -> int:
    """The HTTP status the server answers a WebSocket handshake to /ws/live with."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        "GET /ws/live HTTP/1.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    headers = {"Host": f"127.0.0.1:{port}", **headers}
    lines += [f"{k}: {v}" for k, v in headers.items()]
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n" not in head:
            chunk = sock.recv(1024)
            if not chunk:
                break
            head += chunk
    return int(head.split()[1])


def test_every_route_enforces_its_scope(closed_server: ServerProcess, tmp_path: Path) -> None:
    probes = route_table(tmp_path)
    failures = []
    with httpx.Client(base_url=closed_server.url, timeout=60) as client:
        for method, path, scope in probes:
            for who, token in [*CREDENTIALS.items(), ("session", None)]:
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                if who == "session":  # a fresh one: DELETE /api/session ends the last
                    headers["Cookie"] = f"gasometer_session={session_cookie(client)}"
                    client.cookies.clear()
                if method == "WS":
                    status = ws_status(closed_server.port, headers)
                else:
                    status = client.request(method, path, headers=headers).status_code
                expected = ALLOWED[scope] | ({"session"} if scope in ("read", "public") else set())
                denied = status in (401, 403)
                if denied == (who in expected):
                    failures.append(f"{method} {path} [{scope}] as {who}: {status}")
                # A refused WebSocket handshake is always 403 (uvicorn); HTTP says 401.
                unauthenticated = 403 if method == "WS" else 401
                if who == "none" and denied and status != unauthenticated:
                    failures.append(f"{method} {path} without credentials: {status}")
    assert not failures, "\n".join(failures)


def test_reads_open_on_loopback_by_default(server: ServerProcess, tmp_path: Path) -> None:
    """The default server (loopback, public_read unset) answers every read without a
    token; ingest and admin routes still need theirs."""
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for method, path, scope in route_table(tmp_path):
            if method == "WS":
                status = ws_status(server.port, {})
                assert (status == 101) == (scope in ("read", "public")), (path, status)
                continue
            status = client.request(method, path).status_code
            if scope in ("read", "public"):
                assert status not in (401, 403), (method, path, status)
            else:
                assert status == 401, (method, path, status)
