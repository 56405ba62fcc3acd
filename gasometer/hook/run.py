"""`gasometer hook`: the command Claude Code runs at Stop, SubagentStop and SessionEnd.

It never fails the agent: whatever happens it prints nothing, exits 0, and keeps within
its time budget (1.5 s by default, 0.9 s at SessionEnd). New events are first added to
the durable spool, then the spool is sent oldest first; what the server does not take
stays for the next run. Problems are written to `hook.log` in the hook home.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

import msgspec

from gasometer.hook.config import SESSION_END_BUDGET_S, HookConfig, load_hook_config
from gasometer.hook.env import from_environment, from_session_name
from gasometer.hook.harvest import Attribution, harvest, transcript_files
from gasometer.hook.payload import MAX_INPUT_BYTES, HookInput, decode_input
from gasometer.hook.send import Outcome, post_events
from gasometer.hook.spool import Spool
from gasometer.hook.state import locked_state
from gasometer.importer.gtcosts import default_costs_file, read_costs
from gasometer.importer.layout import Layout
from gasometer.ingest.attribution import prefixes_from_town
from gasometer.model import CostEvent

LOG_FILE = "hook.log"
STDIN_WAIT_S = 0.5
MAX_LOG_BYTES = 1024 * 1024
_encode = msgspec.json.Encoder().encode


def run_hook(
    stdin: BinaryIO | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    cost_log: str | None = None,
) -> int:
    """Run once: harvest the transcripts named on stdin (or, with `cost_log`, Gas Town's
    cost log), then drain the spool. Always returns 0."""
    started = time.monotonic()
    environ = os.environ if environ is None else environ
    config: HookConfig | None = None
    try:
        config = load_hook_config(environ)
        if cost_log is not None:
            _forward_cost_log(config, environ, cost_log, started + config.budget_s)
        else:
            _run_for_input(config, stdin or sys.stdin.buffer, environ, started)
    except BaseException as exc:  # the agent must never see the hook fail
        if config is not None:
            log(config.home, f"hook failed: {type(exc).__name__}: {exc}")
    return 0


def _run_for_input(
    config: HookConfig, stdin: BinaryIO, environ: Mapping[str, str], started: float
) -> None:
    raw = _read_stdin(stdin)
    payload = decode_input(raw)
    if payload is None:
        if raw.strip():
            log(config.home, f"ignored hook input that is not hook JSON ({len(raw)} bytes)")
        _drain(config, started + config.budget_s)
        return
    budget = config.budget_s
    if payload.is_session_end:
        budget = min(budget, SESSION_END_BUDGET_S)
    deadline = started + budget
    spool_was_full = _harvest(config, payload, environ, deadline)
    if _drain(config, deadline) and spool_was_full:
        _harvest(config, payload, environ, deadline)
        _drain(config, deadline)


def _read_stdin(stream: BinaryIO, wait_s: float = STDIN_WAIT_S) -> bytes:
    """Stdin up to EOF or a complete hook input, at most MAX_INPUT_BYTES + 1 bytes and
    `wait_s` seconds: a caller that never closes stdin must not hang the hook."""
    try:
        if stream.isatty():
            return b""
        fd = stream.fileno()
    except (OSError, ValueError):
        try:
            return stream.read(MAX_INPUT_BYTES + 1)
        except (OSError, ValueError):
            return b""
    deadline = time.monotonic() + wait_s
    parts: list[bytes] = []
    size = 0
    while size <= MAX_INPUT_BYTES:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                break
            part = os.read(fd, 65536)
        except (OSError, ValueError):
            break
        if not part:
            break
        parts.append(part)
        size += len(part)
        if part.rstrip().endswith(b"}") and decode_input(b"".join(parts)) is not None:
            break
    return b"".join(parts)


def _harvest(
    config: HookConfig, payload: HookInput, environ: Mapping[str, str], deadline: float
) -> bool:
    """Spool what the transcripts gained; True if the spool was full and some was left."""
    spool = _spool(config)
    attribution = Attribution(from_environment(environ), from_session_name(environ))

    def deliver(events: list[CostEvent]) -> bool:
        return spool.add("increment", [_encode(e) for e in events])

    result = harvest(
        transcript_files(payload),
        config.state_dir,
        deliver,
        attribution,
        _layout(environ),
        deadline,
    )
    if result.refused:
        log(
            config.home,
            f"spool full ({config.spool_max_bytes} bytes): {result.refused} "
            "transcript(s) left unread until it drains",
        )
    return result.refused > 0


def _forward_cost_log(
    config: HookConfig, environ: Mapping[str, str], path_arg: str, deadline: float
) -> None:
    """Spool the totals appended to Gas Town's cost log since the last run, then drain."""
    path = Path(path_arg) if path_arg else default_costs_file(environ)
    if path.is_file():
        spool = _spool(config)
        with locked_state(config.state_dir, path.resolve(), 0.3) as state:
            if state is not None:
                chunk = read_costs(path, state.start_offset())
                if chunk.bad_lines:
                    log(config.home, f"{path}: skipped {chunk.bad_lines} invalid line(s)")
                if spool.add("total", [_encode(e) for e in chunk.events]):
                    state.save(chunk.offset)
                else:
                    log(config.home, f"spool full: {path} left unread until it drains")
    _drain(config, deadline)


def _layout(environ: Mapping[str, str]) -> Layout:
    """The import's working-directory rules, anchored at the agent's town (`GT_ROOT`)."""
    town = environ.get("GT_ROOT") or environ.get("GT_TOWN_ROOT")
    if not town:
        return Layout()
    return Layout(town, prefixes_from_town(Path(town)))


def _spool(config: HookConfig) -> Spool:
    return Spool(config.spool_dir, config.spool_max_bytes)


def _drain(config: HookConfig, deadline: float) -> bool:
    """Send the spool, oldest first; True if some batch left it."""
    spool = _spool(config)
    if not spool.pending():
        return False

    def send(body: bytes, kind: str, timeout_s: float) -> tuple[Outcome, str]:
        return post_events(config.url, config.token, body, kind, timeout_s)

    result = spool.drain(send, deadline)
    if result.error:
        log(config.home, f"server {config.url}: {result.error} ({result.left} batch(es) spooled)")
    return result.sent + result.rejected > 0


def log(home: Path, message: str) -> None:
    """Append one line to the hook's log (kept under 1 MB by rotating to `hook.log.1`);
    a log that cannot be written is given up silently."""
    path = home / LOG_FILE
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with contextlib.suppress(OSError):
        home.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.stat().st_size > MAX_LOG_BYTES:
            os.replace(path, home / (LOG_FILE + ".1"))
        with open(path, "a") as f:
            f.write(f"{stamp} pid {os.getpid()}: {message.replace(chr(10), ' ')}\n")
