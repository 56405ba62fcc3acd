"""Connection hygiene for uvicorn: a time limit on receiving each request, and a cap on
open connections answered with the one JSON error shape.

uvicorn closes idle keep-alive connections (`timeout_keep_alive`) but has no limit on a
request that is never finished: a client that sends half its headers, or half its body,
holds its connection forever. `GuardedHttpToolsProtocol` arms a timer when a connection
opens and when each request begins, and disarms it once the request has been received in
full (or upgraded to a WebSocket); when it fires, the server answers 408 unless a
response has begun, and closes the connection (a waiting handler sees a disconnect).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gasometer.config import Settings

log = logging.getLogger("gasometer.connections")

TIMEOUT_BODY = b'{"error": "request not received in time", "status": 408, "ok": false}'
TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(TIMEOUT_BODY), TIMEOUT_BODY)
)
BUSY_BODY = b'{"error": "too many connections, retry later", "status": 503, "ok": false}'


WS_MAX_MESSAGE_BYTES = 64 * 1024
"""The largest message a WebSocket client may send (a live filter is a few hundred bytes)."""


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options for these settings: the guarded HTTP protocol, the keep-alive
    timeout, and WebSockets without per-message compression (compressing each client's
    copy on the event loop would undo the shared live frames)."""
    return {
        "http": limits(settings.request_timeout_s, settings.max_connections),
        "timeout_keep_alive": settings.keep_alive_timeout_s,
        "ws_per_message_deflate": False,
        "ws_max_size": WS_MAX_MESSAGE_BYTES,
    }


def limits(request_timeout_s: float, max_connections: int) -> type[HttpToolsProtocol]:
    """The protocol class for uvicorn's `http=` with these limits bound."""
    return type(
        "BoundGuardedHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {"request_timeout_s": request_timeout_s, "max_connections": max_connections},
    )


async def _busy(scope: Any, receive: Any, send: Any) -> None:
    """The answer beyond `max_connections`: 503 in the JSON error shape."""
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(BUSY_BODY)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": BUSY_BODY})


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a request receive timeout and a connection cap."""

    request_timeout_s: float = 30.0
    max_connections: int = 1000
    _request_timer: asyncio.TimerHandle | None = None
    _in_headers = True

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the clock: a connection must send a whole request in time."""
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the clock."""
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        """A new request starts: it must be complete within the time limit."""
        super().on_message_begin()
        self._in_headers = True
        self._arm()

    def on_headers_complete(self) -> None:
        """Answer 503 (JSON) beyond `max_connections` instead of running the app."""
        self._in_headers = False
        if len(self.connections) <= self.max_connections:
            super().on_headers_complete()
            return
        app, self.app = self.app, _busy
        try:
            super().on_headers_complete()
        finally:
            self.app = app

    def on_message_complete(self) -> None:
        """The request is in: the handler may take its time."""
        self._disarm()
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        """A WebSocket has its own lifetime (pings, the live stream's bounds)."""
        self._disarm()
        super().handle_websocket_upgrade()

    def _arm(self) -> None:
        if self._request_timer is None:
            self._request_timer = self.loop.call_later(self.request_timeout_s, self._expire)

    def _disarm(self) -> None:
        if self._request_timer is not None:
            self._request_timer.cancel()
            self._request_timer = None

    def _expire(self) -> None:
        self._request_timer = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if self._in_headers or cycle is None or not cycle.response_started:
            self.transport.write(TIMEOUT_RESPONSE)
        self.transport.close()
