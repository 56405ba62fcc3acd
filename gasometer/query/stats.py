"""The answers of the read API, as msgspec Structs, built from named queries.

Nothing here knows about HTTP: the API, the CLI and the benchmarks call these directly.
"""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

import msgspec

from gasometer.errors import BadRequest
from gasometer.query.engine import QueryEngine
from gasometer.query.window import Window, exact_hours, whole_hour_offsets, window, zone

GroupBy = Literal["role", "rig", "worker", "model"]


class Filters(msgspec.Struct, kw_only=True):
    """Filters shared by the read endpoints (None = any)."""

    start: str | None = None
    end: str | None = None
    tz: str | None = None
    role: str | None = None
    rig: str | None = None
    worker: str | None = None
    issue: str | None = None

    def window(self) -> Window:
        """The [start, end) window in UTC these filters ask for."""
        return window(self.start, self.end, self.tz)

    def dims(self) -> dict[str, Any]:
        """The role, rig, worker and issue filters as bound parameters."""
        return {"role": self.role, "rig": self.rig, "worker": self.worker, "issue": self.issue}

    def params(self, win: Window, *, drop: tuple[str, ...] = ()) -> dict[str, Any]:
        """Bound parameters for a named query."""
        values: dict[str, Any] = {"start": win.start, "end": win.end, **self.dims()}
        for name in drop:
            values.pop(name)
        return values


class DailyRow(msgspec.Struct):
    """One day's cost for one role (or rig, worker, model)."""

    date: str
    key: str
    total_usd: float
    session_count: int
    event_count: int
    input_tokens: int
    output_tokens: int
    cache_creation_tokens: int
    cache_read_tokens: int


class HourRow(msgspec.Struct):
    """One UTC hour's cost for one role (or rig, worker, model)."""

    hour: str
    key: str
    total_usd: float
    session_count: int
    event_count: int


MAX_HOURLY_SPAN = timedelta(days=45)


class Totals(msgspec.Struct):
    """Cost, sessions and events in one window."""

    total_usd: float
    session_count: int
    event_count: int


class Summary(msgspec.Struct):
    """Today, this week (from Monday), this month, and where the month is heading."""

    today: Totals
    week: Totals
    month: Totals
    burn_rate_usd_per_hour: float
    projected_month_usd: float
    tz: str
    as_of: str


class Share(msgspec.Struct):
    """One role's (or rig's) cost and share of the total."""

    key: str
    total_usd: float
    session_count: int
    share: float


class EventPage(msgspec.Struct):
    """A page of raw events, newest first."""

    events: list[dict[str, Any]]
    next_cursor: str | None


def data_span(engine: QueryEngine) -> tuple[datetime, datetime] | None:
    """The first and last hour holding spend, or None for an empty store."""
    first, last = engine.run("data_span", {}).rows[0]
    return None if first is None else (first, last)


def day_cut_hours(engine: QueryEngine, win: Window) -> list[int]:
    """Hours to read raw for an answer cut into days of `win.tz` (see `exact_hours`)."""
    if whole_hour_offsets(win.tz, win.start, win.end):
        return exact_hours(win, by_day=False)
    return exact_hours(win, by_day=True, span=data_span(engine))


def daily(engine: QueryEngine, filters: Filters, group_by: GroupBy = "role") -> list[DailyRow]:
    """Cost per day (in the asked zone) and role, rig, worker or model."""
    win = filters.window()
    params = {**filters.params(win), "tz": win.tz, "group_by": group_by}
    result = engine.run("daily", params, exact_hours=day_cut_hours(engine, win))
    return [DailyRow(str(r[0]), *r[1:]) for r in result.rows]


