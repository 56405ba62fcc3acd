"""POST /api/hooks/claude: Claude Code's native http hook, handled by the server itself."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import TOKEN, ServerProcess, free_port, server_env
from tests.test_hook_helpers import (
    Response,
    append,
    assert_stored_exactly,
    hook_env,
    hook_input,
    run_hook,
    stored_events,
)

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def claude_dir(tmp_path: Path) -> Path:
    return tmp_path / "claude"


@pytest.fixture
def local_server(tmp_path: Path, claude_dir: Path) -> Iterator[ServerProcess]:
    """A server that may read transcripts under `claude_dir/projects` only."""
    env = server_env(CLAUDE_CONFIG_DIR=str(claude_dir), HOME=str(tmp_path / "home"))
    proc = ServerProcess(tmp_path / "data", free_port(), env)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def items(session: str, start: int, count: int) -> list[Response]:
    return [
        Response(
            f"req_{session}_{i}", session, f"2026-11-22T08:00:{i:02d}.000Z", [4, 30 + i, 77 + i]
        )
        for i in range(start, start + count)
    ]


def post_hook(server: ServerProcess, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(server.url + "/api/hooks/claude", content=body, headers=headers, timeout=10)


def test_http_hook_ingests_new_usage_with_gt_headers(
    local_server: ServerProcess, claude_dir: Path
) -> None:
    transcript = claude_dir / "projects" / "-home-u-gt-gastown" / "h-1.jsonl"
    first = items("h-1", 0, 3)
    append(transcript, [line for r in first for line in r.lines()])
    headers = {**AUTH, "X-GT-Role": "gastown/polecats/nux", "X-GT-Work-Bead": "gt-q1w2e"}
    answer = post_hook(local_server, hook_input(transcript), **headers)
    assert answer.status_code == 200, answer.text
    assert answer.content == b""
    assert answer.headers["X-Gasometer-Events"] == "3"

    second = items("h-1", 3, 2)
    append(transcript, [line for r in second for line in r.lines()])
    answer = post_hook(local_server, hook_input(transcript, "SessionEnd"), **headers)
    assert answer.headers["X-Gasometer-Events"] == "2"
    assert_stored_exactly(local_server, first + second)
    rows = stored_events(local_server)
    assert {(r["role"], r["rig"], r["worker"], r["issue"]) for r in rows} == {
        ("polecat", "gastown", "nux", "gt-q1w2e")
    }


def test_http_hook_refuses_bad_requests(
    local_server: ServerProcess, claude_dir: Path, tmp_path: Path
) -> None:
    inside = claude_dir / "projects" / "p" / "ok.jsonl"
    append(inside, items("ok", 0, 1)[0].lines())
    assert post_hook(local_server, hook_input(inside)).status_code == 401
    bad = post_hook(local_server, b"{not json", **AUTH)
    assert bad.status_code == 400
    assert bad.json()["ok"] is False
    outside = tmp_path / "elsewhere" / "secret.jsonl"
    append(outside, items("secret", 0, 1)[0].lines())
    refused = post_hook(local_server, hook_input(outside), **AUTH)
    assert refused.status_code == 403
    assert refused.json() == {
        "error": "transcript_path is not under a Claude projects directory of this server",
        "status": 403,
        "ok": False,
    }
    escape = claude_dir / "projects" / "p" / "link.jsonl"
    escape.symlink_to(outside)
    assert post_hook(local_server, hook_input(escape), **AUTH).status_code == 403
    assert stored_events(local_server) == []


def test_http_and_command_hooks_together_count_once(
    local_server: ServerProcess, claude_dir: Path, tmp_path: Path
) -> None:
    transcript = claude_dir / "projects" / "p" / "mixed.jsonl"
    all_items = items("mixed", 0, 6)
    append(transcript, [line for r in all_items[:4] for line in r.lines()])
    assert post_hook(local_server, hook_input(transcript), **AUTH).status_code == 200
    env = hook_env(tmp_path, local_server.url)
    append(transcript, [line for r in all_items[4:] for line in r.lines()])
    assert run_hook(hook_input(transcript), env).returncode == 0
    assert post_hook(local_server, hook_input(transcript), **AUTH).status_code == 200
    assert_stored_exactly(local_server, all_items)


def test_http_hook_input_shape_matches_claude_code(
    local_server: ServerProcess, claude_dir: Path
) -> None:
    transcript = claude_dir / "projects" / "p" / "shape.jsonl"
    one = items("shape", 0, 1)
    append(transcript, one[0].lines())
    payload = json.loads(hook_input(transcript, "Stop"))
    payload.update({"last_assistant_message": "done", "new_field_from_later_version": {"x": 1}})
    answer = post_hook(local_server, json.dumps(payload).encode(), **AUTH)
    assert answer.status_code == 200, answer.text
    assert_stored_exactly(local_server, one)
