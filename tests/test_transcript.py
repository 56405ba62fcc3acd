"""The transcript parser, quirk by quirk, and on a generated corpus against its truth."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gasometer.importer.fake import Quirks, generate
from gasometer.importer.layout import DEFAULT_RULES, Layout, Place, bead_in, parse_rules
from gasometer.importer.transcript import read_transcript
from tests.billing import anthropic_cost

CWD = "/home/u/gt/gasometer/polecats/nux/gasometer"
M = 1_000_000


def assistant(
    request: str | None,
    output: int,
    *,
    ts: str = "2026-05-01T10:00:00.000Z",
    model: str = "claude-sonnet-4-5-20250929",
    message: str | None = None,
    usage: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    base_usage = {
        "input_tokens": 100,
        "output_tokens": output,
        "cache_creation_input_tokens": 1000,
        "cache_read_input_tokens": 5000,
    }
    line: dict[str, Any] = {
        "type": "assistant",
        "sessionId": "s1",
        "cwd": CWD,
        "gitBranch": "polecat/nux/ga-abc12",
        "timestamp": ts,
        "uuid": f"u-{request}-{output}",
        "message": {
            "id": message or f"msg-{request}",
            "model": model,
            "content": [{"type": "text", "text": "x" * 50}],
            "usage": {**base_usage, **(usage or {})},
        },
    }
    if request is not None:
        line["requestId"] = request
    line.update(extra)
    return line


def write(path: Path, lines: list[Any], tail: bytes = b"") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = b"".join(
        (ln if isinstance(ln, bytes) else json.dumps(ln).encode()) + b"\n" for ln in lines
    )
    path.write_bytes(body + tail)
    return path


def sonnet(input_: int, output: int, write_: int, read: int) -> float:
    return (input_ * 3 + output * 15 + write_ * 3.75 + read * 0.30) / M


def test_streamed_response_keeps_largest_usage(tmp_path: Path) -> None:
    path = write(
        tmp_path / "s1.jsonl",
        [
            assistant("r1", 3, ts="2026-05-01T10:00:00.000Z"),
            assistant("r1", 40, ts="2026-05-01T10:00:02.000Z"),
            assistant("r1", 900, ts="2026-05-01T10:00:05.500Z"),
        ],
    )
    chunk = read_transcript(path)
    assert len(chunk.events) == 1
    event = chunk.events[0]
    assert (event.event_id, event.output_tokens, event.input_tokens) == ("r1", 900, 100)
    assert (event.cache_creation_tokens, event.cache_read_tokens) == (1000, 5000)
    assert event.started_at == datetime(2026, 5, 1, 10, 0, 0, tzinfo=UTC)
    assert event.ended_at == datetime(2026, 5, 1, 10, 0, 5, 500_000, tzinfo=UTC)
    assert event.cost_usd == pytest.approx(sonnet(100, 900, 1000, 5000))
    assert event.source == "import" and event.session_id == "s1"


def test_event_id_falls_back_to_message_id(tmp_path: Path) -> None:
    path = write(tmp_path / "s.jsonl", [assistant(None, 10, message="msg_9")])
    assert [e.event_id for e in read_transcript(path).events] == ["msg_9"]


def test_truncated_last_line_is_left_for_next_read(tmp_path: Path) -> None:
    full = json.dumps(assistant("r2", 77)).encode()
    path = write(tmp_path / "s.jsonl", [assistant("r1", 5)], tail=full[:40])
    first = read_transcript(path)
    assert [e.event_id for e in first.events] == ["r1"]
    assert first.offset == len(json.dumps(assistant("r1", 5))) + 1
    assert first.pending_bytes == 40 and first.bad_lines == 0
    with path.open("ab") as f:
        f.write(full[40:] + b"\n")
    second = read_transcript(path, first.offset)
    assert [(e.event_id, e.output_tokens) for e in second.events] == [("r2", 77)]
    assert second.offset == path.stat().st_size and second.lines == 1


def test_response_split_across_reads_yields_larger_version(tmp_path: Path) -> None:
    lines = [assistant("r1", 3), assistant("r1", 50)]
    path = write(tmp_path / "s.jsonl", lines)
    first = read_transcript(path)
    with path.open("ab") as f:
        f.write(json.dumps(assistant("r1", 700)).encode() + b"\n")
    second = read_transcript(path, first.offset)
    assert [e.output_tokens for e in first.events] == [50]
    assert [e.output_tokens for e in second.events] == [700]
    assert second.events[0].event_id == first.events[0].event_id


def test_other_line_types_and_malformed_lines_are_counted(tmp_path: Path) -> None:
    lines = [
        {"type": "user", "message": {"role": "user", "content": "hi"}, "sessionId": "s1"},
        {"type": "summary", "summary": "x", "leafUuid": "y"},
        {"type": "system", "content": "compacting"},
        {"type": "progress", "data": {}},
        {"type": "file-history-snapshot", "snapshot": {}},
        {"type": "queue-operation", "operation": "enqueue"},
        {"type": "user", "message": "weird but valid JSON"},
        b"{not json",
        b"[1, 2]",
        b"\xff\xfe garbage",
        {"type": "assistant", "message": "not an object"},
        assistant("r1", 10, ts="yesterday"),
        assistant("r2", 10, ts="1970-01-01T00:00:00Z"),
        assistant("r3", 10),
    ]
    chunk = read_transcript(write(tmp_path / "s.jsonl", lines))
    assert chunk.lines == 14
    assert chunk.bad_lines == 6
    assert chunk.skipped == {
        "user": 2,
        "summary": 1,
        "system": 1,
        "progress": 1,
        "file-history-snapshot": 1,
        "queue-operation": 1,
    }
    assert [e.event_id for e in chunk.events] == ["r3"]


def test_synthetic_lines_cost_nothing_and_are_not_unknown(tmp_path: Path) -> None:
    zero = {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0}  # fmt: skip
    line = assistant(None, 0, model="<synthetic>", message="m-err", usage=zero)
    chunk = read_transcript(write(tmp_path / "s.jsonl", [line]))
    assert [(e.model, e.cost_usd, e.output_tokens) for e in chunk.events] == [
        ("<synthetic>", 0.0, 0)
    ]
    assert chunk.unknown_models == {} and chunk.synthetic == 1


def test_unknown_models_are_reported_by_name(tmp_path: Path) -> None:
    mythos = "claude-mythos-5"
    lines = [assistant("r1", 10, model=mythos), assistant("r2", 10, model=mythos),
             assistant("r3", 10, model="gpt-9")]  # fmt: skip
    chunk = read_transcript(write(tmp_path / "s.jsonl", lines))
    assert chunk.unknown_models == {"claude-mythos-5": 2, "gpt-9": 1}
    assert [e.output_tokens for e in chunk.events] == [10, 10, 10]


def test_cost_usd_of_old_lines_prices_unknown_models(tmp_path: Path) -> None:
    line = assistant("r1", 10, model="claude-instant-1", costUSD=0.125)
    chunk = read_transcript(write(tmp_path / "s.jsonl", [line]))
    assert chunk.unknown_models == {} and chunk.events[0].cost_usd == 0.125


def test_one_hour_cache_writes_fast_mode_and_long_context(tmp_path: Path) -> None:
    ttl = {"cache_creation": {"ephemeral_5m_input_tokens": 400, "ephemeral_1h_input_tokens": 600}}
    fast = {"speed": "fast"}
    long = {"cache_read_input_tokens": 250_000}
    lines = [
        assistant("ttl", 10, usage=ttl),
        assistant("fast", 10, model="claude-opus-4-6", usage=fast),
        assistant("long", 10, usage=long),
    ]
    costs = {
        e.event_id: e.cost_usd for e in read_transcript(write(tmp_path / "s.jsonl", lines)).events
    }
    assert costs["ttl"] == pytest.approx(
        (100 * 3 + 10 * 15 + 400 * 3.75 + 600 * 6 + 5000 * 0.3) / M
    )
    opus = (100 * 5 + 10 * 25 + 1000 * 6.25 + 5000 * 0.5) / M
    assert costs["fast"] == pytest.approx(6 * opus)
    assert costs["long"] == pytest.approx((100 * 6 + 10 * 22.5 + 1000 * 7.5 + 250_000 * 0.6) / M)


def test_subagent_file_is_its_own_session(tmp_path: Path) -> None:
    path = tmp_path / "proj" / "sess-1" / "subagents" / "agent-ab12cd34.jsonl"
    line = assistant("r1", 10, isSidechain=True, agentId="ab12cd34", sessionId="sess-1")
    event = read_transcript(write(path, [line])).events[0]
    assert (event.session_id, event.parent_session_id) == ("agent-ab12cd34", "sess-1")


def test_inline_sidechain_lines_are_the_agents(tmp_path: Path) -> None:
    lines = [
        assistant("r1", 10, sessionId="sess-1"),
        assistant("r2", 10, sessionId="sess-1", isSidechain=True, agentId="77"),
    ]
    events = read_transcript(write(tmp_path / "sess-1.jsonl", lines)).events
    assert [(e.session_id, e.parent_session_id) for e in events] == [
        ("sess-1", None),
        ("agent-77", "sess-1"),
    ]


@pytest.mark.parametrize(
    ("cwd", "branch", "place"),
    [
        ("/home/u/gt/mayor", None, Place("mayor", "hq", "mayor")),
        ("/home/u/gt/deacon", "", Place("deacon", "hq", "deacon")),
        ("/home/u/gt/deacon/dogs/rex", None, Place("dog", "hq", "rex")),
        ("/home/u/gt/gasometer/witness", None, Place("witness", "gasometer", "witness")),
        ("/home/u/gt/gasometer/refinery/rig", "main", Place("refinery", "gasometer", "refinery")),
        ("/home/u/gt/gasometer/polecats/nux/src", "polecat/nux/ga-abc12",
         Place("polecat", "gasometer", "nux", "ga-abc12")),
        ("/home/u/gt/beads/crew/max/beads", None, Place("crew", "beads", "max")),
        ("/home/u/gt/beads/mayor/rig", None, Place("mayor", "beads", "mayor")),
        ("/home/u/code/side.project", "feature/login", Place("unknown", "side.project", "unknown")),
        ("/home/u/code/app", "gt-x7k2q", Place("unknown", "app", "unknown", "gt-x7k2q")),
    ],
)  # fmt: skip
def test_attribution_from_working_directory(cwd: str, branch: str | None, place: Place) -> None:
    assert Layout().place(cwd, branch) == place


def test_town_dir_anchors_the_layout() -> None:
    layout = Layout("/srv/town")
    assert layout.place("/srv/town/mayor").role == "mayor"
    assert layout.place("/elsewhere/rig/polecats/nux").role == "unknown"


@pytest.mark.parametrize(
    ("text", "bead"),
    [("polecat/nux/gt-abc12", "gt-abc12"), ("ga-pcx", "ga-pcx"), ("main", None),
     ("feat-login", None), ("fix-bug", None), ("gt-abc12.3", "gt-abc12.3"), (None, None)],
)  # fmt: skip
def test_bead_ids(text: str | None, bead: str | None) -> None:
    assert bead_in(text) == bead


def test_known_prefixes_restrict_beads() -> None:
    assert bead_in("polecat/ab-cde12", {"gt"}) is None
    assert bead_in("polecat/gt-cde12", {"gt"}) == "gt-cde12"


def test_generated_corpus_matches_its_truth(tmp_path: Path) -> None:
    corpus = generate(tmp_path / "projects", sessions=25, responses=20, seed=11)
    best: dict[str, Any] = {}
    lines = bad = 0
    for path in corpus.files:
        chunk = read_transcript(path)
        lines += chunk.lines
        bad += chunk.bad_lines
        for e in chunk.events:
            best.setdefault(e.event_id, e)
    assert lines == corpus.lines and bad == corpus.bad_lines
    assert set(best) == set(corpus.responses)
    for key, truth in corpus.responses.items():
        e = best[key]
        got = (e.session_id, e.parent_session_id, e.model, e.input_tokens, e.output_tokens,
               e.cache_creation_tokens, e.cache_read_tokens, e.ended_at)  # fmt: skip
        want = (truth.session_id, truth.parent_session_id, truth.model, truth.input,
                truth.output, truth.cache_write, truth.cache_read, truth.ended)  # fmt: skip
        assert got == want, key
        assert e.cost_usd == pytest.approx(anthropic_cost(truth), abs=1e-12), key
        assert e.role == Layout().place(truth.cwd, truth.branch).role


def test_plain_corpus_has_one_line_per_response(tmp_path: Path) -> None:
    corpus = generate(tmp_path / "p", sessions=5, responses=10, quirks=Quirks.none())
    assert corpus.lines == len(corpus.responses) + corpus.skipped["user"]
    assert corpus.bad_lines == 0 and corpus.truncated_files == 0


def test_configured_rules_go_first() -> None:
    extra = parse_rules([{"pattern": r"/srv/agents/(?P<worker>[^/]+)", "role": "dog", "rig": "hq"}])
    layout = Layout(rules=[*extra, *DEFAULT_RULES])
    assert layout.place("/srv/agents/rex/work") == Place("dog", "hq", "rex")
    assert layout.place("/home/u/gt/mayor") == Place("mayor", "hq", "mayor")
    with pytest.raises(ValueError, match="invalid cwd rule"):
        parse_rules([{"pattern": "("}])


@pytest.mark.parametrize(
    ("cwd", "branch", "issue"),
    [
        ("/home/u/code/my-app", "main", None),
        ("/home/u/work/gt-x7k2q", "main", "gt-x7k2q"),
        ("/home/u/gt/gasometer/polecats/nux/gasometer", "polecat/nux-mk12ab", None),
        ("/home/u/gt/gasometer/polecats/nux/gasometer", "polecat/nux/ga-pcx", "ga-pcx"),
    ],
)
def test_bead_heuristics_avoid_folder_and_worker_names(
    cwd: str, branch: str, issue: str | None
) -> None:
    assert Layout().place(cwd, branch).issue == issue


def test_lines_longer_than_a_read_block(tmp_path: Path) -> None:
    long = assistant("big", 10)
    long["message"]["content"] = [{"type": "text", "text": "y" * 50_000}]
    path = write(tmp_path / "s.jsonl", [long, assistant("small", 5)])
    offset, seen, reads = 0, [], 0
    while offset < path.stat().st_size and reads < 10:
        chunk = read_transcript(path, offset, max_bytes=1000)
        assert chunk.bad_lines == 0 and chunk.offset > offset
        seen += [e.event_id for e in chunk.events]
        offset, reads = chunk.offset, reads + 1
    assert seen == ["big", "small"]


def test_crlf_line_endings(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(json.dumps(assistant("r1", 10)).encode() + b"\r\n")
    chunk = read_transcript(path)
    assert [e.event_id for e in chunk.events] == ["r1"] and chunk.bad_lines == 0
