"""The server reads transcripts only inside its import roots, says nothing about what lies
outside them, reports counts rather than file content, skips over-long lines in bounded
memory, and keeps answering while it checks a large import request."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from gasometer.importer.transcript import MAX_LINE_BYTES, read_transcript
from tests.conftest import TOKEN, ServerFactory, ServerProcess
from tests.test_hook_helpers import Response, append, hook_input

AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECRET = "db_password=hunter2"


def response_line(request_id: str, second: int = 0, model: str = "claude-sonnet-4-5") -> bytes:
    """One assistant line with usage, as Claude Code writes it."""
    line = {
        "type": "assistant",
        "requestId": request_id,
        "sessionId": "s-1",
        "timestamp": f"2026-11-22T08:00:{second:02d}.000Z",
        "message": {"id": f"msg_{request_id}", "model": model, "usage": {"input_tokens": 5}},
    }
    return json.dumps(line).encode() + b"\n"


@pytest.fixture
def roots(tmp_path: Path) -> Path:
    """The import root: a Claude projects folder with one transcript."""
    root = tmp_path / "claude" / "projects"
    (root / "p").mkdir(parents=True)
    (root / "p" / "ok.jsonl").write_bytes(response_line("r1"))
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder outside the root holding a transcript-looking secret."""
    folder = tmp_path / "private"
    folder.mkdir()
    (folder / "secret-name.jsonl").write_bytes(response_line("leak"))
    return folder


@pytest.fixture
def served(server_factory: ServerFactory, roots: Path) -> ServerProcess:
    return server_factory(import_roots=str(roots))


def wait_finished(server: ServerProcess) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = httpx.get(server.url + "/api/import/status").json()
        if status["state"] not in ("running", "idle"):
            return status
        time.sleep(0.05)
    raise AssertionError(f"import did not finish: {status}")


def start_import(server: ServerProcess, *paths: str | Path) -> httpx.Response:
    body = {"paths": [str(p) for p in paths]}
    return httpx.post(server.url + "/api/import", json=body, headers=AUTH, timeout=60)


def test_paths_outside_the_roots_are_refused_naming_nothing(
    served: ServerProcess, roots: Path, outside: Path, tmp_path: Path
) -> None:
    link = roots / "p" / "escape"
    link.symlink_to(outside)
    attempts = [
        outside,
        outside / "secret-name.jsonl",
        outside / "does-not-exist.jsonl",
        roots / ".." / ".." / "private",
        link,
        tmp_path,
        "/",
        "relative/path",
    ]
    errors = set()
    for path in attempts:
        answer = start_import(served, roots, path)
        assert answer.status_code == 403, (path, answer.text)
        body = answer.json()
        assert body["ok"] is False and body["status"] == 403
        errors.add(body["error"])
    assert len(errors) == 1, errors  # an existing and a missing file are refused alike
    (error,) = errors
    assert error.startswith("paths[1]: not inside an import root")
    for word in ("private", "secret-name", str(tmp_path)):
        assert word not in error
    assert httpx.get(served.url + "/api/import/status").json()["state"] == "idle"


def test_a_symlink_inside_the_root_to_a_file_outside_is_not_read(
    served: ServerProcess, roots: Path, outside: Path
) -> None:
    (roots / "p" / "leak.jsonl").symlink_to(outside / "secret-name.jsonl")
    assert start_import(served, roots).status_code == 202
    status = wait_finished(served)
    assert status["state"] == "finished"
    assert (status["files_total"], status["accepted"]) == (1, 1)
    ids = {e["event_id"] for e in httpx.get(served.url + "/api/costs").json()["events"]}
    assert ids == {"r1"}


def test_status_reports_counts_never_content(served: ServerProcess, roots: Path) -> None:
    lines = [
        json.dumps({"type": SECRET}).encode() + b"\n",
        json.dumps({"type": "user", "timestamp": "2026-11-22T08:00:00Z"}).encode() + b"\n",
        response_line("r2", 1, model=f"{SECRET} ssh-rsa AAAA"),
        response_line("r3", 2, model="claude-mythos-9"),
    ]
    (roots / "p" / "odd.jsonl").write_bytes(b"".join(lines))
    assert start_import(served, roots / "p" / "odd.jsonl").status_code == 202
    status = wait_finished(served)
    assert status["skipped_types"] == {"other": 1, "user": 1}
    assert status["unknown_models"] == {"other": 1, "claude-mythos-9": 1}
    assert "hunter2" not in json.dumps(status)


