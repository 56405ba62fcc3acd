"""POST /api/rollups/rebuild recomputes every month's hourly rollup from raw events."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import httpx
import pytest

from gasometer.model import CostEvent
from gasometer.query import stats
from gasometer.runtime import Gasometer
from tests.conftest import ServerProcess, make_settings


def month_events(seed: int = 3) -> list[CostEvent]:
    rng = random.Random(seed)
    start = datetime(2026, 9, 20, tzinfo=UTC)
    return [
        CostEvent(
            session_id=rng.choice(["ga-nux", "ga-toast", "hq-mayor", "bd-crew-max"]),
            cost_usd=round(rng.uniform(0.01, 2.0), 4),
            ended_at=start + timedelta(minutes=rng.uniform(0, 20 * 24 * 60)),
            event_id=f"r{i}",
        )
        for i in range(600)
    ]


def per_day(events: list[CostEvent]) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for e in events:
        out[e.ended_at.date().isoformat()] += e.cost_usd
    return dict(out)


def daily_totals(gm: Gasometer) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for row in stats.daily(gm.engine, stats.Filters()):
        out[row.date] += row.total_usd
    return dict(out)


def test_rebuild_recomputes_a_damaged_rollup(tmp_path: Path) -> None:
    events = month_events()
    gm = Gasometer.open(make_settings(tmp_path / "data"), background=False)
    try:
        for start in range(0, len(events), 100):
            gm.ingest(events[start : start + 100])
            gm.store.flush()
        hourly = [f for f in gm.store.files() if f.dataset == "hourly"]
        double_costs(gm.store.data_dir / hourly[0].path)
        gm.engine.close()
        gm.engine = type(gm.engine)(gm.store)
        assert daily_totals(gm) != pytest.approx(per_day(events))
        months = gm.store.rebuild_rollups()
        assert months == ["2026-09", "2026-10"]
        assert daily_totals(gm) == pytest.approx(per_day(events))
        per_month = defaultdict(int)
        for f in gm.store.files():
            if f.dataset == "hourly":
                per_month[f.partition] += 1
        assert dict(per_month) == {"2026-09": 1, "2026-10": 1}
    finally:
        gm.close()


def double_costs(path: Path) -> None:
    """Damage a rollup file in place: every cost doubled."""
    with duckdb.connect() as conn:
        conn.execute(
            f"COPY (SELECT * REPLACE (cost_usd * 2 AS cost_usd) FROM '{path}') "
            f"TO '{path}.tmp' (FORMAT parquet)"
        )
    Path(f"{path}.tmp").replace(path)


def test_rebuild_over_http_needs_a_token(server: ServerProcess, auth: dict[str, str]) -> None:
    """The rollup is damaged while the server is down (it then answers $3.00 for the
    day); the rebuild needs a token and brings the day back to the $1.50 sent."""
    body = [{"session_id": "ga-nux", "cost_usd": 1.5, "ended_at": "2026-10-02T10:00:00Z"}]
    assert httpx.post(server.url + "/api/ingest", json=body, headers=auth).status_code == 202
    server.stop()  # flushes: the event and its rollup are in Parquet now
    (rollup,) = (server.data_dir / "hourly").rglob("*.parquet")
    double_costs(rollup)
    server.start()
    daily = server.url + "/api/stats/daily"
    assert [(d["date"], d["total_usd"]) for d in httpx.get(daily).json()["days"]] == [
        ("2026-10-02", 3.0)
    ]
    refused = httpx.post(server.url + "/api/rollups/rebuild")
    assert refused.status_code == 401
    done = httpx.post(server.url + "/api/rollups/rebuild", headers=auth, timeout=120)
    assert done.status_code == 200, done.text
    assert done.json()["months"] == ["2026-10"]
    days = httpx.get(daily).json()["days"]
    assert [(d["date"], d["total_usd"]) for d in days] == [("2026-10-02", 1.5)]
