"""Edge hygiene for every request: the Host allow-list, security headers, and error
messages scrubbed of paths.

The Host check stops DNS rebinding (a web page whose name resolves to 127.0.0.1 reaching
the API from the user's browser). The headers keep the HTML from being framed, sniffed,
or made to run anything but its own files.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Message,
    Receive,
    Scope,
    Send,
)

from gasometer.api.auth import Access, host_allowed

CSP = (
    "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'self'; "
    "form-action 'self'"
)
ALWAYS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
HTML_ONLY = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
]
BAD_HOST = (
    b'{"error":"unknown Host: not one of this server\'s names (allowed_hosts)",'
    b'"status":421,"ok":false}'
)
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])/(?:[^\s'\"`:,;()\[\]{}<>]+)")


def security_middleware(app: ASGIApp) -> ASGIApp:
    """Litestar middleware: refuse unknown Host headers (421, or a refused WebSocket
    handshake) and add the security headers to every HTTP response."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await app(scope, receive, send)
            return
        access: Access = scope["litestar_app"].state.access
        host = _header(scope, b"host")
        if not host_allowed(access, host):
            await _refuse(scope, send)
            return
        if scope["type"] == "websocket":
            await app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                add = ALWAYS + (HTML_ONLY if _is_html(headers) else [])
                headers += [(n, v) for n, v in add if n not in names]
                message = {**message, "headers": headers}
            await send(message)

        await app(scope, receive, send_with_headers)

    return middleware


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def _is_html(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(n.lower() == b"content-type" and v.startswith(b"text/html") for n, v in headers)


async def _refuse(scope: Scope, send: Send) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008, "reason": "unknown host"})
        return
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BAD_HOST))]
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": 421,
        "headers": headers + ALWAYS,
    }
    await send(start)
    body: HTTPResponseBodyEvent = {
        "type": "http.response.body",
        "body": BAD_HOST,
        "more_body": False,
    }
    await send(body)


class Scrubber:
    """Takes file-system paths out of error messages: the data directory, home and working
    directory by name, and any other absolute path under an existing top-level directory."""

    def __init__(self, data_dir: Path) -> None:
        home = os.path.expanduser("~")
        known = {
            str(data_dir.resolve()): "<data_dir>",
            str(data_dir.absolute()): "<data_dir>",
            os.getcwd(): "<cwd>",
        }
        if home not in ("", "/"):
            known[home] = "~"
        self.known = [
            (re.compile(re.escape(path) + r"(?=$|[/\s'\"`:,;)\]])"), placeholder)
            for path, placeholder in sorted(known.items(), key=lambda kv: -len(kv[0]))
            if len(path) > 1
        ]
        self.roots = set(_listdir("/"))

    def __call__(self, message: str) -> str:
        """The message with paths replaced by placeholders."""
        for pattern, placeholder in self.known:
            message = pattern.sub(placeholder, message)
        return ABSOLUTE_PATH.sub(self._path, message)

    def _path(self, match: re.Match[str]) -> str:
        first = match.group(0).lstrip("/").split("/", 1)[0]
        return "<path>" if first in self.roots else match.group(0)


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []
