"""Reads while the server ingests, flushes and compacts without pause: no read fails,
and paging through a fixed time range returns each of its events exactly once even as
the files under it are replaced. A fixed amount of reading, however fast the machine."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import TOKEN, ServerFactory, fetch_all_costs

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


PASSES = 2
"""Full pagings of the fixed range to read, at least (a fixed amount of work, not a rate)."""
STATS = ("/api/stats/daily", "/api/stats/roles", "/api/stats/summary")
"""One of these is read after each page, in turn."""


def compacted(srv_data: Path) -> frozenset[str]:
    """The compacted event files there are now."""
    return frozenset(p.name for p in (srv_data / "events").rglob("c*.parquet"))


def test_reads_during_constant_flush_and_compaction(server_factory: ServerFactory) -> None:
    """At least PASSES full pagings, and on until compaction has replaced files under them
    twice while they ran: every page and stats read answers 200, every paging returns the
    range's 1000 events once each, and every event the writer sent is stored."""
    srv = server_factory(flush_interval_s="0.05", compact_min_files="2")
    client = httpx.Client(base_url=srv.url, timeout=60)
    for n in range(10):
        assert client.post(
            "/api/ingest", json=events(OLD, 100, n * 100), headers=HEADERS
        ).is_success
        time.sleep(0.06)
    stop = threading.Event()
    written = [0]
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            with httpx.Client(base_url=srv.url, headers=HEADERS, timeout=60) as own:
                while not stop.is_set():
                    response = own.post("/api/ingest", json=events(NEW, 50, written[0]))
                    assert response.status_code == 202, response.text
                    written[0] += 50
                    time.sleep(0.02)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    failures: list[str] = []
    passes = 0
    file_sets = {compacted(srv.data_dir)}
    deadline = time.monotonic() + 240
    try:
        while passes < PASSES or len(file_sets) < 3:
            assert not errors, errors
            assert time.monotonic() < deadline, "compaction did not run during the reads"
            seen: list[int] = []
            cursor = None
            while True:
                params: dict[str, Any] = {"from": "2026-09-01", "to": "2026-09-01", "limit": 37}
                if cursor:
                    params["cursor"] = cursor
                page = client.get("/api/costs", params=params)
                if page.status_code != 200:
                    failures.append(page.text)
                    break
                seen += [e["input_tokens"] for e in page.json()["events"]]
                cursor = page.json()["next_cursor"]
                path = STATS[len(seen) // 37 % len(STATS)]
                answer = client.get(path)
                if answer.status_code != 200:
                    failures.append(f"{path}: {answer.text}")
                if cursor is None:
                    break
            assert sorted(seen) == list(range(1000))
            passes += 1
            file_sets.add(compacted(srv.data_dir))
    finally:
        stop.set()
        thread.join(timeout=60)
        client.close()
    if errors:
        raise errors[0]
    assert not thread.is_alive()
    assert not failures, failures[:3]
    new = fetch_all_costs(srv.url, **{"from": "2026-09-15", "to": "2026-09-15"})
    assert sorted(e["input_tokens"] for e in new) == list(range(written[0]))
