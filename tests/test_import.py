"""`gasometer import`: totals against the generator's truth, incremental and idempotent
runs, crashes mid-import, Gas Town's cost log, the CLI and the HTTP endpoints."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from gasometer.config import Settings
from gasometer.faults import PAUSE_ENV, marker
from gasometer.importer.fake import UNKNOWN_MODEL, Corpus, Quirks, generate
from gasometer.importer.run import Importer, ImportProgress, default_paths
from gasometer.model import CostEvent, IngestResult
from gasometer.runtime import Gasometer
from tests.billing import per_day
from tests.conftest import ServerFactory, ServerProcess, ccusage_bin, make_settings, server_env

DAY_SQL = """
SELECT CAST(ended_at AS DATE)::VARCHAR AS day, sum(cost_usd), sum(input_tokens)::BIGINT,
       sum(output_tokens)::BIGINT, sum(cache_creation_tokens)::BIGINT,
       sum(cache_read_tokens)::BIGINT
FROM events WHERE kind = 'increment' GROUP BY ALL ORDER BY 1
"""


def stored_days(gm: Gasometer) -> dict[str, list[float]]:
    return {row[0]: list(row[1:]) for row in gm.engine.execute(DAY_SQL).rows}


def assert_days_match(got: dict[str, list[float]], want: dict[str, list[float]]) -> None:
    assert sorted(got) == sorted(want)
    for day, expected in want.items():
        cost, *tokens = got[day]
        assert cost == pytest.approx(expected[0], abs=1e-6), day
        assert tokens == expected[1:], day


def truth_days(corpus: Corpus, cost: str = "anthropic") -> dict[str, list[float]]:
    return per_day(list(corpus.responses.values()), cost)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    root = tmp_path_factory.mktemp("claude") / "projects"
    return generate(root, sessions=40, responses=25, days=6, seed=5)


def import_into(settings: Settings, paths: list[Path], **kw: Any) -> ImportProgress:
    gm = Gasometer.open(settings)
    try:
        return Importer(gm, **kw).run(paths)
    finally:
        gm.close()


def days_of(settings: Settings) -> dict[str, list[float]]:
    gm = Gasometer.open(settings)
    try:
        return stored_days(gm)
    finally:
        gm.close()


def test_import_matches_truth_and_counts_every_quirk(settings: Settings, corpus: Corpus) -> None:
    p = import_into(settings, [corpus.root])
    assert p.state == "finished" and p.error is None
    assert p.files_total == len(corpus.files)
    assert p.lines == corpus.lines and p.bad_lines == corpus.bad_lines
    assert p.skipped_types == dict(corpus.skipped)
    assert p.accepted == len(corpus.responses)
    assert p.duplicates == corpus.replayed
    assert p.responses == len(corpus.responses) + corpus.replayed
    assert p.truncated_files == corpus.truncated_files
    replayed_unknown = sum(corpus.responses[k].model == UNKNOWN_MODEL for k in corpus.replayed_keys)
    assert p.unknown_models == {
        UNKNOWN_MODEL: corpus.unknown_models[UNKNOWN_MODEL] + replayed_unknown
    }
    assert p.bytes_done == sum(f.stat().st_size for f in corpus.files) - _tails(corpus)
    assert_days_match(days_of(settings), truth_days(corpus))


def _tails(corpus: Corpus) -> int:
    total = 0
    for f in corpus.files:
        data = f.read_bytes()
        total += len(data) - (data.rfind(b"\n") + 1)
    return total


def test_rerun_adds_nothing(settings: Settings, corpus: Corpus) -> None:
    import_into(settings, [corpus.root])
    again = import_into(settings, [corpus.root])
    assert again.accepted == 0 and again.lines == 0
    assert again.files_unchanged == len(corpus.files) - corpus.truncated_files
    assert_days_match(days_of(settings), truth_days(corpus))


def test_stored_rows_carry_sessions_attribution_and_source(
    settings: Settings, corpus: Corpus
) -> None:
    import_into(settings, [corpus.root])
    gm = Gasometer.open(settings)
    try:
        rows = gm.engine.execute(
            "SELECT event_id, session_id, parent_session_id, role, rig, worker, issue, source "
            "FROM events WHERE revision = 0"
        ).rows
    finally:
        gm.close()
    by_id = {r[0]: r[1:] for r in rows}
    assert len(by_id) == len(corpus.responses)
    replayed = set(corpus.replayed_keys)
    for key, truth in corpus.responses.items():
        session, parent, role, rig, worker, issue, source = by_id[key]
        assert source == "import"
        if key not in replayed:
            assert (session, parent) == (truth.session_id, truth.parent_session_id)
        if "/polecats/nux/" in truth.cwd:
            assert (role, rig, worker, issue) == ("polecat", "gasometer", "nux", "ga-abc12")
        if truth.cwd.endswith("/mayor"):
            assert (role, rig) == ("mayor", "hq")
        if truth.cwd.startswith("/home/agent/code/"):
            assert (role, rig) == ("unknown", "side.project")


def test_appended_files_and_responses_split_across_imports(tmp_path: Path) -> None:
    """Each file is first imported cut at a random byte (often mid-line, mid-response),
    then in full: every response is counted once, with its final usage."""
    corpus = generate(tmp_path / "projects", sessions=25, responses=20, seed=8)
    full = {f: f.read_bytes() for f in corpus.files}
    rng = random.Random(3)
    for f, data in full.items():
        f.write_bytes(data[: rng.randint(0, len(data))])
    settings = make_settings(tmp_path / "data")
    import_into(settings, [corpus.root])
    for f, data in full.items():
        f.write_bytes(data)
    p = import_into(settings, [corpus.root])
    assert p.files_unchanged == 0
    assert_days_match(days_of(settings), truth_days(corpus))


def test_replaced_file_is_read_again_from_the_start(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", sessions=1, responses=10, seed=1, quirks=Quirks.none())
    b = generate(tmp_path / "b", sessions=1, responses=30, seed=2, quirks=Quirks.none())
    target = tmp_path / "projects" / "p" / "s.jsonl"
    target.parent.mkdir(parents=True)
    target.write_bytes(a.files[0].read_bytes())
    settings = make_settings(tmp_path / "data")
    import_into(settings, [target])
    replacement = tmp_path / "new.jsonl"
    replacement.write_bytes(b.files[0].read_bytes())
    os.replace(replacement, target)
    import_into(settings, [target])
    want = truth_days(a)
    for day, values in truth_days(b).items():
        old = want.get(day, [0.0, 0, 0, 0, 0])
        want[day] = [x + y for x, y in zip(old, values, strict=True)]
    assert_days_match(days_of(settings), want)


def test_crash_after_some_batches_then_rerun(tmp_path: Path, corpus: Corpus) -> None:
    settings = make_settings(tmp_path / "data")
    gm = Gasometer.open(settings)
    calls = 0

    def failing(events: list[CostEvent]) -> IngestResult:
        nonlocal calls
        calls += 1
        if calls > 3:
            raise RuntimeError("simulated crash")
        return gm.ingest(events, default_source="import")

    try:
        with pytest.raises(RuntimeError):
            Importer(gm, ingest=failing, batch_events=100).run([corpus.root])
        partial = stored_days(gm)
    finally:
        gm.close()
    assert 0 < sum(v[2] for v in partial.values()) < sum(v[2] for v in truth_days(corpus).values())
    p = import_into(settings, [corpus.root], batch_events=100)
    assert p.duplicates > corpus.replayed
    assert_days_match(days_of(settings), truth_days(corpus))


def test_killed_import_process_then_rerun(tmp_path: Path) -> None:
    corpus = generate(tmp_path / "projects", sessions=150, responses=30, seed=9)
    data = tmp_path / "data"
    cmd = [sys.executable, "-m", "gasometer", "import", "--quiet", "--data-dir", str(data),
           "--batch-events", "100", str(corpus.root)]  # fmt: skip
    env = server_env()
    paused = {**env, PAUSE_ENV: "import-advanced"}
    proc = subprocess.Popen(cmd, env=paused, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not marker(data, "import-advanced").exists():
        assert proc.poll() is None, "the import ended before it recorded a first batch"
        assert time.monotonic() < deadline, "the import never recorded a first batch"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    marked = _files_marked(data)
    assert 1 <= marked < len(corpus.files)
    done = subprocess.run(cmd, env=env, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr
    assert_days_match(days_of(make_settings(data)), truth_days(corpus))


def _files_marked(data: Path) -> int:
    path = data / "import_state.sqlite"
    if not path.exists():
        return 0
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)) as conn:
            return int(conn.execute("SELECT count(*) FROM files").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_agrees_with_ccusage_where_ccusage_is_right(tmp_path: Path) -> None:
    corpus = generate(tmp_path / "projects", sessions=30, responses=20, seed=4,
                      quirks=Quirks.ccusage_comparable())  # fmt: skip
    settings = make_settings(tmp_path / "data")
    import_into(settings, [corpus.root])
    got = days_of(settings)
    ccusage = truth_days(corpus, "ccusage")
    assert sorted(got) == sorted(ccusage)
    for day, (cost, *tokens) in ccusage.items():
        assert abs(got[day][0] - cost) <= 0.01
        assert got[day][1:] == tokens


def test_differs_from_ccusage_where_it_undercounts(settings: Settings, corpus: Corpus) -> None:
    import_into(settings, [corpus.root])
    got = days_of(settings)
    ccusage = truth_days(corpus, "ccusage")
    ours_output = sum(v[2] for v in got.values())
    assert ours_output == sum(v[2] for v in truth_days(corpus).values())
    assert ours_output > 1.5 * sum(v[2] for v in ccusage.values())


def _costs_line(session: str, cost: float, ended: str, **extra: Any) -> str:
    rec = {"session_id": session, "role": "polecat", "rig": "gasometer", "worker": "nux",
           "cost_usd": cost, "ended_at": ended, "work_item": "ga-abc12", **extra}  # fmt: skip
    return json.dumps(rec) + "\n"


def test_gas_town_cost_log_is_imported_as_running_totals(tmp_path: Path) -> None:
    log = tmp_path / "gt" / ".gt" / "costs.jsonl"
    log.parent.mkdir(parents=True)
    log.write_text(
        _costs_line("ga-nux", 1.0, "2026-05-01T10:00:00Z")
        + _costs_line("ga-nux", 2.5, "2026-05-01T11:00:00Z")
        + "garbage\n"
        + _costs_line("hq-mayor", 4.0, "2026-05-01T12:00:00Z")
    )
    settings = make_settings(tmp_path / "data")
    first = import_into(settings, [log])
    assert (first.accepted, first.bad_lines) == (3, 1)
    assert import_into(settings, [log]).accepted == 0
    with log.open("a") as f:
        f.write(_costs_line("ga-nux", 3.0, "2026-05-02T09:00:00Z"))
    import_into(settings, [log])
    gm = Gasometer.open(settings)
    try:
        rows = gm.engine.execute(
            "SELECT session_id, sum(cost_usd), any_value(source), any_value(issue) "
            "FROM events GROUP BY 1 ORDER BY 1"
        ).rows
    finally:
        gm.close()
    assert [(r[0], round(r[1], 9), r[2], r[3]) for r in rows] == [
        ("ga-nux", 3.0, "gt-costs", "ga-abc12"),
        ("hq-mayor", 4.0, "gt-costs", "ga-abc12"),
    ]


def test_default_paths(tmp_path: Path) -> None:
    one, two = tmp_path / "c1", tmp_path / "c2"
    (one / "projects").mkdir(parents=True)
    (two / "projects").mkdir(parents=True)
    env = {"CLAUDE_CONFIG_DIR": f"{one}, {two},", "HOME": str(tmp_path / "home")}
    assert default_paths(env) == [one / "projects", two / "projects"]
    home = tmp_path / "home"
    (home / ".claude" / "projects").mkdir(parents=True)
    (home / ".config" / "claude" / "projects").mkdir(parents=True)
    (home / ".gt").mkdir()
    (home / ".gt" / "costs.jsonl").write_text("")
    assert default_paths({"HOME": str(home)}) == [
        home / ".claude" / "projects",
        home / ".config" / "claude" / "projects",
    ]
    assert default_paths({"HOME": str(home)}, gt_costs=True)[-1] == home / ".gt" / "costs.jsonl"
    gt_home = tmp_path / "gthome"
    (gt_home / ".gt").mkdir(parents=True)
    (gt_home / ".gt" / "costs.jsonl").write_text("")
    env = {"HOME": str(tmp_path / "nowhere"), "GT_HOME": str(gt_home)}
    assert default_paths(env) == []
    found = default_paths(env, gt_costs=True)
    assert found == [gt_home / ".gt" / "costs.jsonl"]


def test_cli_import_prints_summary(tmp_path: Path, corpus: Corpus) -> None:
    cmd = [sys.executable, "-m", "gasometer", "import", "--data-dir", str(tmp_path / "d"),
           str(corpus.root)]  # fmt: skip
    done = subprocess.run(cmd, env=server_env(), capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert f"imported {len(corpus.files)} files" in done.stdout
    assert f"duplicates skipped {corpus.replayed}" in done.stdout
    assert f"bad lines {corpus.bad_lines}" in done.stdout
    assert UNKNOWN_MODEL in done.stderr


def test_cli_import_refuses_a_served_data_dir(server: ServerProcess, corpus: Corpus) -> None:
    cmd = [sys.executable, "-m", "gasometer", "import", "--data-dir", str(server.data_dir),
           str(corpus.root)]  # fmt: skip
    done = subprocess.run(cmd, env=server_env(), capture_output=True, text=True, check=False)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "POST /api/import" in lines[0]


def wait_for_import(url: str, timeout: float = 120) -> dict[str, Any]:
    """The import status once the import is no longer running."""
    deadline = time.monotonic() + timeout
    while True:
        status: dict[str, Any] = httpx.get(url + "/status").json()
        if status["state"] != "running" or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


@pytest.fixture
def rooted_server(server_factory: ServerFactory, corpus: Corpus) -> ServerProcess:
    """A server whose import root is the corpus's `projects/` folder."""
    return server_factory(import_roots=str(corpus.root))


