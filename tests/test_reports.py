"""`gasometer daily|weekly|monthly|session|blocks` against answers computed here in plain
Python from the events this module posts, against the API's own answers on the same data,
and against ccusage 18 itself on generated transcripts where both count alike."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from gasometer.importer.fake import Quirks, generate
from tests.conftest import TOKEN, ServerProcess, free_port, server_env

ROOT = Path(__file__).resolve().parent.parent
CCUSAGE = ROOT / "tools" / "node_modules" / ".bin" / "ccusage"
TZ = "America/New_York"
START = datetime(2026, 10, 28, 3, 10, tzinfo=UTC)
SESSIONS = {
    "hq-mayor": ("mayor", "hq", "mayor"),
    "ga-nux": ("polecat", "gasometer", "nux"),
    "ga-witness": ("witness", "gasometer", "witness"),
    "bd-crew-joe": ("crew", "beads", "joe"),
}
MODELS = ["claude-opus-4-5", "claude-sonnet-4-5", None]
TOKENS = ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens")
CC_TOKENS = ("inputTokens", "outputTokens", "cacheCreationTokens", "cacheReadTokens")


def make_events() -> list[dict[str, Any]]:
    """Bursts of events over two weeks (a DST change in New York inside), with gaps longer
    than five hours between some bursts so blocks start and end."""
    rng = random.Random(12)
    events = []
    moment = START
    for i in range(150):
        moment += timedelta(minutes=rng.choice([3, 17, 41, 95, 400, 700]))
        session = rng.choice(list(SESSIONS))
        events.append(
            {
                "session_id": session,
                "ended_at": moment.isoformat().replace("+00:00", "Z"),
                "cost_usd": round(rng.uniform(0.01, 2.0), 4),
                "model": rng.choice(MODELS),
                "issue": rng.choice(["ga-1", "ga-2", None]),
                "input_tokens": rng.randint(0, 5000),
                "output_tokens": rng.randint(0, 9000),
                "cache_creation_tokens": rng.randint(0, 20000),
                "cache_read_tokens": rng.randint(0, 90000),
                "event_id": f"r{i}",
            }
        )
    return events


def ended(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["ended_at"].replace("Z", "+00:00"))


def expected(events: list[dict[str, Any]], label: Any) -> dict[str, list[float]]:
    """label(event) -> [cost, input, output, cache write, cache read, events]."""
    out: dict[str, list[float]] = defaultdict(lambda: [0.0, 0, 0, 0, 0, 0])
    for e in events:
        cell = out[label(e)]
        cell[0] += e["cost_usd"]
        for i, name in enumerate(TOKENS, start=1):
            cell[i] += e[name]
        cell[5] += 1
    return dict(out)


def local_day(e: dict[str, Any]) -> date:
    return ended(e).astimezone(ZoneInfo(TZ)).date()


def week_of(day: date, first: int = 6) -> str:
    return (day - timedelta(days=(day.weekday() - first) % 7)).isoformat()


def figures(item: dict[str, Any], cost: str = "totalCost") -> list[float]:
    return [item[cost], *(item[k] for k in CC_TOKENS), item["events"]]


def assert_same(got: dict[str, list[float]], want: dict[str, list[float]]) -> None:
    assert sorted(got) == sorted(want)
    for key, values in want.items():
        assert got[key][0] == pytest.approx(values[0], abs=1e-6), key
        assert got[key][1:] == values[1:], key


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "gasometer", *args]
    return subprocess.run(
        cmd, env=env or server_env(), capture_output=True, text=True, check=False, timeout=120
    )


def report(*args: str) -> dict[str, Any]:
    done = cli(*args, "--json")
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, list]]:
    data = tmp_path_factory.mktemp("reports") / "data"
    env = server_env(GASOMETER_RIG_PREFIXES="ga=gasometer,bd=beads")
    proc = ServerProcess(data, free_port(), env).start()
    try:
        events = make_events()
        auth = {"Authorization": f"Bearer {TOKEN}"}
        posted = httpx.post(proc.url + "/api/ingest", json=events, headers=auth, timeout=30)
        assert posted.status_code == 202, posted.text
        yield proc, events
    finally:
        proc.stop()


@pytest.fixture(params=["url", "data-dir"])
def where(request: pytest.FixtureRequest, loaded: tuple[ServerProcess, list]) -> list[str]:
    """Read through the server's API, or from its data directory (read-only) while it runs."""
    server, _ = loaded
    if request.param == "url":
        return ["--url", server.url]
    return ["--data-dir", str(server.data_dir)]


