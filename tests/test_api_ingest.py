"""POST /api/ingest over a real server: one object, an array, NDJSON, `?kind=total`;
202 with the right counts, and each event visible to every read endpoint right after."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import (
    TOKEN,
    ServerFactory,
    ServerProcess,
    fetch_all_costs,
    free_port,
    server_env,
)

HEADERS = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the module; each test uses sessions of its own."""
    proc = ServerProcess(tmp_path_factory.mktemp("ingest") / "data", free_port(), server_env())
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


_names = itertools.count()


@pytest.fixture
def worker() -> str:
    """A worker name no other test uses (sessions `ga-<worker>` are polecats of rig ga)."""
    return f"w{next(_names)}"


def event(i: int, session: str, **extra: Any) -> dict[str, Any]:
    return {
        "session_id": session,
        "cost_usd": 0.25 * (i + 1),
        "ended_at": f"2026-11-20T10:{i // 60:02d}:{i % 60:02d}Z",
        **extra,
    }


def post(
    client: httpx.Client, body: bytes, params: dict[str, str] | None = None, **headers: str
) -> Any:
    response = client.post(
        "/api/ingest", content=body, params=params, headers={**HEADERS, **headers}
    )
    assert response.status_code == 202, response.text
    return response.json()


def test_one_object(client: httpx.Client, server: ServerProcess, worker: str) -> None:
    one = event(0, f"ga-{worker}", input_tokens=10, model="claude-opus-4-5")
    assert post(client, json.dumps(one).encode(), **{"content-type": "application/json"}) == {
        "accepted": 1,
        "duplicates": 0,
    }
    (row,) = fetch_all_costs(server.url, worker=worker)
    assert (row["session_id"], row["cost_usd"], row["input_tokens"]) == (f"ga-{worker}", 0.25, 10)
    assert row["ended_at"] == "2026-11-20T10:00:00.000000Z"
    assert (row["role"], row["rig"], row["worker"], row["model"]) == (
        "polecat",
        "ga",
        worker,
        "claude-opus-4-5",
    )


def test_array(client: httpx.Client, server: ServerProcess, worker: str) -> None:
    events = [event(i, f"ga-{worker}") for i in range(25)]
    assert post(client, json.dumps(events).encode()) == {"accepted": 25, "duplicates": 0}
    rows = fetch_all_costs(server.url, worker=worker)
    assert sorted(r["cost_usd"] for r in rows) == sorted(e["cost_usd"] for e in events)


def test_array_with_duplicates_inside_counts_them(client: httpx.Client, worker: str) -> None:
    s = f"ga-{worker}"
    events = [event(0, s), event(1, s), event(0, s), event(1, s, cost_usd=9.0), event(2, s)]
    assert post(client, json.dumps(events).encode()) == {"accepted": 3, "duplicates": 2}


@pytest.mark.parametrize(
    "content_type",
    ["application/x-ndjson", "application/x-ndjson; charset=utf-8", "application/jsonl"],
)
def test_ndjson(
    client: httpx.Client, server: ServerProcess, content_type: str, worker: str
) -> None:
    events = [event(i, f"hq-dog-{worker}") for i in range(40)]
    body = "\n".join(json.dumps(e) for e in events) + "\n"
    assert post(client, body.encode(), **{"content-type": content_type}) == {
        "accepted": 40,
        "duplicates": 0,
    }
    rows = fetch_all_costs(server.url, worker=worker)
    assert len(rows) == 40 and {(r["role"], r["rig"]) for r in rows} == {("dog", "hq")}


def test_ndjson_with_crlf_and_blank_lines(client: httpx.Client, worker: str) -> None:
    s = f"ga-{worker}"
    body = "\r\n".join([json.dumps(event(0, s)), "", json.dumps(event(1, s)), "  "]).encode()
    assert post(client, body, **{"content-type": "application/x-ndjson"}) == {
        "accepted": 2,
        "duplicates": 0,
    }


