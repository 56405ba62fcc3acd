"""`gasometer token`: scopes, list, revoke, and tokens that work (or stop working) on a
running server at once."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from tests.conftest import READ_TOKEN, ServerFactory
from tests.test_cli import events, gasometer


def make(data: Path, *args: str) -> str:
    """Run `gasometer token …` and return the token it printed."""
    result = gasometer("token", "--data-dir", str(data), *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_second_default_token_keeps_the_first(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first, second = make(data), make(data)
    assert first != second
    listing = gasometer("token", "--list", "--data-dir", str(data)).stdout
    assert "ingest-1" in listing and "ingest-2" in listing
    for token in (first, second):
        digest = hashlib.sha256(token.encode()).hexdigest()
        assert digest[:12] in listing
        assert token not in listing
    again = gasometer("token", "--label", "ingest-1", "--data-dir", str(data))
    assert again.returncode == 1 and "exists" in again.stderr


def test_list_shows_label_scope_digest_and_date(tmp_path: Path) -> None:
    data = tmp_path / "data"
    token = make(data, "--scope", "read", "--label", "grafana")
    rows = gasometer("token", "--list", "--data-dir", str(data)).stdout.splitlines()
    assert rows[0].split() == ["LABEL", "SCOPE", "DIGEST", "CREATED"]
    label, scope, digest, created = rows[1].split()
    assert (label, scope) == ("grafana", "read")
    assert digest == hashlib.sha256(token.encode()).hexdigest()[:12]
    assert created.endswith("Z") and created[:2] == "20"


def test_tokens_work_and_stop_working_while_serving(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """Made, used, revoked by label and by digest prefix, all without a restart; reads
    are closed here so the read token matters."""
    data = tmp_path / "data"
    srv = server_factory(data, public_read="false")
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        ingest = make(data)
        assert client.post("/api/ingest", json=events(1), headers=bearer(ingest)).status_code == 202
        read = make(data, "--scope", "read", "--label", "dash")
        assert client.get("/api/costs", headers=bearer(read)).status_code == 200
        assert client.post("/api/ingest", json=events(1), headers=bearer(read)).status_code == 403
        admin = make(data, "--scope", "admin")
        sql = client.post("/api/sql", json={"sql": "SELECT 1 AS x"}, headers=bearer(admin))
        assert sql.status_code == 200, sql.text
        assert (
            client.post("/api/sql", json={"sql": "SELECT 1"}, headers=bearer(read)).status_code
            == 403
        )

        revoked = gasometer("token", "--revoke", "dash", "--data-dir", str(data))
        assert revoked.returncode == 0 and "dash" in revoked.stdout
        assert client.get("/api/costs", headers=bearer(read)).status_code == 401
        prefix = hashlib.sha256(ingest.encode()).hexdigest()[:8]
        assert gasometer("token", "--revoke", prefix, "--data-dir", str(data)).returncode == 0
        assert client.post("/api/ingest", json=events(1), headers=bearer(ingest)).status_code == 401
        assert client.get("/api/costs", headers=bearer(admin)).status_code == 200


def test_revoke_refuses_unknown_and_ambiguous(tmp_path: Path) -> None:
    data = tmp_path / "data"
    make(data)
    unknown = gasometer("token", "--revoke", "nobody", "--data-dir", str(data))
    assert unknown.returncode == 1 and "nobody" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1
    short = gasometer("token", "--revoke", "ab", "--data-dir", str(data))
    assert short.returncode == 1


def test_old_token_lines_stay_ingest_tokens(server_factory: ServerFactory, tmp_path: Path) -> None:
    """A tokens file from before scopes (`<digest> <label>`) keeps working for ingest only."""
    data = tmp_path / "data"
    data.mkdir()
    old = "old-style-token-value"
    digest = hashlib.sha256(old.encode()).hexdigest()
    (data / "tokens.sha256").write_text(f"{digest} token\n")
    srv = server_factory(data, public_read="false")
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        assert client.post("/api/ingest", json=events(1), headers=bearer(old)).status_code == 202
        assert client.get("/api/costs", headers=bearer(old)).status_code == 403
    listing = gasometer("token", "--list", "--data-dir", str(data)).stdout
    assert "token" in listing and "ingest" in listing


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_refuses_to_listen_off_loopback_without_tokens(tmp_path: Path, host: str) -> None:
    data = str(tmp_path / "d")
    result = gasometer("serve", "--data-dir", data, "--host", host, "--port", "1")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no ingest or admin token" in lines[0], result.stderr


def test_a_read_token_alone_does_not_open_the_network(tmp_path: Path) -> None:
    data = tmp_path / "d"
    make(data, "--scope", "read")
    result = gasometer("serve", "--data-dir", str(data), "--host", "0.0.0.0", "--port", "1")
    assert result.returncode == 1 and "no ingest or admin token" in result.stderr


def test_tokens_file_is_private_and_a_broken_one_refuses_all(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """The file is mode 600; if someone breaks it, its tokens stop working (the settings'
    tokens go on) rather than the server failing."""
    data = tmp_path / "data"
    token = make(data, "--scope", "read")
    path = data / "tokens.sha256"
    assert path.stat().st_mode & 0o777 == 0o600
    srv = server_factory(data, public_read="false")
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        assert client.get("/api/costs", headers=bearer(token)).status_code == 200
        path.write_text(path.read_text() + "not-a-digest\n")
        assert client.get("/api/costs", headers=bearer(token)).status_code == 401
        assert client.get("/api/costs", headers=bearer(READ_TOKEN)).status_code == 200
    assert "ignoring the tokens file" in srv.log_text()
