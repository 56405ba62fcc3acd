"""The demo generator: deterministic, realistic, priced right, and written for real."""

from __future__ import annotations

import itertools
import re
import sqlite3
import statistics
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import polars as pl
import pytest

from gasometer.config import Settings
from gasometer.demo import generate_events, write_demo
from gasometer.ingest.attribution import Attributor
from gasometer.model import CostEvent

from .conftest import make_settings

END = datetime(2026, 11, 20, 18, 30, tzinfo=UTC)

# USD per million tokens: input, output, 5-minute cache write, cache read (list prices).
LIST_PRICES = {
    "claude-opus-4-6": (5, 25, 6.25, 0.50),
    "claude-opus-4-5-20251101": (5, 25, 6.25, 0.50),
    "claude-opus-4-1-20250805": (15, 75, 18.75, 1.50),
    "claude-sonnet-4-5-20250929": (3, 15, 3.75, 0.30),
    "claude-haiku-4-5-20251001": (1, 5, 1.25, 0.10),
}
ROLES = {"mayor", "deacon", "boot", "dog", "witness", "refinery", "polecat", "crew"}


def demo(events: int, days: int = 28, seed: int = 3) -> list[CostEvent]:
    return list(itertools.chain.from_iterable(generate_events(events, days, seed, END)))


@pytest.fixture(scope="module")
def sample() -> list[CostEvent]:
    return demo(60_000)


def test_same_seed_same_events_other_seed_other_events() -> None:
    first = msgspec.json.encode(demo(3_000))
    assert msgspec.json.encode(demo(3_000)) == first
    assert msgspec.json.encode(demo(3_000, seed=4)) != first


@pytest.mark.parametrize("events", [1, 17, 25_001, 52_345])
def test_exactly_as_many_events_as_asked_each_with_its_own_id(events: int) -> None:
    got = demo(events)
    assert len(got) == events
    assert len({e.event_id for e in got}) == events


def test_cost_is_tokens_times_list_price(sample: list[CostEvent]) -> None:
    for event in sample:
        assert event.model is not None
        p_in, p_out, p_write, p_read = LIST_PRICES[event.model]
        expected = (
            event.input_tokens * p_in
            + event.output_tokens * p_out
            + event.cache_creation_tokens * p_write
            + event.cache_read_tokens * p_read
        ) / 1_000_000
        assert event.cost_usd == pytest.approx(expected, rel=1e-12)
        whole_input = event.input_tokens + event.cache_creation_tokens + event.cache_read_tokens
        assert whole_input <= 200_000  # no long-context tier in the demo


def test_every_role_rig_and_model_shows_up(sample: list[CostEvent]) -> None:
    attributor = Attributor()
    roles = Counter(e.role or attributor.from_session(e.session_id).role for e in sample)
    assert set(roles) == ROLES
    assert roles["polecat"] == max(roles.values())
    assert len({e.rig for e in sample}) >= 5
    assert {e.model for e in sample} == set(LIST_PRICES)
    names = {e.session_id for e in sample}
    for expected in ("hq-mayor", "hq-deacon", "hq-boot", "gt-witness", "ga-refinery"):
        assert expected in names
    assert any(re.fullmatch(r"ga-crew-[a-z]+", n) for n in names)
    assert any(n.startswith("careers-polecat-") for n in names)


def test_main_sessions_are_named_so_attribution_finds_their_role(sample: list[CostEvent]) -> None:
    attributor = Attributor()
    for event in sample:
        if event.parent_session_id is None:
            assert event.role is None
            assert attributor.from_session(event.session_id).role in ROLES


def test_subagents_point_at_a_parent_session_and_say_who_they_work_for(
    sample: list[CostEvent],
) -> None:
    names = {e.session_id for e in sample}
    kids = [e for e in sample if e.parent_session_id is not None]
    assert 0.02 * len(sample) < len(kids) < 0.3 * len(sample)
    for kid in kids:
        assert kid.parent_session_id in names
        assert kid.session_id.startswith("agent-")
        assert kid.role in ROLES and kid.worker and kid.rig


def test_beads_look_like_bead_ids_of_their_rig(sample: list[CostEvent]) -> None:
    with_issue = [e for e in sample if e.issue is not None]
    assert len(with_issue) > len(sample) / 3
    for event in with_issue:
        assert event.issue is not None
        assert re.fullmatch(r"[a-z]{2}-[0-9a-z]{5}", event.issue)
    assert len({e.issue for e in with_issue}) > 50


def test_sessions_hold_tens_to_hundreds_of_turns_one_after_another(
    sample: list[CostEvent],
) -> None:
    runs = [list(g) for _, g in itertools.groupby(sample, key=lambda e: e.session_id)]
    lengths = [len(r) for r in runs[:-1]]
    assert 10 <= statistics.median(lengths) <= 300
    pairs = [pair for run in runs for pair in itertools.pairwise(run)]
    in_turn = sum(1 for a, b in pairs if b.started_at is not None and a.ended_at <= b.started_at)
    assert in_turn > 0.98 * len(pairs)  # runs of one name rarely overlap another run
    for event in sample:
        assert event.started_at is not None and event.started_at <= event.ended_at


def test_history_spans_the_days_before_end_with_weekly_and_daily_rhythm(
    sample: list[CostEvent],
) -> None:
    frame = pl.DataFrame({"at": [e.ended_at for e in sample], "cost": [e.cost_usd for e in sample]})
    assert frame["at"].max() <= END
    assert frame["at"].min() >= END - timedelta(days=28, hours=12)
    per_day = frame.group_by(pl.col("at").dt.date().alias("day")).agg(pl.len().alias("n"))
    assert per_day.height >= 27
    weekday = per_day.with_columns(weekend=pl.col("day").dt.weekday() >= 6)
    mean = weekday.group_by("weekend").agg(pl.col("n").mean()).sort("weekend")["n"].to_list()
    assert mean[0] > 1.5 * mean[1]
    hours = Counter(e.ended_at.hour for e in sample)
    assert sum(hours[h] for h in range(12, 18)) > 3 * sum(hours[h] for h in range(0, 6))


def test_write_demo_ingests_for_real_and_only_into_an_empty_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings: Settings = make_settings(tmp_path / "data")
    assert write_demo(settings, events=3_000, days=10, seed=5, if_empty=True) == 3_000
    files = list((tmp_path / "data" / "events").rglob("*.parquet"))
    stored = pl.read_parquet(files, hive_partitioning=False)
    assert stored.height == 3_000
    assert stored["source"].unique().to_list() == ["demo"]
    with sqlite3.connect(tmp_path / "data" / "ledger.sqlite") as conn:
        assert conn.execute("SELECT count(*) FROM identity").fetchone()[0] == 3_000
    assert write_demo(settings, events=3_000, days=10, seed=5, if_empty=True) == 0
    assert "already holds 3,000 events" in capsys.readouterr().out
    assert write_demo(settings, events=3_000, days=10, seed=5, if_empty=False) == 0
    months = {p.parent.name for p in (tmp_path / "data" / "events").rglob("*.parquet")}
    assert all(len(list((tmp_path / "data" / "events" / m).glob("*.parquet"))) == 1 for m in months)
