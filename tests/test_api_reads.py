"""Every read endpoint over a real server, against answers computed here in plain Python
from the events this module generated (never from the server's own output)."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from time import monotonic, sleep
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.conftest import TOKEN, ServerProcess, fetch_all_costs, free_port, server_env

RIG_PREFIXES = "ga=gasometer,bd=beads"
SESSIONS: dict[str, tuple[str, str, str]] = {
    "hq-mayor": ("mayor", "hq", "mayor"),
    "hq-deacon": ("deacon", "hq", "deacon"),
    "hq-boot": ("boot", "hq", "boot"),
    "hq-dog-rex": ("dog", "hq", "rex"),
    "ga-witness": ("witness", "gasometer", "witness"),
    "ga-refinery": ("refinery", "gasometer", "refinery"),
    "ga-crew-max": ("crew", "gasometer", "max"),
    "ga-nux": ("polecat", "gasometer", "nux"),
    "ga-furiosa": ("polecat", "gasometer", "furiosa"),
    "bd-toast": ("polecat", "beads", "toast"),
    "bd-crew-joe": ("crew", "beads", "joe"),
    "zz-slit": ("polecat", "zz", "slit"),
    "careers-polecat-capable": ("polecat", "careers", "capable"),
    "Not A Gas Town Name": ("unknown", "unknown", "unknown"),
}
"""Session name → the (role, rig, worker) Gas Town's naming rules give it."""
MODELS = ["claude-opus-4-5", "claude-sonnet-4-5", "claude-haiku-4-5", None]
ISSUES = ["gt-abc12", "ga-x1y2", "bd-77", None]
LA = "America/Los_Angeles"
KOLKATA = "Asia/Kolkata"
ZONES = ["UTC", LA, KOLKATA]


@dataclass(frozen=True)
class Ev:
    """One generated event and everything the server should make of it."""

    session_id: str
    ended: datetime
    started: datetime | None
    role: str
    rig: str
    worker: str
    model: str | None
    issue: str | None
    cost: float
    tokens: tuple[int, int, int, int]
    explicit: bool = False

    def wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "session_id": self.session_id,
            "cost_usd": self.cost,
            "ended_at": self.ended.isoformat().replace("+00:00", "Z"),
            "input_tokens": self.tokens[0],
            "output_tokens": self.tokens[1],
            "cache_creation_tokens": self.tokens[2],
            "cache_read_tokens": self.tokens[3],
        }
        if self.started is not None:
            body["started_at"] = self.started.astimezone(ZoneInfo(LA)).isoformat()
        if self.model is not None:
            body["model"] = self.model
        if self.issue is not None:
            body["issue"] = self.issue
        if self.explicit:
            body |= {"role": self.role, "rig": self.rig, "worker": self.worker}
        return body


def local_day(moment: datetime, tz: str) -> date:
    return moment.astimezone(ZoneInfo(tz)).date()


def at_local(day: date, clock: time, tz: str) -> datetime:
    return datetime.combine(day, clock, ZoneInfo(tz)).astimezone(UTC)