def test_http_import_and_status(
    rooted_server: ServerProcess, auth: dict[str, str], corpus: Corpus
) -> None:
    server = rooted_server
    url = server.url + "/api/import"
    assert httpx.post(url, json={"paths": [str(corpus.root)]}).status_code == 401
    assert httpx.get(url + "/status").json()["state"] == "idle"
    started = httpx.post(url, json={"paths": [str(corpus.root)]}, headers=auth)
    assert started.status_code == 202, started.text
    status = wait_for_import(url)
    assert status["state"] == "finished", status
    assert status["files_done"] == status["files_total"] == len(corpus.files)
    assert (status["accepted"], status["duplicates"]) == (len(corpus.responses), corpus.replayed)
    assert status["bad_lines"] == corpus.bad_lines
    assert UNKNOWN_MODEL in status["unknown_models"]
    days = httpx.get(server.url + "/api/stats/daily", params={"days": 3650}).json()["days"]
    total = sum(d["total_usd"] for d in days)
    assert total == pytest.approx(sum(v[0] for v in truth_days(corpus).values()), abs=1e-6)
    again = httpx.post(url, headers=auth)
    assert again.status_code == 202, again.text
    assert wait_for_import(url)["state"] == "finished"


def test_http_import_rejects_bad_body(server: ServerProcess, auth: dict[str, str]) -> None:
    response = httpx.post(server.url + "/api/import", content=b"{nope", headers=auth)
    assert response.status_code == 400 and response.json()["ok"] is False


