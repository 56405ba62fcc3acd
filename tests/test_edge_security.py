"""Against a real server: dashboard sessions, reads closed off loopback, the Host
allow-list, the WebSocket Origin check, security headers, errors without paths, and
control characters refused in ingested text."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    ADMIN_TOKEN,
    INGEST_TOKEN,
    READ_TOKEN,
    TOKEN,
    ServerFactory,
    ServerProcess,
)
from tests.test_cli import events, gasometer
from tests.test_scopes import ws_status

CSP = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_session_cookie_opens_reads(server_factory: ServerFactory) -> None:
    srv = server_factory(public_read="false")
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        assert client.get("/api/session").json() == {
            "reads_open": False,
            "authenticated": False,
            "scopes": [],
        }
        assert client.post("/api/session", json={"token": "nope"}).status_code == 401
        assert client.post("/api/session", json={"token": INGEST_TOKEN}).status_code == 403
        assert client.post("/api/session", content=b"{").status_code == 400
        assert client.get("/api/costs").status_code == 401

        opened = client.post("/api/session", json={"token": READ_TOKEN})
        assert opened.status_code == 204
        cookie = opened.headers["set-cookie"]
        assert cookie.startswith("gasometer_session=")
        attributes = {a.strip().lower() for a in cookie.split(";")[1:]}
        assert {"httponly", "samesite=strict", "path=/"} <= attributes
        sid = opened.cookies["gasometer_session"]
        assert READ_TOKEN not in cookie and len(sid) >= 32
        assert "secure" not in attributes
        proxied = httpx.post(
            srv.url + "/api/session",
            json={"token": READ_TOKEN},
            headers={"X-Forwarded-Proto": "https"},
        )
        assert "secure" in proxied.headers["set-cookie"].lower().split("; ")

        assert client.get("/api/costs").status_code == 200
        assert client.get("/api/session").json() == {
            "reads_open": False,
            "authenticated": True,
            "scopes": ["read"],
        }
        status = ws_status(srv.port, {"Cookie": f"gasometer_session={sid}"})
        assert status == 101
        # A session grants reads only: admin routes still need the bearer token.
        assert client.post("/api/sql", json={"sql": "SELECT 1"}).status_code == 401

        closed = client.delete("/api/session")
        assert closed.status_code == 204
        assert "max-age=0" in closed.headers["set-cookie"].lower()
        client.cookies.clear()
        assert client.get("/api/costs", cookies={"gasometer_session": sid}).status_code == 401
        assert ws_status(srv.port, {"Cookie": f"gasometer_session={sid}"}) == 403


def test_session_ends_with_its_token_and_with_the_server(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    made = gasometer("token", "--scope", "read", "--label", "dash", "--data-dir", str(data))
    token = made.stdout.strip()
    srv = server_factory(data, public_read="false")
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        assert client.post("/api/session", json={"token": token}).status_code == 204
        sid = client.cookies["gasometer_session"]
        assert client.get("/api/costs").status_code == 200
        assert gasometer("token", "--revoke", "dash", "--data-dir", str(data)).returncode == 0
        assert client.get("/api/costs").status_code == 401
    srv.stop()
    srv.start()
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        assert client.get("/api/costs", cookies={"gasometer_session": sid}).status_code == 401


def test_reads_closed_off_loopback(server_factory: ServerFactory) -> None:
    """Bound to every interface, reads need a read token; `public_read` opens them."""
    srv = server_factory(host="0.0.0.0")
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        assert client.get("/health").status_code == 200
        refused = client.get("/api/export")
        assert refused.status_code == 401
        assert refused.json()["ok"] is False and refused.json()["status"] == 401
        assert client.get("/metrics").status_code == 401
        assert client.get("/api/import/status").status_code == 401
        assert client.get("/api/export", headers=bearer(INGEST_TOKEN)).status_code == 403
        assert client.get("/api/export", headers=bearer(READ_TOKEN)).status_code == 200
        assert client.get("/api/session").json()["reads_open"] is False
    assert ws_status(srv.port, {}) == 403
    assert ws_status(srv.port, bearer(READ_TOKEN)) == 101
    srv.stop()
    public = server_factory(srv.data_dir, host="0.0.0.0", public_read="true")
    with httpx.Client(base_url=public.url, timeout=30) as client:
        assert client.get("/api/export").status_code == 200
        assert client.post("/api/sql", json={"sql": "SELECT 1"}).status_code == 401


def test_public_read_flag(tmp_path: Path) -> None:
    """`serve --public-read` is the command-line form of the setting."""
    from gasometer.cli import build_parser

    args = build_parser().parse_args(["serve", "--public-read", "--host", "0.0.0.0"])
    assert args.public_read is True
    assert build_parser().parse_args(["serve"]).public_read is None


def test_host_allow_list(server_factory: ServerFactory) -> None:
    """DNS rebinding: a request naming another host is refused before any route runs."""
    srv = server_factory(allowed_hosts="gasometer.example,10.1.2.3")
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        for host in ("localhost", "127.0.0.1", f"localhost:{srv.port}", "gasometer.example"):
            assert client.get("/api/costs", headers={"Host": host}).status_code == 200, host
        assert client.get("/health", headers={"Host": "[::1]:8000"}).status_code == 200
        assert client.get("/health", headers={"Host": "10.1.2.3:80"}).status_code == 200
        for host in ("evil.example", "127.0.0.1.evil.example", "gasometer.example.evil"):
            refused = client.get("/api/export", headers={"Host": host})
            assert refused.status_code == 421, host
            assert refused.json() == {
                "error": "unknown Host: not one of this server's names (allowed_hosts)",
                "status": 421,
                "ok": False,
            }
        assert (
            client.post(
                "/api/ingest", json=events(1), headers={"Host": "evil.example", **bearer(TOKEN)}
            ).status_code
            == 421
        )
    assert ws_status(srv.port, {"Host": "evil.example"}) == 403
    assert ws_status(srv.port, {"Host": f"localhost:{srv.port}"}) == 101


def test_websocket_origin(server: ServerProcess) -> None:
    """Browsers send Origin: only this server's own pages (or allowed hosts) may open the
    live stream; clients that send no Origin are fine."""
    port = server.port
    assert ws_status(port, {}) == 101
    assert ws_status(port, {"Origin": f"http://127.0.0.1:{port}"}) == 101
    assert ws_status(port, {"Origin": f"http://localhost:{port}"}) == 101
    for origin in ("https://evil.example", "null", "http://127.0.0.1.evil.example", "file://"):
        assert ws_status(port, {"Origin": origin}) == 403, origin
    # Even with a valid token, a foreign page is refused.
    assert ws_status(port, {"Origin": "https://evil.example", **bearer(ADMIN_TOKEN)}) == 403


def test_security_headers(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert page.headers["content-security-policy"].startswith(CSP)
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["x-frame-options"] == "DENY"
        api = client.get("/api/costs")
        assert api.headers["x-content-type-options"] == "nosniff"
        assert "content-security-policy" not in api.headers
        assert client.get("/nope").headers["x-content-type-options"] == "nosniff"


def test_errors_name_no_paths(server: ServerProcess, tmp_path: Path) -> None:
    """Errors of SQL and of import name neither the data directory, nor home, nor any
    other path on the server's disk."""
    data = str(server.data_dir.resolve())
    home = os.path.expanduser("~")
    queries = [
        f"SELECT * FROM read_parquet('{data}/nope/*.parquet')",
        "SELECT * FROM read_csv('/etc/passwd')",
        f"SELECT * FROM read_text('{home}/.bashrc')",
        "SELECT * FROM glob('/tmp/*')",
    ]
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for sql in queries:
            answer = client.post("/api/sql", json={"sql": sql}, headers=bearer(TOKEN))
            assert answer.status_code == 400, answer.text
            message = answer.json()["error"]
            for secret in (data, home, "/etc/passwd", "/tmp"):
                assert secret not in message, (sql, message)
        missing = tmp_path / "private" / "nothing-here"
        answer = client.post("/api/import", json={"paths": [str(missing)]}, headers=bearer(TOKEN))
        assert answer.status_code == 403, "outside the import roots"
        assert str(tmp_path) not in answer.json()["error"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("role", "poleca\x00t"),
        ("session_id", "ga-1\n"),
        ("rig", "\x1b[31mred"),
        ("worker", "tab\there"),
        ("issue", "del\x7f"),
        ("event_id", "\x00"),
    ],
)
def test_control_characters_refused(server: ServerProcess, field: str, value: str) -> None:
    good = events(2)
    bad = {**good[1], field: value}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        answer = client.post("/api/ingest", json=[good[0], bad], headers=bearer(TOKEN))
        assert answer.status_code == 400
        error = answer.json()["error"]
        assert error.startswith("event 1:") and f"(field {field})" in error, error
        assert "control characters" in error
        assert client.get("/api/costs").json()["events"] == []
        fine = {**good[1], "role": "polecat ünïcode ✓"}
        assert client.post("/api/ingest", json=fine, headers=bearer(TOKEN)).status_code == 202
