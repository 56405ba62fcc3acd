"""What one `gasometer hook` run costs the agent that waits for it: wall and CPU time of a
typical run (5 new responses, server up), and of SessionEnd against a server that accepts
connections but never answers (bounded by the hook's budget plus process start-up).

Timings only: the tests in tests/test_hook.py check what these runs store. Run with
`make bench`; no data set is built for these.
"""

from __future__ import annotations

import socket
import statistics
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_hook_helpers import (
    NOISE,
    Response,
    append,
    hook_env,
    hook_input,
    run_hook,
    spool_files,
)

from .conftest import Server, record

ROUNDS = 8


def responses(session: str, start: int, count: int) -> list[str]:
    """Transcript lines of `count` streamed responses (3 lines each) and some noise."""
    lines: list[str] = []
    for i in range(start, start + count):
        item = Response(
            f"req_{session}_{i}",
            session,
            f"2026-11-20T10:{i // 60:02d}:{i % 60:02d}.000Z",
            [3 + i, 40 + 7 * i, 90 + 11 * i],
        )
        lines += [*item.lines(), NOISE[i % len(NOISE)]]
    return lines


@pytest.fixture
def empty_server(tmp_path: Path) -> Iterator[Server]:
    server = Server(tmp_path / "data").start()
    try:
        yield server
    finally:
        server.stop()


def test_hook_typical_run(benchmark: Any, empty_server: Server, tmp_path: Path) -> None:
    """Stop hook with 5 new responses in the transcript; the installed console script, as
    Claude Code runs it."""
    env = hook_env(tmp_path, empty_server.url)
    cmd = [str(Path(sys.executable).with_name("gasometer")), "hook"]
    transcript = tmp_path / "projects" / "p" / "timed.jsonl"
    assert run_hook(b"", env, cmd=cmd).returncode == 0
    runs: list[Any] = []

    def setup() -> tuple[tuple[()], dict[str, Any]]:
        append(transcript, responses("timed", 5 * len(runs), 5))
        return (), {}

    def once() -> None:
        run = run_hook(hook_input(transcript), env, cmd=cmd)
        assert (run.returncode, run.stdout) == (0, b"")
        runs.append(run)

    benchmark.pedantic(once, setup=setup, rounds=ROUNDS, iterations=1)
    figures = {
        "median_wall_ms": round(statistics.median(r.seconds for r in runs) * 1000),
        "median_cpu_ms": round(statistics.median(r.cpu_seconds for r in runs) * 1000),
        "max_wall_ms": round(max(r.seconds for r in runs) * 1000),
    }
    benchmark.extra_info.update(figures)
    record("hook run (5 new responses)", **figures)


def test_hook_session_end_against_a_silent_server(benchmark: Any, tmp_path: Path) -> None:
    """SessionEnd's budget is 0.9 s from the hook's start; the rest is process start-up."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        env = hook_env(tmp_path, f"http://127.0.0.1:{silent.getsockname()[1]}")
        transcript = tmp_path / "projects" / "p" / "slow.jsonl"
        runs: list[Any] = []

        def setup() -> tuple[tuple[()], dict[str, Any]]:
            append(transcript, responses("slow", 2 * len(runs), 2))
            return (), {}

        def once() -> None:
            run = run_hook(hook_input(transcript, "SessionEnd"), env)
            assert (run.returncode, run.stdout) == (0, b"")
            runs.append(run)

        benchmark.pedantic(once, setup=setup, rounds=4, iterations=1)
    assert spool_files(tmp_path)
    figures = {
        "median_wall_ms": round(statistics.median(r.seconds for r in runs) * 1000),
        "max_wall_ms": round(max(r.seconds for r in runs) * 1000),
    }
    benchmark.extra_info.update(figures)
    record("hook SessionEnd, silent server", **figures)