def test_daily_by_role_equals_plain_python_and_the_api(
    loaded: tuple[ServerProcess, list], where: list[str]
) -> None:
    server, events = loaded
    answer = report("daily", *where, "--timezone", TZ, "--by", "role")
    got = {d["date"]: figures(d) for d in answer["daily"]}
    assert_same(got, expected(events, lambda e: local_day(e).isoformat()))
    roles = {
        (d["date"], b["role"]): figures(b, "cost") for d in answer["daily"] for b in d["breakdowns"]
    }
    want = expected(events, lambda e: (local_day(e).isoformat(), SESSIONS[e["session_id"]][0]))
    assert_same(roles, want)
    api = httpx.get(server.url + "/api/stats/daily", params={"tz": TZ, "group_by": "role"}).json()
    from_api = {
        (d["date"], d["role"]): [d["total_usd"], *(d[k] for k in TOKENS), d["event_count"]]
        for d in api["days"]
    }
    assert_same(roles, from_api)
    assert answer["totals"]["totalCost"] == pytest.approx(sum(e["cost_usd"] for e in events))


def test_since_until_order_and_filters(
    loaded: tuple[ServerProcess, list], where: list[str]
) -> None:
    _, events = loaded
    answer = report(
        "daily", *where, "-z", TZ, "--since", "20261101", "--until", "20261105",
        "--order", "desc", "--rig", "gasometer", "--breakdown",
    )  # fmt: skip
    dates = [d["date"] for d in answer["daily"]]
    assert dates == sorted(dates, reverse=True)
    picked = [
        e for e in events
        if date(2026, 11, 1) <= local_day(e) <= date(2026, 11, 5)
        and SESSIONS[e["session_id"]][1] == "gasometer"
    ]  # fmt: skip
    got = {d["date"]: figures(d) for d in answer["daily"]}
    assert_same(got, expected(picked, lambda e: local_day(e).isoformat()))
    models = {
        (d["date"], m["modelName"]): figures(m, "cost")
        for d in answer["daily"]
        for m in d["modelBreakdowns"]
    }
    want = expected(picked, lambda e: (local_day(e).isoformat(), e["model"] or "unknown"))
    assert_same(models, want)


def test_weekly_and_monthly_fold_local_days(
    loaded: tuple[ServerProcess, list], where: list[str]
) -> None:
    _, events = loaded
    weekly = report("weekly", *where, "-z", TZ, "--start-of-week", "monday")
    got = {w["week"]: figures(w) for w in weekly["weekly"]}
    assert_same(got, expected(events, lambda e: week_of(local_day(e), first=0)))
    monthly = report("monthly", *where, "-z", TZ, "--worker", "nux")
    got = {m["month"]: figures(m) for m in monthly["monthly"]}
    nux = [e for e in events if e["session_id"] == "ga-nux"]
    assert_same(got, expected(nux, lambda e: local_day(e).strftime("%Y-%m")))


def test_session_report(loaded: tuple[ServerProcess, list], where: list[str]) -> None:
    _, events = loaded
    answer = report("session", *where, "-z", "UTC", "--issue", "ga-1")
    picked = [e for e in events if e["issue"] == "ga-1"]
    got = {s["sessionId"]: figures(s) for s in answer["sessions"]}
    assert_same(got, expected(picked, lambda e: e["session_id"]))
    last = {s: max(ended(e) for e in picked if e["session_id"] == s) for s in got}
    order = [s["sessionId"] for s in answer["sessions"]]
    assert order == sorted(last, key=lambda s: last[s])
    for s in answer["sessions"]:
        assert (s["role"], s["rig"], s["worker"]) == SESSIONS[s["sessionId"]]
        assert s["lastActivityAt"] == last[s["sessionId"]].strftime("%Y-%m-%dT%H:%M:%SZ")


