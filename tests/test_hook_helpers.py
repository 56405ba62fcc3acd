"""Helpers for the hook tests: transcript writing, running `gasometer hook` as Claude Code
would, reading back what the server stored, and prices computed independently."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import TOKEN, ServerProcess

MODEL = "claude-sonnet-4-5-20250929"
# Sonnet 4.5 list prices, USD per million tokens (input, output, 5m cache write, cache read).
SONNET_45 = (3.0, 15.0, 3.75, 0.30)
HOOK_CMD = [sys.executable, "-m", "gasometer", "hook"]


@dataclass
class Response:
    """One API response as Claude Code streams it: several lines, output growing."""

    request_id: str
    session_id: str
    timestamp: str
    outputs: list[int]
    input_tokens: int = 120
    cache_creation: int = 2_000
    cache_read: int = 30_000
    cwd: str = "/home/u/gt/gastown/polecats/toast"
    extra: dict[str, Any] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """The transcript lines of this response, one per streamed content block."""
        out = []
        for i, tokens in enumerate(self.outputs):
            record = {
                "type": "assistant",
                "requestId": self.request_id,
                "timestamp": self.timestamp,
                "sessionId": self.session_id,
                "cwd": self.cwd,
                "uuid": f"{self.request_id}-{i}",
                "message": {
                    "id": "msg_" + self.request_id,
                    "model": MODEL,
                    "usage": {
                        "input_tokens": self.input_tokens,
                        "output_tokens": tokens,
                        "cache_creation_input_tokens": self.cache_creation,
                        "cache_read_input_tokens": self.cache_read,
                    },
                },
                **self.extra,
            }
            out.append(json.dumps(record))
        return out

    @property
    def final(self) -> tuple[int, int, int, int]:
        """Input, output (the largest), cache write and cache read tokens."""
        return (self.input_tokens, max(self.outputs), self.cache_creation, self.cache_read)

    @property
    def cost(self) -> float:
        """Its price at Sonnet 4.5 list rates, from the final usage."""
        tokens = self.final
        return sum(t * r for t, r in zip(tokens, SONNET_45, strict=True)) / 1e6


NOISE = [
    json.dumps({"type": "user", "message": {"role": "user", "content": "go"}}),
    json.dumps({"type": "summary", "summary": "work"}),
    "{not json at all",
    json.dumps({"type": "file-history-snapshot", "snapshot": {}}),
]


def append(path: Path, lines: list[str], *, partial: str = "") -> None:
    """Append complete lines (and optionally the start of an unfinished one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        for line in lines:
            f.write(line + "\n")
        f.write(partial)


def hook_env(home: Path, url: str, **extra: str) -> dict[str, str]:
    """The environment of an agent: no GASOMETER_*/GT_* leaking from the developer.

    The budget of a run (1.5 s by default) is 60 s here, so that a loaded test machine
    never leaves work for a later run that a test does not make; SessionEnd keeps its own
    0.9 s cap, and the time a run takes is measured in benchmarks/bench_hook.py."""
    drop = ("GASOMETER_", "GT_", "BD_ACTOR", "CLAUDE_CONFIG_DIR")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(
        {
            "HOME": str(home / "user"),
            "GASOMETER_HOOK_HOME": str(home / "hook"),
            "GASOMETER_URL": url,
            "GASOMETER_TOKEN": TOKEN,
            "GASOMETER_HOOK_BUDGET_S": "60",
            **extra,
        }
    )
    return env


def hook_input(path: Path, event: str = "Stop", **extra: Any) -> bytes:
    """A Claude Code hook input naming `path` as the session's transcript."""
    payload = {
        "session_id": path.stem,
        "transcript_path": str(path),
        "cwd": "/tmp",
        "hook_event_name": event,
        "permission_mode": "default",
        **extra,
    }
    if event in ("Stop", "SubagentStop"):
        payload["stop_hook_active"] = False
    return json.dumps(payload).encode()


@dataclass
class HookRun:
    """One finished `gasometer hook` process."""

    returncode: int
    stdout: bytes
    stderr: bytes
    seconds: float
    cpu_seconds: float
    """User + system CPU of the child (meaningful only when runs are sequential)."""


def run_hook(
    stdin: bytes, env: dict[str, str], *args: str, cmd: list[str] | None = None
) -> HookRun:
    """Run the hook as Claude Code does: JSON on stdin, environment of the agent."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [*(cmd or HOOK_CMD), *args], input=stdin, env=env, capture_output=True, timeout=180
    )
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return HookRun(done.returncode, done.stdout, done.stderr, seconds, cpu)


def stored_events(server: ServerProcess, session_id: str | None = None) -> list[dict[str, Any]]:
    """Every stored row (revisions included) from the read API."""
    params: dict[str, Any] = {"from": "2000-01-01", "to": "2099-12-31", "limit": 10_000}
    if session_id:
        params["session_id"] = session_id
    rows: list[dict[str, Any]] = []
    while True:
        page = httpx.get(server.url + "/api/costs", params=params, timeout=60).json()
        rows += page["events"]
        if not page["next_cursor"]:
            return rows
        params["cursor"] = page["next_cursor"]


def per_event(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Rows folded per event id: summed tokens and cost, and how many first versions."""
    folded: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"tokens": [0, 0, 0, 0], "cost": 0.0, "firsts": 0, "row": None}
    )
    for row in rows:
        item = folded[row["event_id"]]
        cols = ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens")
        item["tokens"] = [a + row[c] for a, c in zip(item["tokens"], cols, strict=True)]
        item["cost"] += row["cost_usd"]
        item["firsts"] += row["revision"] == 0
        item["row"] = row
    return dict(folded)


def assert_stored_exactly(server: ServerProcess, responses: list[Response]) -> None:
    """Each response stored once, with its largest usage and its list-price cost."""
    got = per_event(stored_events(server))
    assert set(got) == {r.request_id for r in responses}
    for r in responses:
        item = got[r.request_id]
        assert item["firsts"] == 1, r.request_id
        assert tuple(item["tokens"]) == r.final, r.request_id
        assert abs(item["cost"] - r.cost) < 1e-9, r.request_id


def spool_files(home: Path) -> list[Path]:
    """Batches waiting in the hook's spool."""
    spool = home / "hook" / "spool"
    return sorted(spool.glob("*.ndjson")) if spool.exists() else []
