"""One POST of spooled events to `/api/ingest`, with http.client (fast to import)."""

from __future__ import annotations

import enum
import http.client
from urllib.parse import urlsplit

RETRY_STATUSES = frozenset({401, 403, 404, 408, 409, 425, 429})


class Outcome(enum.Enum):
    """What became of a batch: stored, to be tried again later, or refused for good."""

    SENT = "sent"
    RETRY = "retry"
    REJECTED = "rejected"


def post_events(
    url: str, token: str | None, body: bytes, kind: str, timeout_s: float
) -> tuple[Outcome, str]:
    """POST an NDJSON batch; a 4xx that says the batch itself is invalid is REJECTED, any
    other failure (network, 5xx, auth, disk full) is RETRY so nothing is lost."""
    parts = urlsplit(url)
    path = (
        (parts.path.rstrip("/") or "") + "/api/ingest" + ("?kind=total" if kind == "total" else "")
    )
    headers = {"Content-Type": "application/x-ndjson", "Content-Length": str(len(body))}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn = _connection(parts.scheme, parts.hostname or "127.0.0.1", parts.port, timeout_s)
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            detail = response.read(2000).decode(errors="replace")
        finally:
            conn.close()
    except (TimeoutError, OSError, http.client.HTTPException) as exc:
        return Outcome.RETRY, f"{type(exc).__name__}: {exc}"
    status = response.status
    if 200 <= status < 300:
        return Outcome.SENT, detail
    if 400 <= status < 500 and status not in RETRY_STATUSES:
        return Outcome.REJECTED, f"HTTP {status}: {detail}"
    return Outcome.RETRY, f"HTTP {status}: {detail}"


def _connection(
    scheme: str, host: str, port: int | None, timeout_s: float
) -> http.client.HTTPConnection:
    if scheme == "https":
        return http.client.HTTPSConnection(host, port, timeout=timeout_s)
    return http.client.HTTPConnection(host, port, timeout=timeout_s)
