"""Analytics answers for a multi-agent workspace, as msgspec Structs from named queries.

Timeline (who ran in parallel with whom), calendar, treemap, cost per bead, burn rate and
cost per model. Nothing here knows about HTTP: the API, the CLI and benchmarks call these.
"""

from __future__ import annotations

import calendar as calendar_module
import heapq
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import msgspec
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from gasometer.config import Settings
from gasometer.errors import BadRequest
from gasometer.query.engine import QueryEngine, Result, install_views
from gasometer.query.stats import Filters
from gasometer.query.window import Window, exact_hours, hour_number, local_midnight, zone
from gasometer.resources import query_text
from gasometer.store.schema import EVENT_SCHEMA

Zone = Literal["green", "yellow", "red"]
MAX_CALENDAR_DAYS = 3_700
EXPORT_COLUMNS = (
    "id", "event_id", "session_id", "parent_session_id", "role", "rig", "worker", "model",
    "issue", "source", "kind", "revision", "started_at", "ended_at", "cost_usd",
    "input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens",
)  # fmt: skip
EXPORT_SCHEMA = pa.schema([EVENT_SCHEMA.field(name) for name in EXPORT_COLUMNS])
"""The columns of GET /api/export, in the order of queries/export_events.sql."""


class TimelineSession(msgspec.Struct):
    """One session of the flame timeline; sessions sharing a `lane` never overlap."""

    session_id: str
    role: str
    rig: str
    worker: str
    parent_session_id: str | None
    started_at: str
    ended_at: str
    total_usd: float
    event_count: int
    lane: int


class ConcurrencyPoint(msgspec.Struct):
    """From `at` on (until the next point), `sessions` sessions are running."""

    at: str
    sessions: int


class Timeline(msgspec.Struct):
    """Sessions in lanes, concurrency over time, its peak, and the cost of parallelism."""

    sessions: list[TimelineSession]
    concurrency: list[ConcurrencyPoint]
    max_concurrency: int
    max_concurrency_at: str | None
    parallel_usd: float
    lanes: int
    session_total: int
    truncated: bool


def timeline(
    engine: QueryEngine, filters: Filters, limit: int = 2000, now: datetime | None = None
) -> Timeline:
    """The session flame timeline of a window: each session's span and lane, plus the
    concurrency sweep line, its peak and the cost incurred while sessions overlapped.
    Without `from` and `to`, the last 24 hours (to the end of the current UTC hour): a
    flame chart of all history is neither readable nor cheap."""
    if not 1 <= limit <= 50_000:
        raise BadRequest("limit: must be between 1 and 50000")
    win = filters.window()
    if filters.start is None and filters.end is None:
        end = _ceil_hour((now or datetime.now(UTC)).astimezone(UTC) + timedelta(microseconds=1))
        win = Window(end - timedelta(hours=24), end, win.tz)
    params = {**filters.params(win), "limit": limit}
    row = run_window(engine, "timeline", params, win).dicts()[0]
    rows = row["sessions"]
    lanes = pack_lanes([(r["started_us"], r["ended_us"]) for r in rows])
    return Timeline(
        sessions=[_session(r, lane) for r, lane in zip(rows, lanes, strict=True)],
        concurrency=[ConcurrencyPoint(p["at"], p["sessions"]) for p in row["concurrency"]],
        max_concurrency=int(row["max_concurrency"]),
        max_concurrency_at=row["max_concurrency_at"],
        parallel_usd=float(row["parallel_usd"]),
        lanes=max(lanes, default=-1) + 1,
        session_total=int(row["session_total"]),
        truncated=row["session_total"] > len(rows),
    )


def run_window(engine: QueryEngine, name: str, params: dict[str, Any], win: Window) -> Result:
    """Run a named query over `hourly` for a window, exact for any window: raw events are
    read only in the partial hours at its edges. For answers not cut into days."""
    return engine.run(name, params, exact_hours=exact_hours(win, by_day=False))


def _ceil_hour(moment: datetime) -> datetime:
    floor = moment.replace(minute=0, second=0, microsecond=0)
    return floor if floor == moment else floor + timedelta(hours=1)


