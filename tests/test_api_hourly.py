"""GET /api/stats/hourly against sums computed here from the events the test posted."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.conftest import TOKEN, ServerProcess, free_port, server_env

BASE = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)
WHO = [("polecat", "gt"), ("witness", "gt"), ("crew", "bd"), ("mayor", "hq")]
MODELS = ["claude-opus-4-5", "claude-haiku-4-5", None]


def _events() -> list[dict[str, object]]:
    rng = random.Random(12)
    events = []
    for i in range(600):
        role, rig = rng.choice(WHO)
        ended = BASE + timedelta(seconds=rng.randrange(0, 30 * 3600))
        event: dict[str, object] = {
            "session_id": f"s-{i % 37}",
            "role": role,
            "rig": rig,
            "worker": f"w{i % 3}",
            "cost_usd": round(rng.uniform(0.001, 2.0), 6),
            "ended_at": ended.isoformat().replace("+00:00", "Z"),
            "event_id": f"e-{i}",
        }
        model = rng.choice(MODELS)
        if model:
            event["model"] = model
        events.append(event)
    return events


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, list]]:
    data = Path(tmp_path_factory.mktemp("hourly")) / "data"
    server = ServerProcess(data, free_port(), server_env()).start()
    events = _events()
    response = httpx.post(
        server.url + "/api/ingest", json=events, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert response.status_code == 202, response.text
    try:
        yield server, events
    finally:
        server.stop()


def expected(events: list, start: datetime, end: datetime, key: str) -> dict:
    sums: dict[tuple[str, str], float] = defaultdict(float)
    for e in events:
        ended = datetime.fromisoformat(str(e["ended_at"]))
        if start <= ended < end:
            hour = ended.replace(minute=0, second=0).strftime("%Y-%m-%dT%H:%M:%SZ")
            sums[(hour, str(e.get(key) or "unknown"))] += float(e["cost_usd"])
    return sums


@pytest.mark.parametrize("group_by", ["role", "rig", "model"])
def test_cost_per_hour_and_key(loaded: tuple[ServerProcess, list], group_by: str) -> None:
    server, events = loaded
    start, end = BASE + timedelta(hours=2, minutes=30), BASE + timedelta(hours=20, minutes=15)
    params = {"from": _iso(start), "to": _iso(end), "group_by": group_by}
    response = httpx.get(server.url + "/api/stats/hourly", params=params)
    assert response.status_code == 200, response.text
    rows = response.json()["hours"]
    got = {(r["hour"], r[group_by]): r["total_usd"] for r in rows}
    want = expected(events, start, end, group_by)
    assert got.keys() == want.keys()
    for key, usd in want.items():
        assert got[key] == pytest.approx(usd)
    assert [r["hour"] for r in rows] == sorted(r["hour"] for r in rows)


def test_filters_narrow_the_series(loaded: tuple[ServerProcess, list]) -> None:
    server, events = loaded
    params = {"from": _iso(BASE), "to": _iso(BASE + timedelta(days=2)), "rig": "gt"}
    rows = httpx.get(server.url + "/api/stats/hourly", params=params).json()["hours"]
    gt_events = [e for e in events if e["rig"] == "gt"]
    assert {r["role"] for r in rows} == {"polecat", "witness"}
    assert sum(r["event_count"] for r in rows) == len(gt_events)
    assert sum(r["total_usd"] for r in rows) == pytest.approx(
        sum(float(e["cost_usd"]) for e in gt_events)
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"from": "2026-01-01", "to": "2026-03-01"}, "at most 45 days"),
        ({"group_by": "colour"}, "group_by"),
        ({"from": "yesterday"}, "from"),
    ],
)
def test_bad_requests(loaded: tuple[ServerProcess, list], params: dict, message: str) -> None:
    server, _ = loaded
    response = httpx.get(server.url + "/api/stats/hourly", params=params)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]
    assert response.json()["ok"] is False


def test_default_is_the_last_day(loaded: tuple[ServerProcess, list]) -> None:
    server, _ = loaded
    response = httpx.get(server.url + "/api/stats/hourly")
    assert response.status_code == 200
    assert response.json() == {"hours": []}  # the events are in 2026-11, long before now


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
