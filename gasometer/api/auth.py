"""Bearer-token authentication for ingest, import and SQL."""

from __future__ import annotations

import hashlib
import hmac

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler


def token_matches(presented: str, digests: set[bytes]) -> bool:
    """Compare a presented token with every known digest, in constant time each."""
    digest = hashlib.sha256(presented.encode()).digest()
    found = False
    for known in digests:
        found |= hmac.compare_digest(digest, known)
    return found


async def require_token(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """Guard: `Authorization: Bearer <token>` with a configured token, else 401.

    Async on purpose: Litestar runs a sync guard in its thread pool, one hop per request.
    """
    header = connection.headers.get("authorization", "")
    scheme, _sep, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthorizedException("missing bearer token (Authorization: Bearer <token>)")
    if not token_matches(token.strip(), connection.app.state.token_digests):
        raise NotAuthorizedException("invalid token")
