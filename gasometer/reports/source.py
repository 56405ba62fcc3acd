"""Where report rows come from: a data directory (read-only) or a running server.

Both give the same rows from the same named queries: locally through the query engine,
remotely through `GET /api/stats/daily` and `GET /api/queries/{name}` (read scope).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from typing import Any, Protocol

import msgspec

from gasometer.errors import GasometerError
from gasometer.query import stats
from gasometer.query.engine import QueryEngine
from gasometer.query.stats import Filters, GroupBy
from gasometer.query.window import exact_hours


class Usage(msgspec.Struct, kw_only=True):
    """Cost, events and tokens of one report cell."""

    total_usd: float = 0.0
    event_count: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_tokens: int = 0
    cache_read_tokens: int = 0

    def add(self, other: Usage) -> None:
        """Add another cell's figures to this one."""
        for name in Usage.__struct_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def total_tokens(self) -> int:
        """Input, output, cache-write and cache-read tokens together (as ccusage sums them)."""
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_creation_tokens
            + self.cache_read_tokens
        )


class DayRow(Usage, kw_only=True):
    """One local day's usage for one key (model, role, rig or worker)."""

    date: str
    key: str


class HourRow(Usage, kw_only=True):
    """One UTC hour's usage for one key, with the hour's first and last activity."""

    hour: datetime
    key: str
    first_at: datetime
    last_at: datetime


class SessionRow(Usage, kw_only=True):
    """One session's usage of one model, with its attribution and activity span."""

    session_id: str
    model: str
    role: str
    rig: str
    worker: str
    parent_session_id: str | None
    first_at: datetime
    last_at: datetime


class Source(Protocol):
    """Rows for reports, whatever holds the data."""

    def days(self, filters: Filters, group_by: GroupBy) -> list[DayRow]:
        """Usage per local day (in `filters.tz`) and key."""
        ...

    def hours(self, filters: Filters, group_by: GroupBy) -> list[HourRow]:
        """Usage per UTC hour and key."""
        ...

    def sessions(self, filters: Filters, limit: int) -> list[SessionRow]:
        """Usage per session and model, for the `limit` most recently active sessions."""
        ...


_DAY_FIELDS = ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens")


class LocalSource:
    """Reads a data directory through the query engine (the API's own functions)."""

    def __init__(self, engine: QueryEngine) -> None:
        self.engine = engine

    def days(self, filters: Filters, group_by: GroupBy) -> list[DayRow]:
        """Rows of `stats.daily`, the function behind GET /api/stats/daily."""
        return [
            DayRow(
                date=r.date,
                key=r.key,
                total_usd=r.total_usd,
                event_count=r.event_count,
                **{name: getattr(r, name) for name in _DAY_FIELDS},
            )
            for r in stats.daily(self.engine, filters, group_by)
        ]

    def hours(self, filters: Filters, group_by: GroupBy) -> list[HourRow]:
        """Rows of queries/usage_hours.sql, exact at the window's edges."""
        win = filters.window()
        params = {**filters.params(win), "group_by": group_by}
        result = self.engine.run("usage_hours", params, exact_hours=exact_hours(win, by_day=False))
        return [msgspec.convert(row, HourRow) for row in result.dicts()]

    def sessions(self, filters: Filters, limit: int) -> list[SessionRow]:
        """Rows of queries/usage_sessions.sql, exact at the window's edges."""
        win = filters.window()
        params = {**filters.params(win), "limit": limit}
        result = self.engine.run(
            "usage_sessions", params, exact_hours=exact_hours(win, by_day=False)
        )
        return [msgspec.convert(row, SessionRow) for row in result.dicts()]


class ServerError(GasometerError):
    """The server could not be reached or refused the request."""


class RemoteSource:
    """Reads a running server's read API (`--url`, with a read token if reads are closed)."""

    def __init__(self, url: str, token: str | None, timeout_s: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s

    def days(self, filters: Filters, group_by: GroupBy) -> list[DayRow]:
        """Rows of GET /api/stats/daily."""
        query = {"from": filters.start, "to": filters.end, "tz": filters.tz, **filters.dims()}
        body = self._get("/api/stats/daily", {**query, "group_by": group_by})
        rows = []
        for item in body["days"]:
            item["key"] = item.pop(group_by)
            rows.append(msgspec.convert(item, DayRow, strict=False))
        return rows

    def hours(self, filters: Filters, group_by: GroupBy) -> list[HourRow]:
        """Rows of the named query usage_hours (GET /api/queries/usage_hours)."""
        rows = self._named("usage_hours", filters, {"group_by": group_by})
        return [msgspec.convert(row, HourRow, strict=False) for row in rows]

    def sessions(self, filters: Filters, limit: int) -> list[SessionRow]:
        """Rows of the named query usage_sessions (GET /api/queries/usage_sessions)."""
        rows = self._named("usage_sessions", filters, {"limit": str(limit)})
        return [msgspec.convert(row, SessionRow, strict=False) for row in rows]

    def _named(self, name: str, filters: Filters, extra: dict[str, str]) -> list[dict[str, Any]]:
        win = filters.window()
        query = {"start": win.start.isoformat(), "end": win.end.isoformat(), **filters.dims()}
        body = self._get(f"/api/queries/{name}", {**query, **extra})
        if body.get("truncated"):
            raise ServerError(
                f"{name}: the server cut the answer at {body['row_count']} rows "
                "(narrow it with --since/--until or raise GASOMETER_SQL_MAX_ROWS)"
            )
        columns = body["columns"]
        return [dict(zip(columns, row, strict=True)) for row in body["rows"]]

    def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        request = urllib.request.Request(f"{self.url}{path}?{query}")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                answer: dict[str, Any] = json.loads(response.read())
                return answer
        except urllib.error.HTTPError as exc:
            raise ServerError(f"{self.url}{path}: {_http_reason(exc)}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServerError(f"cannot reach {self.url}: {reason}") from None


def _http_reason(exc: urllib.error.HTTPError) -> str:
    """The server's one-line error, with a hint for the statuses a user can fix."""
    try:
        message = json.loads(exc.read()).get("error") or exc.reason
    except (ValueError, AttributeError):
        message = exc.reason
    hints = {
        401: " (pass a read token with --token or GASOMETER_TOKEN)",
        403: " (the token lacks the read scope)",
    }
    return f"HTTP {exc.code}: {message}{hints.get(exc.code, '')}"
