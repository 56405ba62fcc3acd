"""Realistic Claude Code transcripts with every quirk, and the ground truth behind them.

Shared by tests and benchmarks. `generate()` writes a `projects/` tree (sessions in Gas
Town working directories, subagent files, resumed sessions, …) and returns a `Corpus`
whose `responses` are the true API responses, each once with its final usage, so a test
can compute expected costs and tokens on its own. Seeded: same arguments, same bytes.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

SYNTHETIC = "<synthetic>"
UNKNOWN_MODEL = "claude-mythos-5-20260101"
PLAIN_MODELS = (
    "claude-sonnet-4-5-20250929",
    "claude-sonnet-4-20250514",
    "claude-opus-4-1-20250805",
    "claude-opus-4-5-20251101",
    "claude-haiku-4-5-20251001",
    "claude-3-5-haiku-20241022",
)
LONG_MODELS = ("claude-sonnet-4-5-20250929", "claude-sonnet-4-6", "claude-opus-4-6")
FAST_MODEL = "claude-opus-4-6"
TOWN = "/home/agent/gt"
PLACES = (
    (f"{TOWN}/mayor", None),
    (f"{TOWN}/deacon", None),
    (f"{TOWN}/gasometer/witness", None),
    (f"{TOWN}/gasometer/refinery/rig", "main"),
    (f"{TOWN}/gasometer/polecats/nux/gasometer", "polecat/nux/ga-abc12"),
    (f"{TOWN}/gasometer/polecats/furiosa/gasometer", "polecat/furiosa/ga-7kq2"),
    (f"{TOWN}/beads/crew/max/beads", "crew/max"),
    ("/home/agent/code/side.project", "feature/x"),
)
_encode = msgspec.json.Encoder().encode


@dataclass
class Quirks:
    """Which quirks of real transcripts to include (all by default)."""

    streaming: bool = True
    resumed: bool = True
    synthetic: bool = True
    other_lines: bool = True
    malformed: bool = True
    truncated: bool = True
    subagents: bool = True
    inline_sidechains: bool = True
    cache_1h: bool = True
    fast: bool = True
    long_context: bool = True
    unknown_models: bool = True
    cost_usd_lines: bool = True

    @classmethod
    def none(cls) -> Quirks:
        """No quirk at all: one line per response, plain models and prices."""
        return cls(**{name: False for name in cls.__dataclass_fields__})

    @classmethod
    def ccusage_comparable(cls) -> Quirks:
        """Every quirk on which ccusage and Anthropic's billing agree."""
        return cls(streaming=False, long_context=False, cache_1h=False, fast=False)


@dataclass
class TrueResponse:
    """One API response as billed: final usage, counted once."""

    event_id: str
    session_id: str
    parent_session_id: str | None
    model: str
    started: datetime
    ended: datetime
    input: int
    output: int
    cache_write: int
    cache_write_1h: int
    cache_read: int
    fast: bool
    first_output: int
    cwd: str
    branch: str | None


@dataclass
class Corpus:
    """The files written and the truth: unique responses and line counters."""

    root: Path
    files: list[Path] = field(default_factory=list)
    responses: dict[str, TrueResponse] = field(default_factory=dict)
    lines: int = 0
    bad_lines: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    truncated_files: int = 0
    replayed_keys: list[str] = field(default_factory=list)
    bytes: int = 0

    @property
    def replayed(self) -> int:
        """Responses replayed verbatim into resumed sessions' files (duplicates on import)."""
        return len(self.replayed_keys)

    @property
    def synthetic(self) -> int:
        """Responses that are API errors (`<synthetic>`)."""
        return sum(r.model == SYNTHETIC for r in self.responses.values())

    @property
    def unknown_models(self) -> Counter[str]:
        """Responses per model name the pricing cannot know."""
        return Counter(r.model for r in self.responses.values() if r.model == UNKNOWN_MODEL)