def generate(now: datetime, seed: int = 20261123) -> list[Ev]:
    """~900 events over the last 40 days, each (session_id, ended_at) unique, none in the
    future; plus events crossing local midnight in LA and Kolkata and some in the last hour."""
    rng = random.Random(seed)
    moments: set[datetime] = set()
    events: list[Ev] = []

    def add(session: str, ended: datetime, span_s: float | None, explicit: bool = False) -> None:
        ended = ended.replace(microsecond=ended.microsecond or rng.randrange(1, 10**6))
        if ended in moments or ended > now - timedelta(seconds=30):
            return
        moments.add(ended)
        role, rig, worker = SESSIONS.get(session, ("crew", "custom", "alice"))
        events.append(
            Ev(
                session_id=session,
                ended=ended,
                started=None if span_s is None else ended - timedelta(seconds=span_s),
                role=role,
                rig=rig,
                worker=worker,
                model=rng.choice(MODELS),
                issue=rng.choice(ISSUES),
                cost=round(rng.uniform(0, 4), 6),
                tokens=(
                    rng.randrange(0, 50_000),
                    rng.randrange(0, 8_000),
                    rng.randrange(0, 20_000),
                    rng.randrange(0, 400_000),
                ),
                explicit=explicit,
            )
        )

    names = list(SESSIONS)
    for _ in range(800):
        ended = now - timedelta(seconds=rng.uniform(60, 40 * 86400))
        add(rng.choice(names), ended, rng.choice([None, rng.uniform(1, 900)]))
    for _ in range(20):
        add("custom-session-1", now - timedelta(seconds=rng.uniform(60, 20 * 86400)), 30, True)
    for _ in range(12):
        add(rng.choice(names), now - timedelta(seconds=rng.uniform(60, 3000)), 20)
    for back in range(1, 6):
        for tz in (LA, KOLKATA):
            day = local_day(now, tz) - timedelta(days=back)
            crossing = at_local(day, time(0, 10), tz)
            add(rng.choice(names), crossing, 20 * 60)
            add(rng.choice(names), at_local(day, time(0, 0), tz), 5)
            add(rng.choice(names), at_local(day, time(0, 0), tz) - timedelta(microseconds=1), 5)
    return events


# -- expected answers, computed here ----------------------------------------------------


Pred = Callable[[Ev], bool]


def select(events: Iterable[Ev], **dims: str | None) -> list[Ev]:
    """Events matching role/rig/worker/issue filters (None = any)."""
    return [e for e in events if all(v is None or getattr(e, k) == v for k, v in dims.items())]


def in_window(events: Iterable[Ev], lo: datetime | None, hi: datetime | None) -> list[Ev]:
    return [e for e in events if (lo is None or e.ended >= lo) and (hi is None or e.ended < hi)]


def expected_daily(events: Iterable[Ev], tz: str, group_by: str) -> dict[tuple[str, str], dict]:
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    sessions: dict[tuple[str, str], set[str]] = defaultdict(set)
    for e in events:
        key_value = getattr(e, group_by) or "unknown"
        key = (local_day(e.ended, tz).isoformat(), key_value)
        row = rows.setdefault(
            key,
            {
                "total_usd": 0.0,
                "event_count": 0,
                "input_tokens": 0,
                "output_tokens": 0,
                "cache_creation_tokens": 0,
                "cache_read_tokens": 0,
            },
        )
        row["total_usd"] += e.cost
        row["event_count"] += 1
        for name, value in zip(
            ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens"),
            e.tokens,
            strict=True,
        ):
            row[name] += value
        sessions[key].add(e.session_id)
    for key, row in rows.items():
        row["session_count"] = len(sessions[key])
    return rows


def expected_shares(events: list[Ev], by: str) -> dict[str, tuple[float, int, float]]:
    totals: dict[str, float] = defaultdict(float)
    sessions: dict[str, set[str]] = defaultdict(set)
    for e in events:
        totals[getattr(e, by)] += e.cost
        sessions[getattr(e, by)].add(e.session_id)
    grand = sum(totals.values())
    return {k: (v, len(sessions[k]), v / grand if grand else 0.0) for k, v in totals.items()}


def close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def iso_z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- the server, loaded once ------------------------------------------------------------


