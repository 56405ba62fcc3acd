"""Analytics endpoints against answers computed here, in plain Python, from the same events.

Generated data: overlapping sessions, subagents nested in their parents, sessions
crossing midnight (UTC, New York and Kolkata), single-instant sessions, beads and models.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import random
import statistics
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pyarrow.parquet as pq
import pytest
from websockets.sync.client import connect as ws_connect

from gasometer.errors import ConfigError
from gasometer.model import CostEvent
from gasometer.query import analytics
from gasometer.query.budgets import AlertMonitor
from gasometer.query.stats import Filters
from gasometer.runtime import Gasometer
from tests.conftest import TOKEN, ServerProcess, free_port, make_settings, server_env

BASE = datetime(2026, 11, 20, 20, 0, tzinfo=UTC)
ROLES = [("polecat", "gt", "alpha"), ("polecat", "gt", "bravo"), ("witness", "gt", "witness")]
ROLES += [("mayor", "hq", "mayor"), ("crew", "bd", "max"), ("dog", "hq", "rex")]
MODELS = ["claude-opus-4-5", "claude-sonnet-4-5", "claude-haiku-4-5", None]
ISSUES = ["gt-1", "gt-2", "bd-7", None]
ALL = Filters(start="2000-01-01", end="2099-12-31")


@dataclass
class Ev:
    """One generated event, as the test knows it."""

    session: str
    role: str
    rig: str
    worker: str
    parent: str | None
    model: str | None
    issue: str | None
    start: datetime | None
    end: datetime
    cost: float
    tokens: tuple[int, int, int, int]

    @property
    def first(self) -> datetime:
        return self.start or self.end

    def wire(self) -> CostEvent:
        return CostEvent(
            session_id=self.session,
            cost_usd=self.cost,
            ended_at=self.end,
            started_at=self.start,
            role=self.role,
            rig=self.rig,
            worker=self.worker,
            model=self.model,
            issue=self.issue,
            parent_session_id=self.parent,
            input_tokens=self.tokens[0],
            output_tokens=self.tokens[1],
            cache_creation_tokens=self.tokens[2],
            cache_read_tokens=self.tokens[3],
        )

    def json(self) -> dict[str, Any]:
        return json.loads(_encode(self.wire()))


def _encode(event: CostEvent) -> bytes:
    import msgspec

    return msgspec.json.encode(event)


def generate(seed: int = 11, sessions: int = 30) -> list[Ev]:
    """Sessions over 30 hours from BASE; some subagents nested inside a parent, some
    single instants, most crossing an hour and several a midnight."""
    rng = random.Random(seed)
    events: list[Ev] = []
    spans: list[tuple[str, datetime, datetime]] = []
    for index in range(sessions):
        role, rig, worker = rng.choice(ROLES)
        name, parent = f"{rig}-{worker}-{index}", None
        start = BASE + timedelta(seconds=rng.randrange(0, 28 * 3600))
        length = timedelta(seconds=rng.randrange(60, 4 * 3600))
        if index % 6 == 5 and spans:
            parent, p_start, p_end = rng.choice(spans)
            start = p_start + (p_end - p_start) / 4
            length = (p_end - p_start) / 3
            start = start.replace(microsecond=0)
            length = timedelta(seconds=int(length.total_seconds()))
            role, worker, name = "polecat", f"sub{index}", f"{parent}-sub{index}"
        count = 1 if index % 7 == 3 and parent is None else rng.randrange(2, 6)
        ends = [*sorted(start + length * rng.random() for _ in range(count - 1)), start + length]
        ends = [e.replace(microsecond=0) for e in ends]
        previous: datetime | None = start if count > 1 else None
        model = rng.choice(MODELS)
        for end in ends:
            tokens = (rng.randrange(0, 5000), rng.randrange(0, 3000), rng.randrange(0, 9000), 0)
            tokens = (*tokens[:3], rng.randrange(0, 90000))
            events.append(
                Ev(
                    name,
                    role,
                    rig,
                    worker,
                    parent,
                    model,
                    rng.choice(ISSUES),
                    previous,
                    end,
                    round(rng.uniform(0.01, 3.0), 2),
                    tokens,
                )
            )
            previous = end if rng.random() < 0.7 else None
        if count > 1:
            spans.append((name, start, start + length))
    return events


# -- independent answers ---------------------------------------------------------------


def in_window(events: list[Ev], lo: datetime, hi: datetime) -> list[Ev]:
    return [e for e in events if lo <= e.end < hi]


def sessions_of(events: list[Ev]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for e in events:
        s = out.setdefault(
            e.session,
            {"start": e.first, "end": e.end, "usd": 0.0, "events": 0, "ev": e},
        )
        s["start"] = min(s["start"], e.first)
        s["end"] = max(s["end"], e.end)
        s["usd"] += e.cost
        s["events"] += 1
    return out


def concurrency_points(spans: list[tuple[datetime, datetime]]) -> list[tuple[datetime, int]]:
    real = [(s, e) for s, e in spans if e > s]
    moments = sorted({t for span in real for t in span})
    points, last = [], 0
    for t in moments:
        count = sum(1 for s, e in real if s <= t < e)
        if count != last:
            points.append((t, count))
            last = count
    return points


def parallel_usd(sessions: dict[str, dict[str, Any]], events: list[Ev]) -> float:
    """Each event's cost spread over its own span, summed over the stretches (cut at every
    change point of sessions and events) where two or more sessions run; an instant event
    counts when two or more sessions run at its moment, its own session included."""
    real = [s for s in sessions.values() if s["end"] > s["start"]]
    spans = [(e.first, e.end, e.cost) for e in events if e.end > e.first]
    moments = {t for s in real for t in (s["start"], s["end"])}
    moments |= {t for first, end, _ in spans for t in (first, end)}
    total = 0.0
    for a, b in itertools.pairwise(sorted(moments)):
        if sum(1 for s in real if s["start"] <= a and s["end"] >= b) < 2:
            continue
        total += sum(
            cost * (b - a).total_seconds() / (end - first).total_seconds()
            for first, end, cost in spans
            if first <= a and end >= b
        )
    for e in events:
        if e.end != e.first:
            continue
        own = sessions[e.session]
        running = sum(1 for r in real if r["start"] <= e.end < r["end"])
        own_running = own["start"] <= e.end < own["end"]
        if running + (0 if own_running else 1) >= 2:
            total += e.cost
    return total


def collide(a: tuple[datetime, datetime], b: tuple[datetime, datetime]) -> bool:
    """Two spans share time; a single instant collides with anything holding its point."""
    lo, hi = max(a[0], b[0]), min(a[1], b[1])
    if a[0] == a[1] or b[0] == b[1]:
        return lo <= hi
    return lo < hi


def first_fit(spans: list[tuple[datetime, datetime]]) -> list[int]:
    lanes: list[list[tuple[datetime, datetime]]] = []
    out = []
    for span in spans:
        for index, lane in enumerate(lanes):
            if not collide(lane[-1], span):
                lane.append(span)
                out.append(index)
                break
        else:
            lanes.append([span])
            out.append(len(lanes) - 1)
    return out


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def expected_timeline(events: list[Ev], lo: datetime, hi: datetime) -> dict[str, Any]:
    inside = in_window(events, lo, hi)
    sessions = sessions_of(inside)
    order = sorted(sessions, key=lambda k: (sessions[k]["start"], sessions[k]["end"], k))
    spans = [(sessions[k]["start"], sessions[k]["end"]) for k in order]
    points = concurrency_points(spans)
    peak = max(points, key=lambda p: (p[1], -p[0].timestamp()), default=None)
    return {
        "order": order,
        "sessions": sessions,
        "lanes": first_fit(spans),
        "concurrency": [{"at": iso(t), "sessions": n} for t, n in points],
        "max": peak[1] if peak else 0,
        "max_at": iso(peak[0]) if peak else None,
        "parallel": parallel_usd(sessions, inside),
    }


# -- fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def events() -> list[Ev]:
    return generate()


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory, events: list[Ev]) -> Iterator[Gasometer]:
    """A Gasometer holding the generated events: half in Parquet, half still pending."""
    settings = make_settings(tmp_path_factory.mktemp("analytics") / "data")
    gm = Gasometer.open(settings, background=False)
    half = len(events) // 2
    gm.ingest([e.wire() for e in events[:half]])
    gm.store.flush()
    gm.ingest([e.wire() for e in events[half:]])
    try:
        yield gm
    finally:
        gm.close()


# -- timeline --------------------------------------------------------------------------


def check_timeline(got: analytics.Timeline, want: dict[str, Any]) -> None:
    assert [s.session_id for s in got.sessions] == want["order"]
    for s in got.sessions:
        exp = want["sessions"][s.session_id]
        assert (s.started_at, s.ended_at) == (iso(exp["start"]), iso(exp["end"]))
        assert s.total_usd == pytest.approx(exp["usd"])
        assert s.event_count == exp["events"]
        assert (s.role, s.rig, s.worker) == (exp["ev"].role, exp["ev"].rig, exp["ev"].worker)
        assert s.parent_session_id == exp["ev"].parent
    assert [s.lane for s in got.sessions] == want["lanes"]
    assert [msgspec_dict(p) for p in got.concurrency] == want["concurrency"]
    assert got.max_concurrency == want["max"]
    assert got.max_concurrency_at == want["max_at"]
    assert got.parallel_usd == pytest.approx(want["parallel"], rel=1e-9, abs=1e-9)


def msgspec_dict(value: Any) -> dict[str, Any]:
    import msgspec

    return msgspec.structs.asdict(value)


def test_timeline_all(loaded: Gasometer, events: list[Ev]) -> None:
    want = expected_timeline(
        events, datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
    )
    got = analytics.timeline(loaded.engine, ALL)
    check_timeline(got, want)
    assert want["max"] >= 3, "the generated data should overlap"
    assert any(e.parent for e in events) and got.parallel_usd > 0
    assert got.session_total == len(want["order"]) and not got.truncated


def test_timeline_lanes_never_collide(loaded: Gasometer) -> None:
    got = analytics.timeline(loaded.engine, ALL)
    by_lane: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
    for s in got.sessions:
        span = (datetime.fromisoformat(s.started_at), datetime.fromisoformat(s.ended_at))
        assert not any(collide(span, other) for other in by_lane[s.lane]), s.session_id
        by_lane[s.lane].append(span)
    assert got.lanes == len(by_lane) >= got.max_concurrency


def test_timeline_subagent_nested_in_parent(loaded: Gasometer, events: list[Ev]) -> None:
    got = {s.session_id: s for s in analytics.timeline(loaded.engine, ALL).sessions}
    children = [s for s in got.values() if s.parent_session_id]
    assert children
    for child in children:
        parent = got[child.parent_session_id]  # type: ignore[index]
        assert parent.started_at <= child.started_at <= child.ended_at <= parent.ended_at
        assert parent.lane != child.lane


@pytest.mark.parametrize(
    ("start", "end", "tz"),
    [
        ("2026-11-21", "2026-11-21", None),
        ("2026-11-21", "2026-11-21", "America/New_York"),
        ("2026-11-21", "2026-11-21", "Asia/Kolkata"),
        ("2026-11-20T23:17:00Z", "2026-11-21T03:41:30Z", None),
        ("2026-11-21T01:10:00Z", "2026-11-21T01:50:00Z", None),
    ],
)
def test_timeline_window(
    loaded: Gasometer, events: list[Ev], start: str, end: str, tz: str | None
) -> None:
    filters = Filters(start=start, end=end, tz=tz)
    win = filters.window()
    want = expected_timeline(events, win.start, win.end)
    check_timeline(analytics.timeline(loaded.engine, filters), want)


def test_timeline_limit_keeps_costliest(loaded: Gasometer, events: list[Ev]) -> None:
    sessions = sessions_of(events)
    top = sorted(sessions, key=lambda k: (-sessions[k]["usd"], k))[:5]
    got = analytics.timeline(loaded.engine, ALL, limit=5)
    assert sorted(s.session_id for s in got.sessions) == sorted(top)
    assert got.truncated and got.session_total == len(sessions)
    assert (
        got.max_concurrency
        == expected_timeline(
            events, datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
        )["max"]
    )


def test_timeline_hand_made(tmp_path: Path) -> None:
    """Two overlapping sessions, one nested subagent, one instant: values by hand."""
    t = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)
    m = timedelta(minutes=1)
    rows = [
        ("gt-a", None, t, t + 60 * m, 6.0),  # 23:30-00:30, crosses midnight
        ("gt-b", None, t + 30 * m, t + 90 * m, 3.0),  # overlaps a for 30 min
        ("gt-a-sub", "gt-a", t + 10 * m, t + 20 * m, 1.0),  # inside a, before b
        ("gt-c", None, t + 45 * m, t + 45 * m, 0.5),  # an instant while a and b run
    ]
    gm = Gasometer.open(make_settings(tmp_path / "data"), background=False)
    try:
        gm.ingest(
            [
                CostEvent(
                    session_id=s,
                    parent_session_id=p,
                    started_at=a if a != b else None,
                    ended_at=b,
                    cost_usd=c,
                )
                for s, p, a, b, c in rows
            ]
        )
        got = analytics.timeline(gm.engine, Filters(), now=t + 2 * 60 * m)
        before = analytics.timeline(gm.engine, Filters(), now=t - 60 * m)
        after = analytics.timeline(gm.engine, Filters(), now=t + 26 * 60 * m)
    finally:
        gm.close()
    assert before.sessions == [] and after.sessions == []  # the default: the last 24 hours
    lanes = {s.session_id: s.lane for s in got.sessions}
    assert lanes == {"gt-a": 0, "gt-a-sub": 1, "gt-b": 1, "gt-c": 2}
    assert [(p.at[11:16], p.sessions) for p in got.concurrency] == [
        ("23:30", 1),
        ("23:40", 2),
        ("23:50", 1),
        ("00:00", 2),
        ("00:30", 1),
        ("01:00", 0),
    ]
    assert (got.max_concurrency, got.max_concurrency_at) == (2, iso(t + 10 * m))
    # a: 0.1/min; sub: 0.1/min over 10 min; b: 0.05/min over 30 min of overlap with a
    assert got.parallel_usd == pytest.approx(1.0 + 1.0 + 3.0 + 1.5 + 0.5)


def test_parallel_usd_follows_each_events_own_time(tmp_path: Path) -> None:
    """A session that spends $10 in its first minute, alone, and $2 at the instant it
    ends (while another runs): only the $2 and the other's overlapping share are parallel
    (spreading sessions evenly would say 5 + 1.5 + ...)."""
    t = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    m = timedelta(minutes=1)
    rows = [
        ("gt-a", t, t + m, 10.0),
        ("gt-a", None, t + 60 * m, 2.0),
        ("gt-b", t + 30 * m, t + 90 * m, 3.0),
    ]
    gm = Gasometer.open(make_settings(tmp_path / "data"), background=False)
    try:
        gm.ingest(
            [CostEvent(session_id=s, started_at=a, ended_at=b, cost_usd=c) for s, a, b, c in rows]
        )
        got = analytics.timeline(gm.engine, Filters(), now=t + 2 * 60 * m)
    finally:
        gm.close()
    assert got.max_concurrency == 2
    assert got.parallel_usd == pytest.approx(2.0 + 1.5)


# -- calendar --------------------------------------------------------------------------


def expected_calendar(
    events: list[Ev], first: date, last: date, tz: str
) -> list[tuple[str, float, int, int]]:
    usd: dict[date, float] = defaultdict(float)
    who: dict[date, set[str]] = defaultdict(set)
    for e in events:
        day = e.end.astimezone(ZoneInfo(tz)).date()
        usd[day] += e.cost
        who[day].add(e.session)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    spent = [usd[d] for d in days if usd[d] > 0]
    cuts = statistics.quantiles(spent, n=4, method="inclusive") if len(spent) > 1 else spent * 3
    out = []
    for d in days:
        value = usd[d]
        level = 0 if value <= 0 else 1 + sum(value > c + 1e-12 for c in cuts)
        out.append((d.isoformat(), value, len(who[d]), level))
    return out


@pytest.mark.parametrize("tz", ["UTC", "America/New_York", "Asia/Kolkata"])
def test_calendar_days_in_tz(loaded: Gasometer, events: list[Ev], tz: str) -> None:
    filters = Filters(start="2026-11-15", end="2026-11-25", tz=tz)
    got = analytics.calendar(loaded.engine, filters)
    want = expected_calendar(events, date(2026, 11, 15), date(2026, 11, 25), tz)
    assert [(d.date, d.session_count, d.level) for d in got.days] == [
        (w[0], w[2], w[3]) for w in want
    ]
    assert [d.total_usd for d in got.days] == pytest.approx([w[1] for w in want])
    assert got.tz == tz


def test_calendar_default_is_a_year_to_today(loaded: Gasometer, events: list[Ev]) -> None:
    today = date(2026, 12, 31)
    got = analytics.calendar(loaded.engine, Filters(rig="gt"), today=today)
    assert len(got.days) == 365
    assert (got.days[0].date, got.days[-1].date) == ("2026-01-01", "2026-12-31")
    gt = [e for e in events if e.rig == "gt"]
    want = expected_calendar(gt, date(2026, 1, 1), today, "UTC")
    assert [(d.date, d.level) for d in got.days] == [(w[0], w[3]) for w in want]


def test_calendar_from_only_is_the_year_from_there(loaded: Gasometer) -> None:
    days = analytics.calendar(loaded.engine, Filters(start="2026-11-01")).days
    assert (len(days), days[0].date, days[-1].date) == (365, "2026-11-01", "2027-10-31")


def test_pack_lanes_by_hand() -> None:
    spans = [(0, 10), (5, 15), (10, 20), (10, 10), (15, 15), (20, 30), (20, 20)]
    assert analytics.pack_lanes(spans) == [0, 1, 0, 2, 2, 0, 1]
    assert analytics.pack_lanes([]) == []


# -- treemap, issues, models -----------------------------------------------------------


def test_treemap(loaded: Gasometer, events: list[Ev]) -> None:
    sums: dict[tuple[str, str, str], float] = defaultdict(float)
    for e in events:
        sums[(e.role, e.rig, e.worker)] += e.cost
    tree = analytics.treemap(loaded.engine, Filters())
    assert tree["name"] == "total"
    leaves = {}
    for role in tree["children"]:
        assert "value" not in role
        for rig in role["children"]:
            for worker in rig["children"]:
                leaves[(role["name"], rig["name"], worker["name"])] = worker["value"]
    assert leaves.keys() == sums.keys()
    for key, value in sums.items():
        assert leaves[key] == pytest.approx(value)
    role_totals = [sum(v for k, v in sums.items() if k[0] == r["name"]) for r in tree["children"]]
    assert role_totals == sorted(role_totals, reverse=True)


def test_issues(loaded: Gasometer, events: list[Ev]) -> None:
    groups: dict[str | None, list[Ev]] = defaultdict(list)
    for e in events:
        groups[e.issue].append(e)
    got = analytics.issues(loaded.engine, Filters())
    assert None in {i.issue for i in got}
    assert [i.total_usd for i in got] == sorted((i.total_usd for i in got), reverse=True)
    assert {i.issue for i in got} == set(groups)
    for item in got:
        evs = groups[item.issue]
        first, last = min(e.first for e in evs), max(e.end for e in evs)
        duration = (last - first).total_seconds()
        assert item.total_usd == pytest.approx(sum(e.cost for e in evs))
        assert item.session_count == len({e.session for e in evs})
        assert item.event_count == len(evs)
        assert item.input_tokens == sum(e.tokens[0] for e in evs)
        assert item.cache_read_tokens == sum(e.tokens[3] for e in evs)
        assert (item.first_at, item.last_at) == (iso(first), iso(last))
        assert item.duration_s == duration
        assert item.usd_per_hour == pytest.approx(item.total_usd * 3600 / duration)
    costliest = sorted(groups, key=lambda k: -sum(e.cost for e in groups[k]))[:2]
    top = analytics.issues(loaded.engine, Filters(), limit=2)
    assert [i.issue for i in top] == costliest
    assert [i.session_count for i in top] == [
        len({e.session for e in groups[k]}) for k in costliest
    ]


def test_models(loaded: Gasometer, events: list[Ev]) -> None:
    groups: dict[str, list[Ev]] = defaultdict(list)
    for e in events:
        groups[e.model or "unknown"].append(e)
    got = analytics.models(loaded.engine, Filters(role="polecat"))
    polecat = {m: [e for e in evs if e.role == "polecat"] for m, evs in groups.items()}
    polecat = {m: evs for m, evs in polecat.items() if evs}
    assert {m.model for m in got} == set(polecat)
    for item in got:
        evs = polecat[item.model]
        inputs = sum(e.tokens[0] + e.tokens[2] + e.tokens[3] for e in evs)
        assert item.total_usd == pytest.approx(sum(e.cost for e in evs))
        assert item.output_tokens == sum(e.tokens[1] for e in evs)
        assert item.cache_read_share == pytest.approx(sum(e.tokens[3] for e in evs) / inputs)


WINDOWS = [
    ("2026-11-21", "2026-11-21", "Asia/Kolkata"),
    ("2026-11-20T23:17:00Z", "2026-11-21T03:41:30Z", None),
    ("2026-11-21T01:10:00Z", "2026-11-21T01:50:00Z", None),
    ("2026-11-21T02:00:00Z", "2026-11-21T05:00:00Z", None),
]


@pytest.mark.parametrize(("start", "end", "tz"), WINDOWS)
def test_windowed_treemap_issues_models(
    loaded: Gasometer, events: list[Ev], start: str, end: str, tz: str | None
) -> None:
    filters = Filters(start=start, end=end, tz=tz)
    win = filters.window()
    inside = in_window(events, win.start, win.end)
    assert inside
    leaves: dict[tuple[str, str, str], float] = defaultdict(float)
    per_issue: dict[str | None, list[Ev]] = defaultdict(list)
    per_model: dict[str, float] = defaultdict(float)
    for e in inside:
        leaves[(e.role, e.rig, e.worker)] += e.cost
        per_issue[e.issue].append(e)
        per_model[e.model or "unknown"] += e.cost
    tree = analytics.treemap(loaded.engine, filters)
    got_leaves = {
        (role["name"], rig["name"], worker["name"]): worker["value"]
        for role in tree["children"]
        for rig in role["children"]
        for worker in rig["children"]
    }
    assert got_leaves == pytest.approx(dict(leaves))
    issues = {i.issue: i for i in analytics.issues(loaded.engine, filters)}
    assert issues.keys() == per_issue.keys()
    for issue, evs in per_issue.items():
        assert issues[issue].total_usd == pytest.approx(sum(e.cost for e in evs))
        assert issues[issue].event_count == len(evs)
        assert issues[issue].first_at == iso(min(e.first for e in evs))
    models = {m.model: m.total_usd for m in analytics.models(loaded.engine, filters)}
    assert models == pytest.approx(dict(per_model))


def test_empty_window(loaded: Gasometer) -> None:
    empty = Filters(start="2025-01-01", end="2025-01-31")
    got = analytics.timeline(loaded.engine, empty)
    assert (got.sessions, got.concurrency, got.max_concurrency) == ([], [], 0)
    assert (got.max_concurrency_at, got.parallel_usd, got.lanes) == (None, 0.0, 0)
    days = analytics.calendar(loaded.engine, empty).days
    assert len(days) == 31 and all(d.level == 0 and d.total_usd == 0 for d in days)
    assert analytics.treemap(loaded.engine, empty) == {"name": "total", "children": []}
    assert analytics.issues(loaded.engine, empty) == []
    assert analytics.models(loaded.engine, empty) == []
    burn = analytics.burn(
        loaded.engine, Filters(), loaded.settings, hours=1, now=datetime(2025, 1, 15, tzinfo=UTC)
    )
    assert (burn.usd_per_hour_1h, burn.today_usd, burn.month_usd, burn.zone) == (0, 0, 0, "green")
    assert len(burn.minutes) == 60 and all(m.usd == 0 for m in burn.minutes)


# -- burn ------------------------------------------------------------------------------


def test_burn(tmp_path: Path) -> None:
    now = datetime(2026, 11, 21, 10, 30, 15, tzinfo=UTC)
    offsets = [(-5, 1.0), (-20, 2.0), (-50, 3.0), (-180, 4.0), (-23 * 60, 5.0), (-25 * 60, 6.0)]
    offsets += [(1, 100.0)]  # in the future: never counted
    fixed = [
        (datetime(2026, 11, 1, 12, tzinfo=UTC), 7.0),
        (datetime(2026, 10, 31, 12, tzinfo=UTC), 8.0),
    ]
    stamps = [(now + timedelta(minutes=m), usd) for m, usd in offsets] + fixed
    settings = make_settings(
        tmp_path / "data", budget_daily_usd=200.0, budget_monthly_usd=1000.0, budget_warn_ratio=0.5
    )
    gm = Gasometer.open(settings, background=False)
    try:
        gm.ingest([CostEvent(session_id="gt-a", ended_at=t, cost_usd=c) for t, c in stamps])
        got = analytics.burn(gm.engine, Filters(tz="America/New_York"), settings, hours=1, now=now)
        by_rig = analytics.burn(gm.engine, Filters(rig="gt"), settings, hours=1, now=now)
    finally:
        gm.close()
    assert got.usd_per_hour_15m == pytest.approx(4 * 1.0)
    assert got.usd_per_hour_1h == pytest.approx(6.0)
    assert got.usd_per_hour_24h == pytest.approx(15.0 / 24)
    # New York: today began 05:00Z, November 04:00Z on the 1st, December 05:00Z on the 1st
    assert (got.today_usd, got.month_usd) == (pytest.approx(10.0), pytest.approx(28.0))
    to_midnight = (datetime(2026, 11, 22, 5, tzinfo=UTC) - now).total_seconds() / 3600
    to_month_end = (datetime(2026, 12, 1, 5, tzinfo=UTC) - now).total_seconds() / 3600
    assert got.projected_today_usd == pytest.approx(10.0 + 6.0 * to_midnight)
    assert got.projected_month_usd == pytest.approx(28.0 + 15.0 / 24 * to_month_end)
    assert (got.daily_budget_usd, got.monthly_budget_usd, got.zone) == (200.0, 1000.0, "yellow")
    assert (by_rig.daily_budget_usd, by_rig.zone) == (None, "green")
    assert len(got.minutes) == 60
    assert (got.minutes[0].minute, got.minutes[-1].minute) == (
        "2026-11-21T09:31:00Z",
        "2026-11-21T10:30:00Z",
    )
    assert {m.minute[11:16]: m.usd for m in got.minutes if m.usd} == {
        "09:40": 3.0,
        "10:10": 2.0,
        "10:25": 1.0,
    }


def test_budget_zone() -> None:
    assert analytics.budget_zone([(50.0, 100.0), (10.0, None)], 0.8) == "green"
    assert analytics.budget_zone([(80.0, 100.0), (10.0, 1000.0)], 0.8) == "yellow"
    assert analytics.budget_zone([(10.0, 100.0), (1000.0, 1000.0)], 0.8) == "red"


# -- over HTTP ------------------------------------------------------------------------


@pytest.fixture
def served(server: ServerProcess, events: list[Ev]) -> ServerProcess:
    body = [e.json() for e in events]
    r = httpx.post(server.url + "/api/ingest", json=body, headers=_auth())
    assert r.status_code == 202 and r.json()["accepted"] == len(events), r.text
    return server


def test_http_endpoints(served: ServerProcess, events: list[Ev]) -> None:
    get = lambda path: httpx.get(served.url + path, timeout=30)  # noqa: E731
    query = "?from=2026-11-21&to=2026-11-21&tz=America/New_York"
    win = Filters(start="2026-11-21", end="2026-11-21", tz="America/New_York").window()
    want = expected_timeline(events, win.start, win.end)
    timeline = get("/api/stats/timeline" + query).json()
    assert [s["session_id"] for s in timeline["sessions"]] == want["order"]
    assert [s["lane"] for s in timeline["sessions"]] == want["lanes"]
    assert timeline["concurrency"] == want["concurrency"]
    assert (timeline["max_concurrency"], timeline["max_concurrency_at"]) == (
        want["max"],
        want["max_at"],
    )
    assert timeline["parallel_usd"] == pytest.approx(want["parallel"])

    days = get("/api/stats/calendar?from=2026-11-19&to=2026-11-23&tz=Asia/Kolkata").json()["days"]
    cal = expected_calendar(events, date(2026, 11, 19), date(2026, 11, 23), "Asia/Kolkata")
    assert [(d["date"], d["session_count"], d["level"]) for d in days] == [
        (c[0], c[2], c[3]) for c in cal
    ]

    tree = get("/api/stats/treemap?rig=hq").json()
    hq = defaultdict(float)
    for e in events:
        if e.rig == "hq":
            hq[e.role] += e.cost
    assert {r["name"] for r in tree["children"]} == set(hq)

    issues = get("/api/stats/issues?issue=gt-1").json()["issues"]
    gt1 = [e for e in events if e.issue == "gt-1"]
    assert [(i["issue"], i["event_count"]) for i in issues] == [("gt-1", len(gt1))]
    assert issues[0]["total_usd"] == pytest.approx(sum(e.cost for e in gt1))
    alias, stats = get("/api/costs/by-issue").json(), get("/api/stats/issues").json()
    key = lambda i: (i["issue"], i["event_count"], i["session_count"], i["first_at"])  # noqa: E731
    assert [key(i) for i in alias["issues"]] == [key(i) for i in stats["issues"]]
    assert [i["total_usd"] for i in alias["issues"]] == pytest.approx(
        [i["total_usd"] for i in stats["issues"]]
    )
    assert get("/api/stats/issues").json()["issues"][-1]["issue"] in {None, "gt-1", "gt-2", "bd-7"}

    models = get("/api/stats/models").json()["models"]
    assert sum(m["event_count"] for m in models) == len(events)

    burn = get("/api/stats/burn?hours=2").json()
    assert len(burn["minutes"]) == 120 and burn["zone"] == "green"
    assert get("/api/stats/burn?hours=0").status_code == 400
    bad = get("/api/stats/timeline?tz=Mars/Olympus")
    assert bad.status_code == 400 and bad.json()["ok"] is False


def test_export_csv_and_parquet(served: ServerProcess, events: list[Ev]) -> None:
    params = {"rig": "gt", "from": "2026-11-21T00:00:00Z", "to": "2026-11-21T12:00:00Z"}
    lo, hi = datetime(2026, 11, 21, tzinfo=UTC), datetime(2026, 11, 21, 12, tzinfo=UTC)
    want = sorted(
        ((e.session, e.end, e.cost) for e in in_window(events, lo, hi) if e.rig == "gt"),
        key=lambda t: t[1],
    )
    assert want
    r = httpx.get(served.url + "/api/export", params=params)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    got = [
        (row["session_id"], datetime.fromisoformat(row["ended_at"]), float(row["cost_usd"]))
        for row in rows
    ]
    assert sorted(got, key=lambda t: (t[1], t[0])) == sorted(want, key=lambda t: (t[1], t[0]))
    r = httpx.get(served.url + "/api/export", params={**params, "format": "parquet"})
    assert r.status_code == 200
    table = pq.read_table(io.BytesIO(r.content))
    assert table.num_rows == len(want)
    assert sorted(table.column("cost_usd").to_pylist()) == sorted(t[2] for t in want)
    assert sorted(table.column("ended_at").to_pylist()) == sorted(t[1] for t in want)
    empty = httpx.get(served.url + "/api/export", params={"from": "2020-01-01", "to": "2020-01-02"})
    assert empty.text.startswith("id,event_id,session_id") and empty.text.count("\n") == 1
    empty_pq = httpx.get(served.url + "/api/export?from=2020-01-01&to=2020-01-02&format=parquet")
    assert pq.read_table(io.BytesIO(empty_pq.content)).num_rows == 0
    assert httpx.get(served.url + "/api/export?format=xml").status_code == 400


def test_metrics(served: ServerProcess, events: list[Ev]) -> None:
    httpx.get(served.url + "/api/stats/models")
    text = httpx.get(served.url + "/metrics").text
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    cost = defaultdict(float)
    tokens = defaultdict(int)
    for e in events:
        labels = f'role="{e.role}",rig="{e.rig}",model="{e.model or "unknown"}"'
        cost[labels] += e.cost
        tokens[labels] += e.tokens[3]
    for labels, usd in cost.items():
        assert samples[f"gasometer_cost_usd_total{{{labels}}}"] == pytest.approx(usd)
        assert samples[f'gasometer_tokens_total{{{labels},type="cache_read"}}'] == tokens[labels]
    assert samples["gasometer_ingest_accepted_total"] == len(events)
    assert samples["gasometer_ingest_requests_total"] == 1
    series = 'method="GET",path="/api/stats/models",status="200"'
    assert samples[f"gasometer_http_request_duration_seconds_count{{{series}}}"] == 1
    assert samples[f'gasometer_http_request_duration_seconds_bucket{{{series},le="+Inf"}}'] == 1
    assert samples[f"gasometer_http_request_duration_seconds_sum{{{series}}}"] > 0


# -- alerts ----------------------------------------------------------------------------


def test_alert_monitor_once_per_crossing_and_new_day(tmp_path: Path) -> None:
    clock = [datetime(2026, 11, 20, 12, tzinfo=UTC).timestamp()]
    settings = make_settings(
        tmp_path / "data",
        budget_daily_usd=10.0,
        budget_warn_ratio=0.5,
        role_budgets={"mayor": {"monthly_usd": 4.0}},
    )
    sent: list[dict[str, Any]] = []
    gm = Gasometer.open(settings, background=False)
    try:
        gm.ingest([CostEvent(session_id="gt-a", ended_at=BASE - timedelta(hours=9), cost_usd=3.0)])
        monitor = AlertMonitor(gm.engine, settings, sent.append, clock=lambda: clock[0])
        gm.ingestor.listeners.append(monitor.on_commit)
        assert sent == []

        def spend(usd: float, session: str = "gt-a", at: float | None = None) -> None:
            when = datetime.fromtimestamp(at or clock[0], UTC)
            gm.ingest([CostEvent(session_id=session, ended_at=when, cost_usd=usd)])
            gm.ingestor.ingest([])  # the writer ran the listeners of the commit before
            clock[0] += 1

        spend(1.0)  # 4 of 10: nothing
        spend(1.5)  # 5.5: warning
        spend(1.0)  # 6.5: still above the warning, no repeat
        spend(4.0, "hq-mayor")  # 10.5 today: exceeded; mayor's month 4.0: exceeded
        spend(2.0)
        spend(5.0, at=clock[0] - 3 * 86400)  # an old day: not today's budget
        got = [(a["scope"], a["name"], a["period"], a["level"], a["period_start"]) for a in sent]
        assert got == [
            ("overall", None, "day", "warning", "2026-11-20"),
            ("overall", None, "day", "exceeded", "2026-11-20"),
            ("role", "mayor", "month", "warning", "2026-11"),
            ("role", "mayor", "month", "exceeded", "2026-11"),
        ]
        assert sent[1]["spent_usd"] == pytest.approx(10.5) and sent[1]["budget_usd"] == 10.0
        clock[0] += 86400  # the next day: a fresh daily budget
        spend(6.0)
        assert [(a["level"], a["period_start"]) for a in sent[4:]] == [("warning", "2026-11-21")]
    finally:
        gm.close()


def test_bad_budget_tz_is_a_config_error(gm: Gasometer) -> None:
    with pytest.raises(ConfigError, match="budget_tz"):  # refused with the settings
        make_settings(gm.settings.data_dir, budget_tz="Mars/Olympus")


def zone_near_noon(now: datetime) -> str:
    """A fixed-offset zone where it is about noon at `now`: days in it are at least 11
    hours from ending, so a test's "today" cannot change under it."""
    offset = 12 - now.hour
    return "Etc/UTC" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


