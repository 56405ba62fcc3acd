"""`gasometer hook` end to end: a real server on loopback, real transcripts, the hook run
as a separate process exactly as Claude Code runs it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import TOKEN, ServerProcess, free_port, server_env
from tests.test_hook_helpers import (
    NOISE,
    Response,
    append,
    assert_stored_exactly,
    hook_env,
    hook_input,
    per_event,
    run_hook,
    spool_files,
    stored_events,
)


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for tests that use distinct session and request ids."""
    proc = ServerProcess(tmp_path_factory.mktemp("shared") / "data", free_port(), server_env())
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def responses(session: str, count: int, day: int = 20, start: int = 0) -> list[Response]:
    """`count` streamed responses of one session, output growing over 3 lines each."""
    return [
        Response(
            request_id=f"req_{session}_{i}",
            session_id=session,
            timestamp=f"2026-11-{day:02d}T10:{i // 60:02d}:{i % 60:02d}.000Z",
            outputs=[3 + i, 40 + 7 * i, 90 + 11 * i],
            input_tokens=100 + i,
            cache_creation=1_000 + 10 * i,
            cache_read=20_000 + 100 * i,
        )
        for i in range(start, start + count)
    ]


def transcript_lines(items: list[Response]) -> list[str]:
    lines: list[str] = []
    for i, r in enumerate(items):
        lines += r.lines()
        lines.append(NOISE[i % len(NOISE)])
    return lines


def settle(transcript: Path, env: dict[str, str]) -> None:
    """A Stop run after a SessionEnd run: SessionEnd has at most 0.9 s, and what a loaded
    machine makes it leave (spooled or unread) the session's next run sends. A run with
    nothing left to do changes nothing."""
    run = run_hook(hook_input(transcript), env)
    assert (run.returncode, run.stdout) == (0, b"")