@dataclass
class Loaded:
    server: ServerProcess
    client: httpx.Client
    now: datetime
    events: list[Ev]

    def get(self, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        response = self.client.get(path, params=clean)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    """A server holding the generated events: the first half flushed to Parquet, the rest
    sent later (pending or flushed, whichever the server has done by then)."""
    data = tmp_path_factory.mktemp("reads") / "data"
    env = server_env(GASOMETER_RIG_PREFIXES=RIG_PREFIXES, GASOMETER_FLUSH_INTERVAL_S="0.5")
    proc = ServerProcess(data, free_port(), env).start()
    now = datetime.now(UTC).replace(microsecond=0)
    events = generate(now)
    shuffled = list(events)
    random.Random(5).shuffle(shuffled)
    half = len(shuffled) // 2
    headers = {"Authorization": f"Bearer {TOKEN}"}
    client = httpx.Client(base_url=proc.url, timeout=30)
    try:
        for start in range(0, half, 200):
            batch = [e.wire() for e in shuffled[start : min(start + 200, half)]]
            response = client.post("/api/ingest", json=batch, headers=headers)
            assert response.json() == {"accepted": len(batch), "duplicates": 0}
        wait_flushed(client)
        for e in shuffled[half:]:
            response = client.post("/api/ingest", json=e.wire(), headers=headers)
            assert response.json() == {"accepted": 1, "duplicates": 0}
        yield Loaded(proc, client, now, events)
    finally:
        client.close()
        proc.stop()


def wait_flushed(client: httpx.Client, timeout: float = 120) -> None:
    deadline = monotonic() + timeout
    while monotonic() < deadline:
        if client.get("/health").json()["wal_backlog_events"] == 0:
            return
        sleep(0.05)
    raise AssertionError("the server did not flush its WAL in time")


# -- GET /api/costs ---------------------------------------------------------------------


def event_key(row: dict[str, Any]) -> tuple[str, str]:
    return row["session_id"], row["ended_at"]


def test_costs_pages_through_everything_once_newest_first(loaded: Loaded) -> None:
    rows = fetch_all_costs(loaded.server.url, limit=37)
    expected = sorted(loaded.events, key=lambda e: e.ended, reverse=True)
    assert [event_key(r) for r in rows] == [(e.session_id, iso_z(e.ended)) for e in expected]
    assert len({r["id"] for r in rows}) == len(rows)


def test_costs_rows_carry_every_field(loaded: Loaded) -> None:
    by_key = {(e.session_id, iso_z(e.ended)): e for e in loaded.events}
    for row in fetch_all_costs(loaded.server.url, limit=10_000):
        e = by_key[event_key(row)]
        assert (row["role"], row["rig"], row["worker"]) == (e.role, e.rig, e.worker)
        assert row["model"] == e.model and row["issue"] == e.issue
        assert row["cost_usd"] == e.cost
        tokens = (
            row["input_tokens"],
            row["output_tokens"],
            row["cache_creation_tokens"],
            row["cache_read_tokens"],
        )
        assert tokens == e.tokens
        assert row["started_at"] == (None if e.started is None else iso_z(e.started))
        assert row["source"] == "api" and row["kind"] == "increment" and row["revision"] == 0


def test_costs_default_limit_is_100(loaded: Loaded) -> None:
    page = loaded.get("/api/costs")
    newest = sorted(loaded.events, key=lambda e: e.ended, reverse=True)[:100]
    assert [event_key(r) for r in page["events"]] == [
        (e.session_id, iso_z(e.ended)) for e in newest
    ]
    assert page["next_cursor"] is not None


def test_costs_last_page_has_no_cursor(loaded: Loaded) -> None:
    page = loaded.get("/api/costs", limit=10_000)
    assert len(page["events"]) == len(loaded.events)
    assert page["next_cursor"] is None


@pytest.mark.parametrize(
    "dims",
    [
        {"role": "polecat"},
        {"rig": "gasometer"},
        {"worker": "max"},
        {"issue": "gt-abc12"},
        {"role": "crew", "rig": "beads"},
        {"rig": "custom", "worker": "alice"},
        {"role": "unknown"},
        {"role": "nobody"},
    ],
)
def test_costs_filters_by_dimension(loaded: Loaded, dims: dict[str, str]) -> None:
    rows = fetch_all_costs(loaded.server.url, limit=50, **dims)
    expected = sorted(select(loaded.events, **dims), key=lambda e: e.ended, reverse=True)
    assert [event_key(r) for r in rows] == [(e.session_id, iso_z(e.ended)) for e in expected]


def test_costs_filters_by_time(loaded: Loaded) -> None:
    now = loaded.now
    lo, hi = now - timedelta(days=9, minutes=17), now - timedelta(days=2, seconds=13)
    params = {"from": lo.isoformat(), "to": hi.isoformat().replace("+00:00", "Z")}
    rows = fetch_all_costs(loaded.server.url, limit=100, **params)
    expected = sorted(in_window(loaded.events, lo, hi), key=lambda e: e.ended, reverse=True)
    assert [event_key(r) for r in rows] == [(e.session_id, iso_z(e.ended)) for e in expected]


def test_costs_date_bounds_include_the_whole_to_day_in_tz(loaded: Loaded) -> None:
    first = local_day(loaded.now, KOLKATA) - timedelta(days=6)
    last = first + timedelta(days=3)
    params = {"from": first.isoformat(), "to": last.isoformat(), "tz": KOLKATA, "role": "polecat"}
    rows = fetch_all_costs(loaded.server.url, limit=100, **params)
    lo = at_local(first, time(), KOLKATA)
    hi = at_local(last + timedelta(days=1), time(), KOLKATA)
    chosen = in_window(select(loaded.events, role="polecat"), lo, hi)
    expected = sorted(chosen, key=lambda e: e.ended, reverse=True)
    assert rows and [event_key(r) for r in rows] == [
        (e.session_id, iso_z(e.ended)) for e in expected
    ]


# -- GET /api/stats/daily ---------------------------------------------------------------


def daily_rows(body: dict[str, Any], group_by: str) -> dict[tuple[str, str], dict[str, Any]]:
    rows = {}
    for row in body["days"]:
        assert set(row) == {
            "date",
            group_by,
            "total_usd",
            "session_count",
            "event_count",
            "input_tokens",
            "output_tokens",
            "cache_creation_tokens",
            "cache_read_tokens",
        }
        rows[(row["date"], row[group_by])] = row
    return rows


def assert_daily_matches(
    got: dict[tuple[str, str], dict], want: dict[tuple[str, str], dict]
) -> None:
    assert sorted(got) == sorted(want)
    for key, row in want.items():
        assert close(got[key]["total_usd"], row["total_usd"]), key
        for name in (
            "session_count",
            "event_count",
            "input_tokens",
            "output_tokens",
            "cache_creation_tokens",
            "cache_read_tokens",
        ):
            assert got[key][name] == row[name], (key, name)


@pytest.mark.parametrize("tz", ZONES)
@pytest.mark.parametrize("group_by", ["role", "rig", "worker", "model"])
def test_daily_by_zone_and_key(loaded: Loaded, tz: str, group_by: str) -> None:
    body = loaded.get("/api/stats/daily", tz=None if tz == "UTC" else tz, group_by=group_by)
    want = expected_daily(loaded.events, tz, group_by)
    assert_daily_matches(daily_rows(body, group_by), want)
    dates = [row["date"] for row in body["days"]]
    assert dates == sorted(dates)


def test_daily_default_groups_by_role(loaded: Loaded) -> None:
    body = loaded.get("/api/stats/daily")
    assert_daily_matches(daily_rows(body, "role"), expected_daily(loaded.events, "UTC", "role"))


@pytest.mark.parametrize("tz", ZONES)
def test_daily_with_date_bounds_and_filters(loaded: Loaded, tz: str) -> None:
    first = local_day(loaded.now, tz) - timedelta(days=12)
    last = first + timedelta(days=5)
    body = loaded.get(
        "/api/stats/daily",
        tz=tz,
        rig="gasometer",
        **{"from": first.isoformat(), "to": last.isoformat()},
    )
    lo, hi = at_local(first, time(), tz), at_local(last + timedelta(days=1), time(), tz)
    chosen = in_window(select(loaded.events, rig="gasometer"), lo, hi)
    want = expected_daily(chosen, tz, "role")
    assert want and {d for d, _ in want} <= {
        (first + timedelta(days=i)).isoformat() for i in range(6)
    }
    assert_daily_matches(daily_rows(body, "role"), want)


@pytest.mark.parametrize("tz", ZONES)
def test_daily_with_unaligned_time_bounds(loaded: Loaded, tz: str) -> None:
    """Bounds inside an hour: the answer must still cut at the exact moments."""
    lo = loaded.now - timedelta(days=20, minutes=23, seconds=7)
    hi = loaded.now - timedelta(days=3, minutes=41)
    body = loaded.get("/api/stats/daily", tz=tz, **{"from": lo.isoformat(), "to": hi.isoformat()})
    want = expected_daily(in_window(loaded.events, lo, hi), tz, "role")
    assert_daily_matches(daily_rows(body, "role"), want)


@pytest.mark.parametrize("tz", [LA, KOLKATA])
def test_event_crossing_local_midnight_counts_on_the_day_it_ended(loaded: Loaded, tz: str) -> None:
    day = local_day(loaded.now, tz) - timedelta(days=2)
    ended = at_local(day, time(0, 10), tz)
    crossing = [e for e in loaded.events if e.ended.replace(microsecond=0) == ended]
    assert len(crossing) == 1 and crossing[0].started is not None
    assert local_day(crossing[0].started, tz) == day - timedelta(days=1)
    body = loaded.get("/api/stats/daily", tz=tz, group_by="worker")
    rows = daily_rows(body, "worker")
    want = expected_daily(loaded.events, tz, "worker")
    key = (day.isoformat(), crossing[0].worker)
    assert rows[key]["event_count"] == want[key]["event_count"]
    assert close(rows[key]["total_usd"], want[key]["total_usd"])


def test_daily_in_utc_and_kolkata_differ_but_total_the_same(loaded: Loaded) -> None:
    """A guard on the test data itself: zones really move events between days."""
    utc = expected_daily(loaded.events, "UTC", "role")
    ist = expected_daily(loaded.events, KOLKATA, "role")
    assert utc != ist
    assert close(
        sum(r["total_usd"] for r in utc.values()), sum(r["total_usd"] for r in ist.values())
    )


# -- GET /api/stats/roles and /api/stats/rigs -------------------------------------------


@pytest.mark.parametrize("by", ["role", "rig"])
@pytest.mark.parametrize(
    "params",
    [
        {},
        {"from_days": 7},
        {"from_days": 30, "to_days": 3, "unaligned": True},
        {"worker": "nux"},
        {"issue": "gt-abc12", "from_days": 14},
        {"worker": "nobody"},
    ],
    ids=["all", "last week", "unaligned window", "worker", "issue", "empty"],
)
def test_shares(loaded: Loaded, by: str, params: dict[str, Any]) -> None:
    now = loaded.now
    lo = hi = None
    query: dict[str, Any] = {}
    if "from_days" in params:
        lo = now - timedelta(days=params["from_days"])
        if not params.get("unaligned"):
            lo = lo.replace(minute=0, second=0)
        query["from"] = lo.isoformat()
    if "to_days" in params:
        hi = now - timedelta(days=params["to_days"], minutes=7)
        query["to"] = hi.isoformat()
    dims = {k: params.get(k) for k in ("worker", "issue")}
    query |= {k: v for k, v in dims.items() if v}
    body = loaded.get(f"/api/stats/{by}s", **query)
    want = expected_shares(in_window(select(loaded.events, **dims), lo, hi), by)
    got = {row[by]: row for row in body[f"{by}s"]}
    assert sorted(got) == sorted(want)
    for key, (total, sessions, share) in want.items():
        assert set(got[key]) == {by, "total_usd", "session_count", "share"}
        assert close(got[key]["total_usd"], total)
        assert got[key]["session_count"] == sessions
        assert close(got[key]["share"], share)
    if want:
        assert close(sum(r["share"] for r in got.values()), 1.0)
    totals = [row["total_usd"] for row in body[f"{by}s"]]
    assert totals == sorted(totals, reverse=True)


def test_roles_filtered_by_rig(loaded: Loaded) -> None:
    body = loaded.get("/api/stats/roles", rig="hq")
    want = expected_shares(select(loaded.events, rig="hq"), "role")
    assert {r["role"] for r in body["roles"]} == set(want) == {"mayor", "deacon", "boot", "dog"}


# -- GET /api/stats/summary -------------------------------------------------------------


def expected_totals(events: list[Ev], lo: datetime, hi: datetime) -> tuple[float, int, int]:
    chosen = in_window(events, lo, hi)
    return sum(e.cost for e in chosen), len({e.session_id for e in chosen}), len(chosen)


@pytest.mark.parametrize("tz", ZONES)
@pytest.mark.parametrize("dims", [{}, {"rig": "gasometer"}])
def test_summary(loaded: Loaded, tz: str, dims: dict[str, str]) -> None:
    asked = datetime.now(UTC).replace(microsecond=0)
    body = loaded.get("/api/stats/summary", tz=tz, **dims)
    now = datetime.fromisoformat(body["as_of"].replace("Z", "+00:00"))
    assert asked <= now <= datetime.now(UTC)
    events = select(loaded.events, **dims)
    today = local_day(now, tz)
    starts = {
        "today": today,
        "week": today - timedelta(days=today.weekday()),
        "month": today.replace(day=1),
    }
    for name, first in starts.items():
        lo = at_local(first, time(), tz)
        total, sessions, count = expected_totals(events, lo, now + timedelta(seconds=1))
        got = body[name]
        assert close(got["total_usd"], total), name
        assert (got["session_count"], got["event_count"]) == (sessions, count), name
    burn = sum(e.cost for e in events if now - timedelta(hours=1) < e.ended <= now)
    assert burn > 0
    assert abs(body["burn_rate_usd_per_hour"] - burn) < 1e-9 * max(1, burn)
    month_start = at_local(starts["month"], time(), tz)
    next_month = (starts["month"] + timedelta(days=32)).replace(day=1)
    span = (at_local(next_month, time(), tz) - month_start).total_seconds()
    elapsed = (now - month_start).total_seconds()
    projected = body["month"]["total_usd"] * span / elapsed
    assert abs(body["projected_month_usd"] - projected) <= projected * 2 / elapsed + 1e-9


def test_summary_week_starts_on_monday(loaded: Loaded) -> None:
    """Sunday belongs to the week that started six days before, not to the next one."""
    body = loaded.get("/api/stats/summary")
    now = datetime.fromisoformat(body["as_of"].replace("Z", "+00:00"))
    monday = now.date() - timedelta(days=now.weekday())
    sunday_before = at_local(monday - timedelta(days=1), time(12), "UTC")
    in_week = [e for e in loaded.events if e.ended >= at_local(monday, time(), "UTC")]
    assert body["week"]["event_count"] == len(in_week)
    assert not any(e.ended <= sunday_before for e in in_week)


# -- /health and the OpenAPI schema -----------------------------------------------------


def test_health(loaded: Loaded) -> None:
    body = loaded.get("/health")
    assert body["status"] == "ok"
    assert body["event_count"] == len(loaded.events)
    assert isinstance(body["version"], str) and body["version"]
    months = {e.ended.strftime("%Y-%m") for e in loaded.events}
    assert set(body["partitions"]) <= months and body["partitions"]
    assert body["wal_backlog_events"] >= 0 and body["wal_backlog_batches"] >= 0
    first = min(e.started or e.ended for e in loaded.events)
    last = max(e.ended for e in loaded.events)
    assert body["first_event_at"] == first.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert body["last_event_at"] == last.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("path", ["/schema/openapi.json", "/schema"])
def test_openapi_schema_lists_every_endpoint(loaded: Loaded, path: str) -> None:
    response = loaded.client.get(path)
    assert response.status_code == 200
    if path.endswith(".json"):
        paths = response.json()["paths"]
        for endpoint in (
            "/api/ingest",
            "/api/costs",
            "/api/stats/daily",
            "/api/stats/summary",
            "/api/stats/roles",
            "/api/stats/rigs",
            "/health",
        ):
            assert endpoint in paths, endpoint
        assert "post" in paths["/api/ingest"]
        params = {p["name"] for p in paths["/api/costs"]["get"]["parameters"]}
        assert {"from", "to", "role", "rig", "worker", "issue", "limit", "cursor"} <= params
    else:
        assert "html" in response.headers["content-type"]
