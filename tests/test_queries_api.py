"""`GET /api/queries` lists the named queries; `GET /api/queries/{name}` runs one with
parameters from the query string (declared ones only, converted to their types)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from gasometer.query.named import param_specs, public_names
from gasometer.query.sandbox import bind_params, param_types
from gasometer.resources import query_header
from tests.conftest import TOKEN, ServerProcess, free_port, server_env

QUERIES_DIR = Path(__file__).resolve().parent.parent / "queries"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
START = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
SESSIONS = ["ga-nux", "ga-toast", "bd-nux", "hq-mayor"]


def make_events() -> list[dict[str, object]]:
    """Ninety events over three days across two rigs and a town-level session."""
    events = []
    for i in range(90):
        ended = START + timedelta(minutes=47 * i)
        events.append(
            {
                "session_id": SESSIONS[i % 4],
                "cost_usd": round(0.1 + (i % 7) * 0.25, 2),
                "ended_at": ended.isoformat().replace("+00:00", "Z"),
                "event_id": f"q{i}",
            }
        )
    return events


@pytest.fixture(scope="module")
def loaded() -> Iterator[tuple[ServerProcess, list[dict[str, object]]]]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        proc = ServerProcess(Path(tmp) / "data", free_port(), server_env()).start()
        try:
            events = make_events()
            posted = httpx.post(proc.url + "/api/ingest", json=events, headers=AUTH)
            assert posted.status_code == 202, posted.text
            yield proc, events
        finally:
            proc.stop()


def rig_of(session_id: str) -> str:
    return session_id.split("-")[0]


def test_lists_every_query_with_its_header(loaded: tuple[ServerProcess, list]) -> None:
    server, _ = loaded
    body = httpx.get(server.url + "/api/queries").json()
    names = [q["name"] for q in body["queries"]]
    assert names == sorted(p.stem for p in QUERIES_DIR.glob("*.sql"))
    by_name = {q["name"]: q for q in body["queries"]}
    first_line = (QUERIES_DIR / "daily.sql").read_text().splitlines()[0][2:].strip()
    assert by_name["daily"]["description"].splitlines()[0] == first_line
    assert set(by_name["daily"]["parameters"]) == {
        "start", "end", "tz", "group_by", "role", "rig", "worker", "issue",
    }  # fmt: skip
    internal = {q["name"] for q in body["queries"] if q["internal"]}
    assert internal == {"rollup_hourly", "rollup_merge", "rollup_of_exact_hours"}


def test_runs_a_query_with_bound_parameters(loaded: tuple[ServerProcess, list]) -> None:
    server, events = loaded
    expected: dict[tuple[str, str], float] = defaultdict(float)
    for e in events:
        ended = datetime.fromisoformat(str(e["ended_at"]))
        if START + timedelta(days=1) <= ended < START + timedelta(days=3):
            expected[(ended.date().isoformat(), rig_of(str(e["session_id"])))] += float(
                str(e["cost_usd"])
            )
    response = httpx.get(
        server.url + "/api/queries/daily",
        params={"start": "2026-11-02", "end": "2026-11-04T00:00:00Z", "group_by": "rig"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["columns"][:3] == ["date", "key", "total_usd"]
    got = {(row[0], row[1]): row[2] for row in body["rows"]}
    assert got.keys() == expected.keys()
    for key, usd in expected.items():
        assert got[key] == pytest.approx(usd)


def test_filters_and_limits_bind(loaded: tuple[ServerProcess, list]) -> None:
    server, events = loaded
    totals = httpx.get(server.url + "/api/queries/totals", params={"rig": "ga"}).json()
    ga = [e for e in events if str(e["session_id"]).startswith("ga-")]
    expected = sum(float(str(e["cost_usd"])) for e in ga)
    assert totals["rows"][0][0] == pytest.approx(expected)
    page = httpx.get(
        server.url + "/api/queries/events_page", params={"limit": "3", "format": "csv"}
    )
    assert page.headers["content-type"].startswith("text/csv")
    lines = page.text.splitlines()
    newest = sorted(events, key=lambda e: str(e["ended_at"]), reverse=True)[:3]
    assert len(lines) == 4
    assert [line.split(",")[1] for line in lines[1:]] == [e["event_id"] for e in newest]


@pytest.mark.parametrize(
    ("path", "params", "status", "message"),
    [
        ("daily", {"colour": "red"}, 400, "unknown parameter 'colour' for daily"),
        ("daily", {"start": "last tuesday"}, 400, "parameter start"),
        ("events_page", {"after_id": "abc"}, 400, "parameter after_id: 'abc' is not a valid"),
        ("nope", {}, 404, "no named query 'nope'"),
        ("rollup_hourly", {}, 404, "no named query 'rollup_hourly'"),
        ("daily", {"format": "xml"}, 400, "format"),
        ("burn", {"minutes": "3000000"}, 400, "minutes: 3000000 is outside its bound of 1 to 1440"),
        ("events_page", {"limit": "10001"}, 400, "outside its bound of 1 to 10000"),
        ("timeline", {"limit": "-1"}, 400, "limit: -1 is outside its bound"),
        ("daily", {"group_by": "session_id"}, 400, "must be one of role, rig, worker, model"),
        ("daily", {"tz": "../../etc/passwd"}, 400, "is not an IANA time zone"),
        ("calendar", {"first_day": "1000-01-01"}, 400, "between 2000-01-01 and 2100-01-01"),
        ("totals", {"rig": "x" * 201}, 400, "longer than its bound of 200"),
        ("totals", {"rig": "ga\x00"}, 400, "control characters"),
    ],
)
def test_bad_requests_say_what_is_wrong(
    loaded: tuple[ServerProcess, list], path: str, params: dict, status: int, message: str
) -> None:
    server, _ = loaded
    response = httpx.get(f"{server.url}/api/queries/{path}", params=params)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    assert response.json()["ok"] is False


def test_types_come_from_the_header() -> None:
    assert param_types("daily") == {"start": "TIMESTAMPTZ", "end": "TIMESTAMPTZ"}
    assert param_types("events_page") == {
        "start": "TIMESTAMPTZ", "end": "TIMESTAMPTZ", "after_ts": "TIMESTAMPTZ",
        "after_id": "BIGINT", "limit": "BIGINT",
    }  # fmt: skip
    bound = bind_params("events_page", {"after_id": "7", "start": "2026-11-02"})
    assert bound["after_id"] == 7
    assert bound["start"] == datetime(2026, 11, 2, tzinfo=UTC)
    assert bound["role"] is None


def test_every_parameter_of_every_public_query_is_declared_in_its_header() -> None:
    """Each `$parameter` has a type (or `NULL = any` text) in its query's header, and every
    integer that sizes work (`limit`, `minutes`) states an upper bound."""
    for name in public_names():
        header = query_header(name)
        for param, spec in param_specs(name).items():
            assert f"${param}" in header.split("Parameters:", 1)[-1], (name, param)
            if param in ("limit", "minutes"):
                assert spec.kind == "BIGINT" and spec.high is not None, (name, param)
