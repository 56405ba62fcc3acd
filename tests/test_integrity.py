"""Nothing acknowledged is ever counted wrong: identity forever, running totals with
event ids, poison batches, a lost or damaged ledger, and the window every answer covers.

Each test drives a real `gasometer serve` on loopback; expected totals are written out
by hand from the events the test sends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from gasometer.model import CostEvent, StoredEvent
from gasometer.runtime import Gasometer
from gasometer.store import ledger
from tests.conftest import (
    TOKEN,
    ServerFactory,
    ServerProcess,
    fetch_all_costs,
    make_settings,
    server_env,
)

AUTH = {"Authorization": f"Bearer {TOKEN}"}
DAY0 = datetime(2026, 10, 5, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def post(url: str, events: list[dict[str, Any]] | dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{url}/api/ingest", json=events, headers=AUTH, timeout=30)


def totals(url: str, **params: str) -> tuple[float, int]:
    """(cost, events) over every day the API knows, from /api/stats/daily."""
    days = httpx.get(f"{url}/api/stats/daily", params=params, timeout=30).json()["days"]
    return round(sum(d["total_usd"] for d in days), 6), sum(d["event_count"] for d in days)


def event(session: str, cost: float, ended: datetime, **extra: Any) -> dict[str, Any]:
    return {"session_id": session, "cost_usd": cost, "ended_at": iso(ended), **extra}


def test_an_event_id_resent_two_days_later_is_a_duplicate(server: ServerProcess) -> None:
    first = event("s-resend", 2.5, DAY0 + timedelta(hours=9), event_id="req-resend")
    assert post(server.url, first).json() == {"accepted": 1, "duplicates": 0}
    later = {**first, "ended_at": iso(DAY0 + timedelta(days=2, hours=9))}
    assert post(server.url, later).json() == {"accepted": 0, "duplicates": 1}
    server.kill()
    server.start()
    even_later = {**first, "ended_at": iso(DAY0 + timedelta(days=40))}
    assert post(server.url, even_later).json() == {"accepted": 0, "duplicates": 1}
    assert totals(server.url) == (2.5, 1)


def test_a_version_chain_over_fourteen_hours_is_one_event(server: ServerProcess) -> None:
    """23:00 $1, 10:00 $2, 13:00 next day $3 (growing tokens): one event of $3."""
    start = DAY0 + timedelta(hours=23)
    versions = [(start, 1.0, 100), (start + timedelta(hours=11), 2.0, 200)]
    versions.append((start + timedelta(hours=38), 3.0, 300))
    for n, (ended, cost, tokens) in enumerate(versions):
        body = event("s-chain", cost, ended, event_id="req-chain", output_tokens=tokens)
        assert post(server.url, body).json()["accepted"] == 1, n
        if n == 1:
            server.kill()
            server.start()
    stale = event("s-chain", 2.0, start, event_id="req-chain", output_tokens=200)
    assert post(server.url, stale).json() == {"accepted": 0, "duplicates": 1}
    assert totals(server.url) == (3.0, 1)
    days = httpx.get(f"{server.url}/api/stats/daily", timeout=30).json()["days"]
    assert sum(d["output_tokens"] for d in days) == 300


def test_running_totals_with_event_ids_count_the_largest_total(server: ServerProcess) -> None:
    """$5, then $3 under four more event ids (one after a restart), all at one ended_at."""
    ended = DAY0 + timedelta(hours=12)
    base = {"kind": "total", "session_id": "gt-total", "ended_at": iso(ended)}
    assert post(server.url, {**base, "cost_usd": 5.0, "event_id": "t-a"}).json()["accepted"] == 1
    for name in ("t-b", "t-c", "t-d"):
        body = {**base, "cost_usd": 3.0, "event_id": name}
        assert post(server.url, body).json() == {"accepted": 0, "duplicates": 1}
    server.kill()
    server.start()
    body = {**base, "cost_usd": 3.0, "event_id": "t-e"}
    assert post(server.url, body).json() == {"accepted": 0, "duplicates": 1}
    assert totals(server.url)[0] == 5.0
    grown = {**base, "cost_usd": 7.0, "event_id": "t-f"}
    assert post(server.url, grown).json()["accepted"] == 1
    later = {**base, "cost_usd": 9.0, "ended_at": iso(ended + timedelta(minutes=5))}
    assert post(server.url, later).json()["accepted"] == 1
    assert totals(server.url)[0] == 9.0


def test_token_counts_that_could_overflow_a_sum_are_refused(server: ServerProcess) -> None:
    events = [
        event("s-big", 0.01, DAY0 + timedelta(seconds=n), input_tokens=2**53) for n in range(1025)
    ]
    response = post(server.url, events)
    assert response.status_code == 400
    assert "input_tokens" in response.json()["error"] and "event 0" in response.json()["error"]
    ok = event("s-after", 1.25, DAY0 + timedelta(hours=3), input_tokens=10_000_000_000)
    assert post(server.url, ok).status_code == 202
    assert totals(server.url) == (1.25, 1)


@pytest.mark.parametrize(
    "ended", ["2000-01-01T00:30:00+01:00", "2100-01-01T00:00:00Z", "1999-12-31T23:59:59Z"]
)
def test_events_outside_the_default_window_are_refused(server: ServerProcess, ended: str) -> None:
    response = post(server.url, {"session_id": "s-edge", "cost_usd": 1, "ended_at": ended})
    assert response.status_code == 400, response.text
    assert "ended_at" in response.json()["error"]


def test_events_at_the_window_edges_are_in_default_answers(server: ServerProcess) -> None:
    edges = ["2000-01-01T00:00:00Z", "2099-12-31T23:59:59Z"]
    for n, ended in enumerate(edges):
        body = {"session_id": f"s-edge-{n}", "cost_usd": 1.5, "ended_at": ended}
        assert post(server.url, body).status_code == 202
    assert totals(server.url) == (3.0, 2)


def test_retention_below_a_day_is_a_config_error(tmp_path: Path) -> None:
    env = server_env(GASOMETER_RETENTION_DAYS="0.5")
    cmd = [sys.executable, "-m", "gasometer", "health", "--data-dir", str(tmp_path / "d")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "retention_days" in done.stderr and "Traceback" not in done.stderr


# -- poison batches --------------------------------------------------------------------


def poison_store(data_dir: Path) -> tuple[float, int]:
    """A store whose WAL holds, between good batches, one batch that cannot be flushed
    (two events of one session-hour whose token sum overflows 64 bits, written through
    the writer as a client of an older version could have). Returns the good totals."""
    from gasometer.ingest.normalize import normalize

    settings = make_settings(data_dir, flush_interval_s=3600.0)
    gm = Gasometer.open(settings, background=False)
    try:
        good = [CostEvent(session_id="good", cost_usd=1.0, ended_at=DAY0, event_id="g1")]
        gm.ingest(good)
        bad = normalize(
            [
                CostEvent(session_id="bad", cost_usd=0.5, ended_at=DAY0, event_id=f"b{n}")
                for n in range(2)
            ],
            gm.attributor,
        )
        poison = [msgspec.structs.replace(d, amounts=(0.5, 2**62, 0, 0, 0)) for d in bad]
        gm.ingestor.ingest(poison)
        gm.ingest([CostEvent(session_id="good", cost_usd=2.0, ended_at=DAY0, event_id="g2")])
        assert gm.store.pending_count() == 4
    finally:
        gm.ingestor.close()
        gm.engine.close()
        gm.store.conn.close()
        gm.store._duck.close()
        gm.store._release()
    return 3.0, 2


def test_a_batch_that_cannot_flush_is_quarantined_and_the_rest_flows(
    tmp_path: Path, server_factory: ServerFactory
) -> None:
    data_dir = tmp_path / "data"
    good_cost, good_events = poison_store(data_dir)
    srv = server_factory(data_dir, flush_interval_s="0.2")
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        health = wait_for(
            client, lambda h: h["quarantined_batches"] == 1 and h["wal_backlog_events"] == 0
        )
        assert health["status"] == "degraded" and health["quarantined_events"] == 2
        assert totals(srv.url) == (good_cost, good_events)
        later = event("after", 4.0, DAY0 + timedelta(hours=1), event_id="a1")
        assert post(srv.url, later).status_code == 202
        wait_for(client, lambda h: h["wal_backlog_events"] == 0)
        assert totals(srv.url) == (good_cost + 4.0, good_events + 1)
        resend = event("bad", 0.5, DAY0, event_id="b0")
        assert post(srv.url, resend).json() == {"accepted": 0, "duplicates": 1}
        metrics = client.get("/metrics").text
        assert "gasometer_quarantined_events 2" in metrics
    srv.stop()
    listed = cli("quarantine", "list", "--data-dir", str(data_dir))
    assert '"events": 2' in listed.stdout and "Conversion" in listed.stdout
    batch = ledger.quarantined(ledger.connect(data_dir))[0].id
    shown = cli("quarantine", "show", str(batch), "--data-dir", str(data_dir))
    assert shown.stdout.count('"session_id":"bad"') == 2
    assert (
        "no quarantined batch"
        in cli("quarantine", "drop", "999", "--data-dir", str(data_dir)).stderr
    )
    assert cli("quarantine", "drop", str(batch), "--data-dir", str(data_dir)).returncode == 0
    srv.start()
    health = httpx.get(f"{srv.url}/health", timeout=30).json()
    assert health["status"] == "ok" and health["quarantined_batches"] == 0
    assert totals(srv.url) == (good_cost + 4.0, good_events + 1)


def wait_for(client: httpx.Client, ready: Any, timeout: float = 60) -> dict[str, Any]:
    """Poll /health until `ready(health)`; generous, since this only waits."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        health: dict[str, Any] = client.get("/health").json()
        if ready(health):
            return health
        assert time.monotonic() < deadline, health
        time.sleep(0.1)


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "gasometer", *args]
    return subprocess.run(cmd, env=env or server_env(), capture_output=True, text=True, timeout=300)