def _session(row: dict[str, Any], lane: int) -> TimelineSession:
    fields = {k: v for k, v in row.items() if k not in ("started_us", "ended_us")}
    return TimelineSession(**fields, lane=lane)


def pack_lanes(spans: list[tuple[int, int]]) -> list[int]:
    """Greedy interval packing: each span (sorted by start) takes the lowest lane free at
    its start. Spans are half-open, so one may start in the lane of one that just ended,
    except that a span of a single instant never shares its point with another span.

    A heap loop over sorted rows, O(n log n): "the lowest free lane" is a running minimum
    over a changing set, which SQL window functions cannot express and a recursive CTE
    would compute one row per step, far slower than this loop.
    """
    free: list[int] = []
    busy: list[tuple[int, bool, int]] = []
    lanes = []
    next_lane = 0
    for start, end in spans:
        instant = start == end
        while busy and (
            busy[0][0] < start or (busy[0][0] == start and not busy[0][1] and not instant)
        ):
            heapq.heappush(free, heapq.heappop(busy)[2])
        if free:
            lane = heapq.heappop(free)
        else:
            lane = next_lane
            next_lane += 1
        heapq.heappush(busy, (end, instant, lane))
        lanes.append(lane)
    return lanes


class CalendarDay(msgspec.Struct):
    """One day of the heat calendar; `level` 0 (no cost) to 4 (top quartile)."""

    date: str
    total_usd: float
    session_count: int
    level: int


class Calendar(msgspec.Struct):
    """A run of days (a year unless `from`/`to` say otherwise) in the zone `tz`."""

    days: list[CalendarDay]
    tz: str


def calendar(engine: QueryEngine, filters: Filters, today: date | None = None) -> Calendar:
    """Cost per day for a GitHub-style heat calendar: by default the 365 days up to today
    in `tz`; with only `from` or `to`, the year starting or ending there."""
    tz = filters.window().tz
    first, last = _calendar_days(filters, today or datetime.now(zone(tz)).date())
    if (last - first).days > MAX_CALENDAR_DAYS:
        raise BadRequest(f"from/to: a calendar covers at most {MAX_CALENDAR_DAYS} days")
    win = Window(_day_start(first, tz), _day_start(last + timedelta(days=1), tz), tz)
    params = {**filters.params(win), "tz": tz, "first_day": first, "last_day": last}
    cut = [hour_number(hour) for hour in split_hours(first, last, tz)]
    result = engine.run("calendar", params, exact_hours=cut)
    return Calendar(days=[CalendarDay(*row) for row in result.rows], tz=tz)


def split_hours(first: date, last: date, tz: str) -> list[datetime]:
    """The UTC hours, from day `first` to the end of day `last` in `tz`, that hold a
    local midnight not on the hour: the hourly rollup cannot tell their two days apart."""
    out = []
    for offset in range((last - first).days + 2):
        midnight = _day_start(first + timedelta(days=offset), tz)
        hour = midnight.replace(minute=0, second=0, microsecond=0)
        if hour != midnight:
            out.append(hour)
    return out


def _calendar_days(filters: Filters, today: date) -> tuple[date, date]:
    win = filters.window()
    info = zone(win.tz)
    year = timedelta(days=364)
    first = win.start.astimezone(info).date() if filters.start else None
    last = (win.end - timedelta(microseconds=1)).astimezone(info).date() if filters.end else None
    if first is None and last is None:
        last = today
    if first is None:
        assert last is not None
        first = last - year
    if last is None:
        last = first + year
    return first, last


def _day_start(day: date, tz: str) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone(tz)).astimezone(UTC)


def treemap(engine: QueryEngine, filters: Filters) -> dict[str, Any]:
    """Cost as a tree role -> rig -> worker, `value` (USD) at the leaves only, children
    costliest first, ready for d3.hierarchy(...).sum(d => d.value)."""
    win = filters.window()
    rows = run_window(engine, "treemap", filters.params(win), win).rows
    tree: dict[str, dict[str, dict[str, float]]] = {}
    for role, rig, worker, usd in rows:
        tree.setdefault(role, {}).setdefault(rig, {})[worker] = float(usd)
    return {"name": "total", "children": _nodes(tree)}