def test_the_hook_endpoint_refuses_before_listing_and_names_nothing(
    server_factory: ServerFactory, roots: Path, outside: Path
) -> None:
    srv = server_factory(import_roots=str(roots))
    transcript = outside / "sess.jsonl"
    append(transcript, Response("req_1", "sess", "2026-11-22T08:00:00.000Z", [1, 2, 3]).lines())
    subagents = outside / "sess" / "subagents"
    subagents.mkdir(parents=True)
    (subagents / "agent-hidden-name.jsonl").write_text("{}\n")
    answer = httpx.post(srv.url + "/api/hooks/claude", content=hook_input(transcript), headers=AUTH)
    assert answer.status_code == 403
    error = answer.json()["error"]
    for word in ("hidden-name", "sess", "private", str(outside)):
        assert word not in error


def test_an_over_long_line_is_skipped_and_the_offset_moves_on(tmp_path: Path) -> None:
    path = tmp_path / "long.jsonl"
    long_line = b'{"type": "user", "pad": "' + b"x" * (MAX_LINE_BYTES + 10) + b'"}\n'
    path.write_bytes(response_line("a", 1) + long_line + response_line("b", 2))
    chunk = read_transcript(path, 0, max_bytes=1 << 20)
    assert [e.event_id for e in chunk.events] == ["a"]
    chunk = read_transcript(path, chunk.offset, max_bytes=1 << 20)
    assert (chunk.bad_lines, chunk.lines, chunk.events) == (1, 1, [])
    assert chunk.offset == len(response_line("a", 1)) + len(long_line)
    chunk = read_transcript(path, chunk.offset, max_bytes=1 << 20)
    assert [e.event_id for e in chunk.events] == ["b"]
    assert chunk.offset == path.stat().st_size


def test_an_unfinished_over_long_line_is_skipped_then_its_end_too(tmp_path: Path) -> None:
    path = tmp_path / "growing.jsonl"
    path.write_bytes(response_line("a", 1) + b'{"pad": "' + b"y" * (MAX_LINE_BYTES + 1))
    first = read_transcript(path, 0)
    assert [e.event_id for e in first.events] == ["a"]
    skipped = read_transcript(path, first.offset)
    assert (skipped.bad_lines, skipped.offset) == (1, path.stat().st_size)
    with path.open("ab") as f:
        f.write(b"y" * 1000 + b'"}\n' + response_line("b", 2))
    rest = read_transcript(path, skipped.offset)
    assert rest.bad_lines == 0 and [e.event_id for e in rest.events] == ["b"]
    assert rest.offset == path.stat().st_size


def memory_kb(pid: int, field: str) -> int:
    """A VmRSS/VmHWM figure of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not found")


def test_a_1gib_file_without_newlines_is_read_once_in_bounded_memory(
    served: ServerProcess, roots: Path
) -> None:
    big = roots / "p" / "no-newlines.jsonl"
    with big.open("wb") as f:
        f.truncate(1 << 30)  # sparse: 1 GiB of NUL bytes, no newline
    assert served.process is not None
    pid = served.process.pid
    before_kb = memory_kb(pid, "VmRSS")
    assert start_import(served, roots).status_code == 202
    status = wait_finished(served)
    assert status["state"] == "finished", status
    assert (status["accepted"], status["bad_lines"]) == (1, 1)
    grew_mb = (memory_kb(pid, "VmHWM") - before_kb) / 1024
    print(f"server peak RSS grew by {grew_mb:.0f} MB while importing 1 GiB without newlines")
    assert grew_mb < 300
    assert start_import(served, roots).status_code == 202
    again = wait_finished(served)
    assert (again["files_unchanged"], again["bytes_total"], again["bad_lines"]) == (2, 0, 0)


def read_response(sock: socket.socket) -> bytes:
    """One whole HTTP response (headers, then Content-Length bytes of body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(1 << 16)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(1 << 16)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def test_the_server_answers_while_it_checks_a_10mb_import_request(
    served: ServerProcess, roots: Path
) -> None:
    """10,000 long paths (10 MB): decoding and resolving them runs off the event loop, so
    /health is answered before the import's answer arrives."""
    deep = "/".join(f"{'d' * 20}{i:03d}" for i in range((950 - len(str(roots))) // 24))
    paths = [f"{roots}/{deep}/{n:05d}.jsonl" for n in range(10_000)]
    body = json.dumps({"paths": paths}).encode()
    assert 8_000_000 < len(body) < 10 * 1024 * 1024
    head = (
        f"POST /api/import HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    answer: list[bytes] = []
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        sock.sendall(head + body)
        sock.settimeout(120)
        reader = threading.Thread(target=lambda: answer.append(read_response(sock)))
        reader.start()
        answered_meanwhile = 0
        with httpx.Client(base_url=served.url, timeout=60) as client:
            while reader.is_alive():
                assert client.get("/health").status_code == 200
                if reader.is_alive():
                    answered_meanwhile += 1
        reader.join()
    assert answer and answer[0].startswith(b"HTTP/1.1 400"), answer
    assert b"no such file or folder" in answer[0] and b"and 9997 more" in answer[0]
    print(f"/health answered {answered_meanwhile} times while the import request was checked")
    assert answered_meanwhile >= 2
