"""Retention removes whole raw event files older than the horizon, keeps every rollup total,
survives a kill between its steps, runs on the store's schedule and shows in /health."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from gasometer import cli
from gasometer.config import Settings
from gasometer.model import CostEvent
from gasometer.query import stats
from gasometer.query.health import health_report
from gasometer.query.sandbox import Limits, Sandbox
from gasometer.runtime import Gasometer
from gasometer.store import ledger, retention
from tests.conftest import TOKEN, ServerProcess, free_port, make_settings, server_env

NOW = datetime(2026, 11, 23, tzinfo=UTC)
DAYS = 60
HORIZON = NOW - timedelta(days=DAYS)  # 2026-09-24


def make_events(start: datetime, end: datetime, n: int, seed: int = 5) -> list[CostEvent]:
    """`n` events spread over [start, end), several sessions and beads."""
    rng = random.Random(seed)
    span = (end - start).total_seconds()
    return [
        CostEvent(
            session_id=rng.choice(["ga-nux", "ga-toast", "bd-slit", "hq-mayor", "hq-deacon"]),
            cost_usd=round(rng.uniform(0.001, 3.0), 4),
            ended_at=start + timedelta(seconds=rng.uniform(0, span)),
            output_tokens=rng.randrange(0, 9000),
            issue=rng.choice(["ga-1", "ga-2", "bd-7", None]),
            event_id=f"r{seed}-{i}",
        )
        for i in range(n)
    ]


def month(moment: datetime) -> str:
    return moment.strftime("%Y-%m")


def per_day(events: list[CostEvent]) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for e in events:
        out[e.ended_at.astimezone(UTC).date().isoformat()] += e.cost_usd
    return dict(out)


def per_issue(events: list[CostEvent]) -> dict[str | None, float]:
    out: dict[str | None, float] = defaultdict(float)
    for e in events:
        out[e.issue] += e.cost_usd
    return dict(out)


def kept_by_month(events: list[CostEvent], horizon: datetime) -> list[CostEvent]:
    """Events that stay when each month is one file: months whose newest event is recent."""
    newest: dict[str, datetime] = {}
    for e in events:
        key = month(e.ended_at)
        newest[key] = max(newest.get(key, e.ended_at), e.ended_at)
    return [e for e in events if newest[month(e.ended_at)] >= horizon]


def dashboard_days(gm: Gasometer) -> dict[str, float]:
    filters = stats.Filters(start="2026-01-01", end="2026-12-31")
    out: dict[str, float] = defaultdict(float)
    for row in stats.daily(gm.engine, filters, "role"):
        out[row.date] += row.total_usd
    return dict(out)


def sql(gm: Gasometer, query: str) -> list[tuple]:
    return Sandbox(gm.store.snapshot, Limits()).run(query).rows()


def issue_totals(gm: Gasometer) -> dict[str | None, float]:
    return dict(sql(gm, "SELECT issue, sum(cost_usd) FROM hourly GROUP BY issue"))


def assert_close(got: dict, expected: dict) -> None:
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value), key


def open_with(settings: Settings, events: list[CostEvent]) -> Gasometer:
    gm = Gasometer.open(settings, background=False)
    gm.ingest(events)
    gm.store.flush(force=True)
    gm.store.compact(full=True)
    gm.store.delete_retired(grace_s=0)
    return gm


@pytest.fixture
def events() -> list[CostEvent]:
    return make_events(datetime(2026, 5, 3, tzinfo=UTC), datetime(2026, 11, 22, tzinfo=UTC), 3000)


def test_retention_keeps_rollups_and_drops_old_months(tmp_path: Path, events: list) -> None:
    gm = open_with(make_settings(tmp_path / "data"), events)
    try:
        assert_close(dashboard_days(gm), per_day(events))
        hourly_before = {f.path for f in gm.store.files() if f.dataset == "hourly"}
        outcome = gm.store.apply_retention(DAYS, now=NOW.timestamp())
        assert all(p.startswith("events/") for p in outcome.files)
        gone_months = {Path(p).parent.name.removeprefix("month=") for p in outcome.files}
        assert gone_months == {"2026-05", "2026-06", "2026-07", "2026-08"}
        kept = kept_by_month(events, HORIZON)
        assert outcome.rows == len(events) - len(kept)
        gm.store.delete_retired(grace_s=0)
        for path in outcome.files:
            assert not (gm.store.data_dir / path).exists()
        # rollups: every total unchanged, computed from the input, not from the store
        assert_close(dashboard_days(gm), per_day(events))
        assert_close(issue_totals(gm), per_issue(events))
        assert {f.path for f in gm.store.files() if f.dataset == "hourly"} == hourly_before
        assert health_report(gm.store, gm.engine).event_count == len(events)
        # raw drill-down ends at the horizon: whole old months gone, every recent event kept
        count, oldest = sql(gm, "SELECT count(*), min(ended_at) FROM events")[0]
        assert count == len(kept)
        assert oldest == min(e.ended_at for e in kept)
        recent = sum(1 for e in events if e.ended_at >= HORIZON)
        assert sql(gm, f"SELECT count(*) FROM events WHERE ended_at >= '{HORIZON}'")[0][0] == recent
        # before the horizon, windows off the hour are cut at the hour by the rollup
        # (their raw events are gone), never answered from what little raw data is left
        lo, hi = (
            datetime(2026, 6, 10, 10, 30, tzinfo=UTC),
            datetime(2026, 6, 20, 10, 30, tzinfo=UTC),
        )
        filters = stats.Filters(start=lo.isoformat(), end=hi.isoformat())
        got = stats.totals(gm.engine, filters, lo, hi).total_usd
        lo_hour, hi_hour = (
            lo.replace(minute=0) + timedelta(hours=1),
            hi.replace(minute=0) + timedelta(hours=1),
        )
        assert got == pytest.approx(
            sum(e.cost_usd for e in events if lo_hour <= e.ended_at < hi_hour)
        )
    finally:
        gm.close()


def test_a_file_goes_only_when_all_its_rows_are_old(tmp_path: Path) -> None:
    gm = Gasometer.open(make_settings(tmp_path / "data"), background=False)
    try:
        early = make_events(datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 9, 10, tzinfo=UTC), 50)
        gm.ingest(early)
        gm.store.flush(force=True)
        straddle = make_events(
            datetime(2026, 9, 20, tzinfo=UTC), datetime(2026, 9, 30, tzinfo=UTC), 50, seed=6
        )
        gm.ingest(straddle)
        gm.store.flush(force=True)
        assert any(e.ended_at < HORIZON for e in straddle)
        files = sorted(f.path for f in gm.store.files() if f.dataset == "events")
        assert len(files) == 2
        outcome = gm.store.apply_retention(DAYS, now=NOW.timestamp())
        assert outcome.files == [files[0]]
        assert outcome.rows == len(early)
        assert sql(gm, "SELECT count(*) FROM events")[0][0] == len(straddle)
        assert_close(dashboard_days(gm), per_day(early + straddle))
    finally:
        gm.close()


def test_readers_keep_retired_files_for_the_grace_period(tmp_path: Path, events: list) -> None:
    gm = open_with(make_settings(tmp_path / "data"), events)
    try:
        old_snapshot = gm.store.snapshot()
        outcome = gm.store.apply_retention(DAYS, now=NOW.timestamp())
        assert outcome.files
        assert gm.store.delete_retired() == 0  # default grace: 120 s
        still = Sandbox(lambda: old_snapshot, Limits()).run("SELECT count(*) FROM events")
        assert still.rows()[0][0] == len(events)
        assert gm.store.delete_retired(grace_s=0) == len(outcome.files)
    finally:
        gm.close()


def test_retention_is_a_no_op_when_nothing_is_old(tmp_path: Path, events: list) -> None:
    gm = open_with(make_settings(tmp_path / "data"), events)
    try:
        before = gm.store.files()
        outcome = gm.store.apply_retention(3650, now=NOW.timestamp())
        assert outcome.files == []
        assert gm.store.files() == before
    finally:
        gm.close()


# -- crash safety -----------------------------------------------------------------------------

STEPS = {
    "before_publish": "",
    "after_publish": "retention.publish(store.conn, paths, horizon)",
    "after_unlink": textwrap.dedent(
        """\
        retention.publish(store.conn, paths, horizon)
        for p in paths:
            (store.data_dir / p).unlink()
        """
    ),
}


def run_and_kill(data_dir: Path, step: str) -> int:
    """In a child process: plan retention, run the steps up to `step`, then SIGKILL itself."""
    script = textwrap.dedent(
        f"""
        import os, signal
        from gasometer.config import load_settings
        from gasometer.store import retention
        from gasometer.store.store import Store
        settings = load_settings({{"data_dir": {str(data_dir)!r}}}, environ={{}})
        store = Store(settings)
        horizon = retention.horizon_us({DAYS}, {NOW.timestamp()})
        paths = [f.path for f in retention.expired_files(store.data_dir, store.files(), horizon)]
        print(len(paths), flush=True)
        {{steps}}
        os.kill(os.getpid(), signal.SIGKILL)
        """
    ).replace("{steps}", STEPS[step])
    child = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    return int(child.stdout.strip())


@pytest.mark.parametrize("step", list(STEPS))
def test_a_kill_between_steps_leaves_old_or_new_state(
    tmp_path: Path, events: list, step: str
) -> None:
    data_dir = tmp_path / "data"
    settings = make_settings(data_dir)
    open_with(settings, events).close()
    planned = run_and_kill(data_dir, step)
    assert planned == 4
    gm = Gasometer.open(settings, background=False)  # start-up sweeps what the kill left
    try:
        kept = kept_by_month(events, HORIZON) if step != "before_publish" else events
        assert sql(gm, "SELECT count(*) FROM events")[0][0] == len(kept)
        assert_close(dashboard_days(gm), per_day(events))
        assert_close(issue_totals(gm), per_issue(events))
        live = {f.path for f in ledger.live_files(gm.store.conn)}
        on_disk = {
            p.relative_to(gm.store.data_dir).as_posix()
            for dataset in ("events", "hourly")
            for p in (gm.store.data_dir / dataset).rglob("*.parquet")
        }
        assert on_disk == live
        assert ledger.retired_files(gm.store.conn, time.time() + 1) == []
        horizon = retention.applied_horizon(gm.store.conn)
        if step == "before_publish":
            assert horizon is None
        else:
            assert horizon == retention.horizon_us(DAYS, NOW.timestamp())
    finally:
        gm.close()


# -- schedule, /health and the CLI --------------------------------------------------------------


def recent_events() -> list[CostEvent]:
    now = datetime.now(UTC)
    return make_events(now - timedelta(days=200), now - timedelta(minutes=5), 2000, seed=9)


def test_store_schedule_applies_retention_and_health_reports_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    events = recent_events()
    gm = Gasometer.open(make_settings(data_dir), background=False)
    gm.ingest(events)
    plain = health_report(gm.store, gm.engine)
    assert plain.retention_days is None
    assert plain.retention_horizon is None
    assert plain.raw_events_since is not None
    assert datetime.fromisoformat(plain.raw_events_since) == min(e.ended_at for e in events)
    gm.close()

    env = server_env(GASOMETER_RETENTION_DAYS="90")
    started = datetime.now(UTC)
    server = ServerProcess(data_dir, free_port(), env).start()
    try:
        deadline = time.monotonic() + 120
        health = httpx.get(server.url + "/health").json()
        while health["retention_horizon"] is None and time.monotonic() < deadline:
            time.sleep(0.1)
            health = httpx.get(server.url + "/health").json()
        horizon = datetime.fromisoformat(health["retention_horizon"])
        # 90 days before a moment while the server ran (to the second, as reported).
        second = timedelta(seconds=1)
        ninety = timedelta(days=90)
        assert started - ninety - second <= horizon <= datetime.now(UTC) - ninety + second
        kept = kept_by_month(events, horizon)
        assert health["retention_days"] == 90
        assert datetime.fromisoformat(health["raw_events_since"]) == min(e.ended_at for e in kept)
        assert health["event_count"] == len(events)
        body = {"sql": "SELECT count(*) FROM events"}
        auth = {"Authorization": f"Bearer {TOKEN}"}
        counted = httpx.post(server.url + "/api/sql", json=body, headers=auth).json()
        assert counted["rows"][0][0] == len(kept)
        days = httpx.get(
            server.url + "/api/stats/daily", params={"from": "2020-01-01", "to": "2030-01-01"}
        ).json()["days"]
        got: dict[str, float] = defaultdict(float)
        for row in days:
            got[row["date"]] += row["total_usd"]
        assert_close(dict(got), per_day(events))
    finally:
        server.stop()


def test_cli_retention(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in list(os.environ):
        if key.startswith("GASOMETER_"):
            monkeypatch.delenv(key)
    data_dir = tmp_path / "data"
    events = recent_events()
    open_with(make_settings(data_dir), events).close()
    assert cli.main(["retention", "--data-dir", str(data_dir)]) == 1
    assert "no retention set" in capsys.readouterr().err
    before = sorted((data_dir / "events").rglob("*.parquet"))
    assert cli.main(["retention", "--data-dir", str(data_dir), "--days", "90", "--dry-run"]) == 0
    assert "files would go" in capsys.readouterr().out
    assert sorted((data_dir / "events").rglob("*.parquet")) == before
    assert cli.main(["retention", "--data-dir", str(data_dir), "--days", "90"]) == 0
    out = capsys.readouterr().out
    after = sorted((data_dir / "events").rglob("*.parquet"))
    horizon = datetime.now(UTC) - timedelta(days=90)
    expected_months = {month(e.ended_at) for e in kept_by_month(events, horizon)}
    assert {p.parent.name.removeprefix("month=") for p in after} == expected_months
    assert f"removed {len(before) - len(after)} raw event files" in out