def billing_blocks(moments: list[datetime]) -> dict[str, list[datetime]]:
    """ccusage's rule, on raw times: a block starts at the hour of the first request not
    within five hours of the current block's start."""
    blocks: dict[str, list[datetime]] = {}
    start: datetime | None = None
    for moment in sorted(moments):
        if start is None or moment - start > timedelta(hours=5):
            start = moment.replace(minute=0, second=0, microsecond=0)
            blocks[start.strftime("%Y-%m-%dT%H:%M:%SZ")] = []
        blocks[start.strftime("%Y-%m-%dT%H:%M:%SZ")].append(moment)
    return blocks


def test_blocks(loaded: tuple[ServerProcess, list], where: list[str]) -> None:
    _, events = loaded
    answer = report("blocks", *where, "-z", "UTC")
    blocks = billing_blocks([ended(e) for e in events])
    block_of = {m: start for start, ms in blocks.items() for m in ms}
    got = {b["id"]: figures(b) for b in answer["blocks"]}
    assert_same(got, expected(events, lambda e: block_of[ended(e)]))
    for b in answer["blocks"]:
        assert b["actualEndTime"] == max(blocks[b["id"]]).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert not b["isActive"]  # all of it is weeks in the past


def test_tables_are_not_cut_when_piped(loaded: tuple[ServerProcess, list]) -> None:
    server, _ = loaded
    done = cli("session", "--url", server.url, "-z", "UTC", "--by", "role", "--breakdown")
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "--by" in done.stderr
    done = cli("session", "--url", server.url, "-z", "UTC")
    assert done.returncode == 0, done.stderr
    assert "…" not in done.stdout and "bd-crew-joe" in done.stdout and "Total" in done.stdout


def test_one_line_errors(tmp_path: Path, loaded: tuple[ServerProcess, list]) -> None:
    server, _ = loaded
    cases = [
        (["daily", "--data-dir", str(tmp_path / "typo")], "no Gasometer data"),
        (["daily", "--url", server.url, "--since", "2026-13"], "--since"),
        (["daily", "--url", server.url, "-z", "Mars/X"], "Mars/X"),
        (["daily", "--url", f"http://127.0.0.1:{free_port()}"], "cannot reach"),
    ]
    for args, needle in cases:
        done = cli(*args)
        assert done.returncode == 1, args
        assert done.stderr.count("\n") == 1 and needle in done.stderr, done.stderr
    assert not (tmp_path / "typo").exists()


def test_closed_reads_need_the_token(tmp_path: Path) -> None:
    env = server_env(GASOMETER_HOST="0.0.0.0")
    proc = ServerProcess(tmp_path / "data", free_port(), env)
    proc.start()
    try:
        closed = httpx.get(proc.url + "/api/stats/daily")
        if closed.status_code != 401:
            pytest.skip("reads are open on this build (scopes not merged yet)")
        done = cli("daily", "--url", proc.url)
        assert done.returncode == 1 and "401" in done.stderr and "--token" in done.stderr
        with_env = {**server_env(), "GASOMETER_TOKEN": TOKEN}
        for done in (
            cli("daily", "--url", proc.url, "--token", TOKEN),
            cli("daily", "--url", proc.url, env=with_env),
        ):
            # TOKEN may be an ingest-only token under scopes: then 403 with the reason
            assert done.returncode == 0 or ("403" in done.stderr and "read scope" in done.stderr)
    finally:
        proc.stop()


# -- against ccusage itself ----------------------------------------------------------------


