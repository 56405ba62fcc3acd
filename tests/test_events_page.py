"""Paging through raw events (GET /api/costs) returns every matching event exactly once,
newest first, whatever the filters, window and page size; some events flushed to Parquet
and some still pending, so the rollup-derived page floor is exercised on both."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gasometer.demo import generate_events
from gasometer.ingest.attribution import Attributor
from gasometer.model import CostEvent
from gasometer.query import stats
from gasometer.runtime import Gasometer

from .conftest import make_settings

END = datetime(2026, 11, 20, 18, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def demo_events() -> list[CostEvent]:
    return list(itertools.chain.from_iterable(generate_events(4_000, 3, 11, END)))


@pytest.fixture(scope="module")
def store(
    tmp_path_factory: pytest.TempPathFactory, demo_events: list[CostEvent]
) -> Iterator[Gasometer]:
    settings = make_settings(
        Path(tmp_path_factory.mktemp("page")) / "data", flush_interval_s=3600.0
    )
    gm = Gasometer.open(settings, background=False)
    gm.ingest(demo_events[:3_000])
    gm.store.flush(force=True)
    gm.ingest(demo_events[3_000:])
    try:
        yield gm
    finally:
        gm.close()


def walk(
    gm: Gasometer, filters: stats.Filters, limit: int, session_id: str | None = None
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = stats.events_page(gm.engine, filters, limit, cursor, session_id)
        rows += page.events
        assert len(page.events) <= limit
        if page.next_cursor is None:
            return rows
        cursor = page.next_cursor


def role_of(event: CostEvent) -> str:
    return event.role or Attributor().from_session(event.session_id).role


@pytest.mark.parametrize(
    ("filters", "limit", "keep"),
    [
        (stats.Filters(), 97, lambda e: True),
        (stats.Filters(role="polecat"), 50, lambda e: role_of(e) == "polecat"),
        (
            stats.Filters(start="2026-11-19T07:13:00Z", end="2026-11-20T02:41:30Z"),
            33,
            lambda e: (
                datetime(2026, 11, 19, 7, 13, tzinfo=UTC)
                <= e.ended_at
                < datetime(2026, 11, 20, 2, 41, 30, tzinfo=UTC)
            ),
        ),
        (
            stats.Filters(rig="gastown", start="2026-11-20T15:30:00Z"),
            1,
            lambda e: e.rig == "gastown" and e.ended_at >= END - timedelta(hours=3),
        ),
    ],
)
def test_pages_hold_every_matching_event_once_newest_first(
    store: Gasometer,
    demo_events: list[CostEvent],
    filters: stats.Filters,
    limit: int,
    keep: Callable[[CostEvent], bool],
) -> None:
    expected = sorted((e for e in demo_events if keep(e)), key=lambda e: e.ended_at, reverse=True)
    got = walk(store, filters, limit)
    assert [r["event_id"] for r in got].count(None) == 0
    assert sorted(r["event_id"] for r in got) == sorted(e.event_id for e in expected)
    expected_times = [e.ended_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ") for e in expected]
    assert [r["ended_at"] for r in got] == expected_times


def test_one_session_pages(store: Gasometer, demo_events: list[CostEvent]) -> None:
    session = demo_events[0].session_id
    expected = [e for e in demo_events if e.session_id == session]
    got = walk(store, stats.Filters(), 7, session_id=session)
    assert sorted(r["event_id"] for r in got) == sorted(e.event_id for e in expected)