# -- a lost or damaged ledger ----------------------------------------------------------


def history() -> list[dict[str, Any]]:
    """Increments with and without ids, growing versions and running totals over 40 days."""
    events: list[dict[str, Any]] = []
    for n in range(1200):
        ended = DAY0 + timedelta(minutes=47 * n)
        session = f"gt-rig{n % 3}-polecat{n % 7}"
        body = event(session, round(0.01 * (n % 97 + 1), 2), ended, output_tokens=n)
        if n % 4:
            body["event_id"] = f"req-{n}"
        events.append(body)
        if n % 10 == 0:
            events.append({**body, "cost_usd": body["cost_usd"] * 2, "output_tokens": n + 500})
        if n % 25 == 0:
            running = {"kind": "total", "session_id": f"hq-mayor-{n % 2}", "ended_at": iso(ended)}
            events.append({**running, "cost_usd": round(n / 10, 2), "event_id": f"tot-{n}"})
    return events


def snapshot(url: str) -> dict[str, Any]:
    """Every answer that must be equal after a rebuild (sums of floats to 1e-9: their
    last bits depend on the order DuckDB adds them in)."""
    reads = ["/api/stats/daily?group_by=rig", "/api/stats/roles", "/api/stats/treemap"]
    answers = {path: httpx.get(url + path, timeout=30).json() for path in reads}
    rows = fetch_all_costs(url)
    answers["events"] = sorted((r["id"], r["cost_usd"], r["output_tokens"]) for r in rows)
    return rounded(answers)


def rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(v) for v in value]
    return value


def test_a_deleted_ledger_is_refused_then_rebuilt_exactly(
    tmp_path: Path, server_factory: ServerFactory
) -> None:
    data_dir = tmp_path / "data"
    srv = server_factory(data_dir, flush_interval_s="0.2", compact_min_files="3")
    sent = history()
    for start in range(0, len(sent), 100):
        assert post(srv.url, sent[start : start + 100]).status_code == 202
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        wait_for(client, lambda h: h["wal_backlog_events"] == 0)
    before = snapshot(srv.url)
    srv.stop()
    files = sorted(p for p in data_dir.rglob("*.parquet"))
    assert files
    for name in ("ledger.sqlite", "ledger.sqlite-wal", "ledger.sqlite-shm"):
        (data_dir / name).unlink(missing_ok=True)

    refused = cli("serve", "--data-dir", str(data_dir), "--port", "1")
    assert refused.returncode == 1
    assert "rebuild-catalog" in refused.stderr and "Traceback" not in refused.stderr
    assert sorted(p for p in data_dir.rglob("*.parquet")) == files

    rebuilt = cli("rebuild-catalog", "--data-dir", str(data_dir))
    assert rebuilt.returncode == 0, rebuilt.stderr
    srv.start()
    assert snapshot(srv.url) == before
    for start in range(0, len(sent), 100):
        assert post(srv.url, sent[start : start + 100]).json()["accepted"] == 0
    assert snapshot(srv.url) == before


