"""The command line: `health`, `compact`, `sql` in every format, and errors as one line
on stderr with a non-zero exit and no traceback."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest

from tests.conftest import TOKEN, ServerFactory, ServerProcess, free_port, server_env

HEADERS = {"Authorization": f"Bearer {TOKEN}"}


def gasometer(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user would, with none of the developer's GASOMETER_* settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GASOMETER_")}
    return subprocess.run(
        [sys.executable, "-m", "gasometer", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**clean, **(env or {})},
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gasometer: error: "), lines[0]
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def events(n: int, month: str = "2026-10", start: int = 0) -> list[dict[str, Any]]:
    """n distinct events (for distinct `start`s too) in one month."""
    return [
        {
            "session_id": ["hq-mayor", "ga-nux", "ga-crew-max"][i % 3],
            "cost_usd": (i % 8) / 4,
            "ended_at": f"{month}-{1 + i % 28:02d}T{i % 24:02d}:00:{i % 60:02d}.{i:06d}Z",
            "input_tokens": i,
        }
        for i in range(start, start + n)
    ]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[dict[str, Any]]]]:
    """A data directory holding 300 events in two months: flushed, then stopped."""
    data = tmp_path_factory.mktemp("cli") / "data"
    sent = events(200) + events(100, month="2026-11")
    proc = ServerProcess(data, free_port(), server_env()).start()
    try:
        for start in range(0, 300, 50):
            response = httpx.post(
                proc.url + "/api/ingest", json=sent[start : start + 50], headers=HEADERS
            )
            assert response.status_code == 202
    finally:
        proc.stop()
    yield data, sent


COUNT = "SELECT count(*) AS n, sum(input_tokens) AS tokens FROM events"


def test_sql_table(store: tuple[Path, list[dict[str, Any]]]) -> None:
    data, sent = store
    result = gasometer("sql", COUNT, "--data-dir", str(data))
    assert result.returncode == 0, result.stderr
    assert "300" in result.stdout and str(sum(e["input_tokens"] for e in sent)) in result.stdout
    assert "n" in result.stdout and "tokens" in result.stdout


def test_sql_csv(store: tuple[Path, list[dict[str, Any]]]) -> None:
    data, sent = store
    result = gasometer("sql", COUNT, "--format", "csv", "--data-dir", str(data))
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows == [["n", "tokens"], ["300", str(sum(e["input_tokens"] for e in sent))]]


def test_sql_json(store: tuple[Path, list[dict[str, Any]]]) -> None:
    data, sent = store
    query = "SELECT role, count(*) AS n FROM events GROUP BY role ORDER BY role"
    result = gasometer("sql", query, "--format", "json", "--data-dir", str(data))
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["columns"] == ["role", "n"]
    role = {"hq-mayor": "mayor", "ga-nux": "polecat", "ga-crew-max": "crew"}
    counts = Counter(role[e["session_id"]] for e in sent)
    assert [list(r) for r in body["rows"]] == [[k, counts[k]] for k in sorted(counts)]


def test_sql_parquet(store: tuple[Path, list[dict[str, Any]]], tmp_path: Path) -> None:
    data, _ = store
    out = tmp_path / "out.parquet"
    query = "SELECT session_id, cost_usd FROM events"
    result = gasometer(
        "sql", query, "--format", "parquet", "--output", str(out), "--data-dir", str(data)
    )
    assert result.returncode == 0, result.stderr
    table = pq.read_table(out)
    assert table.num_rows == 300 and table.column_names == ["session_id", "cost_usd"]


def test_sql_reads_the_wal_and_hourly(server_factory: ServerFactory) -> None:
    """Events acknowledged but not yet flushed (the server was SIGKILLed) are counted."""
    srv = server_factory(flush_interval_s="3600")
    assert httpx.post(srv.url + "/api/ingest", json=events(40), headers=HEADERS).status_code == 202
    srv.kill()
    for query, want in [
        ("SELECT count(*) FROM events", 40),
        ("SELECT sum(event_count)::BIGINT FROM hourly", 40),
    ]:
        result = gasometer("sql", query, "--format", "json", "--data-dir", str(srv.data_dir))
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["rows"][0][0] == want


def test_health(store: tuple[Path, list[dict[str, Any]]]) -> None:
    data, _ = store
    result = gasometer("health", "--data-dir", str(data))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "ok" and report["event_count"] == 300
    assert report["partitions"] == ["2026-10", "2026-11"]
    assert report["wal_backlog_events"] == 0


def test_health_while_the_server_runs(server: ServerProcess) -> None:
    assert (
        httpx.post(server.url + "/api/ingest", json=events(7), headers=HEADERS).status_code == 202
    )
    result = gasometer("health", "--data-dir", str(server.data_dir))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["event_count"] == 7


def test_compact(server_factory: ServerFactory) -> None:
    srv = server_factory(flush_interval_s="0.05", compact_min_files="1000")
    with httpx.Client(base_url=srv.url, headers=HEADERS) as client:
        for n in range(6):
            assert client.post("/api/ingest", json=events(10, start=100 * n)).status_code == 202
            while client.get("/health").json()["wal_backlog_events"]:
                pass
    srv.stop()
    before = list((srv.data_dir / "events").rglob("*.parquet"))
    assert len(before) == 6
    result = gasometer("compact", "--data-dir", str(srv.data_dir))
    assert result.returncode == 0, result.stderr
    assert "compacted" in result.stdout
    after = list((srv.data_dir / "events").rglob("*.parquet"))
    assert len(after) == 1 and not set(after) & set(before)
    count = gasometer(
        "sql", "SELECT count(*) FROM events", "--format", "csv", "--data-dir", str(srv.data_dir)
    )
    assert count.stdout.split() == ["count_star()", "60"]


def test_compact_refuses_while_the_server_runs(server: ServerProcess) -> None:
    result = gasometer("compact", "--data-dir", str(server.data_dir))
    assert_one_line_error(result, "in use")


@pytest.mark.parametrize(
    "query",
    ["SELEC 1", "SELECT * FROM no_such_table", "SELECT nonsense_column FROM events", ""],
    ids=["syntax", "table", "column", "empty"],
)
def test_bad_sql_is_one_line(store: tuple[Path, list[dict[str, Any]]], query: str) -> None:
    data, _ = store
    assert_one_line_error(gasometer("sql", query, "--data-dir", str(data)))


def test_data_dir_that_is_a_file(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "plain-file"
    not_a_dir.write_text("x")
    for command in (["health"], ["compact"], ["sql", "SELECT 1"]):
        result = gasometer(*command, "--data-dir", str(not_a_dir))
        assert_one_line_error(result, str(not_a_dir))


def test_data_dir_without_permission(tmp_path: Path) -> None:
    """A directory the user may not write (read-only mount when root, mode 000 otherwise)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() == 0:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(locked)])
        if done.returncode != 0:
            pytest.skip("root, and cannot mount a read-only tmpfs")
    else:
        locked.chmod(0)
    try:
        for command in (["health"], ["compact"], ["sql", "SELECT 1"]):
            result = gasometer(*command, "--data-dir", str(locked / "data"))
            assert_one_line_error(result, str(locked))
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", "-l", str(locked)], check=False)
        else:
            locked.chmod(0o755)


def test_bad_configuration_is_one_line(tmp_path: Path) -> None:
    result = gasometer("health", "--data-dir", str(tmp_path), env={"GASOMETER_PORT": "eighty"})
    assert_one_line_error(result, "port")


def test_serve_on_a_data_dir_in_use_is_one_line(server: ServerProcess) -> None:
    result = gasometer("serve", "--data-dir", str(server.data_dir), "--port", str(free_port()))
    message = assert_one_line_error(result, "in use")
    assert str(server.data_dir.resolve()) in message


def test_token_is_stored_as_its_digest_and_accepted(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """`gasometer token` prints a token once and keeps only its SHA-256 on disk."""
    data = tmp_path / "data"
    made = gasometer("token", "--label", "ci", "--data-dir", str(data))
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    stored = (data / "tokens.sha256").read_text()
    assert token not in stored
    assert hashlib.sha256(token.encode()).hexdigest() in stored
    srv = server_factory(data)
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        ok = client.post(
            "/api/ingest", json=events(1), headers={"Authorization": f"Bearer {token}"}
        )
        assert ok.status_code == 202, ok.text
        bad = client.post(
            "/api/ingest", json=events(1), headers={"Authorization": "Bearer x" + token}
        )
        assert bad.status_code == 401
