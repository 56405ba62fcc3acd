"""WS /ws/live: every accepted event pushed to every connected client, one frame per commit.

The writer thread hands each group commit to the hub's encoder thread, which encodes every
event once and builds the frames once per distinct client filter,
`{"type": "events", "events": [...]}` (a commit larger than `FRAME_BYTES` of JSON is split
into several such frames). The event loop only appends the shared frames to each client's
backlog, so the work per commit does not grow with the number of clients.

Each client's backlog is bounded in bytes (`ws_max_backlog_bytes`): checked when a commit
arrives, so a client that keeps up takes a commit of any size, and one still holding more
than the bound is disconnected (close 1008, reason logged) rather than slowing ingest or
other clients. At most `ws_max_clients` clients are served; one more is closed with 1013.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect

from gasometer.model import StoredEvent

log = logging.getLogger("gasometer.live")
FILTER_KEYS = ("role", "rig", "worker", "issue", "model", "session_id")
SLOW_CLIENT = "slow client: live backlog full"
TOO_MANY_CLIENTS = "too many live clients"
CLOSE_POLICY, CLOSE_TRY_LATER = 1008, 1013
FRAME_BYTES = 512 * 1024
FilterKey = tuple[tuple[str, str], ...]


class FilterMessage(msgspec.Struct, forbid_unknown_fields=True):
    """What a client may send: `{"filter": {"role": ..., "rig": ...}}` (empty = all)."""

    filter: dict[str, str | None]


class LiveEvent(msgspec.Struct):
    """A stored event as the API shows it (the same fields as a row of GET /api/costs)."""

    id: int
    session_id: str
    ended_at: str
    started_at: str | None
    role: str
    rig: str
    worker: str
    model: str | None
    issue: str | None
    parent_session_id: str | None
    source: str
    event_id: str | None
    kind: str
    revision: int
    cost_usd: float
    input_tokens: int
    output_tokens: int
    cache_creation_tokens: int
    cache_read_tokens: int


def live_event(e: StoredEvent) -> LiveEvent:
    """The API shape of a stored event (times as RFC 3339 UTC with microseconds)."""
    started = None if e.started_at_us is None else _iso(e.started_at_us)
    return LiveEvent(
        e.id, e.session_id, _iso(e.ended_at_us), started, e.role, e.rig, e.worker, e.model,
        e.issue, e.parent_session_id, e.source, e.event_id, e.kind, e.revision, e.cost_usd,
        e.input_tokens, e.output_tokens, e.cache_creation_tokens, e.cache_read_tokens,
    )  # fmt: skip


@functools.lru_cache(maxsize=65536)
def _second(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def _iso(micros: int) -> str:
    seconds, fraction = divmod(micros, 1_000_000)
    return f"{_second(seconds)}.{fraction:06d}Z"


def filter_key(filters: dict[str, str]) -> FilterKey:
    """A client's filter as a hashable key: clients with equal filters share frames."""
    return tuple(sorted(filters.items()))


def _frame(parts: Sequence[bytes]) -> str:
    return (b'{"type":"events","events":[' + b",".join(parts) + b"]}").decode()


def frames(parts: Sequence[bytes], limit: int = FRAME_BYTES) -> list[str]:
    """Encoded events joined into frames of about `limit` bytes each (at least one event),
    as text ready for the socket (decoded once, shared by every client)."""
    out: list[str] = []
    start, size = 0, 0
    for i, part in enumerate(parts):
        if i > start and size + len(part) > limit:
            out.append(_frame(parts[start:i]))
            start, size = i, 0
        size += len(part) + 1
    if start < len(parts):
        out.append(_frame(parts[start:]))
    return out


class Commit:
    """One group commit: each event encoded once, frames built once per filter."""

    encoder = msgspec.json.Encoder()

    def __init__(self, events: list[StoredEvent]) -> None:
        self.events = events
        self.parts = [self.encoder.encode(live_event(e)) for e in events]
        self.by_key: dict[FilterKey, list[str]] = {}

    def frames_for(self, key: FilterKey) -> list[str]:
        """The frames for clients with this filter (empty when no event matches)."""
        found = self.by_key.get(key)
        if found is None:
            parts = self.parts
            if key:
                pairs = zip(self.events, self.parts, strict=True)
                parts = [p for e, p in pairs if all(getattr(e, k) == v for k, v in key)]
            found = self.by_key[key] = frames(parts)
        return found


@dataclass(eq=False)
class LiveClient:
    """One connected socket: its filter and its backlog of frames still to send."""

    wake: asyncio.Event = field(default_factory=asyncio.Event)
    pending: deque[str] = field(default_factory=deque)
    key: FilterKey = ()
    backlog: int = 0
    dropped: str | None = None

    def push(self, data: str) -> None:
        """Queue one frame (shared with other clients: never copied)."""
        self.pending.append(data)
        self.backlog += len(data)
        self.wake.set()

    def pop(self) -> str:
        """The next frame to send; "" means: close, the client was dropped."""
        data = self.pending.popleft()
        self.backlog -= len(data)
        return data