def test_server_down_then_up(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", free_port(), server_env())
    env = hook_env(tmp_path, server.url)
    transcript = tmp_path / "projects" / "-home-u" / "sess-a.jsonl"
    first = responses("sess-a", 4)
    append(transcript, transcript_lines(first))

    down = run_hook(hook_input(transcript), env)
    assert (down.returncode, down.stdout) == (0, b"")
    spooled = [json.loads(x) for f in spool_files(tmp_path) for x in f.read_text().splitlines()]
    assert sorted(e["event_id"] for e in spooled) == sorted(r.request_id for r in first)

    second = responses("sess-a", 3, start=4)
    append(transcript, transcript_lines(second))
    still_down = run_hook(hook_input(transcript), env)
    assert (still_down.returncode, still_down.stdout) == (0, b"")
    assert len(spool_files(tmp_path)) == 2

    server.start()
    try:
        up = run_hook(hook_input(transcript, "SessionEnd", reason="other"), env)
        assert (up.returncode, up.stdout) == (0, b"")
        settle(transcript, env)
        assert spool_files(tmp_path) == []
        assert_stored_exactly(server, first + second)
        again = run_hook(hook_input(transcript), env)
        assert again.returncode == 0
        assert len(stored_events(server)) == len(first + second)
    finally:
        server.stop()


def test_lagging_transcript_counts_final_usage_once(server: ServerProcess, tmp_path: Path) -> None:
    env = hook_env(tmp_path, server.url)
    transcript = tmp_path / "projects" / "p" / "sess-lag.jsonl"
    done, streaming = responses("sess-lag", 2)
    lines = streaming.lines()
    append(transcript, done.lines() + lines[:1], partial=lines[1][:57])
    assert run_hook(hook_input(transcript), env).returncode == 0
    early = per_event(stored_events(server))
    assert early[streaming.request_id]["tokens"][1] == streaming.outputs[0]

    with open(transcript, "a") as f:
        f.write(lines[1][57:] + "\n" + lines[2] + "\n")
    assert run_hook(hook_input(transcript, "SessionEnd"), env).returncode == 0
    settle(transcript, env)
    assert_stored_exactly(server, [done, streaming])
    rows = [r for r in stored_events(server) if r["event_id"] == streaming.request_id]
    assert sorted(r["revision"] for r in rows) == [0, 1]


def test_concurrent_hooks_for_parallel_sessions(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", free_port(), server_env())
    env = hook_env(tmp_path, server.url)
    sessions = {f"par-{n}": responses(f"par-{n}", 5, day=10 + n) for n in range(6)}
    paths = {s: tmp_path / "projects" / "p" / f"{s}.jsonl" for s in sessions}
    for s, items in sessions.items():
        append(paths[s], transcript_lines(items[:3]))

    def burst() -> list[int]:
        jobs = [(paths[s], ev) for s in sessions for ev in ("Stop", "SubagentStop")]
        with ThreadPoolExecutor(len(jobs)) as pool:
            runs = list(pool.map(lambda j: run_hook(hook_input(j[0], j[1]), env), jobs))
        assert all(r.stdout == b"" for r in runs)
        return [r.returncode for r in runs]

    assert set(burst()) == {0}
    for s, items in sessions.items():
        append(paths[s], transcript_lines(items[3:]))
    server.start()
    try:
        assert set(burst()) == {0}
        # A run that found a transcript locked by a parallel run leaves it to the next
        # run of that session.
        for path in paths.values():
            last = run_hook(hook_input(path, "SessionEnd"), env)
            assert (last.returncode, last.stdout) == (0, b"")
            settle(path, env)
        assert spool_files(tmp_path) == []
        assert_stored_exactly(server, [r for items in sessions.values() for r in items])
        state = tmp_path / "hook" / "state"
        saved = {
            json.loads(p.read_text())["path"]: json.loads(p.read_text())["offset"]
            for p in state.glob("*.json")
        }
        assert saved == {str(p): p.stat().st_size for p in paths.values()}
    finally:
        server.stop()


@pytest.mark.parametrize(
    "stdin",
    [
        b"",
        b"not json",
        b"[1, 2, 3]",
        b'{"session_id": 12}',
        b'{"hook_event_name": "Stop"}',
        b'{"transcript_path": "/nonexistent/x.jsonl", "hook_event_name": "Stop"}',
        b'{"transcript_path": "/", "hook_event_name": "Stop"}',
        b'{"transcript_path": "/etc/passwd", "hook_event_name": "SessionEnd"}',
        b"\xff\xfe\x00garbage",
        b"{" * 100_000,
        b" " * (2 * 1024 * 1024),
    ],
)
def test_malformed_stdin_never_breaks_the_agent(tmp_path: Path, stdin: bytes) -> None:
    env = hook_env(tmp_path, f"http://127.0.0.1:{free_port()}")
    run = run_hook(stdin, env)
    assert (run.returncode, run.stdout) == (0, b"")
    assert spool_files(tmp_path) == []


def test_bad_config_and_unwritable_home_still_exit_zero(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    transcript = tmp_path / "projects" / "p" / "s.jsonl"
    append(transcript, transcript_lines(responses("s", 1)))
    env = hook_env(tmp_path, "not a url", GASOMETER_HOOK_HOME=str(blocker / "home"))
    env["GASOMETER_HOOK_BUDGET_S"] = "nonsense"
    run = run_hook(hook_input(transcript), env)
    assert (run.returncode, run.stdout) == (0, b"")


def test_unresponsive_server_ends_the_run_and_spools(tmp_path: Path) -> None:
    """A server that accepts connections and never answers: the hook still ends (its
    budget; its cost in time is benchmarks/bench_hook.py's) and keeps the events."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        env = hook_env(tmp_path, url)
        transcript = tmp_path / "projects" / "p" / "slow.jsonl"
        append(transcript, transcript_lines(responses("slow", 2)))
        run = run_hook(hook_input(transcript, "SessionEnd"), env)
    assert (run.returncode, run.stdout) == (0, b"")
    assert len(spool_files(tmp_path)) == 1


def test_spool_full_leaves_events_in_the_transcript(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", free_port(), server_env())
    env = hook_env(tmp_path, server.url, GASOMETER_HOOK_SPOOL_MAX_BYTES="3000")
    transcript = tmp_path / "projects" / "p" / "full.jsonl"
    items = responses("full", 12)
    append(transcript, transcript_lines(items[:3]))
    assert run_hook(hook_input(transcript), env).returncode == 0
    assert len(spool_files(tmp_path)) == 1
    append(transcript, transcript_lines(items[3:]))
    assert run_hook(hook_input(transcript), env).returncode == 0
    assert len(spool_files(tmp_path)) == 1
    assert "spool full" in (tmp_path / "hook" / "hook.log").read_text()
    server.start()
    try:
        assert run_hook(hook_input(transcript), env).returncode == 0
        assert spool_files(tmp_path) == []
        assert_stored_exactly(server, items)
    finally:
        server.stop()


def test_invalid_batch_is_set_aside_and_the_rest_delivered(
    server: ServerProcess, tmp_path: Path
) -> None:
    env = hook_env(tmp_path, server.url)
    spool = tmp_path / "hook" / "spool"
    spool.mkdir(parents=True)
    bad = spool / "00000000000000000001-00000001-000000.increment.ndjson"
    bad.write_text('{"session_id": "x", "cost_usd": -5, "ended_at": "2026-11-20T10:00:00Z"}\n')
    transcript = tmp_path / "projects" / "p" / "after-bad.jsonl"
    items = responses("after-bad", 2)
    append(transcript, transcript_lines(items))
    assert run_hook(hook_input(transcript), env).returncode == 0
    assert spool_files(tmp_path) == []
    assert (spool / "rejected" / bad.name).exists()
    assert_stored_exactly(server, items)


def test_subagent_stop_reads_the_agent_transcript(server: ServerProcess, tmp_path: Path) -> None:
    env = hook_env(tmp_path, server.url)
    main = tmp_path / "projects" / "p" / "parent-1.jsonl"
    agent = tmp_path / "projects" / "p" / "parent-1" / "subagents" / "agent-a1.jsonl"
    mine = responses("parent-1", 2)
    theirs = [
        Response(f"req_sub_{i}", "parent-1", f"2026-11-20T11:00:0{i}.000Z", [5, 60 + i])
        for i in range(3)
    ]
    append(main, transcript_lines(mine))
    append(agent, transcript_lines(theirs))
    stdin = hook_input(main, "SubagentStop", agent_id="a1", agent_transcript_path=str(agent))
    assert run_hook(stdin, env).returncode == 0
    assert_stored_exactly(server, mine + theirs)
    rows = {r["event_id"]: r for r in stored_events(server)}
    assert {rows[r.request_id]["parent_session_id"] for r in theirs} == {"parent-1"}
    assert {rows[r.request_id]["session_id"] for r in theirs} == {"agent-a1"}
    assert {rows[r.request_id]["parent_session_id"] for r in mine} == {None}


@pytest.mark.parametrize(
    ("gt_env", "cwd", "expected"),
    [
        ({"GT_ROLE": "mayor"}, "/somewhere", ("mayor", "hq", "mayor", None)),
        (
            {"GT_ROLE": "gastown/polecats/nux", "GT_WORK_BEAD": "gt-abc12"},
            "/tmp/x",
            ("polecat", "gastown", "nux", "gt-abc12"),
        ),
        ({"GT_ROLE": "beads/crew/joe"}, "/tmp", ("crew", "beads", "joe", None)),
        ({"GT_ROLE": "gastown/witness"}, "/tmp", ("witness", "gastown", "witness", None)),
        (
            {"GT_ROLE": "polecat", "GT_RIG": "wyvern", "GT_POLECAT": "rust"},
            "/tmp",
            ("polecat", "wyvern", "rust", None),
        ),
        ({}, "/home/u/gt/gastown/refinery/rig", ("refinery", "gastown", "refinery", None)),
        ({"GT_SESSION": "hq-deacon"}, "/tmp/proj", ("deacon", "hq", "deacon", None)),
        ({"GT_SESSION": "hq-deacon"}, "/t/gt/ga/crew/max", ("crew", "ga", "max", None)),
        ({}, "/home/u/code/myproj", ("unknown", "myproj", "unknown", None)),
    ],
)
def test_attribution_environment_then_directory_then_session(
    shared_server: ServerProcess,
    tmp_path: Path,
    gt_env: dict[str, str],
    cwd: str,
    expected: tuple[str, ...],
) -> None:
    server = shared_server
    env = hook_env(tmp_path, server.url, **gt_env)
    name = f"attr-{abs(hash((tuple(gt_env.items()), cwd)))}"
    transcript = tmp_path / "projects" / "p" / f"{name}.jsonl"
    item = Response(f"req_{name}", name, "2026-11-21T09:00:00.000Z", [10, 20], cwd=cwd)
    append(transcript, item.lines())
    assert run_hook(hook_input(transcript), env).returncode == 0
    (row,) = stored_events(server, name)
    assert (row["role"], row["rig"], row["worker"], row["issue"]) == expected
    assert row["source"] == "hook"


def test_hook_and_import_count_a_response_once(server: ServerProcess, tmp_path: Path) -> None:
    from gasometer.importer.transcript import read_transcript

    env = hook_env(tmp_path, server.url)
    transcript = tmp_path / "projects" / "p" / "both.jsonl"
    items = responses("both", 4)
    append(transcript, transcript_lines(items))
    assert run_hook(hook_input(transcript), env).returncode == 0
    imported = read_transcript(transcript, 0).events
    body = "\n".join(json.dumps(_plain(e)) for e in imported)
    answer = httpx.post(
        server.url + "/api/ingest",
        content=body,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-ndjson"},
    )
    assert answer.json() == {"accepted": 0, "duplicates": len(items)}
    assert_stored_exactly(server, items)


def _plain(event: object) -> dict[str, object]:
    import msgspec

    return msgspec.to_builtins(event)  # type: ignore[no-any-return]


def test_hook_path_imports_no_server_or_storage_libraries(tmp_path: Path) -> None:
    transcript = tmp_path / "projects" / "p" / "light.jsonl"
    append(transcript, transcript_lines(responses("light", 2)))
    code = (
        "import sys, io\n"
        "from gasometer.cli import main\n"
        "rc = main(['hook'])\n"
        "heavy = sorted(m for m in ('duckdb', 'pyarrow', 'polars', 'litestar', 'httpx',"
        " 'uvicorn', 'gasometer.store', 'gasometer.runtime') if m in sys.modules)\n"
        "sys.stderr.write(repr((rc, heavy)))\n"
    )
    env = hook_env(tmp_path, f"http://127.0.0.1:{free_port()}")
    done = subprocess.run(
        [sys.executable, "-c", code], input=hook_input(transcript), env=env, capture_output=True
    )
    assert done.stdout == b""
    assert done.stderr.decode().strip().endswith("(0, [])")


def test_typical_runs_store_each_response_once(server: ServerProcess, tmp_path: Path) -> None:
    """Eight Stop runs of the console script, 5 new responses each (their time and CPU are
    measured in benchmarks/bench_hook.py)."""
    env = hook_env(tmp_path, server.url)
    script = Path(sys.executable).with_name("gasometer")
    transcript = tmp_path / "projects" / "p" / "timed.jsonl"
    items = responses("timed", 40)
    assert run_hook(b"", env, cmd=[str(script), "hook"]).returncode == 0
    for n in range(8):
        append(transcript, transcript_lines(items[n * 5 : n * 5 + 5]))
        run = run_hook(hook_input(transcript), env, cmd=[str(script), "hook"])
        assert (run.returncode, run.stdout) == (0, b"")
        assert_stored_exactly(server, items[: n * 5 + 5])
    assert spool_files(tmp_path) == []


def test_stdin_left_open_does_not_hang_the_hook(server: ServerProcess, tmp_path: Path) -> None:
    env = hook_env(tmp_path, server.url)
    transcript = tmp_path / "projects" / "p" / "open-stdin.jsonl"
    items = responses("open-stdin", 2)
    append(transcript, transcript_lines(items))
    proc = subprocess.Popen(
        [sys.executable, "-m", "gasometer", "hook"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(hook_input(transcript))
    proc.stdin.flush()
    try:
        assert proc.wait(timeout=60) == 0
        assert proc.stdout.read() == b""
    finally:
        proc.stdin.close()
        proc.stdout.close()
    assert_stored_exactly(server, items)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("mayor", ("mayor", "hq", "mayor")),
        ("deacon", ("deacon", "hq", "deacon")),
        ("dog", ("dog", "hq", None)),
        ("deacon/dogs/alpha", ("dog", "hq", "alpha")),
        ("dogs/alpha", ("dog", "hq", "alpha")),
        ("gastown/refinery", ("refinery", "gastown", "refinery")),
        ("gastown/polecats/toast", ("polecat", "gastown", "toast")),
        ("beads/crew/emma/", ("crew", "beads", "emma")),
        ("polecat", ("polecat", None, None)),
        ("", (None, None, None)),
        ("weird/thing", (None, None, None)),
    ],
)
def test_gt_role_forms(value: str, expected: tuple[str | None, ...]) -> None:
    from gasometer.hook.env import parse_role_path

    found = parse_role_path(value)
    assert (found.role, found.rig, found.worker) == expected


def test_long_backlog_drains_in_one_run(server: ServerProcess, tmp_path: Path) -> None:
    from gasometer.hook.spool import Spool

    spool = Spool(tmp_path / "hook" / "spool", 64 * 1024 * 1024)
    expected_cost = 0.0
    for run in range(400):
        lines = []
        for k in range(3):
            cost = round(0.001 * (run + 1) + k / 1000, 6)
            expected_cost += cost
            event = {
                "session_id": f"backlog-{run % 7}",
                "cost_usd": cost,
                "ended_at": f"2026-11-1{run % 9}T{k:02d}:{run % 60:02d}:00Z",
                "event_id": f"bk-{run}-{k}",
                "source": "hook",
            }
            lines.append(json.dumps(event).encode())
        assert spool.add("increment", lines)
    assert len(spool_files(tmp_path)) == 400
    env = hook_env(tmp_path, server.url)
    run = run_hook(b"", env)
    assert (run.returncode, run.stdout) == (0, b"")
    assert spool_files(tmp_path) == []
    rows = stored_events(server)
    assert len(rows) == 1200
    assert sum(r["cost_usd"] for r in rows) == pytest.approx(expected_cost, abs=1e-9)


def test_town_root_anchors_directory_rules(shared_server: ServerProcess, tmp_path: Path) -> None:
    town = tmp_path / "gt"
    (town / "mayor").mkdir(parents=True)
    (town / "mayor" / "rigs.json").write_text(json.dumps({"rigs": {"gastown": {"prefix": "gt"}}}))
    env = hook_env(tmp_path, shared_server.url, GT_ROOT=str(town))
    transcript = tmp_path / "projects" / "p" / "town-1.jsonl"
    inside = Response(
        "req_town_in",
        "town-1",
        "2026-11-21T10:00:00.000Z",
        [5, 9],
        cwd=str(town / "gastown" / "polecats" / "slit"),
        extra={"gitBranch": "polecat/slit/gt-k3j9x"},
    )
    outside = Response(
        "req_town_out",
        "town-1",
        "2026-11-21T10:01:00.000Z",
        [5, 9],
        cwd="/elsewhere/polecats/ghost",
        extra={"gitBranch": "feature/ab-xy12z"},
    )
    append(transcript, inside.lines() + outside.lines())
    assert run_hook(hook_input(transcript), env).returncode == 0
    rows = {r["event_id"]: r for r in stored_events(shared_server, "town-1")}
    got = {k: (r["role"], r["rig"], r["worker"], r["issue"]) for k, r in rows.items()}
    assert got == {
        "req_town_in": ("polecat", "gastown", "slit", "gt-k3j9x"),
        "req_town_out": ("unknown", "ghost", "unknown", None),
    }


def test_hooks_status_shows_the_spool_and_last_error(tmp_path: Path) -> None:
    env = hook_env(tmp_path, f"http://127.0.0.1:{free_port()}")
    transcript = tmp_path / "projects" / "p" / "status.jsonl"
    append(transcript, transcript_lines(responses("status", 3)))
    assert run_hook(hook_input(transcript), env).returncode == 0
    done = subprocess.run(
        [sys.executable, "-m", "gasometer", "hooks", "status"], env=env, capture_output=True
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    size = sum(p.stat().st_size for p in spool_files(tmp_path))
    assert (report["spool_batches"], report["spool_bytes"]) == (1, size)
    assert report["token_set"] is True and report["transcripts_tracked"] == 1
    assert "Connection refused" in report["last_log"][-1]
