"""Report rows from source rows: days folded into weeks or months, sessions with their
models, and ccusage's 5-hour billing blocks. Pure functions over rows; no I/O."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import msgspec

from gasometer.errors import BadRequest
from gasometer.query.stats import Filters, GroupBy
from gasometer.query.window import zone
from gasometer.reports import WEEKDAYS
from gasometer.reports.source import DayRow, HourRow, SessionRow, Source, Usage

Kind = Literal["daily", "weekly", "monthly", "session", "blocks"]
BLOCK = timedelta(hours=5)
"""Anthropic's usage window: a block starts at the hour of its first request and lasts 5 h."""


class Options(msgspec.Struct, kw_only=True):
    """What a report asks for (the command line's flags)."""

    since: str | None = None
    until: str | None = None
    tz: str = "UTC"
    order: Literal["asc", "desc"] = "asc"
    by: GroupBy | None = None
    role: str | None = None
    rig: str | None = None
    worker: str | None = None
    issue: str | None = None
    start_of_week: str = "sunday"
    limit: int = 1000

    def filters(self) -> Filters:
        """The read API's filters for these options (dates in `tz`, `until` inclusive)."""
        return Filters(
            start=self.since,
            end=self.until,
            tz=self.tz,
            role=self.role,
            rig=self.rig,
            worker=self.worker,
            issue=self.issue,
        )


class Line(msgspec.Struct, kw_only=True):
    """One row of a report: its label, figures, models and a breakdown by the `by` key."""

    label: str
    usage: Usage
    models: dict[str, Usage]
    breakdown: dict[str, Usage]
    extra: dict[str, Any] = {}


class Report(msgspec.Struct, kw_only=True):
    """A whole report: its rows in the asked order and the totals over them."""

    kind: Kind
    by: GroupBy | None
    lines: list[Line]
    totals: Usage
    tz: str


def build(kind: Kind, source: Source, options: Options, now: datetime | None = None) -> Report:
    """The report `kind` for `options`, read from `source`."""
    zone(options.tz)  # an unknown zone is one clear error before any query runs
    if kind == "session" and options.by not in (None, "model"):
        raise BadRequest(
            "--by: session rows already carry role, rig and worker; only --by model applies"
        )
    if kind == "session":
        lines = session_lines(source.sessions(options.filters(), options.limit), options.tz)
    elif kind == "blocks":
        lines = block_lines(source, options, now or datetime.now(UTC))
    else:
        lines = period_lines(kind, source, options)
    if options.by == "model":
        for line in lines:
            line.breakdown = dict(line.models)
    if options.order == "desc":
        lines.reverse()
    totals = Usage()
    for line in lines:
        totals.add(line.usage)
    return Report(kind=kind, by=options.by, lines=lines, totals=totals, tz=options.tz)


def period_label(kind: Kind, day: date, start_of_week: str = "sunday") -> str:
    """The day itself, the first day of its week (weeks start on `start_of_week`), or its
    month (YYYY-MM)."""
    if kind == "weekly":
        first = WEEKDAYS.index(start_of_week)
        return (day - timedelta(days=(day.weekday() - first) % 7)).isoformat()
    if kind == "monthly":
        return day.strftime("%Y-%m")
    return day.isoformat()


def period_lines(kind: Kind, source: Source, options: Options) -> list[Line]:
    """Days (cut in `options.tz`) folded into days, weeks or months."""
    filters = options.filters()

    def label(row: DayRow) -> str:
        return period_label(kind, date.fromisoformat(row.date), options.start_of_week)

    by_model = source.days(filters, "model")
    by_key = [] if options.by in (None, "model") else source.days(filters, options.by)
    return fold(by_model, by_key, label)


def fold(
    model_rows: Iterable[DayRow | HourRow | SessionRow],
    key_rows: Iterable[DayRow | HourRow],
    label: Callable[[Any], str],
) -> list[Line]:
    """Lines labelled by `label`, in label order of first appearance: totals and models
    from `model_rows`, the breakdown from `key_rows` (none: no breakdown, or the models')."""
    lines: dict[str, Line] = {}
    for row in model_rows:
        name = label(row)
        line = lines.get(name) or Line(label=name, usage=Usage(), models={}, breakdown={})
        lines[name] = line
        usage = _usage(row)
        line.usage.add(usage)
        model = row.model if isinstance(row, SessionRow) else row.key
        line.models.setdefault(model, Usage()).add(usage)
    for row in key_rows:
        line = lines[label(row)]
        line.breakdown.setdefault(row.key, Usage()).add(_usage(row))
    return list(lines.values())


def _usage(row: Usage) -> Usage:
    return Usage(**{name: getattr(row, name) for name in Usage.__struct_fields__})


def session_lines(rows: list[SessionRow], tz: str) -> list[Line]:
    """One line per session (rows come per session and model, oldest activity first)."""
    lines = fold(rows, [], lambda row: row.session_id)
    first = {line.label: line for line in lines}
    for row in rows:
        line = first[row.session_id]
        if not line.extra:
            line.extra = {
                "role": row.role,
                "rig": row.rig,
                "worker": row.worker,
                "parent_session_id": row.parent_session_id,
                "first_at": row.first_at,
                "last_at": row.last_at,
            }
        extra = line.extra
        extra["first_at"] = min(extra["first_at"], row.first_at)
        extra["last_at"] = max(extra["last_at"], row.last_at)
    for line in lines:
        line.extra["last_day"] = line.extra["last_at"].astimezone(zone(tz)).date().isoformat()
    return lines


def block_starts(hours: Iterable[datetime]) -> dict[datetime, datetime]:
    """Each active hour's block start: a block starts at the first active hour not inside
    the previous block (ccusage's rule, which is Anthropic's 5-hour window)."""
    starts: dict[datetime, datetime] = {}
    current: datetime | None = None
    for hour in sorted(set(hours)):
        if current is None or hour >= current + BLOCK:
            current = hour
        starts[hour] = current
    return starts


def block_lines(source: Source, options: Options, now: datetime) -> list[Line]:
    """The 5-hour billing blocks holding activity, with the active one's burn rate and
    projection; `--by` breaks each block down by that key."""
    filters = options.filters()
    by_model = source.hours(filters, "model")
    by_key = [] if options.by in (None, "model") else source.hours(filters, options.by)
    starts = block_starts(row.hour for row in by_model)
    lines = fold(by_model, by_key, lambda row: _iso(starts[row.hour]))
    last_at: dict[str, datetime] = {}
    for row in by_model:
        key = _iso(starts[row.hour])
        last_at[key] = max(last_at.get(key, row.last_at), row.last_at)
    for line in lines:
        line.extra = block_extra(datetime.fromisoformat(line.label), last_at[line.label], line, now)
    return lines


def block_extra(start: datetime, last: datetime, line: Line, now: datetime) -> dict[str, Any]:
    """A block's end, last activity, whether it is running, and for a running block the
    cost per hour so far and the cost projected to its end at that rate."""
    end = start + BLOCK
    active = now < end and now - last < BLOCK
    extra: dict[str, Any] = {"start": start, "end": end, "last_at": last, "active": active}
    if active:
        elapsed_h = max((now - start).total_seconds() / 3600, 1 / 60)
        rate = line.usage.total_usd / elapsed_h
        extra["usd_per_hour"] = rate
        extra["projected_usd"] = line.usage.total_usd + rate * (end - now).total_seconds() / 3600
        extra["remaining_min"] = int((end - now).total_seconds() // 60)
    return extra


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