def test_unknown_model_counts_are_per_name(tmp_path: Path) -> None:
    corpus = generate(tmp_path / "p", sessions=30, responses=20, seed=21)
    p = import_into(make_settings(tmp_path / "d"), [corpus.root])
    expected = Counter(corpus.unknown_models)
    for key in corpus.replayed_keys:
        if corpus.responses[key].model == UNKNOWN_MODEL:
            expected[UNKNOWN_MODEL] += 1
    assert p.unknown_models == dict(expected) and p.unknown_responses == sum(expected.values())


@pytest.mark.parametrize("comparable", [True, False])
def test_against_real_ccusage(tmp_path: Path, comparable: bool) -> None:
    """Where ccusage is right we agree to the cent and token; elsewhere ccusage's figures are
    exactly what the ccusage model in tests/billing.py predicts, and ours are Anthropic's."""
    ccusage = ccusage_bin()
    assert ccusage.exists(), f"{ccusage} missing: `make tools` installs ccusage 18.0.11"
    version = subprocess.run([str(ccusage), "--version"], capture_output=True, text=True)
    assert version.stdout.strip() == "18.0.11", version
    quirks = Quirks.ccusage_comparable() if comparable else Quirks()
    corpus = generate(tmp_path / "claude" / "projects", sessions=30, responses=20, seed=14,
                      quirks=quirks)  # fmt: skip
    env = {**os.environ, "CLAUDE_CONFIG_DIR": str(tmp_path / "claude")}
    cmd = [str(ccusage), "daily", "--json", "--mode", "calculate", "--offline",
           "--timezone", "UTC"]  # fmt: skip
    out = subprocess.run(cmd, env=env, capture_output=True, check=True, timeout=120).stdout
    theirs = {
        d["date"]: [d["totalCost"], d["inputTokens"], d["outputTokens"],
                    d["cacheCreationTokens"], d["cacheReadTokens"]]
        for d in json.loads(out)["daily"]
    }  # fmt: skip
    settings = make_settings(tmp_path / "data")
    import_into(settings, [corpus.root])
    ours = days_of(settings)
    model = truth_days(corpus, "ccusage")
    assert sorted(theirs) == sorted(model) == sorted(ours)
    for day, values in theirs.items():
        assert values[0] == pytest.approx(model[day][0], abs=1e-6)
        assert values[1:] == model[day][1:]
        if comparable:
            assert abs(ours[day][0] - values[0]) <= 0.01
            assert ours[day][1:] == values[1:]
    assert_days_match(ours, truth_days(corpus))