def project_dir(root: Path, cwd: str) -> Path:
    """Claude's folder for a working directory: `/` and `.` become `-`."""
    return root / cwd.replace("/", "-").replace(".", "-")


def iso(ts: datetime) -> str:
    """Claude's timestamp form: UTC, milliseconds, `Z`."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


class _Writer:
    """Builds the lines of one file and records the truth as it goes."""

    def __init__(self, gen: _Generator, path: Path, session: str, cwd: str, branch: str | None):
        self.gen = gen
        self.path = path
        self.session = session
        self.cwd = cwd
        self.branch = branch
        self.lines: list[bytes] = []

    def base(self, kind: str, ts: datetime, **extra: Any) -> dict[str, Any]:
        line: dict[str, Any] = {
            "parentUuid": None,
            "isSidechain": False,
            "userType": "external",
            "cwd": self.cwd,
            "sessionId": self.session,
            "version": "2.0.31",
            "gitBranch": self.branch or "",
            "type": kind,
            "uuid": str(uuid.UUID(int=self.gen.rng.getrandbits(128))),
            "timestamp": iso(ts),
        }
        line.update(extra)
        return line

    def add(self, line: dict[str, Any], counted: str | None = None) -> None:
        self.lines.append(_encode(line))
        if counted is not None:
            self.gen.corpus.skipped[counted] += 1
        self.gen.corpus.lines += 1

    def user(self, ts: datetime) -> None:
        text = self.gen.text()
        content = [{"type": "tool_result", "tool_use_id": "toolu_x", "content": text}]
        self.add(self.base("user", ts, message={"role": "user", "content": content}), "user")


class _Generator:
    def __init__(self, root: Path, seed: int, quirks: Quirks, pad: float) -> None:
        self.rng = random.Random(seed)
        self.root = root
        self.quirks = quirks
        self.pad = pad
        self.corpus = Corpus(root=root)
        self._texts = [
            "".join(self.rng.choices("abcdefghij klmnopqrstuvwxyz\n", k=int(n * pad)))
            for n in (40, 200, 800, 1600, 3200, 6400)
        ]

    def text(self) -> str:
        return self.rng.choice(self._texts)

    def ident(self, prefix: str) -> str:
        return prefix + "".join(
            self.rng.choices("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz0123456789", k=24)
        )

    def model(self) -> str:
        q, r = self.quirks, self.rng.random()
        if q.unknown_models and r < 0.02:
            return UNKNOWN_MODEL
        if q.fast and r < 0.06:
            return FAST_MODEL
        if q.long_context and r < 0.12:
            return self.rng.choice(LONG_MODELS)
        return self.rng.choice(PLAIN_MODELS)

    def response(
        self, w: _Writer, ts: datetime, *, sidechain: str | None = None, parent: str | None = None
    ) -> datetime:
        """Write one response's lines (several when streamed); return the time after it."""
        q, rng = self.quirks, self.rng
        model = self.model()
        long = q.long_context and model in LONG_MODELS and rng.random() < 0.5
        cache_read = (
            rng.randint(150_000, 400_000) if long else rng.choice((0, rng.randint(1_000, 120_000)))
        )
        cache_write = rng.choice((0, rng.randint(100, 30_000)))
        write_1h = (
            rng.randint(0, cache_write) if q.cache_1h and cache_write and rng.random() < 0.3 else 0
        )
        input_tokens = rng.randint(1, 400)
        output = rng.randint(1, 4000)
        fast = q.fast and model == FAST_MODEL and rng.random() < 0.5
        blocks = rng.randint(2, 4) if q.streaming else 1
        outputs = [*sorted(rng.randint(1, output) for _ in range(blocks - 1)), output]
        request, message = self.ident("req_"), self.ident("msg_")
        old_cost = q.cost_usd_lines and model != UNKNOWN_MODEL and rng.random() < 0.05
        started = ts
        for i, out in enumerate(outputs):
            usage: dict[str, Any] = {
                "input_tokens": input_tokens,
                "cache_creation_input_tokens": cache_write,
                "cache_read_input_tokens": cache_read,
                "output_tokens": out,
                "service_tier": "standard",
            }
            if q.cache_1h:
                usage["cache_creation"] = {
                    "ephemeral_5m_input_tokens": cache_write - write_1h,
                    "ephemeral_1h_input_tokens": write_1h,
                }
            if fast:
                usage["speed"] = "fast"
            content = (
                [{"type": "text", "text": self.text()}]
                if i % 2 == 0
                else [
                    {
                        "type": "tool_use",
                        "id": "toolu_x",
                        "name": "Bash",
                        "input": {"command": "ls"},
                    }
                ]
            )
            msg = {"id": message, "type": "message", "role": "assistant", "model": model,
                   "content": content, "stop_reason": None, "usage": usage}  # fmt: skip
            extra: dict[str, Any] = {"message": msg, "requestId": request}
            if old_cost:
                extra["costUSD"] = round(rng.random(), 4)
            if sidechain is not None:
                extra.update(isSidechain=True, agentId=sidechain)
            w.add(w.base("assistant", ts, **extra))
            if i < len(outputs) - 1:
                ts += timedelta(milliseconds=rng.randint(200, 3000))
        self.corpus.responses[request] = TrueResponse(
            event_id=request,
            session_id=f"agent-{sidechain}" if sidechain else w.session,
            parent_session_id=parent,
            model=model, started=started, ended=ts, input=input_tokens, output=output,
            cache_write=cache_write, cache_write_1h=write_1h, cache_read=cache_read, fast=fast,
            first_output=outputs[0], cwd=w.cwd, branch=w.branch or None,
        )  # fmt: skip
        return ts + timedelta(seconds=rng.randint(2, 90))

    def synthetic(self, w: _Writer, ts: datetime) -> None:
        message = str(uuid.UUID(int=self.rng.getrandbits(128)))
        zero = {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0}  # fmt: skip
        text = [{"type": "text", "text": "API Error: 529 Overloaded"}]
        msg = {"id": message, "model": SYNTHETIC, "role": "assistant", "type": "message",
               "content": text, "usage": zero}  # fmt: skip
        w.add(w.base("assistant", ts, message=msg, isApiErrorMessage=True))
        self.corpus.responses[message] = TrueResponse(
            message, w.session, None, SYNTHETIC, ts, ts, 0, 0, 0, 0, 0, False, 0, w.cwd,
            w.branch or None,
        )  # fmt: skip

    def other(self, w: _Writer, ts: datetime) -> None:
        kind = self.rng.choice(
            ("summary", "system", "progress", "file-history-snapshot", "queue-operation")
        )
        if kind == "summary":
            w.add({"type": "summary", "summary": "Working on things", "leafUuid": "x"}, kind)
        elif kind == "file-history-snapshot":
            w.add({"type": kind, "messageId": "m", "snapshot": {"trackedFileBackups": {}}}, kind)
        elif kind == "queue-operation":
            w.add(
                {"type": kind, "operation": "enqueue", "timestamp": iso(ts), "content": "hi"}, kind
            )
        else:
            w.add(w.base(kind, ts, content=self.text()[:200], level="info"), kind)

    def malformed(self, w: _Writer) -> None:
        bad = self.rng.choice((
            b'{"type":"assistant","message":{"id":"msg_broken","usage":{"input_tok',
            b"\x00\x01 not json at all",
            b"[1, 2, 3]",
            b'{"type":"assistant","message":"not an object","timestamp":"2026-01-01T00:00:00Z"}',
            b'{"type":"assistant","timestamp":"yesterday","message":{"id":"m","usage":{}}}',
        ))  # fmt: skip
        w.lines.append(bad)
        self.corpus.lines += 1
        self.corpus.bad_lines += 1

    def session(self, start: datetime, responses: int) -> list[_Writer]:
        """One session file (plus subagent files); returns every writer it used."""
        q, rng = self.quirks, self.rng
        cwd, branch = rng.choice(PLACES)
        sid = str(uuid.UUID(int=rng.getrandbits(128)))
        folder = project_dir(self.root, cwd)
        main = _Writer(self, folder / f"{sid}.jsonl", sid, cwd, branch)
        writers = [main]
        ts = start
        main.user(ts)
        for _ in range(responses):
            ts += timedelta(seconds=rng.randint(1, 20))
            roll = rng.random()
            if q.other_lines and roll < 0.15:
                self.other(main, ts)
            if q.malformed and roll > 0.97:
                self.malformed(main)
            if q.synthetic and 0.15 <= roll < 0.18:
                self.synthetic(main, ts)
                continue
            if q.inline_sidechains and 0.18 <= roll < 0.22:
                ts = self.response(main, ts, sidechain=f"{rng.getrandbits(32):08x}", parent=sid)
                continue
            ts = self.response(main, ts)
            main.user(ts)
        if q.subagents and rng.random() < 0.3:
            agent = f"{rng.getrandbits(32):08x}"
            sub = _Writer(
                self, folder / sid / "subagents" / f"agent-{agent}.jsonl", sid, cwd, branch
            )
            sub_ts = start + timedelta(seconds=30)
            for _ in range(rng.randint(2, 6)):
                sub_ts = self.response(sub, sub_ts, sidechain=agent, parent=sid)
            writers.append(sub)
        return writers

    def resume(self, original: _Writer, start: datetime) -> _Writer:
        """A resumed session: a new file replaying the original's lines, then new work."""
        sid = str(uuid.UUID(int=self.rng.getrandbits(128)))
        w = _Writer(self, original.path.parent / f"{sid}.jsonl", sid, original.cwd, original.branch)
        keys: set[str] = set()
        for line in original.lines:
            try:
                obj = msgspec.json.decode(line)
            except msgspec.DecodeError:
                continue
            if not isinstance(obj, dict) or obj.get("type") not in ("user", "assistant"):
                continue
            msg = obj.get("message")
            if obj["type"] == "assistant":
                if not isinstance(msg, dict) or "model" not in msg:
                    continue
                keys.add(obj.get("requestId") or msg["id"])
            else:
                self.corpus.skipped["user"] += 1
            w.lines.append(line)
            self.corpus.lines += 1
        self.corpus.replayed_keys.extend(sorted(keys))
        ts = start
        for _ in range(self.rng.randint(1, 4)):
            ts = self.response(w, ts)
        return w