def hourly(
    engine: QueryEngine,
    filters: Filters,
    group_by: GroupBy = "role",
    now: datetime | None = None,
) -> list[HourRow]:
    """Cost per UTC hour and role (rig, worker or model), hours with spend only: the short
    ranges of the Cost River. Without `from`/`to` the last 24 hours (to the end of the
    current hour); a window over 45 days is refused (use the daily series)."""
    win = filters.window()
    if filters.start is None and filters.end is None:
        moment = (now or datetime.now(UTC)).astimezone(UTC)
        end = moment.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        win = Window(end - timedelta(hours=24), end, win.tz)
    if win.end - win.start > MAX_HOURLY_SPAN:
        raise BadRequest("from/to: at most 45 days of hours; use /api/stats/daily beyond")
    params = {**filters.params(win), "group_by": group_by}
    result = engine.run("usage_hours", params, exact_hours=exact_hours(win, by_day=False))
    return [
        HourRow(
            hour=row["hour"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            key=row["key"],
            total_usd=row["total_usd"],
            session_count=row["session_count"],
            event_count=row["event_count"],
        )
        for row in result.dicts()
    ]


def totals(engine: QueryEngine, filters: Filters, start: datetime, end: datetime) -> Totals:
    """Totals for [start, end) under the given filters."""
    win = Window(start, end, filters.window().tz)
    result = engine.run("totals", filters.params(win), exact_hours=exact_hours(win, by_day=False))
    return Totals(*result.rows[0])


def summary(engine: QueryEngine, filters: Filters, now: datetime | None = None) -> Summary:
    """Today, week and month in the asked zone, the last hour's burn rate, and a projection
    of the month: month-to-date spend scaled to the month's full length."""
    now = now or datetime.now(UTC)
    tz = filters.window().tz
    day = now.astimezone(zone(tz)).date()
    week_day = day - timedelta(days=day.weekday())
    month_day = day.replace(day=1)
    next_month_day = (month_day + timedelta(days=32)).replace(day=1)
    today, week, month = (start_of(d, tz) for d in (day, week_day, month_day))
    month_end = start_of(next_month_day, tz)
    month_totals = totals(engine, filters, month, month_end)
    burn = engine.run("burn_last_hour", {"now": now, **filters.dims()}).rows[0][0]
    elapsed = (now - month).total_seconds()
    span = (month_end - month).total_seconds()
    projected = month_totals.total_usd * span / elapsed if elapsed > 0 else 0.0
    return Summary(
        today=totals(engine, filters, today, start_of(day + timedelta(days=1), tz)),
        week=totals(engine, filters, week, start_of(week_day + timedelta(days=7), tz)),
        month=month_totals,
        burn_rate_usd_per_hour=float(burn),
        projected_month_usd=projected,
        tz=tz,
        as_of=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def start_of(day: date, tz: str) -> datetime:
    """The moment (UTC) local `day` begins in `tz` (date arithmetic, so DST shifts on
    any weekday cannot move a week's or month's start onto the wrong day)."""
    return datetime.combine(day, time(), zone(tz)).astimezone(UTC)


def shares(engine: QueryEngine, filters: Filters, by: Literal["role", "rig"]) -> list[Share]:
    """Cost per role or rig with each one's share of the total."""
    win = filters.window()
    params = {**filters.params(win), by: None, "by": by}  # a share of the whole: no self-filter
    result = engine.run("cost_shares", params, exact_hours=exact_hours(win, by_day=False))
    return [Share(*row) for row in result.rows]


def events_page(
    engine: QueryEngine,
    filters: Filters,
    limit: int = 100,
    cursor: str | None = None,
    session_id: str | None = None,
) -> EventPage:
    """One page of raw events, newest first; `next_cursor` fetches the next one."""
    if not 1 <= limit <= 10_000:
        raise BadRequest("limit: must be between 1 and 10000")
    after_ts, after_id = _decode_cursor(cursor) if cursor else (None, None)
    win = filters.window()
    params = {**filters.params(win), "session_id": session_id, "limit": limit}
    before = win.end if after_ts is None else min(win.end, after_ts)
    floor_params = {**filters.params(win, drop=("end",)), "session_id": session_id}
    floor_params |= {"before": before, "limit": limit}
    floor = engine.run("events_page_floor", floor_params).rows[0][0]
    params |= {"after_ts": after_ts, "after_id": after_id, "start": floor or win.start}
    result = engine.run("events_page", params)
    rows = result.dicts()
    next_cursor = None
    if len(rows) == limit:
        last = rows[-1]
        next_cursor = _encode_cursor(last["ended_at_us"], last["id"])
    for row in rows:
        del row["ended_at_us"]
    return EventPage(events=rows, next_cursor=next_cursor)


def _encode_cursor(ended_at_us: int, row_id: int) -> str:
    return base64.urlsafe_b64encode(f"{ended_at_us}:{row_id}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        micros, row_id = base64.urlsafe_b64decode(cursor.encode()).decode().split(":")
        moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(micros))
        return moment, int(row_id)
    except (ValueError, UnicodeDecodeError, OverflowError):
        raise BadRequest("cursor: not a cursor returned by this endpoint") from None