def test_missing_paths_are_one_line_errors(
    tmp_path: Path, rooted_server: ServerProcess, auth: dict[str, str], corpus: Corpus
) -> None:
    cmd = [sys.executable, "-m", "gasometer", "import", "--data-dir", str(tmp_path / "d"),
           str(tmp_path / "nope")]  # fmt: skip
    done = subprocess.run(cmd, env=server_env(), capture_output=True, text=True, check=False)
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "nope" in done.stderr
    env = {**server_env(), "HOME": str(tmp_path / "empty-home")}
    env.pop("CLAUDE_CONFIG_DIR", None)
    done = subprocess.run(cmd[:-1], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 1 and "no Claude transcripts found" in done.stderr
    missing = str(corpus.root / "nope" / "x")
    response = httpx.post(
        rooted_server.url + "/api/import", json={"paths": [missing]}, headers=auth
    )
    assert response.status_code == 400
    assert "no such file or folder" in response.json()["error"]
    assert missing not in response.json()["error"], "errors name no path on the server"


def test_small_reads_split_large_files(tmp_path: Path, corpus: Corpus) -> None:
    """Files read in 64 kB pieces (responses cut between reads) still count once."""
    settings = make_settings(tmp_path / "data")
    p = import_into(settings, [corpus.root], batch_bytes=65536, batch_events=500)
    assert p.lines == corpus.lines and p.bad_lines == corpus.bad_lines
    assert_days_match(days_of(settings), truth_days(corpus))


def test_cwd_rules_from_the_config_file(tmp_path: Path) -> None:
    """Attribution rules in gasometer.toml go before the Gas Town layout."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "gasometer.toml").write_text(
        '[[cwd_rules]]\npattern = "/lab/agents/(?P<worker>[^/]+)"\nrole = "scout"\nrig = "lab"\n'
    )
    line = {
        "type": "assistant",
        "sessionId": "s-1",
        "requestId": "req_rule_1",
        "timestamp": "2026-11-20T10:00:00.000Z",
        "cwd": "/home/me/lab/agents/scout-7/src",
        "message": {
            "id": "msg_rule_1",
            "model": "claude-sonnet-4-5-20250929",
            "usage": {"input_tokens": 1000, "output_tokens": 100},
        },
    }
    transcript = tmp_path / "projects" / "p" / "s-1.jsonl"
    transcript.parent.mkdir(parents=True)
    transcript.write_text(json.dumps(line) + "\n")
    cmd = [sys.executable, "-m", "gasometer", "import", "--quiet", "--data-dir", str(data)]
    done = subprocess.run([*cmd, str(transcript)], env=server_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    settings = make_settings(data)
    gm = Gasometer.open(settings)
    try:
        rows = gm.engine.execute("SELECT role, rig, worker, cost_usd FROM events").rows
    finally:
        gm.close()
    assert rows == [("scout", "lab", "scout-7", pytest.approx(1000 * 3e-6 + 100 * 15e-6))]