def _nodes(level: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = []
    for name, below in level.items():
        if isinstance(below, dict):
            nodes.append((_total(below), {"name": name, "children": _nodes(below)}))
        else:
            nodes.append((below, {"name": name, "value": below}))
    nodes.sort(key=lambda pair: (-pair[0], pair[1]["name"]))
    return [node for _, node in nodes]


def _total(level: dict[str, Any]) -> float:
    return sum(_total(v) if isinstance(v, dict) else v for v in level.values())


class IssueCost(msgspec.Struct):
    """Cost of one bead (work item); `issue` None gathers the events without one."""

    issue: str | None
    total_usd: float
    session_count: int
    event_count: int
    input_tokens: int
    output_tokens: int
    cache_creation_tokens: int
    cache_read_tokens: int
    first_at: str
    last_at: str
    duration_s: float
    usd_per_hour: float | None


def issues(engine: QueryEngine, filters: Filters, limit: int = 100) -> list[IssueCost]:
    """Cost per bead, costliest first, with tokens, activity span and cost per hour of it."""
    if not 1 <= limit <= 100_000:
        raise BadRequest("limit: must be between 1 and 100000")
    win = filters.window()
    params = {**filters.params(win), "limit": limit}
    result = run_window(engine, "cost_by_issue", params, win)
    return [IssueCost(*row) for row in result.rows]


class ModelCost(msgspec.Struct):
    """Cost and tokens of one model, with its cache-read share of input-side tokens."""

    model: str
    total_usd: float
    event_count: int
    input_tokens: int
    output_tokens: int
    cache_creation_tokens: int
    cache_read_tokens: int
    cache_read_share: float


def models(engine: QueryEngine, filters: Filters) -> list[ModelCost]:
    """Cost, tokens and cache efficiency per model, costliest first."""
    win = filters.window()
    result = run_window(engine, "cost_by_model", filters.params(win), win)
    return [ModelCost(*row) for row in result.rows]


class MinuteSpend(msgspec.Struct):
    """Spend (USD) of the minute starting at `minute`."""

    minute: str
    usd: float


class Burn(msgspec.Struct):
    """Recent burn rates (USD/hour), today's and the month's spend and projections, and
    where the projections stand against the budgets that apply."""

    usd_per_hour_15m: float
    usd_per_hour_1h: float
    usd_per_hour_24h: float
    today_usd: float
    month_usd: float
    projected_today_usd: float
    projected_month_usd: float
    daily_budget_usd: float | None
    monthly_budget_usd: float | None
    zone: Zone
    minutes: list[MinuteSpend]
    tz: str
    as_of: str


def burn(
    engine: QueryEngine,
    filters: Filters,
    settings: Settings,
    hours: int = 3,
    now: datetime | None = None,
) -> Burn:
    """Burn rate over 15 minutes, an hour and a day; a per-minute series of the last
    `hours`; projections that assume the burn goes on (last hour's rate to midnight,
    last day's rate to the month's end); and a zone against the budgets."""
    if not 1 <= hours <= 24:
        raise BadRequest("hours: must be between 1 and 24")
    now = (now or datetime.now(UTC)).astimezone(UTC)
    tz = filters.window().tz
    dims = filters.dims()
    today, month_start, month_end = periods(now, tz)
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    params: dict[str, Any] = {"now": now, "today": today, "month_start": month_start}
    params.update(dims, this_hour=this_hour, minutes=hours * 60)
    cut = exact_hours(Window(month_start, today, tz), by_day=False)
    row = engine.run("burn", params, exact_hours=cut).dicts()[0]
    usd_1h, usd_24h = row["usd_1h"], row["usd_24h"]
    today_usd, month_usd = row["today_usd"], row["month_usd"]
    hours_to_midnight = (local_midnight(now + timedelta(days=1), tz) - now).total_seconds() / 3600
    hours_to_month_end = (month_end - now).total_seconds() / 3600
    projected_today = today_usd + usd_1h * hours_to_midnight
    projected_month = month_usd + usd_24h / 24 * hours_to_month_end
    daily, monthly = budgets_for(settings, filters)
    return Burn(
        usd_per_hour_15m=row["usd_15m"] * 4,
        usd_per_hour_1h=usd_1h,
        usd_per_hour_24h=usd_24h / 24,
        today_usd=today_usd,
        month_usd=month_usd,
        projected_today_usd=projected_today,
        projected_month_usd=projected_month,
        daily_budget_usd=daily,
        monthly_budget_usd=monthly,
        zone=budget_zone(
            [(projected_today, daily), (projected_month, monthly)], settings.budget_warn_ratio
        ),
        minutes=[MinuteSpend(m["minute"], float(m["usd"])) for m in row["minutes"]],
        tz=tz,
        as_of=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def periods(now: datetime, tz: str) -> tuple[datetime, datetime, datetime]:
    """Start of today, start and end of this month: in `tz`, as UTC instants."""
    local = now.astimezone(zone(tz))
    days = calendar_module.monthrange(local.year, local.month)[1]
    first = date(local.year, local.month, 1)
    return (
        local_midnight(now, tz),
        _day_start(first, tz),
        _day_start(first + timedelta(days=days), tz),
    )


def budgets_for(settings: Settings, filters: Filters) -> tuple[float | None, float | None]:
    """The daily and monthly budgets for what the filters select: a rig's own budget when
    filtering by rig, a role's when filtering by role, else the overall budgets."""
    if filters.rig is not None:
        rig = settings.rig_budgets.get(filters.rig)
        return (rig.daily_usd, rig.monthly_usd) if rig else (None, None)
    if filters.role is not None:
        role = settings.role_budgets.get(filters.role)
        return (role.daily_usd, role.monthly_usd) if role else (None, None)
    return settings.budget_daily_usd, settings.budget_monthly_usd


def budget_zone(pairs: list[tuple[float, float | None]], warn_ratio: float) -> Zone:
    """red if any projection reaches its budget, yellow if any reaches `warn_ratio` of it,
    else green (also when no budget applies)."""
    ratios = [spend / budget for spend, budget in pairs if budget]
    worst = max(ratios, default=0.0)
    if worst >= 1.0:
        return "red"
    return "yellow" if worst >= warn_ratio else "green"


def export_chunks(
    engine: QueryEngine, filters: Filters, fmt: Literal["csv", "parquet"], batch_rows: int = 65_536
) -> Iterator[bytes]:
    """Raw events matching the filters, in storage order, as CSV or Parquet bytes in chunks.

    The filters are checked now (errors before any byte is sent); the rows are read
    lazily, one Arrow batch at a time, from a cursor of the export's own (the stream is
    consumed from whichever thread serves it, so it cannot share a thread's cursor).
    """
    params = filters.params(filters.window())
    batches = _export_batches(engine, params, batch_rows)
    return _csv_chunks(batches) if fmt == "csv" else _parquet_chunks(batches)


def _export_batches(
    engine: QueryEngine, params: dict[str, Any], batch_rows: int
) -> Iterator[pa.RecordBatch]:
    cursor = engine.root.cursor()
    try:
        cursor.execute("SET TimeZone = 'UTC'")
        install_views(cursor, engine.store.snapshot())
        reader = cursor.execute(query_text("export_events"), params).fetch_record_batch(batch_rows)
        yield from reader
    finally:
        cursor.close()


def _csv_chunks(batches: Iterator[pa.RecordBatch]) -> Iterator[bytes]:
    header = True
    for batch in batches:
        sink = io.BytesIO()
        pa_csv.write_csv(batch, sink, pa_csv.WriteOptions(include_header=header))
        header = False
        yield sink.getvalue()
    if header:
        yield (",".join(EXPORT_SCHEMA.names) + "\n").encode()


class _Drain(io.RawIOBase):
    """A write-only sink whose bytes are taken out as they come (Parquet streaming)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[bytes] = []
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.parts.append(chunk)
        self.position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self.position

    def take(self) -> bytes:
        out = b"".join(self.parts)
        self.parts.clear()
        return out


def _parquet_chunks(batches: Iterator[pa.RecordBatch]) -> Iterator[bytes]:
    sink = _Drain()
    writer = pq.ParquetWriter(sink, EXPORT_SCHEMA, compression="zstd")
    try:
        for batch in batches:
            writer.write_batch(
                batch.cast(EXPORT_SCHEMA) if batch.schema != EXPORT_SCHEMA else batch
            )
            yield sink.take()
    finally:
        writer.close()
    yield sink.take()
