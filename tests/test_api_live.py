"""WS /ws/live over a real server: every accepted event reaches every client, in one frame
per commit (split only past FRAME_BYTES), filters narrow what a client gets, a client that
never reads is disconnected by its byte bound without stopping the others, a reading client
keeps up with 50,000 events/s, and clients beyond `ws_max_clients` are refused."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from gasometer.api.live import FRAME_BYTES, Commit, LiveClient, LiveHub
from gasometer.model import StoredEvent
from tests.conftest import TOKEN, ServerFactory, ServerProcess, free_port, server_env

HEADERS = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the module; each test sends events no other test sends."""
    proc = ServerProcess(tmp_path_factory.mktemp("live") / "data", free_port(), server_env())
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


_ids = itertools.count()


def ws_url(server: ServerProcess) -> str:
    return server.url.replace("http://", "ws://") + "/ws/live"


@dataclass
class Listener:
    """A live client reading in a background thread, noting when each message came."""

    conn: ClientConnection
    messages: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    closed: ConnectionClosed | None = None

    count: int = 0

    def run(self) -> None:
        try:
            while True:
                message = json.loads(self.conn.recv())
                self.messages.append((time.monotonic(), message))
                self.count += len(message.get("events", ()))
        except ConnectionClosed as exc:
            self.closed = exc

    def frames(self) -> list[list[dict[str, Any]]]:
        return [m["events"] for _, m in self.messages if m.get("type") == "events"]

    def events(self) -> list[tuple[float, dict[str, Any]]]:
        return [(t, e) for t, m in self.messages if m.get("type") == "events" for e in m["events"]]

    def wait_for(self, count: int, timeout: float = 120.0) -> list[tuple[float, dict[str, Any]]]:
        deadline = time.monotonic() + timeout
        while self.count < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.events()


@pytest.fixture
def listen() -> Iterator[Any]:
    """Open listeners on a server; they are closed at the end of the test."""
    with contextlib.ExitStack() as stack:

        def open_listener(target: ServerProcess) -> Listener:
            conn = stack.enter_context(connect(ws_url(target), open_timeout=60))
            listener = Listener(conn)
            threading.Thread(target=listener.run, daemon=True).start()
            return listener

        yield open_listener


def event(i: int, session: str, **extra: Any) -> dict[str, Any]:
    return {
        "session_id": session,
        "cost_usd": 0.5,
        "ended_at": f"2026-11-20T10:00:00.{i:06d}Z",
        **extra,
    }


def post(client: httpx.Client, body: Any) -> None:
    """Post and expect a 202."""
    response = client.post("/api/ingest", json=body, headers=HEADERS)
    assert response.status_code == 202, response.text


def test_every_event_reaches_every_client_one_frame_per_commit(
    server: ServerProcess, listen: Any
) -> None:
    clients = [listen(server), listen(server)]
    time.sleep(0.2)
    with httpx.Client(base_url=server.url) as client:
        post(client, event(0, "ga-nux", model="claude-opus-4-5", input_tokens=7))
        listener = clients[0]
        assert len(listener.wait_for(1)) == 1
        post(client, [event(i, "ga-nux") for i in range(1, 30)])
    for listener in clients:
        got = listener.wait_for(30)
        assert len(got) == 30
        assert [len(f) for f in listener.frames()] == [1, 29]
        _, first = got[0]
        assert (first["session_id"], first["role"], first["rig"], first["worker"]) == (
            "ga-nux",
            "polecat",
            "ga",
            "nux",
        )
        assert (first["cost_usd"], first["input_tokens"], first["model"]) == (
            0.5,
            7,
            "claude-opus-4-5",
        )
        assert first["ended_at"] == "2026-11-20T10:00:00.000000Z"
        assert sorted(e["ended_at"] for _, e in got) == sorted(
            f"2026-11-20T10:00:00.{i:06d}Z" for i in range(30)
        )


def test_duplicates_and_refused_batches_are_not_pushed(server: ServerProcess, listen: Any) -> None:
    listener = listen(server)
    time.sleep(0.2)
    with httpx.Client(base_url=server.url) as client:
        post(client, [event(0, "ga-dup"), event(1, "ga-dup")])
        post(client, [event(0, "ga-dup"), event(1, "ga-dup")])
        bad = [event(5, "ga-dup"), {"session_id": "x"}]
        assert client.post("/api/ingest", json=bad, headers=HEADERS).status_code == 400
        post(client, event(2, "ga-dup"))
    listener.wait_for(3)
    time.sleep(0.3)
    assert [e["ended_at"][-7:-1] for _, e in listener.events()] == ["000000", "000001", "000002"]


def send_filter(listener: Listener, message: Any) -> dict[str, Any]:
    before = len(listener.messages)
    listener.conn.send(json.dumps(message) if not isinstance(message, str) else message)
    deadline = time.monotonic() + 60
    while len(listener.messages) == before and time.monotonic() < deadline:
        time.sleep(0.01)
    reply: dict[str, Any] = listener.messages[-1][1]
    return reply


def test_filter_message(server: ServerProcess, listen: Any) -> None:
    mayor_only, gasometer_crew, everyone = listen(server), listen(server), listen(server)
    assert send_filter(mayor_only, {"filter": {"role": "mayor"}}) == {
        "type": "filter",
        "filter": {"role": "mayor"},
    }
    reply = send_filter(gasometer_crew, {"filter": {"rig": "ga", "role": "crew"}})
    assert reply["type"] == "filter"
    assert send_filter(everyone, {"filter": {}})["type"] == "filter"
    sessions = ["hq-mayor", "ga-crew-max", "ga-furiosa", "hq-mayor", "bd-crew-joe", "ga-crew-sam"]
    with httpx.Client(base_url=server.url) as client:
        post(client, [event(i, s) for i, s in enumerate(sessions)])
    assert len(everyone.wait_for(6)) == 6
    time.sleep(0.3)
    assert [e["session_id"] for _, e in mayor_only.events()] == ["hq-mayor", "hq-mayor"]
    assert [e["session_id"] for _, e in gasometer_crew.events()] == ["ga-crew-max", "ga-crew-sam"]


@pytest.mark.parametrize(
    "message",
    ["not json", {"filter": {"colour": "red"}}, {"filter": "mayor"}, {"role": "mayor"}],
    ids=["not json", "unknown key", "not an object", "no filter"],
)
def test_bad_filter_message_gets_an_error_and_keeps_the_connection(
    server: ServerProcess, listen: Any, message: Any
) -> None:
    listener = listen(server)
    reply = send_filter(listener, message)
    assert reply["type"] == "error" and reply["error"]
    with httpx.Client(base_url=server.url) as client:
        post(client, event(0, f"hq-dog-d{next(_ids)}"))
    assert len(listener.wait_for(1)) == 1


def test_a_batch_larger_than_the_queue_reaches_a_fast_client(
    server: ServerProcess, listen: Any
) -> None:
    """The per-client bound (in bytes) is for clients that fall behind, not for one large
    commit delivered to a client that keeps up."""
    listener = listen(server)
    time.sleep(0.2)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        post(client, [event(i, "ga-bulk") for i in range(2500)])
    got = listener.wait_for(2500)
    assert listener.closed is None, listener.closed
    assert len(got) == 2500


def stalled_client(server: ServerProcess) -> socket.socket:
    """A WebSocket client that never reads after the handshake (tiny receive buffer)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            "GET /ws/live HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


CLOSE_SLOW = b"\x03\xf0slow client: live backlog full"
"""The payload of a close frame with code 1008 and the server's reason."""


def read_until_closed(sock: socket.socket, timeout: float = 60.0) -> bytes:
    """Everything the server still sends, up to its close frame (or the end)."""
    sock.settimeout(timeout)
    data = bytearray()
    while not data.endswith(CLOSE_SLOW):
        chunk = sock.recv(1 << 16)
        if not chunk:
            break
        data += chunk
    return bytes(data)


def test_a_client_that_never_reads_is_dropped_and_the_others_get_everything(
    server_factory: ServerFactory, listen: Any
) -> None:
    backlog = 1 << 20
    srv = server_factory(ws_max_backlog_bytes=str(backlog))
    fast = listen(srv)
    stalled = stalled_client(srv)
    time.sleep(0.2)
    bulky = {name: name[0] * 190 for name in ("model", "issue", "parent_session_id", "source")}
    with httpx.Client(base_url=srv.url, timeout=60) as client:
        for b in range(40):
            post(client, [event(i, f"ga-s{b}", **bulky) for i in range(250)])
    got = fast.wait_for(10_000)
    assert len(got) == 10_000 and fast.closed is None
    log = srv.log_text()
    assert "slow client" in log and "disconnecting live client" in log
    rest = read_until_closed(stalled)
    assert rest.endswith(CLOSE_SLOW)
    sent_before_close = rest.count(b'{"id":')
    assert sent_before_close < 10_000
    assert len(rest) < 10 * backlog  # the bound, one commit over it, and the socket buffers