class LiveHub:
    """Fans accepted events out to live clients; `publish` is safe from any thread."""

    def __init__(self, max_backlog_bytes: int = 64 << 20, max_clients: int = 100) -> None:
        self.max_backlog_bytes = max_backlog_bytes
        self.max_clients = max_clients
        self.clients: set[LiveClient] = set()
        self.keys: dict[FilterKey, int] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.encoder = msgspec.json.Encoder()
        self.dropped_clients = 0
        self._work: queue.SimpleQueue[list[StoredEvent] | str | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._encode, name="gasometer-live", daemon=True)
        self._thread.start()

    def join(self) -> LiveClient | None:
        """Register a new client (on the event loop); None when `max_clients` are served."""
        if len(self.clients) >= self.max_clients:
            return None
        self.loop = asyncio.get_running_loop()
        client = LiveClient()
        self.clients.add(client)
        self._count(client.key, +1)
        return client

    def leave(self, client: LiveClient) -> None:
        """Forget a client."""
        if client in self.clients:
            self.clients.discard(client)
            self._count(client.key, -1)

    def set_filter(self, client: LiveClient, filters: dict[str, str]) -> None:
        """Change what a client receives from the next commit on."""
        self._count(client.key, -1)
        client.key = filter_key(filters)
        self._count(client.key, +1)

    def _count(self, key: FilterKey, delta: int) -> None:
        left = self.keys.get(key, 0) + delta
        if left > 0:
            self.keys[key] = left
        else:
            self.keys.pop(key, None)

    def publish(self, events: list[StoredEvent]) -> None:
        """Hand a commit's events to the encoder thread (called by the writer thread)."""
        if self.loop is not None and self.clients:
            self._work.put(events)

    def publish_message(self, message: dict[str, Any]) -> None:
        """Send a non-event message (e.g. an alert) to every client, after the events
        published before it."""
        if self.loop is not None and self.clients:
            self._work.put(self.encoder.encode(message).decode())

    def close(self) -> None:
        """Stop the encoder thread."""
        self._work.put(None)
        self._thread.join(timeout=5)

    def _encode(self) -> None:
        while (item := self._work.get()) is not None:
            try:
                if isinstance(item, str):
                    self._call(self._offer_all, item)
                    continue
                commit = Commit(item)
                for key in list(self.keys):
                    commit.frames_for(key)
                self._call(self._fan_out, commit)
            except RuntimeError:  # loop closed during shutdown
                continue
            except Exception:
                log.exception("encoding live events failed")

    def _call(self, func: Callable[[Any], None], arg: object) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(func, arg)

    def _offer_all(self, data: str) -> None:
        for client in list(self.clients):
            self._offer(client, [data])

    def _fan_out(self, commit: Commit) -> None:
        for client in list(self.clients):
            if not client.dropped:
                found = commit.frames_for(client.key)
                if found:
                    self._offer(client, found)

    def _offer(self, client: LiveClient, data: list[str]) -> None:
        """Queue frames, or drop the client if its backlog is already over the bound."""
        if client.dropped:
            return
        if client.backlog <= self.max_backlog_bytes:
            for frame in data:
                client.push(frame)
            return
        client.dropped = SLOW_CLIENT
        self.dropped_clients += 1
        log.warning("disconnecting live client: %s (%d bytes unsent)", SLOW_CLIENT, client.backlog)
        client.pending.clear()
        client.backlog = 0
        client.push("")


@websocket("/ws/live", opt={"scope": "read"})
async def live_socket(socket: WebSocket, hub: LiveHub) -> None:
    """Push every accepted event, one frame per commit; a filter message narrows them."""
    await socket.accept()
    client = hub.join()
    if client is None:
        log.warning("refusing live client: %s (%d)", TOO_MANY_CLIENTS, hub.max_clients)
        await socket.close(code=CLOSE_TRY_LATER, reason=TOO_MANY_CLIENTS)
        return
    reader = asyncio.create_task(_read_filters(socket, hub, client))
    try:
        await _send_frames(socket, client, reader)
    except (WebSocketDisconnect, OSError):
        pass
    finally:
        reader.cancel()
        hub.leave(client)


async def _send_frames(socket: WebSocket, client: LiveClient, reader: asyncio.Task[None]) -> None:
    """The one writer of a socket: frames, filter replies and the closing reason."""
    while not reader.done():
        waiter = asyncio.ensure_future(client.wake.wait())
        done, _ = await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
        if waiter not in done:
            waiter.cancel()
            return
        client.wake.clear()
        while client.pending:
            data = client.pop()
            if not data:
                await socket.close(code=CLOSE_POLICY, reason=client.dropped or SLOW_CLIENT)
                return
            await socket.send_data(data, mode="text")


async def _read_filters(socket: WebSocket, hub: LiveHub, client: LiveClient) -> None:
    decoder = msgspec.json.Decoder(FilterMessage)

    def encode(message: dict[str, Any]) -> str:
        return hub.encoder.encode(message).decode()

    with contextlib.suppress(WebSocketDisconnect):
        while True:
            raw = await socket.receive_data(mode="text")
            try:
                message = decoder.decode(raw)
            except msgspec.DecodeError as exc:
                client.push(encode({"type": "error", "error": f"bad filter: {exc}"}))
                continue
            unknown = set(message.filter) - set(FILTER_KEYS)
            if unknown:
                error = f"unknown filter keys: {sorted(unknown)}"
                client.push(encode({"type": "error", "error": error}))
                continue
            filters = {k: v for k, v in message.filter.items() if v is not None}
            hub.set_filter(client, filters)
            client.push(encode({"type": "filter", "filter": filters}))
