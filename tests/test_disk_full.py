"""A full disk: ingest is refused with 507 and a clear message while it is full, accepted
again as soon as space returns, and nothing acknowledged is lost.

The real thing runs on a 16 MiB tmpfs (needs root to mount; skipped otherwise). The
refusal by `min_free_bytes` runs everywhere.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import TOKEN, ServerFactory, fetch_all_costs

HEADERS = {"Authorization": f"Bearer {TOKEN}"}
MiB = 1024 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs, unmounted at the end (after the servers using it have stopped)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def batch(tag: str, n: int, size: int = 20) -> list[dict[str, Any]]:
    return [
        {
            "session_id": f"ga-{tag}",
            "cost_usd": 0.5,
            "ended_at": f"2026-11-20T10:00:{i:02d}.{n:06d}Z",
            "input_tokens": n * 1000 + i,
            "model": "claude-sonnet-4-5",
        }
        for i in range(size)
    ]


def fill(path: Path, leave: int = 0) -> None:
    """Write a ballast file until only `leave` bytes are free (or the disk is full)."""
    chunk = b"\0" * MiB
    with (path / "ballast").open("wb") as handle:
        while True:
            free = shutil.disk_usage(path).free
            if free <= leave:
                break
            try:
                handle.write(chunk[: max(1, min(len(chunk), free - leave))])
                handle.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break


def assert_full(response: httpx.Response) -> None:
    assert response.status_code == 507, response.text
    body = response.json()
    assert body["status"] == 507 and body["ok"] is False
    assert "disk full" in body["error"] and "refused" in body["error"]


def wait_flushed(client: httpx.Client, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while client.get("/health").json()["wal_backlog_events"]:
        assert time.monotonic() < deadline, "WAL not flushed after space returned"
        time.sleep(0.1)


def test_out_of_space_refuses_then_recovers_losing_nothing(
    small_disk: Path, server_factory: ServerFactory
) -> None:
    """The disk really fills (ENOSPC inside SQLite and Parquet writes)."""
    srv = server_factory(small_disk / "data", min_free_bytes="0", flush_interval_s="1.0")
    acked: list[list[dict[str, Any]]] = []
    refused: list[list[dict[str, Any]]] = []
    with httpx.Client(base_url=srv.url, headers=HEADERS, timeout=30) as client:
        for n in range(10):
            events = batch("full", n)
            assert client.post("/api/ingest", json=events).status_code == 202
            acked.append(events)
        fill(small_disk)
        deadline = time.monotonic() + 120
        while "background flush failed" not in srv.log_text():
            assert time.monotonic() < deadline, "the flush did not run into the full disk"
            time.sleep(0.1)
        assert client.get("/health").json()["wal_backlog_events"] == 200
        for n in range(10, 400):
            events = batch("full", n)
            response = client.post("/api/ingest", json=events)
            if response.status_code == 202:
                acked.append(events)
                continue
            assert_full(response)
            refused.append(events)
            if len(refused) == 3:
                break
        assert len(refused) == 3, "the disk never filled up"
        assert client.get("/health").status_code == 200
        assert len(fetch_all_costs(srv.url)) == 20 * len(acked)

        (small_disk / "ballast").unlink()
        for events in refused:
            assert client.post("/api/ingest", json=events).json() == {
                "accepted": 20,
                "duplicates": 0,
            }
            acked.append(events)
        wait_flushed(client)
    srv.kill()
    srv.start()
    assert_exactly(srv.url, acked)
    assert "Traceback" not in srv.log_text()


def assert_exactly(url: str, batches: list[list[dict[str, Any]]]) -> None:
    rows = fetch_all_costs(url, limit=5000)
    stored = sorted(r["input_tokens"] for r in rows)
    assert stored == sorted(e["input_tokens"] for b in batches for e in b)


def test_below_min_free_bytes_refuses_then_recovers(
    small_disk: Path, server_factory: ServerFactory
) -> None:
    """The safety margin: refused while free space is under `min_free_bytes`."""
    srv = server_factory(small_disk / "data", min_free_bytes=str(4 * MiB))
    with httpx.Client(base_url=srv.url, headers=HEADERS, timeout=30) as client:
        first = batch("margin", 0)
        assert client.post("/api/ingest", json=first).status_code == 202
        fill(small_disk, leave=3 * MiB)
        assert_full(client.post("/api/ingest", json=batch("margin", 1)))
        health = client.get("/health").json()
        assert (health["status"], health["disk_ok"]) == ("degraded", False)
        (small_disk / "ballast").unlink()
        second = batch("margin", 1)
        assert client.post("/api/ingest", json=second).status_code == 202
        assert client.get("/health").json()["disk_ok"] is True
    assert_exactly(srv.url, [first, second])
    assert "Traceback" not in srv.log_text(), "a refusal is not a crash"


def test_min_free_bytes_above_free_space_refuses_everywhere(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """Without a small disk: a margin larger than the free space refuses every ingest,
    reads keep working, and a restart with a sane margin accepts again."""
    data = tmp_path / "margin"
    first = server_factory(data, min_free_bytes=str(1 << 62))
    with httpx.Client(base_url=first.url, headers=HEADERS, timeout=30) as client:
        assert_full(client.post("/api/ingest", json=batch("huge", 0)))
        assert client.get("/api/stats/daily").json() == {"days": []}
        assert client.get("/health").json()["disk_ok"] is False
    first.stop()
    second = server_factory(data)
    with httpx.Client(base_url=second.url, headers=HEADERS, timeout=30) as client:
        assert client.post("/api/ingest", json=batch("huge", 0)).status_code == 202
    assert_exactly(second.url, [batch("huge", 0)])
    assert os.path.isdir(data)