def test_zone_near_noon() -> None:
    for hour in range(24):
        now = datetime(2026, 11, 20, hour, 30, tzinfo=UTC)
        assert now.astimezone(ZoneInfo(zone_near_noon(now))).hour == 12


def test_alerts_over_websocket(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    tz = zone_near_noon(datetime.now(UTC))
    (data / "gasometer.toml").write_text(
        f'budget_tz = "{tz}"\nbudget_daily_usd = 10.0\nbudget_warn_ratio = 0.5\n'
        "[rig_budgets.gt]\ndaily_usd = 3.0\n"
    )
    proc = ServerProcess(data, free_port(), server_env())
    proc.start()
    messages: list[dict[str, Any]] = []
    plan = [("bd-a", 2.0), ("gt-a", 2.0), ("bd-a", 0.5), ("gt-a", 1.5), ("bd-a", 5.0)]
    try:
        with ws_connect(f"ws://127.0.0.1:{proc.port}/ws/live") as ws:
            threading.Thread(target=_read_all, args=(ws, messages), daemon=True).start()
            ws.send(json.dumps({"filter": {}}))  # answered once the socket is subscribed
            _wait_until(messages, lambda m: m["type"] == "filter")
            now = datetime.now(UTC)
            for index, (session, usd) in enumerate(plan):
                ended = (now - timedelta(seconds=10 - index)).isoformat()
                event = {
                    "session_id": session,
                    "cost_usd": usd,
                    "ended_at": ended,
                    "issue": f"step-{index}",
                }
                r = httpx.post(proc.url + "/api/ingest", json=event, headers=_auth())
                assert r.status_code == 202, r.text
                _wait_for(messages, f"step-{index}")
            _wait_until(messages, lambda m: m.get("level") == "exceeded" and not m.get("name"))
    finally:
        proc.stop()
    log = proc.log_text()
    flow: list[Any] = []
    for m in messages:
        if m["type"] == "events":
            flow += [e["issue"] for e in m["events"]]
        elif m["type"] == "alert":
            flow.append((m["scope"], m["level"], m["period"]))
    assert flow == [
        "step-0",
        "step-1",  # gt 2.0 of 3.0: warning; overall 4.0 of 10: under the 5.0 warning
        ("rig", "warning", "day"),
        "step-2",  # overall 4.5: nothing
        "step-3",  # gt 3.5: exceeded; overall 6.0: warning
        ("overall", "warning", "day"),
        ("rig", "exceeded", "day"),
        "step-4",  # overall 11.0: exceeded
        ("overall", "exceeded", "day"),
    ]
    alert = next(m for m in messages if m["type"] == "alert" and m["level"] == "exceeded")
    assert (alert["name"], alert["budget_usd"], alert["spent_usd"]) == ("gt", 3.0, 3.5)
    assert log.count("budget exceeded") == 2 and log.count("budget warning") == 2


def _read_all(ws: Any, out: list[dict[str, Any]]) -> None:
    try:
        for raw in ws:
            out.append(json.loads(raw))
    except Exception:
        return


def _wait_for(messages: list[dict[str, Any]], issue: str) -> None:
    _wait_until(messages, lambda m: any(e.get("issue") == issue for e in m.get("events", ())))


def _wait_until(messages: list[dict[str, Any]], found: Any, timeout: float = 60) -> None:
    """Wait for a live message that satisfies `found` (a generous limit for a slow box)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(found(m) for m in list(messages)):
            return
        time.sleep(0.02)
    raise AssertionError(f"no such live message: {messages}")


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}
