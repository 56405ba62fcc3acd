"""Forwarding Gas Town's own cost log (`gt costs record` appends running totals to
`~/.gt/costs.jsonl`) to the server as `kind: total` events.

Each line is a session's running total at the end of a turn; the server turns totals
into increments (a new run starts when a total falls) and deduplicates them by
(session_id, ended_at), so lines sent twice or out of order are harmless.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import msgspec

from gasometer.model import CostEvent

_FIELDS = frozenset(CostEvent.__struct_fields__) - {"kind", "event_id"}
_encoder = msgspec.json.Encoder()


@dataclass
class CostLogChunk:
    """Valid total records (as NDJSON lines) read from the log, and where reading stopped."""

    lines: list[bytes]
    offset: int
    bad_lines: int = 0


def default_cost_log(environ: Mapping[str, str]) -> Path:
    """`$GT_HOME/.gt/costs.jsonl`, else `~/.gt/costs.jsonl`."""
    base = environ.get("GT_HOME") or environ.get("HOME") or str(Path.home())
    return Path(base) / ".gt" / "costs.jsonl"


def read_cost_log(path: Path, offset: int, max_bytes: int = 16 * 1024 * 1024) -> CostLogChunk:
    """Complete lines from `offset`, each checked against the ingest format; a line that
    does not fit is counted and skipped, a truncated last line is left for next time."""
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(max_bytes)
    end = data.rfind(b"\n")
    data = data[: end + 1] if end >= 0 else b""
    chunk = CostLogChunk(lines=[], offset=offset + len(data))
    for raw in data.splitlines():
        if not raw.strip():
            continue
        line = to_total(raw)
        if line is None:
            chunk.bad_lines += 1
        else:
            chunk.lines.append(line)
    return chunk


def to_total(raw: bytes) -> bytes | None:
    """One cost-log line as a valid CostEvent (unknown fields dropped), or None."""
    try:
        record = msgspec.json.decode(raw)
        if not isinstance(record, dict):
            return None
        kept = {k: v for k, v in record.items() if k in _FIELDS and v is not None}
        event = msgspec.convert(kept, CostEvent, strict=False)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return _encoder.encode(event)


def file_size(path: Path) -> int:
    """The size of `path`, 0 if it does not exist."""
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
