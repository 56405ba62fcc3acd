"""/api/session: the dashboard trades a read token for an HttpOnly cookie, once.

The cookie holds an opaque random id mapped in the server's memory to the token it was
opened with: sessions end when the server restarts or the token is revoked, and a
session grants reads only (admin actions always need the bearer token).
"""

from __future__ import annotations

import msgspec
from litestar import Request, Response, delete, get, post
from litestar.datastructures import Cookie

from gasometer.api.auth import SESSION_COOKIE, access_of, bearer
from gasometer.errors import BadRequest, GasometerError

MAX_BODY = 4096


class SessionRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of POST /api/session."""

    token: str


class SessionState(msgspec.Struct):
    """Whether reads need credentials, and what this caller's credentials grant."""

    reads_open: bool
    authenticated: bool
    scopes: list[str]


class BadToken(GasometerError):
    """The token is unknown."""

    status = 401


class NotReadToken(GasometerError):
    """The token is valid but cannot read."""

    status = 403


def _cookie(request: Request, value: str, max_age: int | None = None) -> Cookie:
    """The session cookie; `Secure` when the request came over HTTPS (a TLS proxy that
    sends X-Forwarded-Proto from loopback counts: uvicorn trusts it)."""
    return Cookie(
        key=SESSION_COOKIE,
        value=value,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme in ("https", "wss"),
        max_age=max_age,
    )


@post("/api/session", status_code=204, opt={"scope": "public"})
async def open_session(request: Request) -> Response[None]:
    """Trade a read (or admin) token for a session cookie; 401 for an unknown token."""
    body = await request.body()
    if len(body) > MAX_BODY:
        raise BadRequest("session request too large")
    try:
        token = msgspec.json.decode(body, type=SessionRequest).token.strip()
    except msgspec.DecodeError as exc:
        raise BadRequest(f'send {{"token": "<read token>"}}: {exc}') from exc
    access = access_of(request)
    scopes = access.registry.grants(token) if token else frozenset()
    if not scopes:
        raise BadToken("invalid token")
    if "read" not in scopes:
        raise NotReadToken("an ingest token cannot open a dashboard session: use a read token")
    sid = access.sessions.open(token)
    return Response(None, status_code=204, cookies=[_cookie(request, sid)])


@get("/api/session", opt={"scope": "public"})
async def session_state(request: Request) -> SessionState:
    """`reads_open`, whether the caller is authenticated, and the scopes it holds."""
    access = access_of(request)
    token = bearer(request)
    if token is not None:
        scopes = access.registry.grants(token)
    else:
        scopes = access.sessions.scopes(request.cookies.get(SESSION_COOKIE))
    return SessionState(access.reads_open, bool(scopes), sorted(scopes))


@delete("/api/session", status_code=204, opt={"scope": "public"})
async def close_session(request: Request) -> Response[None]:
    """End the session and clear the cookie."""
    sid = request.cookies.get(SESSION_COOKIE)
    if sid:
        access_of(request).sessions.close(sid)
    return Response(None, status_code=204, cookies=[_cookie(request, "", max_age=0)])


routes = [open_session, session_state, close_session]
