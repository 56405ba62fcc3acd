"""Gas Town's own cost log, `~/.gt/costs.jsonl`: session running totals (`kind: total`).

Each line is `{session_id, role, rig, worker, cost_usd, ended_at, work_item}` where
`cost_usd` is the session's total so far; the writer turns totals into increments and
deduplicates them by (session_id, ended_at), so importing the log again adds nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import msgspec

from gasometer.importer.transcript import TranscriptChunk, read_complete_lines
from gasometer.model import CostEvent

SOURCE = "gt-costs"
FILE_NAME = "costs.jsonl"


class _Record(msgspec.Struct):
    session_id: str
    cost_usd: float
    ended_at: datetime
    role: str | None = None
    rig: str | None = None
    worker: str | None = None
    work_item: str | None = None
    model: str | None = None


_decoder = msgspec.json.Decoder(_Record)


def default_costs_file(environ: Mapping[str, str] | None = None) -> Path:
    """`$GT_HOME/.gt/costs.jsonl`, else `~/.gt/costs.jsonl`."""
    env = os.environ if environ is None else environ
    home = env.get("GT_HOME") or env.get("HOME") or str(Path.home())
    return Path(home) / ".gt" / FILE_NAME


def is_costs_file(path: Path) -> bool:
    """Gas Town's cost log is recognised by its name."""
    return path.name == FILE_NAME


def read_costs(path: Path, offset: int = 0, *, max_bytes: int | None = None) -> TranscriptChunk:
    """Read complete lines of a costs.jsonl from `offset` into `kind: total` events."""
    block = read_complete_lines(path, offset, max_bytes)
    chunk = TranscriptChunk(path=path, events=[], offset=block.end, start=offset)
    chunk.lines = chunk.bad_lines = block.overlong
    for raw in block.data.split(b"\n"):
        if not raw.strip():
            continue
        chunk.lines += 1
        try:
            rec = _decoder.decode(raw)
        except msgspec.DecodeError:
            chunk.bad_lines += 1
            continue
        if (
            rec.ended_at.tzinfo is None
            or not 2000 <= rec.ended_at.year <= 2100
            or not 0 <= rec.cost_usd < 1e9
            or not rec.session_id
        ):
            chunk.bad_lines += 1
            continue
        chunk.events.append(
            CostEvent(
                session_id=rec.session_id[:200],
                cost_usd=rec.cost_usd,
                ended_at=rec.ended_at,
                role=rec.role or None,
                rig=rec.rig or None,
                worker=rec.worker or None,
                work_item=rec.work_item or None,
                model=rec.model,
                source=SOURCE,
                kind="total",
            )
        )
    return chunk