def test_sigkill_during_rebuild_leaves_the_directory_as_it_was(
    tmp_path: Path, server_factory: ServerFactory
) -> None:
    data_dir = tmp_path / "data"
    srv = server_factory(data_dir, flush_interval_s="0.2")
    sent = history()[:300]
    assert post(srv.url, sent).status_code == 202
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        wait_for(client, lambda h: h["wal_backlog_events"] == 0)
    before = snapshot(srv.url)
    srv.stop()
    (data_dir / "ledger.sqlite").unlink()
    env = server_env(GASOMETER_PAUSE_AT="rebuild-written")
    cmd = [sys.executable, "-m", "gasometer", "rebuild-catalog", "--data-dir", str(data_dir)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = data_dir / ".paused-rebuild-written"
    try:
        import time

        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert not (data_dir / "ledger.sqlite").exists()
    assert "rebuild-catalog" in cli("health", "--data-dir", str(data_dir)).stderr
    assert cli("rebuild-catalog", "--data-dir", str(data_dir)).returncode == 0
    srv.start()
    assert snapshot(srv.url) == before
    assert post(srv.url, sent).json()["accepted"] == 0


def test_a_ledger_with_a_zeroed_tail_is_refused_then_rebuilt(
    tmp_path: Path, server_factory: ServerFactory
) -> None:
    data_dir = tmp_path / "data"
    srv = server_factory(data_dir, flush_interval_s="0.2")
    assert post(srv.url, history()[:400]).status_code == 202
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        wait_for(client, lambda h: h["wal_backlog_events"] == 0)
    before = snapshot(srv.url)
    srv.stop()
    path = data_dir / "ledger.sqlite"
    size = path.stat().st_size
    with path.open("r+b") as handle:
        handle.seek(size - 16384)
        handle.write(b"\0" * 16384)
    refused = cli("serve", "--data-dir", str(data_dir), "--port", "1")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "unreadable" in refused.stderr and "rebuild-catalog" in refused.stderr
    assert cli("rebuild-catalog", "--data-dir", str(data_dir)).returncode == 0
    assert list(data_dir.glob("ledger.sqlite.replaced-*")), "the damaged ledger is kept"
    srv.start()
    assert snapshot(srv.url) == before


def test_health_is_degraded_while_ingest_cannot_commit(tmp_path: Path) -> None:
    """A ledger that fails under a running writer (here: its connection gone)."""
    from gasometer.errors import IngestUnavailable
    from gasometer.query.health import health_report

    gm = Gasometer.open(make_settings(tmp_path / "data"), background=False)
    try:
        gm.ingest([CostEvent(session_id="a", cost_usd=1.0, ended_at=DAY0)])
        assert health_report(gm.store, gm.engine, gm.ingestor.commit_error).status == "ok"
        gm.ingestor.conn.close()
        with pytest.raises(IngestUnavailable):
            gm.ingest([CostEvent(session_id="b", cost_usd=1.0, ended_at=DAY0)])
        report = health_report(gm.store, gm.engine, gm.ingestor.commit_error)
        assert report.status == "degraded" and "ingest cannot commit" in (report.last_error or "")
        gm.ingestor.conn = ledger.connect(tmp_path / "data")
        gm.ingest([CostEvent(session_id="c", cost_usd=1.0, ended_at=DAY0)])
        assert health_report(gm.store, gm.engine, gm.ingestor.commit_error).status == "ok"
    finally:
        gm.close()


def test_stored_rows_describe_themselves(tmp_path: Path) -> None:
    """Running totals carry their point and files their batches (what a rebuild reads)."""
    import pyarrow.parquet as pq

    gm = Gasometer.open(make_settings(tmp_path / "data"), background=False)
    try:
        gm.ingest(
            [CostEvent(session_id="t", cost_usd=4.0, ended_at=DAY0, kind="total", output_tokens=9)]
        )
        gm.ingest([CostEvent(session_id="i", cost_usd=1.0, ended_at=DAY0)])
        gm.store.flush()
        entries = gm.store.files()
    finally:
        gm.close()
    assert {e.batches for e in entries} == {"1-2"}
    path = tmp_path / "data" / next(e.path for e in entries if e.dataset == "events")
    assert pq.read_metadata(path).metadata[b"gasometer.batches"] == b"1-2"
    rows = pq.read_table(path).to_pylist()
    by_session = {r["session_id"]: r["running_total"] for r in rows}
    assert by_session["t"] == {
        "cost_usd": 4.0,
        "input_tokens": 0,
        "output_tokens": 9,
        "cache_creation_tokens": 0,
        "cache_read_tokens": 0,
    }
    assert by_session["i"] is None
    assert StoredEvent.__struct_fields__[-1] == "running_total"


def test_files_of_a_failed_publish_are_removed_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A publish that fails (a full disk at the ledger's commit) leaves no file behind,
    without waiting for a restart; the next flush publishes everything."""
    import sqlite3

    gm = Gasometer.open(make_settings(tmp_path / "data"), background=False)
    try:
        gm.ingest([CostEvent(session_id="a", cost_usd=1.0, ended_at=DAY0, event_id="x")])
        real = ledger.publish_flush

        def full_disk(*args: Any, **kwargs: Any) -> None:
            raise sqlite3.OperationalError("database or disk is full")

        monkeypatch.setattr(ledger, "publish_flush", full_disk)
        with pytest.raises(sqlite3.OperationalError):
            gm.store.flush()
        assert not list((tmp_path / "data").rglob("*.parquet"))
        assert not ledger.unfinished_writes(gm.store.conn)
        monkeypatch.setattr(ledger, "publish_flush", real)
        assert gm.store.flush() == 1
        on_disk = {
            p.relative_to(tmp_path / "data").as_posix()
            for p in (tmp_path / "data").rglob("*.parquet")
        }
        assert on_disk == {f.path for f in gm.store.files()}
    finally:
        gm.close()