def test_kind_total_in_query_string(
    client: httpx.Client, server: ServerProcess, worker: str
) -> None:
    s = f"ga-crew-{worker}"
    totals = [event(i, s) | {"cost_usd": c} for i, c in enumerate([1.0, 2.5, 4.0])]
    assert post(client, json.dumps(totals).encode(), params={"kind": "total"}) == {
        "accepted": 3,
        "duplicates": 0,
    }
    rows = fetch_all_costs(server.url, session_id=s)
    assert sorted(r["cost_usd"] for r in rows) == [1.0, 1.5, 1.5]
    assert {r["kind"] for r in rows} == {"total"}


def test_kind_total_in_body(client: httpx.Client, worker: str) -> None:
    s = f"ga-crew-{worker}"
    totals = [event(i, s, kind="total") | {"cost_usd": c} for i, c in enumerate([2.0, 3.0])]
    post(client, json.dumps(totals).encode())
    days = client.get("/api/stats/daily", params={"worker": worker}).json()["days"]
    assert [(d["role"], d["total_usd"], d["event_count"]) for d in days] == [("crew", 3.0, 2)]


def test_explicit_attribution_wins_and_source_is_kept(
    client: httpx.Client, server: ServerProcess, worker: str
) -> None:
    one = event(
        0, "ga-nux", role="crew", rig="gasometer", worker=worker, source="hook", issue="ga-x1"
    )
    post(client, json.dumps(one).encode())
    (row,) = fetch_all_costs(server.url, worker=worker)
    assert (row["role"], row["rig"], row["worker"], row["source"], row["issue"]) == (
        "crew",
        "gasometer",
        worker,
        "hook",
        "ga-x1",
    )


def as_of(summary: dict[str, Any]) -> datetime:
    """The moment a summary was computed for (its `as_of`, to the second)."""
    return datetime.fromisoformat(summary["as_of"].replace("Z", "+00:00"))


def test_accepted_event_is_visible_everywhere_right_after_the_202(
    client: httpx.Client, worker: str
) -> None:
    """Read-your-writes: right after the 202, with no wait, every read endpoint counts the
    event. (Its "today" is the summary's own: 5 s before a UTC midnight it is yesterday's.)"""
    ended = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
    body = {"session_id": f"zq-{worker}", "cost_usd": 2.5, "ended_at": ended.isoformat()}
    before = client.get("/health").json()["event_count"]
    post(client, json.dumps(body).encode())
    mine = {"worker": worker}
    checks = {
        "/api/costs": lambda b: len(b["events"]) == 1,
        "/api/stats/daily": lambda b: b["days"][0]["total_usd"] == 2.5,
        "/api/stats/summary": lambda b: (
            b["today"]["total_usd"] == (2.5 if as_of(b).date() == ended.date() else 0.0)
            and b["burn_rate_usd_per_hour"] == 2.5
        ),
        "/api/stats/roles": lambda b: b["roles"][0]["role"] == "polecat",
        "/api/stats/rigs": lambda b: b["rigs"][0]["rig"] == "zq",
    }
    for path, check in checks.items():
        assert check(client.get(path, params=mine).json()), path
    assert client.get("/health").json()["event_count"] == before + 1


def test_ingest_answers_202_only_once_in_the_wal(
    client: httpx.Client, server: ServerProcess, worker: str
) -> None:
    """The acknowledgment means durable: a SIGKILL right after it loses nothing."""
    post(client, json.dumps([event(i, f"ga-{worker}") for i in range(10)]).encode())
    server.kill()
    server.start()
    assert len(fetch_all_costs(server.url, worker=worker)) == 10


def test_summary_today_ends_at_midnight(client: httpx.Client, worker: str) -> None:
    """An event stamped early tomorrow (a client clock ahead) is not part of today, of this
    week when today is Sunday, nor of this month on its last day.

    Expected totals follow from the summary's own `as_of`, so the test holds whenever it
    runs, a UTC midnight between sending and asking included."""
    now = datetime.now(UTC).replace(microsecond=0)
    earlier = now - timedelta(seconds=5)
    sent = {
        earlier: 1.0,
        datetime.combine(now.date() + timedelta(days=1), dtime(0, 0, 30), UTC): 8.0,
    }
    session = f"zq-{worker}"
    for ended, usd in sent.items():
        one = {"session_id": session, "cost_usd": usd, "ended_at": ended.isoformat()}
        post(client, json.dumps(one).encode())
    body = client.get("/api/stats/summary", params={"worker": worker}).json()
    day = as_of(body).date()
    monday = day - timedelta(days=day.weekday())
    periods = {
        "today": lambda d: d == day,
        "week": lambda d: monday <= d < monday + timedelta(days=7),
        "month": lambda d: (d.year, d.month) == (day.year, day.month),
    }
    for name, contains in periods.items():
        want = sum(usd for ended, usd in sent.items() if contains(ended.date()))
        assert body[name]["total_usd"] == want, name
    if day == earlier.date():  # the usual case: today holds the earlier event, not tomorrow's
        assert body["today"]["total_usd"] == 1.0


