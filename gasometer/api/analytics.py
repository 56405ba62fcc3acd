"""The analytics API: timeline, calendar, treemap, cost per bead, burn, models, export.

Thin wrappers over gasometer.query.analytics; the filters (`from`, `to`, `tz`, `role`,
`rig`, `worker`, `issue`) are the same as the core stats endpoints'.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from litestar import get
from litestar.response import Stream

from gasometer.api.reads import FILTERS, READ
from gasometer.query import analytics
from gasometer.query.stats import Filters
from gasometer.runtime import Gasometer

ExportFormat = Literal["csv", "parquet"]
EXPORT_TYPES = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}


@get("/api/stats/timeline", dependencies=FILTERS, sync_to_thread=True, opt=READ)
def timeline(gm: Gasometer, filters: Filters, limit: int = 2000) -> analytics.Timeline:
    """Sessions with non-overlapping lanes, the concurrency sweep line, its peak, and the
    cost incurred while sessions overlapped (`limit` keeps the costliest sessions).
    Without `from`/`to`: the last 24 hours."""
    return analytics.timeline(gm.engine, filters, limit)


@get("/api/stats/calendar", dependencies=FILTERS, sync_to_thread=True, opt=READ)
def calendar(gm: Gasometer, filters: Filters) -> analytics.Calendar:
    """One row per day (the last 365 days in `tz` unless `from`/`to` say otherwise) with a
    heat level 0-4 by quartile."""
    return analytics.calendar(gm.engine, filters)


@get("/api/stats/treemap", dependencies=FILTERS, sync_to_thread=True, opt=READ)
def treemap(gm: Gasometer, filters: Filters) -> dict[str, Any]:
    """Cost as a tree role -> rig -> worker, `value` in USD at the leaves."""
    return analytics.treemap(gm.engine, filters)


class IssuesResponse(msgspec.Struct):
    """`issues`: cost per bead, costliest first (`issue` null: events without a bead)."""

    issues: list[analytics.IssueCost]


@get("/api/stats/issues", dependencies=FILTERS, sync_to_thread=True, opt=READ)
def issues(gm: Gasometer, filters: Filters, limit: int = 100) -> IssuesResponse:
    """Cost per bead with tokens, sessions, activity span and cost per hour of it."""
    return IssuesResponse(analytics.issues(gm.engine, filters, limit))


@get("/api/costs/by-issue", dependencies=FILTERS, sync_to_thread=True, opt=READ)
def costs_by_issue(gm: Gasometer, filters: Filters, limit: int = 100) -> IssuesResponse:
    """The same answer as /api/stats/issues."""
    return IssuesResponse(analytics.issues(gm.engine, filters, limit))


@get("/api/stats/burn", dependencies=FILTERS, sync_to_thread=True, opt=READ)
def burn(gm: Gasometer, filters: Filters, hours: int = 3) -> analytics.Burn:
    """Burn rate (15 min, 1 h, 24 h), per-minute spend of the last `hours`, today's and
    the month's projections, and a green/yellow/red zone against the budgets."""
    return analytics.burn(gm.engine, filters, gm.settings, hours)


class ModelsResponse(msgspec.Struct):
    """`models`: cost, tokens and cache-read share per model, costliest first."""

    models: list[analytics.ModelCost]


@get("/api/stats/models", dependencies=FILTERS, sync_to_thread=True, opt=READ)
def models(gm: Gasometer, filters: Filters) -> ModelsResponse:
    """Cost and tokens per model, with the share of input-side tokens read from cache."""
    return ModelsResponse(analytics.models(gm.engine, filters))


@get("/api/export", dependencies=FILTERS, sync_to_thread=True, opt=READ)
def export(gm: Gasometer, filters: Filters, format: ExportFormat = "csv") -> Stream:
    """Raw events matching the filters, streamed as CSV or Parquet (storage order)."""
    chunks = analytics.export_chunks(gm.engine, filters, format)
    name = f"gasometer-events.{format}"
    return Stream(
        chunks,
        media_type=EXPORT_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


routes = [timeline, calendar, treemap, issues, costs_by_issue, burn, models, export]
