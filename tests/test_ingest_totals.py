"""`kind: total`: a week of Gas Town Stop-hook running totals (new runs when the total
falls, duplicates, out-of-order arrival, a restart in the middle) adds up exactly to each
session's final totals, computed here from the runs the test generated.

Costs are multiples of 1/1024 and tokens are proportional to cost, so sums are exact.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.conftest import TOKEN, ServerFactory, fetch_all_costs

HEADERS = {"Authorization": f"Bearer {TOKEN}"}
IN_ORDER = ["ga-nux", "hq-mayor", "bd-crew-joe"]
SHUFFLED = ["ga-furiosa", "ga-witness", "hq-dog-rex", "zz-slit"]
WORKER = {
    "ga-nux": "nux",
    "hq-mayor": "mayor",
    "bd-crew-joe": "joe",
    "ga-furiosa": "furiosa",
    "ga-witness": "witness",
    "hq-dog-rex": "rex",
    "zz-slit": "slit",
}
WEEK_START = datetime(2026, 11, 9, 0, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Point:
    """One Stop-hook report: the session's running total after a turn."""

    session_id: str
    ended_at: datetime
    units: int
    """The running cost in 1/1024 USD; tokens are derived from it."""
    first_of_run: bool

    def wire(self, with_kind: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "session_id": self.session_id,
            "ended_at": self.ended_at.isoformat().replace("+00:00", "Z"),
            "cost_usd": self.units / 1024,
            "input_tokens": self.units * 3,
            "output_tokens": self.units,
            "cache_read_tokens": self.units * 40,
            "source": "hook",
        }
        if with_kind:
            body["kind"] = "total"
        return body


def week_of_totals(session: str, rng: random.Random) -> list[Point]:
    """1–4 runs of 5–60 turns spread over a week; each run starts below the last run's end."""
    points: list[Point] = []
    moment = WEEK_START + timedelta(seconds=rng.randrange(0, 86400))
    previous_end = None
    for _ in range(rng.randint(1, 4)):
        units = rng.randint(1, 40) if previous_end is None else rng.randint(1, previous_end - 1)
        for turn in range(rng.randint(5, 60)):
            if turn:
                units += rng.randint(0, 3000)
            moment += timedelta(seconds=rng.randint(5, 7200), microseconds=rng.randrange(10**6))
            points.append(Point(session, moment, units, turn == 0))
        previous_end = units
        moment += timedelta(hours=rng.randint(1, 20))
    assert points[-1].ended_at < WEEK_START + timedelta(days=8)
    return points


def final_units(points: list[Point]) -> int:
    """The session's cost: the sum of each run's last total."""
    total, last = 0, None
    for point in sorted(points, key=lambda p: p.ended_at):
        if point.first_of_run and last is not None:
            total += last
        last = point.units
    return total + (last or 0)


def daily_units(points: list[Point]) -> dict[str, int]:
    """Per UTC day, the rise of the total in that day's turns (runs restart from zero)."""
    days: dict[str, int] = defaultdict(int)
    previous = 0
    for point in sorted(points, key=lambda p: p.ended_at):
        rise = point.units if point.first_of_run else point.units - previous
        days[point.ended_at.date().isoformat()] += rise
        previous = point.units
    return dict(days)


def send(client: httpx.Client, points: list[Point], rng: random.Random) -> tuple[int, int]:
    """Post points in batches of 1–40, marking `total` by query string or in the body."""
    accepted = duplicates = 0
    i = 0
    while i < len(points):
        chunk = points[i : i + rng.randint(1, 40)]
        i += len(chunk)
        by_query = rng.random() < 0.5
        body = [p.wire(with_kind=not by_query) for p in chunk]
        params = {"kind": "total"} if by_query else {}
        if rng.random() < 0.3:
            content = "\n".join(json.dumps(b) for b in body).encode()
            headers = {**HEADERS, "content-type": "application/x-ndjson"}
            response = client.post("/api/ingest", content=content, params=params, headers=headers)
        else:
            response = client.post("/api/ingest", json=body, params=params, headers=HEADERS)
        assert response.status_code == 202, response.text
        accepted += response.json()["accepted"]
        duplicates += response.json()["duplicates"]
    return accepted, duplicates


def test_a_week_of_running_totals_adds_up_exactly(server_factory: ServerFactory) -> None:
    rng = random.Random(42)
    sessions = {s: week_of_totals(s, rng) for s in IN_ORDER + SHUFFLED}
    assert any(sum(p.first_of_run for p in pts) > 1 for pts in sessions.values())
    ordered = sorted((p for s in IN_ORDER for p in sessions[s]), key=lambda p: p.ended_at)
    shuffled = [p for s in SHUFFLED for p in sessions[s]]
    rng.shuffle(shuffled)
    repeats = rng.sample(ordered, len(ordered) // 6) + rng.sample(shuffled, len(shuffled) // 6)
    unique = len(ordered) + len(shuffled)

    srv = server_factory(flush_interval_s="0.2", compact_min_files="2")
    with httpx.Client(base_url=srv.url, timeout=60) as client:
        first = send(client, ordered[: len(ordered) // 2] + shuffled[: len(shuffled) // 2], rng)
    srv.kill()
    srv.start()
    with httpx.Client(base_url=srv.url, timeout=60) as client:
        rest = ordered[len(ordered) // 2 :] + shuffled[len(shuffled) // 2 :]
        second = send(client, rest + repeats + ordered[:10], rng)
        assert first[0] + second[0] == unique
        assert first[1] + second[1] == len(repeats) + 10

        for session, points in sessions.items():
            rows = fetch_all_costs(srv.url, session_id=session)
            assert sum(r["cost_usd"] for r in rows) * 1024 == final_units(points), session
            assert sum(r["output_tokens"] for r in rows) == final_units(points), session
            assert sum(r["cache_read_tokens"] for r in rows) == 40 * final_units(points)
            assert len(rows) == len(points) and {r["kind"] for r in rows} == {"total"}

        days = client.get("/api/stats/daily", params={"group_by": "worker"}).json()["days"]
        got: dict[str, dict[str, float]] = defaultdict(dict)
        for row in days:
            got[row["worker"]][row["date"]] = row["total_usd"] * 1024
        for session, points in sessions.items():
            per_day = got[WORKER[session]]
            assert sum(per_day.values()) == final_units(points), session
            if session in IN_ORDER:
                want = {d: float(u) for d, u in daily_units(points).items() if u}
                assert {d: u for d, u in per_day.items() if u} == want, session

        grand = sum(final_units(p) for p in sessions.values()) / 1024
        roles = client.get("/api/stats/roles").json()["roles"]
        assert sum(r["total_usd"] for r in roles) == grand
        assert client.get("/health").json()["event_count"] == unique
