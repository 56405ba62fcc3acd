"""Gas Town's own cost log (`gt costs record`: running totals per session) forwarded with
`gasometer hook --gt-costs`, and posted as-is to `/api/ingest?kind=total`."""

from __future__ import annotations

import itertools
import json
import random
import shutil
import subprocess
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import TOKEN, ServerProcess, free_port, server_env
from tests.test_hook_helpers import hook_env, run_hook, spool_files, stored_events

WEEK_START = datetime(2026, 11, 9, 8, 0, tzinfo=UTC)
ROLES = [("gastown", "polecat", "nux"), ("gastown", "witness", "witness"), ("hq", "mayor", "mayor")]


def week_of_totals(seed: int) -> list[dict[str, object]]:
    """Per-turn running totals of several sessions over a week; some sessions restart
    (a new run, whose total starts again below the last one)."""
    rng = random.Random(seed)
    records: list[dict[str, object]] = []
    for n in range(5):
        rig, role, worker = ROLES[n % len(ROLES)]
        session = f"gt-{worker}-{n}"
        at = WEEK_START + timedelta(hours=rng.randint(0, 24 * 6))
        for _run in range(1 + n % 3):
            total = round(rng.uniform(0.01, 0.2), 6)
            for _turn in range(rng.randint(3, 25)):
                records.append(
                    {
                        "session_id": session,
                        "role": role,
                        "rig": rig,
                        "worker": worker,
                        "cost_usd": total,
                        "ended_at": at.isoformat().replace("+00:00", "Z"),
                        "work_item": f"gt-w{n}x",
                    }
                )
                total = round(total + rng.uniform(0.0, 1.5), 6)
                at += timedelta(minutes=rng.randint(1, 90))
    return records


def expected_per_session(records: list[dict[str, object]]) -> dict[str, float]:
    """Independently: order each session's totals by time, cut a run where the total
    falls, and add up the last total of every run."""
    by_session: dict[str, dict[str, float]] = defaultdict(dict)
    for r in records:
        by_session[str(r["session_id"])][str(r["ended_at"])] = float(r["cost_usd"])  # type: ignore[arg-type]
    result = {}
    for session, points in by_session.items():
        values = [points[t] for t in sorted(points)]
        run_ends = [a for a, b in itertools.pairwise(values) if b < a]
        result[session] = sum(run_ends) + values[-1]
    return result


def stored_per_session(server: ServerProcess) -> dict[str, float]:
    sums: dict[str, float] = defaultdict(float)
    for row in stored_events(server):
        sums[row["session_id"]] += row["cost_usd"]
    return dict(sums)


def shuffled_with_duplicates(records: list[dict[str, object]], seed: int) -> list[str]:
    rng = random.Random(seed)
    lines = [json.dumps({**r, "extra_field_from_gt": 1}) for r in records]
    lines += rng.sample(lines, len(lines) // 5)
    rng.shuffle(lines)
    return lines


def test_week_of_totals_forwarded_by_the_hook(tmp_path: Path) -> None:
    records = week_of_totals(seed=3)
    expected = expected_per_session(records)
    assert any(len([r for r in records if r["session_id"] == s]) > 30 for s in expected)
    lines = shuffled_with_duplicates(records, seed=4)
    log = tmp_path / "gt" / ".gt" / "costs.jsonl"
    log.parent.mkdir(parents=True)
    server = ServerProcess(tmp_path / "data", free_port(), server_env())
    env = hook_env(tmp_path, server.url, GT_HOME=str(tmp_path / "gt"))
    third = len(lines) // 3

    with open(log, "w") as f:
        f.write("\n".join(lines[:third]) + "\n" + "not json\n")
    assert run_hook(b"", env, "--gt-costs").returncode == 0
    assert len(spool_files(tmp_path)) == 1

    server.start()
    try:
        with open(log, "a") as f:
            f.write("\n".join(lines[third : 2 * third]) + "\n" + lines[2 * third][:20])
        assert run_hook(b"", env, "--gt-costs").returncode == 0
        with open(log, "a") as f:
            f.write(lines[2 * third][20:] + "\n" + "\n".join(lines[2 * third + 1 :]) + "\n")
        assert run_hook(b"", env, "--gt-costs", str(log)).returncode == 0
        assert spool_files(tmp_path) == []
        got = stored_per_session(server)
        assert got.keys() == expected.keys()
        for session, total in expected.items():
            assert got[session] == pytest.approx(total, abs=1e-6), session

        shutil.rmtree(tmp_path / "hook" / "state")
        assert run_hook(b"", env, "--gt-costs").returncode == 0
        assert stored_per_session(server) == got
        rows = stored_events(server)
        assert {r["issue"] for r in rows if r["session_id"] == "gt-nux-0"} == {"gt-w0x"}
        assert {(r["role"], r["rig"]) for r in rows if r["session_id"] == "gt-mayor-2"} == {
            ("mayor", "hq")
        }
    finally:
        server.stop()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_one_liner_from_the_docs(server: ServerProcess, tmp_path: Path) -> None:
    records = week_of_totals(seed=9)
    expected = expected_per_session(records)
    log = tmp_path / ".gt" / "costs.jsonl"
    log.parent.mkdir(parents=True)
    one_liner = (
        # The docs' `-m 1` made 60: a loaded test machine must not drop a record.
        'tail -n 1 "${GT_HOME:-$HOME}/.gt/costs.jsonl" | curl -fsS -m 60 -X POST '
        '"${GASOMETER_URL:-http://127.0.0.1:8000}/api/ingest?kind=total" '
        '-H "Authorization: Bearer $GASOMETER_TOKEN" -H "Content-Type: application/x-ndjson" '
        "--data-binary @- >/dev/null 2>&1 || true"
    )
    env = {"HOME": str(tmp_path), "GASOMETER_URL": server.url, "GASOMETER_TOKEN": TOKEN}
    env["PATH"] = "/usr/bin:/bin"
    order = sorted(records, key=lambda r: str(r["ended_at"]))
    for record in order:
        with open(log, "a") as f:
            f.write(json.dumps(record) + "\n")
        subprocess.run(["sh", "-c", one_liner], env=env, check=True, timeout=120)
    got = stored_per_session(server)
    for session, total in expected.items():
        assert got[session] == pytest.approx(total, abs=1e-6), session
