"""The read API: stats, raw events and health, thin wrappers over gasometer.query.stats."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.params import Parameter

from gasometer.query import stats
from gasometer.query.health import Health, health_report
from gasometer.query.stats import Filters, GroupBy
from gasometer.runtime import Gasometer


def _filters(
    from_: str | None = Parameter(query="from", default=None),
    to: str | None = Parameter(query="to", default=None),
    tz: str | None = Parameter(query="tz", default=None),
    role: str | None = Parameter(query="role", default=None),
    rig: str | None = Parameter(query="rig", default=None),
    worker: str | None = Parameter(query="worker", default=None),
    issue: str | None = Parameter(query="issue", default=None),
) -> Filters:
    return Filters(start=from_, end=to, tz=tz, role=role, rig=rig, worker=worker, issue=issue)


FILTERS = {"filters": Provide(_filters, sync_to_thread=False)}
READ = {"scope": "read"}


class DailyResponse(msgspec.Struct):
    """`days`: one row per date and key (role unless `group_by` says otherwise)."""

    days: list[dict[str, Any]]


@get("/api/stats/daily", dependencies=FILTERS, sync_to_thread=True, opt=READ)
def daily(gm: Gasometer, filters: Filters, group_by: GroupBy = "role") -> DailyResponse:
    """Cost per day and role (or rig, worker, model), days in `tz` (default UTC)."""
    rows = stats.daily(gm.engine, filters, group_by)
    days = []
    for row in rows:
        item = msgspec.structs.asdict(row)
        item[group_by] = item.pop("key")
        days.append(item)
    return DailyResponse(days)


class HourlyResponse(msgspec.Struct):
    """`hours`: one row per UTC hour with spend and key (role unless `group_by` says)."""

    hours: list[dict[str, Any]]


@get("/api/stats/hourly", dependencies=FILTERS, sync_to_thread=True, opt=READ)
def hourly(gm: Gasometer, filters: Filters, group_by: GroupBy = "role") -> HourlyResponse:
    """Cost per UTC hour and role (or rig, worker, model); the last 24 hours by default,
    at most 45 days."""
    hours = []
    for row in stats.hourly(gm.engine, filters, group_by):
        item = msgspec.structs.asdict(row)
        item[group_by] = item.pop("key")
        hours.append(item)
    return HourlyResponse(hours)


@get("/api/stats/summary", dependencies=FILTERS, sync_to_thread=True, opt=READ)
def summary(gm: Gasometer, filters: Filters) -> stats.Summary:
    """Today, this week (from Monday), this month, burn rate and the month's projection."""
    return stats.summary(gm.engine, filters)


class RolesResponse(msgspec.Struct):
    roles: list[dict[str, Any]]


class RigsResponse(msgspec.Struct):
    rigs: list[dict[str, Any]]


def _shares(gm: Gasometer, filters: Filters, by: Any) -> list[dict[str, Any]]:
    out = []
    for share in stats.shares(gm.engine, filters, by):
        item = msgspec.structs.asdict(share)
        item[by] = item.pop("key")
        out.append(item)
    return out


@get("/api/stats/roles", dependencies=FILTERS, sync_to_thread=True, opt=READ)
def roles(gm: Gasometer, filters: Filters) -> RolesResponse:
    """Cost per role with its share of the total."""
    return RolesResponse(_shares(gm, filters, "role"))


@get("/api/stats/rigs", dependencies=FILTERS, sync_to_thread=True, opt=READ)
def rigs(gm: Gasometer, filters: Filters) -> RigsResponse:
    """Cost per rig with its share of the total."""
    return RigsResponse(_shares(gm, filters, "rig"))


@get("/api/costs", dependencies=FILTERS, sync_to_thread=True, opt=READ)
def costs(
    gm: Gasometer,
    filters: Filters,
    limit: int = 100,
    cursor: str | None = None,
    session_id: str | None = None,
) -> stats.EventPage:
    """Raw events, newest first; pass `next_cursor` back as `cursor` for the next page."""
    return stats.events_page(gm.engine, filters, limit, cursor, session_id)


@get("/health", sync_to_thread=True, opt={"scope": "public"})
def health(gm: Gasometer, state: State) -> Health:
    """Status, event count, partitions, WAL backlog, version and OTLP receiver counters."""
    report = health_report(gm.store, gm.engine, gm.ingestor.commit_error)
    receiver = getattr(state, "otlp", None)
    if receiver is not None:
        report.otlp = receiver.counters.as_dict()
    return report


routes = [daily, hourly, summary, roles, rigs, costs, health]
