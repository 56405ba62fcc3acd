"""Reads while the server ingests, flushes and compacts without pause: no read fails,
and paging through a fixed time range returns each of its events exactly once even as
the files under it are replaced."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.conftest import TOKEN, ServerFactory

HEADERS = {"Authorization": f"Bearer {TOKEN}"}
OLD = datetime(2026, 9, 1, tzinfo=UTC)
NEW = datetime(2026, 9, 15, tzinfo=UTC)
"""Same month as OLD: the files holding the paged events are compacted while paging."""


def events(start: datetime, n: int, offset: int) -> list[dict[str, Any]]:
    return [
        {
            "session_id": f"ga-load{(offset + i) % 7}",
            "cost_usd": 0.25,
            "ended_at": (start + timedelta(seconds=offset + i)).isoformat(),
            "input_tokens": offset + i,
        }
        for i in range(n)
    ]


def test_reads_during_constant_flush_and_compaction(server_factory: ServerFactory) -> None:
    srv = server_factory(flush_interval_s="0.05", compact_min_files="2")
    client = httpx.Client(base_url=srv.url, timeout=30)
    for n in range(10):
        assert client.post(
            "/api/ingest", json=events(OLD, 100, n * 100), headers=HEADERS
        ).is_success
        time.sleep(0.06)
    stop = threading.Event()
    written = [0]

    def writer() -> None:
        with httpx.Client(base_url=srv.url, headers=HEADERS, timeout=30) as own:
            while not stop.is_set():
                response = own.post("/api/ingest", json=events(NEW, 50, written[0]))
                assert response.status_code == 202
                written[0] += 50
                time.sleep(0.02)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    failures: list[str] = []
    pages_read = 0
    deadline = time.monotonic() + 4
    try:
        while time.monotonic() < deadline:
            seen: list[int] = []
            cursor = None
            while True:
                params: dict[str, Any] = {"from": "2026-09-01", "to": "2026-09-01", "limit": 37}
                if cursor:
                    params["cursor"] = cursor
                page = client.get("/api/costs", params=params)
                pages_read += 1
                if page.status_code != 200:
                    failures.append(page.text)
                    break
                seen += [e["input_tokens"] for e in page.json()["events"]]
                cursor = page.json()["next_cursor"]
                for path in ("/api/stats/daily", "/api/stats/roles", "/api/stats/summary"):
                    answer = client.get(path)
                    if answer.status_code != 200:
                        failures.append(f"{path}: {answer.text}")
                if cursor is None:
                    break
            assert sorted(seen) == list(range(1000))
    finally:
        stop.set()
        thread.join(timeout=30)
        client.close()
    assert not failures, failures[:3]
    assert written[0] > 500 and pages_read > 50
    compacted = [p for p in (srv.data_dir / "events").rglob("c*.parquet")]
    assert compacted, "compaction never ran"