def generate(
    root: Path,
    *,
    sessions: int = 20,
    responses: int = 30,
    days: int = 5,
    seed: int = 1,
    quirks: Quirks | None = None,
    start: datetime = datetime(2026, 3, 10, tzinfo=UTC),
    pad: float = 1.0,
) -> Corpus:
    """Write `sessions` transcripts (and their quirks) under `root` and return the truth."""
    gen = _Generator(root, seed, quirks or Quirks(), pad)
    writers: list[_Writer] = []
    span = days * 86_400 - 4 * 3600
    for _ in range(sessions):
        begin = start + timedelta(seconds=gen.rng.randint(0, max(span, 1)))
        made = gen.session(begin, gen.rng.randint(max(1, responses // 2), responses * 3 // 2))
        writers.extend(made)
        if gen.quirks.resumed and gen.rng.random() < 0.2:
            writers.append(gen.resume(made[0], begin + timedelta(hours=2)))
    for w in writers:
        w.path.parent.mkdir(parents=True, exist_ok=True)
        data = b"".join(line + b"\n" for line in w.lines)
        if gen.quirks.truncated and gen.rng.random() < 0.15:
            data += (
                b'{"type":"assistant","requestId":"req_cut","message":{"id":"msg_cut","usage":{"inp'
            )
            gen.corpus.truncated_files += 1
        w.path.write_bytes(data)
        gen.corpus.files.append(w.path)
        gen.corpus.bytes += len(data)
    return gen.corpus