def test_session_id_length_counts_characters(client: httpx.Client, server: ServerProcess) -> None:
    """1–200 characters, not bytes: 200 two-byte characters are fine, 201 are not."""
    longest = "é" * 200
    ok = {"session_id": longest, "cost_usd": 1.0, "ended_at": "2026-11-20T10:00:00Z"}
    assert post(client, json.dumps(ok).encode()) == {"accepted": 1, "duplicates": 0}
    assert [r["session_id"] for r in fetch_all_costs(server.url, session_id=longest)] == [longest]
    too_long = {**ok, "session_id": "é" * 201}
    response = client.post("/api/ingest", json=too_long, headers=HEADERS)
    assert response.status_code == 400 and "session_id" in response.json()["error"]


def test_paging_through_events_that_share_a_moment(
    client: httpx.Client, server: ServerProcess, worker: str
) -> None:
    """Ties on ended_at across page boundaries: each event still comes exactly once."""
    same = [
        {"session_id": f"ga-crew-{worker}x{i}", "cost_usd": 0.5, "ended_at": "2026-11-19T09:00:00Z"}
        for i in range(50)
    ]
    post(client, json.dumps(same).encode())
    rows = fetch_all_costs(server.url, limit=7, to="2026-11-19T09:00:01Z", role="crew")
    mine = [r["session_id"] for r in rows if r["session_id"].startswith(f"ga-crew-{worker}x")]
    assert sorted(mine) == sorted(e["session_id"] for e in same)


ATTRIBUTION = {
    "hq-mayor": ("mayor", "hq", "mayor"),
    "hq-deacon": ("deacon", "hq", "deacon"),
    "hq-boot": ("boot", "hq", "boot"),
    "hq-dog-alpha": ("dog", "hq", "alpha"),
    "gt-witness": ("witness", "gastown", "witness"),
    "gt-refinery": ("refinery", "gastown", "refinery"),
    "gt-crew-joe": ("crew", "gastown", "joe"),
    "gt-toast": ("polecat", "gastown", "toast"),
    "ga-nux": ("polecat", "gasometer-from-config", "nux"),
    "careers-polecat-capable": ("polecat", "careers", "capable"),
    "zz-furiosa": ("polecat", "zz", "furiosa"),
    "hq-somethingelse": ("unknown", "unknown", "unknown"),
    "Some Random Session": ("unknown", "unknown", "unknown"),
}
"""Gas Town session names → (role, rig, worker), with prefixes from the town's
mayor/rigs.json (gt, ga) and from configuration (ga, which wins)."""


def test_attribution_from_session_names_and_town(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    town = tmp_path / "town"
    (town / "mayor").mkdir(parents=True)
    rigs = {"rigs": {"gastown": {"prefix": "gt"}, "gasometer": {"prefix": "ga"}}}
    (town / "mayor" / "rigs.json").write_text(json.dumps(rigs))
    srv = server_factory(
        tmp_path / "attr", town_dir=str(town), rig_prefixes="ga=gasometer-from-config"
    )
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        body = [event(i, name) for i, name in enumerate(ATTRIBUTION)]
        body.append(event(99, "gt-toast", role="reviewer", worker="ann"))
        assert post(client, json.dumps(body).encode())["accepted"] == len(body)
    rows = fetch_all_costs(srv.url)
    got = {(r["session_id"], r["role"], r["rig"], r["worker"]) for r in rows}
    want = {(name, *who) for name, who in ATTRIBUTION.items()}
    want.add(("gt-toast", "reviewer", "gastown", "ann"))
    assert got == want
