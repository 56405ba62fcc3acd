"""Claude Code session transcripts (JSONL) to cost events, one per API response.

A response is written as several `assistant` lines sharing `message.id` and `requestId`
while `output_tokens` grows; the event keeps the largest usage seen in the chunk read. A
later read that sees a larger version of the same response (streaming went on, or the
response was split across two reads) yields an event with the same `event_id` and larger
counts, which the writer's monotone upsert stores as a difference: every response is
counted once, with its largest usage, however the file was cut into reads. Replays of
earlier lines into a resumed session's new file are plain duplicates.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import msgspec

from gasometer.importer.layout import Layout
from gasometer.model import FAR_FUTURE, FAR_PAST, MAX_TOKENS, CostEvent
from gasometer.pricing import SYNTHETIC, PricingTable, Usage, default_table

SOURCE = "import"
READ_BLOCK = 64 * 1024 * 1024
MAX_LINE_BYTES = 16 * 1024 * 1024
"""A transcript line longer than this is skipped as bad (and never held in memory)."""
SCAN_BLOCK = 1024 * 1024


class _CacheCreation(msgspec.Struct):
    ephemeral_5m_input_tokens: int | None = None
    ephemeral_1h_input_tokens: int | None = None


class _Usage(msgspec.Struct):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation: _CacheCreation | None = None
    speed: str | None = None


class _Message(msgspec.Struct):
    id: str | None = None
    model: str | None = None
    usage: _Usage | None = None


class _Line(msgspec.Struct, rename="camel"):
    """The few fields of a transcript line that cost attribution needs."""

    type: str | None = None
    message: _Message | None = None
    request_id: str | None = None
    timestamp: datetime | None = None
    session_id: str | None = None
    cwd: str | None = None
    git_branch: str | None = None
    is_sidechain: bool | None = None
    agent_id: str | None = None
    uuid: str | None = None
    cost_usd: float | None = msgspec.field(default=None, name="costUSD")


class _TypeOnly(msgspec.Struct):
    type: object = None


_line_decoder = msgspec.json.Decoder(_Line)
_type_decoder = msgspec.json.Decoder(_TypeOnly)


@dataclass
class TranscriptChunk:
    """What one read of a transcript produced, and where the next read starts."""

    path: Path
    events: list[CostEvent]
    offset: int
    start: int
    lines: int = 0
    bad_lines: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    unknown_models: dict[str, int] = field(default_factory=dict)
    synthetic: int = 0
    pending_bytes: int = 0

    @property
    def bytes_read(self) -> int:
        """Bytes consumed by this read (complete lines only)."""
        return self.offset - self.start


@dataclass
class FileIdentity:
    """Who the lines of one transcript file belong to, from its path."""

    session_id: str | None = None
    parent_session_id: str | None = None

    @classmethod
    def of(cls, path: Path) -> FileIdentity:
        """`<session>/subagents/agent-<id>.jsonl` is agent `agent-<id>` of `<session>`."""
        if path.parent.name == "subagents":
            return cls(path.stem, path.parent.parent.name or None)
        return cls(None, None)


class _Response:
    """The largest version of one response seen so far in this read."""

    __slots__ = ("first", "last", "line", "size")

    def __init__(self, line: _Line, size: int) -> None:
        self.line = line
        self.size = size
        self.first = line.timestamp
        self.last = line.timestamp

    def add(self, line: _Line, size: int) -> None:
        ts = line.timestamp
        if ts is not None:
            if self.first is None or ts < self.first:
                self.first = ts
            if self.last is None or ts > self.last:
                self.last = ts
        if size >= self.size:
            self.line = line
            self.size = size


def _plausible(ts: datetime | None, u: _Usage, size: int) -> bool:
    """A usable usage line: a sane timestamp and no negative or absurd counts."""
    if ts is None or ts.tzinfo is None or not FAR_PAST <= ts < FAR_FUTURE:
        return False
    if not 0 <= size <= MAX_TOKENS:
        return False
    return (
        min(
            u.input_tokens or 0,
            u.output_tokens or 0,
            u.cache_creation_input_tokens or 0,
            u.cache_read_input_tokens or 0,
        )
        >= 0
    )


def _size(u: _Usage) -> int:
    return (
        (u.input_tokens or 0)
        + (u.output_tokens or 0)
        + (u.cache_creation_input_tokens or 0)
        + (u.cache_read_input_tokens or 0)
    )


def read_transcript(
    path: Path,
    offset: int = 0,
    *,
    attribution: Layout | None = None,
    pricing: PricingTable | None = None,
    max_bytes: int | None = None,
) -> TranscriptChunk:
    """Read complete lines of `path` from byte `offset` and turn responses into events.

    Stops at the last newline: a truncated final line is left for the next read (the new
    offset points at its start). Bad lines, lines over `MAX_LINE_BYTES` and other line
    types are counted, never fatal.
    """
    block = read_complete_lines(path, offset, max_bytes)
    chunk = TranscriptChunk(path=path, events=[], offset=block.end, start=offset)
    chunk.lines = chunk.bad_lines = block.overlong
    chunk.pending_bytes = max(0, _file_size(path) - chunk.offset)
    parser = _Parser(
        chunk, FileIdentity.of(path), attribution or Layout(), pricing or default_table()
    )
    parser.feed(block.data)
    chunk.events = parser.events()
    return chunk


def _file_size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


@dataclass
class LineBlock:
    """Complete lines read from a file, where the next read starts, and how many lines
    longer than the bound were skipped on the way (never held in memory)."""

    data: bytes
    end: int
    overlong: int = 0


def read_complete_lines(
    path: Path, offset: int, max_bytes: int | None = None, max_line: int = MAX_LINE_BYTES
) -> LineBlock:
    """Complete lines from `offset` (about `max_bytes` of them, at least one whole line).

    An unfinished last line is left for the next read, unless it is already longer than
    `max_line`: a line over the bound is skipped (counted in `overlong`) by scanning for
    its end in small blocks, and an offset that does not follow a newline means such a
    line is still being skipped. Memory stays within about `max_bytes + max_line`.
    """
    limit = max_bytes or READ_BLOCK
    with open(path, "rb") as f:
        if offset > 0 and not _follows_newline(f, offset):
            offset, found = _skip_line(f, offset)
            if not found:
                return LineBlock(b"", offset)
        f.seek(offset)
        data = f.read(limit)
        cut = data.rfind(b"\n")
        if cut < 0 and len(data) == limit and limit <= max_line:
            data += f.read(max_line + 1 - limit)
            cut = data.rfind(b"\n")
        if cut >= 0:
            return LineBlock(data[: cut + 1], offset + cut + 1)
        if len(data) <= max_line:
            return LineBlock(b"", offset)
        end, _found = _skip_line(f, offset + len(data))
        return LineBlock(b"", end, overlong=1)


def _follows_newline(f: BinaryIO, offset: int) -> bool:
    f.seek(offset - 1)
    return f.read(1) in (b"\n", b"")


def _skip_line(f: BinaryIO, offset: int) -> tuple[int, bool]:
    """The offset after the next newline from `offset`, else the end of the file."""
    f.seek(offset)
    while block := f.read(SCAN_BLOCK):
        found = block.find(b"\n")
        if found >= 0:
            return offset + found + 1, True
        offset += len(block)
    return offset, False


class _Parser:
    """Decodes lines and keeps the largest version of each response."""

    def __init__(
        self, chunk: TranscriptChunk, identity: FileIdentity, layout: Layout, pricing: PricingTable
    ) -> None:
        self.chunk = chunk
        self.identity = identity
        self.layout = layout
        self.pricing = pricing
        self.responses: dict[str, _Response] = {}
        self.anonymous: list[_Response] = []

    def feed(self, data: bytes) -> None:
        chunk = self.chunk
        skipped = chunk.skipped
        responses = self.responses
        decode = _line_decoder.decode
        for raw in data.split(b"\n"):
            if not raw or raw.isspace():
                continue
            chunk.lines += 1
            if len(raw) > MAX_LINE_BYTES:
                chunk.bad_lines += 1
                continue
            try:
                line = decode(raw)
            except msgspec.ValidationError:
                kind = _line_type(raw)
                if kind is None:
                    chunk.bad_lines += 1
                else:
                    skipped[kind] = skipped.get(kind, 0) + 1
                continue
            except msgspec.DecodeError:
                chunk.bad_lines += 1
                continue
            message = line.message
            usage = message.usage if message is not None else None
            if line.type != "assistant" or usage is None or message is None:
                kind = line.type if isinstance(line.type, str) else "untyped"
                skipped[kind] = skipped.get(kind, 0) + 1
                continue
            size = _size(usage)
            if not _plausible(line.timestamp, usage, size):
                chunk.bad_lines += 1
                continue
            key = line.request_id or message.id or line.uuid
            if key is None:
                self.anonymous.append(_Response(line, size))
                continue
            found = responses.get(key)
            if found is None:
                responses[key] = _Response(line, size)
            else:
                found.add(line, size)

    def events(self) -> list[CostEvent]:
        out = []
        for key, response in self.responses.items():
            out.append(self._event(response, key))
        for response in self.anonymous:
            out.append(self._event(response, None))
        return out

    def _event(self, response: _Response, event_id: str | None) -> CostEvent:
        line = response.line
        message = line.message
        assert message is not None and message.usage is not None
        u = message.usage
        model = message.model or "unknown"
        cache_write = u.cache_creation_input_tokens or 0
        breakdown = u.cache_creation
        write_1h = (breakdown.ephemeral_1h_input_tokens or 0) if breakdown is not None else 0
        usage = Usage(
            u.input_tokens or 0,
            u.output_tokens or 0,
            cache_write,
            u.cache_read_input_tokens or 0,
            write_1h,
            u.speed == "fast",
        )
        ended = response.last or line.timestamp
        assert ended is not None
        cost = self.pricing.cost(model, usage, ended)
        if model == SYNTHETIC:
            self.chunk.synthetic += 1
        if cost is None:
            if line.cost_usd is not None and line.cost_usd >= 0:
                cost = line.cost_usd
            else:
                self.chunk.unknown_models[model] = self.chunk.unknown_models.get(model, 0) + 1
                cost = 0.0
        session, parent = self._session(line)
        place = self.layout.place(line.cwd, line.git_branch)
        return CostEvent(
            session_id=session[:200],
            parent_session_id=parent[:200] if parent else None,
            cost_usd=cost,
            ended_at=ended,
            started_at=response.first if response.first != ended else None,
            role=place.role,
            rig=place.rig,
            worker=place.worker,
            issue=place.issue,
            model=model[:200],
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_creation_tokens=cache_write,
            cache_read_tokens=usage.cache_read_tokens,
            source=SOURCE,
            event_id=event_id,
        )

    def _session(self, line: _Line) -> tuple[str, str | None]:
        ident = self.identity
        if ident.session_id is not None:
            return ident.session_id, ident.parent_session_id or line.session_id
        session = line.session_id or self.chunk.path.stem
        if line.is_sidechain:
            agent = f"agent-{line.agent_id}" if line.agent_id else f"{session}-sidechain"
            return agent, session
        return session, None


def _line_type(raw: bytes) -> str | None:
    """The `type` of a line that is valid JSON but not shaped as we expect, else None."""
    try:
        kind = _type_decoder.decode(raw).type
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    if kind == "assistant":
        return None
    return kind if isinstance(kind, str) else "untyped"
