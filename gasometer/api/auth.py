"""Who may call what: one app-level guard reads each route's `opt["scope"]`.

Scopes: `public` (no credentials), `ingest`, `read`, `admin` (implies read and ingest).
Credentials: `Authorization: Bearer <token>`, or for read routes the dashboard's session
cookie. Reads need nothing while reads are open (loopback by default, or `public_read`).
WebSocket handshakes must also come from an allowed Origin (or send none).
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import urlsplit

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from gasometer.config import Settings
from gasometer.tokens import TokenRegistry, digest_of

ROUTE_SCOPES = ("public", "ingest", "read", "admin")
SESSION_COOKIE = "gasometer_session"
MAX_SESSIONS = 1000
SESSION_MAX_AGE_S = 30 * 24 * 3600


@dataclass(frozen=True)
class Session:
    """A dashboard session: the digest of the token it was opened with, and when."""

    digest: bytes
    created: float


class SessionStore:
    """Opaque session ids -> the token they stand for; in memory, so sessions end when the
    server stops. A session is only as good as its token: revoked token, dead session."""

    def __init__(self, registry: TokenRegistry) -> None:
        self.registry = registry
        self.sessions: OrderedDict[str, Session] = OrderedDict()

    def open(self, token: str) -> str:
        """A new session id for a token carrying the read scope (caller checked it)."""
        sid = secrets.token_urlsafe(32)
        self.sessions[sid] = Session(digest_of(token), time.monotonic())
        while len(self.sessions) > MAX_SESSIONS:
            self.sessions.popitem(last=False)
        return sid

    def close(self, sid: str) -> None:
        """Forget a session."""
        self.sessions.pop(sid, None)

    def scopes(self, sid: str | None) -> frozenset[str]:
        """What a session grants: read, while its token still carries it."""
        session = self.sessions.get(sid or "")
        if session is None:
            return frozenset()
        if time.monotonic() - session.created > SESSION_MAX_AGE_S:
            self.close(sid or "")
            return frozenset()
        if "read" not in self.registry.grants_of_digest(session.digest):
            return frozenset()
        return frozenset({"read"})


@dataclass
class Access:
    """The app's access state: tokens, sessions, allowed hosts, and whether reads are open."""

    registry: TokenRegistry
    sessions: SessionStore
    hosts: frozenset[str]
    reads_open: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> Access:
        """Build the access state for these settings."""
        registry = TokenRegistry(settings)
        sessions = SessionStore(registry)
        return cls(registry, sessions, allowed_hosts(settings), settings.reads_open())


def allowed_hosts(settings: Settings) -> frozenset[str]:
    """Host names a request may name: localhost, loopback, the bind address, `allowed_hosts`."""
    names = {"localhost", "127.0.0.1", "::1", settings.host.strip("[]").lower()}
    names |= {h.strip().strip("[]").lower() for h in settings.allowed_hosts if h.strip()}
    names.discard("0.0.0.0")
    names.discard("::")
    return frozenset(names)


def host_name(value: str) -> str:
    """The host name of a Host header or netloc, without port or IPv6 brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else ""
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def host_allowed(access: Access, host: str | None) -> bool:
    """Whether a Host header names this server (allowed_hosts `*` allows any)."""
    if "*" in access.hosts:
        return True
    return host is not None and host_name(host) in access.hosts


def origin_allowed(access: Access, origin: str | None, host: str | None) -> bool:
    """A WebSocket Origin is fine when absent (non-browser clients), same-origin, or naming
    an allowed host; any other page in the user's browser is refused."""
    if origin is None:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    if host is not None and parts.netloc.lower() == host.strip().lower():
        return True
    return host_allowed(access, parts.netloc)


def bearer(connection: ASGIConnection) -> str | None:
    """The bearer token of a request, if any."""
    scheme, _sep, token = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def access_of(connection: ASGIConnection) -> Access:
    """The app's Access object."""
    access: Access = connection.app.state.access
    return access


def credentials(connection: ASGIConnection, access: Access) -> tuple[bool, frozenset[str]]:
    """Whether any credential was presented, and the scopes it grants (bearer or cookie)."""
    token = bearer(connection)
    if token is not None:
        return True, access.registry.grants(token)
    sid = connection.cookies.get(SESSION_COOKIE)
    if sid:
        return True, access.sessions.scopes(sid)
    return False, frozenset()


async def scope_guard(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """The one guard: the route's `opt["scope"]` against the caller's credentials.

    Async on purpose: Litestar runs a sync guard in its thread pool, one hop per request.
    A route without a scope is refused (and fails the route-table test).
    """
    scope = handler.opt.get("scope")
    if scope not in ROUTE_SCOPES:
        raise PermissionDeniedException("this route declares no access scope")
    access = access_of(connection)
    if connection.scope["type"] == "websocket" and not origin_allowed(
        access, connection.headers.get("origin"), connection.headers.get("host")
    ):
        raise PermissionDeniedException("origin not allowed")
    if scope == "public" or (scope == "read" and access.reads_open):
        return
    if scope == "read":
        presented, scopes = credentials(connection, access)
    else:  # ingest and admin take the bearer token only, never the session cookie
        token = bearer(connection)
        presented = token is not None
        scopes = access.registry.grants(token) if token is not None else frozenset()
    if scope in scopes:
        return
    if not presented:
        raise NotAuthorizedException(f"{scope} scope needed: send Authorization: Bearer <token>")
    if not scopes:
        raise NotAuthorizedException("invalid token or session")
    raise PermissionDeniedException(f"this token lacks the {scope} scope")
