"""docs/operating.md's backup while serving: the ledger through SQLite's online backup
first, then the Parquet trees; the copy opens as a store with every event."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.conftest import TOKEN, ServerProcess, free_port, server_env

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def batch(start: int, n: int) -> list[dict[str, object]]:
    return [
        {
            "session_id": ["hq-mayor", "ga-nux"][i % 2],
            "cost_usd": 0.25 + i % 5,
            "ended_at": f"2026-10-{1 + i % 27:02d}T{i % 24:02d}:{i % 60:02d}:00Z",
            "input_tokens": i,
            "event_id": f"b{i}",
        }
        for i in range(start, start + n)
    ]


def health(data_dir: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "gasometer", "health", "--data-dir", str(data_dir)],
        capture_output=True, text=True, check=True, env=server_env(), timeout=60,
    )  # fmt: skip
    return done.stdout


def wait_for(check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_online_backup_restores_every_event(tmp_path: Path) -> None:
    data = tmp_path / "data"
    # 300 pending events trigger a flush to Parquet; the next 200 stay in the ledger's
    # write-ahead batches (no timed flush): the backup must carry both.
    env = server_env(GASOMETER_FLUSH_INTERVAL_S="3600", GASOMETER_FLUSH_MAX_EVENTS="300")
    proc = ServerProcess(data, free_port(), env).start()
    backup = tmp_path / "backup"
    try:
        assert httpx.post(proc.url + "/api/ingest", json=batch(0, 300), headers=AUTH).is_success
        wait_for(lambda: httpx.get(proc.url + "/health").json()["files"] > 0)
        assert httpx.post(proc.url + "/api/ingest", json=batch(300, 200), headers=AUTH).is_success
        assert httpx.get(proc.url + "/health").json()["wal_backlog_events"] == 200
        backup.mkdir()
        src = sqlite3.connect(data / "ledger.sqlite")
        dst = sqlite3.connect(backup / "ledger.sqlite")
        try:
            src.backup(dst)  # what `sqlite3 ledger.sqlite ".backup …"` does
        finally:
            dst.close()
            src.close()
        for tree in ("events", "hourly"):
            shutil.copytree(data / tree, backup / tree)
    finally:
        proc.stop()
    assert '"event_count": 500' in health(backup)
    restored = ServerProcess(backup, free_port(), server_env()).start()
    try:
        got = httpx.get(restored.url + "/api/costs", params={"limit": 1000}).json()["events"]
        assert sorted(e["event_id"] for e in got) == sorted(f"b{i}" for i in range(500))
    finally:
        restored.stop()