@pytest.fixture(scope="module")
def transcripts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Generated transcripts on which ccusage counts right, imported by the real CLI."""
    if not CCUSAGE.exists():
        pytest.fail(f"{CCUSAGE} missing: run `npm ci --prefix tools` (make test does)")
    root = tmp_path_factory.mktemp("cc")
    generate(root / "claude" / "projects", sessions=30, responses=20, seed=21,
             quirks=Quirks.ccusage_comparable())  # fmt: skip
    data = root / "data"
    done = cli("import", "--quiet", "--data-dir", str(data), str(root / "claude" / "projects"))
    assert done.returncode == 0, done.stderr
    return root, data


def ccusage(root: Path, *args: str) -> dict[str, Any]:
    env = {**os.environ, "CLAUDE_CONFIG_DIR": str(root / "claude")}
    cmd = [str(CCUSAGE), *args, "--json", "--mode", "calculate", "--offline"]
    out = subprocess.run(cmd, env=env, capture_output=True, check=True, timeout=120).stdout
    answer: dict[str, Any] = json.loads(out)
    return answer


@pytest.mark.parametrize("tz", ["UTC", "Asia/Tokyo"])
def test_daily_equals_ccusage_daily(transcripts: tuple[Path, Path], tz: str) -> None:
    root, data = transcripts
    theirs = ccusage(root, "daily", "--timezone", tz, "--breakdown")
    ours = report("daily", "--data-dir", str(data), "--timezone", tz, "--breakdown")
    assert [d["date"] for d in ours["daily"]] == [d["date"] for d in theirs["daily"]]
    for mine, cc in zip(ours["daily"], theirs["daily"], strict=True):
        assert [mine[k] for k in CC_TOKENS] == [cc[k] for k in CC_TOKENS], cc["date"]
        assert mine["totalTokens"] == cc["totalTokens"]
        assert abs(mine["totalCost"] - cc["totalCost"]) <= 0.01, cc["date"]
        by_model = {m["modelName"]: [m[k] for k in CC_TOKENS] for m in mine["modelBreakdowns"]}
        cc_models = {
            m["modelName"]: [m[k] for k in CC_TOKENS]
            for m in cc["modelBreakdowns"]
            if any(m[k] for k in CC_TOKENS)
        }
        assert {k: v for k, v in by_model.items() if any(v)} == cc_models
    for key in (*CC_TOKENS, "totalTokens"):
        assert ours["totals"][key] == theirs["totals"][key]


def test_blocks_equal_ccusage_blocks(transcripts: tuple[Path, Path]) -> None:
    root, data = transcripts
    theirs = [b for b in ccusage(root, "blocks")["blocks"] if not b["isGap"]]
    ours = report("blocks", "--data-dir", str(data))["blocks"]
    assert [b["startTime"][:19] for b in ours] == [b["startTime"][:19] for b in theirs]
    for mine, cc in zip(ours, theirs, strict=True):
        cc_tokens = cc["tokenCounts"]
        assert [mine[k] for k in CC_TOKENS] == [
            cc_tokens["inputTokens"],
            cc_tokens["outputTokens"],
            cc_tokens["cacheCreationInputTokens"],
            cc_tokens["cacheReadInputTokens"],
        ]
        assert abs(mine["costUSD"] - cc["costUSD"]) <= 0.01


def test_breakdowns_add_up_for_every_report(loaded: tuple[ServerProcess, list]) -> None:
    server, _ = loaded
    for kind, by in [("blocks", "role"), ("weekly", "worker"), ("session", "model")]:
        answer = report(kind, "--url", server.url, "-z", TZ, "--by", by)
        (rows,) = (v for k, v in answer.items() if isinstance(v, list))
        assert rows
        for row in rows:
            parts = row["breakdowns"]
            assert parts and all(by in p for p in parts)
            assert sum(p["cost"] for p in parts) == pytest.approx(row["totalCost"])
            assert sum(p["outputTokens"] for p in parts) == row["outputTokens"]
    done = cli("session", "--url", server.url, "--by", "rig")
    assert done.returncode == 1 and "--by" in done.stderr and done.stderr.count("\n") == 1
    done = cli("session", "--url", server.url, "-z", "UTC", "--breakdown")
    assert done.returncode == 0 and "└ claude-opus-4-5" in done.stdout
