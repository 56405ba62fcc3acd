"""WS /ws/live: every accepted event pushed to every connected client within a second.

The writer thread publishes; each client has a bounded backlog, so a slow client is
disconnected (with a logged reason) rather than slowing ingest or other clients. The bound
is checked when a batch arrives: a client that has kept up takes a batch of any size (at
most one group commit), one still holding `queue_size` unsent messages is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect

from gasometer.model import StoredEvent

log = logging.getLogger("gasometer.live")
FILTER_KEYS = ("role", "rig", "worker", "issue", "model", "session_id")
SLOW_CLIENT = "slow client: live queue full"


class FilterMessage(msgspec.Struct, forbid_unknown_fields=True):
    """What a client may send: `{"filter": {"role": ..., "rig": ...}}` (empty = all)."""

    filter: dict[str, str | None]


def event_json(event: StoredEvent) -> dict[str, Any]:
    """A stored event as the API shows it (the same fields as GET /api/costs)."""
    data = msgspec.structs.asdict(event)
    for name in ("started_at", "ended_at"):
        micros = data.pop(f"{name}_us")
        data[name] = None if micros is None else _iso(micros)
    return data


def _iso(micros: int) -> str:
    return datetime.fromtimestamp(micros / 1e6, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(eq=False)
class LiveClient:
    """One connected socket: its queue and its filter."""

    queue: asyncio.Queue[bytes]
    filters: dict[str, str] = field(default_factory=dict)
    dropped: str | None = None

    def wants(self, event: dict[str, Any]) -> bool:
        return all(event.get(k) == v for k, v in self.filters.items())


class LiveHub:
    """Fans accepted events out to live clients; safe to publish from any thread."""

    def __init__(self, queue_size: int = 1000) -> None:
        self.queue_size = queue_size
        self.clients: set[LiveClient] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.encoder = msgspec.json.Encoder()
        self.dropped_clients = 0

    def join(self) -> LiveClient:
        """Register a new client (on the event loop)."""
        self.loop = asyncio.get_running_loop()
        client = LiveClient(asyncio.Queue())
        self.clients.add(client)
        return client

    def leave(self, client: LiveClient) -> None:
        """Forget a client."""
        self.clients.discard(client)

    def publish(self, events: list[StoredEvent]) -> None:
        """Queue events for every client (called by the writer thread after each commit)."""
        if self.loop is None or not self.clients:
            return
        payload = [event_json(e) for e in events]
        with contextlib.suppress(RuntimeError):  # loop closed during shutdown
            self.loop.call_soon_threadsafe(self._fan_out, payload)

    def publish_message(self, message: dict[str, Any]) -> None:
        """Send a non-event message (e.g. an alert) to every client."""
        if self.loop is None:
            return
        data = self.encoder.encode(message)
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self._offer_all, data)

    def _offer_all(self, data: bytes) -> None:
        for client in list(self.clients):
            if self._keeps_up(client):
                client.queue.put_nowait(data)

    def _fan_out(self, events: list[dict[str, Any]]) -> None:
        for client in list(self.clients):
            if not self._keeps_up(client):
                continue
            for event in events:
                if client.wants(event):
                    client.queue.put_nowait(self.encoder.encode({"type": "event", "event": event}))

    def _keeps_up(self, client: LiveClient) -> bool:
        """False (and the client dropped) once its backlog has reached the bound."""
        if client.dropped:
            return False
        if client.queue.qsize() < self.queue_size:
            return True
        client.dropped = SLOW_CLIENT
        self.dropped_clients += 1
        log.warning("disconnecting live client: %s (%d messages)", SLOW_CLIENT, self.queue_size)
        while not client.queue.empty():
            client.queue.get_nowait()
        client.queue.put_nowait(b"")
        return False


@websocket("/ws/live", opt={"scope": "read"})
async def live_socket(socket: WebSocket, hub: LiveHub) -> None:
    """Push every accepted event; the client may narrow them with a filter message."""
    await socket.accept()
    client = hub.join()
    reader = asyncio.create_task(_read_filters(socket, client))
    try:
        while not reader.done():
            getter = asyncio.ensure_future(client.queue.get())
            done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                break
            data = getter.result()
            if client.dropped and not data:
                await socket.close(code=1008, reason=client.dropped)
                break
            await socket.send_data(data.decode(), mode="text")
    except WebSocketDisconnect:
        pass
    finally:
        reader.cancel()
        hub.leave(client)


async def _read_filters(socket: WebSocket, client: LiveClient) -> None:
    decoder = msgspec.json.Decoder(FilterMessage)
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            raw = await socket.receive_data(mode="text")
            try:
                message = decoder.decode(raw)
            except msgspec.DecodeError as exc:
                await socket.send_json({"type": "error", "error": f"bad filter: {exc}"})
                continue
            unknown = set(message.filter) - set(FILTER_KEYS)
            if unknown:
                await socket.send_json(
                    {"type": "error", "error": f"unknown filter keys: {sorted(unknown)}"}
                )
                continue
            client.filters = {k: v for k, v in message.filter.items() if v is not None}
            await socket.send_json({"type": "filter", "filter": client.filters})
