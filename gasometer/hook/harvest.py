"""The work shared by the command hook and the server's hook endpoint: read what each
transcript gained since the last run, attribute it, deliver it, then move the offset.

The offset moves only after delivery succeeded (spooled durably, or stored by the
server), so a crash or a refusal means the same lines are read again next time; the
server's deduplication by event id makes that harmless.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from gasometer.hook.env import EnvAttribution
from gasometer.hook.payload import HookInput
from gasometer.hook.state import StateFile, locked_state
from gasometer.importer.layout import UNKNOWN, Layout
from gasometer.importer.transcript import read_transcript
from gasometer.model import CostEvent

SOURCE = "hook"
MAX_READ_BYTES = 16 * 1024 * 1024
Deliver = Callable[[list[CostEvent]], bool]


@dataclass(frozen=True)
class Attribution:
    """Who the agent is: `direct` (GT_ROLE and friends) beats the working directory,
    which beats `fallback` (the Gas Town session name)."""

    direct: EnvAttribution = field(default_factory=EnvAttribution)
    fallback: EnvAttribution = field(default_factory=EnvAttribution)

    def apply(self, event: CostEvent) -> CostEvent:
        """The event with this attribution laid over what its working directory said."""
        role, rig, worker, issue = event.role, event.rig, event.worker, event.issue
        if (role in (None, UNKNOWN)) and self.fallback.role:
            role = self.fallback.role
            rig = self.fallback.rig or rig
            worker = self.fallback.worker or worker
        d = self.direct
        return msgspec.structs.replace(
            event,
            role=d.role or role,
            rig=d.rig or rig,
            worker=d.worker or worker,
            issue=d.issue or issue,
            source=SOURCE,
        )


@dataclass
class HarvestResult:
    """What one harvest did: files read, events delivered, files left for later."""

    files: int = 0
    events: int = 0
    busy: int = 0
    refused: int = 0
    bad_lines: int = 0


def transcript_files(payload: HookInput) -> list[Path]:
    """The session's transcript, the subagent's (SubagentStop), and any subagent
    transcripts stored beside the session's (`<session>/subagents/*.jsonl`)."""
    paths = [Path(p).expanduser() for p in payload.transcripts()]
    if payload.transcript_path:
        subagents = Path(payload.transcript_path).expanduser().with_suffix("") / "subagents"
        with contextlib.suppress(OSError):
            paths += sorted(subagents.glob("*.jsonl"))
    unique = dict.fromkeys(p for p in paths if p.suffix == ".jsonl")
    return list(unique)


def harvest(
    files: Iterable[Path],
    state_dir: Path,
    deliver: Deliver,
    attribution: Attribution,
    layout: Layout,
    deadline: float,
) -> HarvestResult:
    """Read, attribute and deliver the new part of each file, until the deadline. A file
    another run is reading is skipped: that run, or the next one, reads its news."""
    result = HarvestResult()
    for path in files:
        if time.monotonic() >= deadline:
            break
        if not path.is_file():
            continue
        wait = min(0.3, max(deadline - time.monotonic(), 0.0))
        with locked_state(state_dir, path.resolve(), wait) as state:
            if state is None:
                result.busy += 1
                continue
            result.files += 1
            _harvest_file(path, state, deliver, attribution, layout, deadline, result)
    return result


def _harvest_file(
    path: Path,
    state: StateFile,
    deliver: Deliver,
    attribution: Attribution,
    layout: Layout,
    deadline: float,
    result: HarvestResult,
) -> None:
    offset = state.start_offset()
    while True:
        chunk = read_transcript(path, offset, attribution=layout, max_bytes=MAX_READ_BYTES)
        result.bad_lines += chunk.bad_lines
        events = [attribution.apply(e) for e in chunk.events]
        if events and not deliver(events):
            result.refused += 1
            return
        result.events += len(events)
        if chunk.offset != offset:
            state.save(chunk.offset)
        offset = chunk.offset
        more = chunk.pending_bytes > 0 and chunk.bytes_read > 0
        if not more or time.monotonic() >= deadline:
            return