def test_clients_beyond_the_cap_are_refused_with_a_reason(
    server_factory: ServerFactory, listen: Any
) -> None:
    srv = server_factory(ws_max_clients="2")
    first, second = listen(srv), listen(srv)
    with connect(ws_url(srv), open_timeout=60) as third, pytest.raises(ConnectionClosed) as closed:
        third.recv(timeout=30)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1013, "too many live clients")
    with httpx.Client(base_url=srv.url) as client:
        post(client, event(0, "ga-cap"))
    assert len(first.wait_for(1)) == len(second.wait_for(1)) == 1


def test_a_reading_client_keeps_up_with_50k_events_per_second(
    server: ServerProcess, listen: Any
) -> None:
    """A client that keeps reading is never dropped as slow, with the default bound: the
    test offers 50,000 events/s (batches of 5,000 every 0.1 s) for 3 s; if the server
    ingests slower, the client only has it easier."""
    listener = listen(server)
    time.sleep(0.2)
    total, batch, errors = 150_000, 5_000, []

    def send(part: int) -> None:
        try:
            with httpx.Client(base_url=server.url, timeout=120) as client:
                start = time.monotonic()
                for n, first in enumerate(range(part * batch, total, 2 * batch)):
                    body = [event(i % 1_000_000, f"ga-rate{i // 1_000_000}-{part}") for i in
                            range(first, first + batch)]  # fmt: skip
                    post(client, body)
                    time.sleep(max(0.0, start + (n + 1) * 0.2 - time.monotonic()))
        except Exception as exc:
            errors.append(exc)

    senders = [threading.Thread(target=send, args=(part,)) for part in (0, 1)]
    started = time.monotonic()
    for thread in senders:
        thread.start()
    for thread in senders:
        thread.join()
    print(f"ingested {total / (time.monotonic() - started):,.0f} events/s while streaming")
    assert errors == []
    got = listener.wait_for(total, timeout=120)
    assert listener.closed is None, listener.closed
    assert len(got) == total
    assert "slow client" not in server.log_text()


def stored(i: int, role: str) -> StoredEvent:
    return StoredEvent(
        id=i, session_id=f"s-{i}", ended_at_us=1_790_000_000_000_000 + i, started_at_us=None,
        role=role, rig="ga", worker="w", model="claude-opus-4-5", issue=None,
        parent_session_id=None, source="api", event_id=None, kind="increment", revision=0,
        cost_usd=0.25, input_tokens=1, output_tokens=2, cache_creation_tokens=0,
        cache_read_tokens=0,
    )  # fmt: skip


def test_frames_are_built_once_per_filter_shared_by_clients_and_bounded() -> None:
    events = [stored(i, "mayor" if i % 3 == 0 else "polecat") for i in range(5_000)]

    async def fan_out() -> list[LiveClient]:
        hub = LiveHub()
        try:
            clients = [hub.join() for _ in range(3)]
            assert all(c is not None for c in clients)
            ready = [c for c in clients if c is not None]
            hub.set_filter(ready[2], {"role": "mayor"})
            hub._fan_out(Commit(events))
            return ready
        finally:
            hub.close()

    first, second, mayor = asyncio.run(fan_out())
    assert len(first.pending) > 1
    assert all(a is b for a, b in zip(first.pending, second.pending, strict=True))
    assert first.backlog == sum(len(f) for f in first.pending)
    for frame in first.pending:
        assert len(frame.encode()) <= FRAME_BYTES + 1_000
    got = [e for f in first.pending for e in json.loads(f)["events"]]
    assert [e["id"] for e in got] == list(range(5_000))
    assert got[1]["ended_at"] == "2026-09-21T14:13:20.000001Z"
    mayors = [e for f in mayor.pending for e in json.loads(f)["events"]]
    assert [e["id"] for e in mayors] == list(range(0, 5_000, 3))
