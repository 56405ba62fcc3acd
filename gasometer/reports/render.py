"""Reports as rich tables (with a totals row) or as JSON shaped like ccusage's `--json`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.table import Table

from gasometer.reports.build import Line, Report
from gasometer.reports.source import Usage

LABELS = {
    "daily": ("daily", "date", "Date"),
    "weekly": ("weekly", "week", "Week"),
    "monthly": ("monthly", "month", "Month"),
    "session": ("sessions", "sessionId", "Session"),
    "blocks": ("blocks", "id", "Block start (UTC)"),
}
"""Per report: its JSON list key, a row's label key, and its table heading (as ccusage)."""


def token_fields(usage: Usage) -> dict[str, Any]:
    """ccusage's token and cost keys for one cell."""
    return {
        "inputTokens": usage.input_tokens,
        "outputTokens": usage.output_tokens,
        "cacheCreationTokens": usage.cache_creation_tokens,
        "cacheReadTokens": usage.cache_read_tokens,
        "totalTokens": usage.total_tokens,
    }


def as_json(report: Report) -> dict[str, Any]:
    """The report as ccusage 18 shapes it (same keys), plus Gasometer's own: `events`,
    a session's role/rig/worker, and `breakdowns` when `--by` asks for one."""
    list_key, label_key, _ = LABELS[report.kind]
    items = []
    for line in report.lines:
        item: dict[str, Any] = {label_key: line.label, **token_fields(line.usage)}
        item["totalCost"] = line.usage.total_usd
        item["events"] = line.usage.event_count
        item["modelsUsed"] = list(line.models)
        item["modelBreakdowns"] = [
            {"modelName": name, **_cell(usage)} for name, usage in _costliest(line.models)
        ]
        if report.by:
            item["breakdowns"] = [
                {report.by: key, **_cell(usage)} for key, usage in _costliest(line.breakdown)
            ]
        item.update(_json_extra(report, line))
        items.append(item)
    totals = {**token_fields(report.totals), "totalCost": report.totals.total_usd}
    totals["events"] = report.totals.event_count
    return {list_key: items, "totals": totals, "timezone": report.tz}


def _cell(usage: Usage) -> dict[str, Any]:
    fields = token_fields(usage)
    del fields["totalTokens"]
    return {**fields, "cost": usage.total_usd, "events": usage.event_count}


def _costliest(cells: dict[str, Usage]) -> list[tuple[str, Usage]]:
    return sorted(cells.items(), key=lambda kv: (-kv[1].total_usd, kv[0]))


def _json_extra(report: Report, line: Line) -> dict[str, Any]:
    extra = line.extra
    if report.kind == "session":
        return {
            "lastActivity": extra["last_day"],
            "firstActivityAt": _iso(extra["first_at"]),
            "lastActivityAt": _iso(extra["last_at"]),
            "role": extra["role"],
            "rig": extra["rig"],
            "worker": extra["worker"],
            "parentSessionId": extra["parent_session_id"],
        }
    if report.kind == "blocks":
        out = {
            "startTime": _iso(extra["start"]),
            "endTime": _iso(extra["end"]),
            "actualEndTime": _iso(extra["last_at"]),
            "isActive": extra["active"],
            "isGap": False,
            "entries": line.usage.event_count,
            "costUSD": line.usage.total_usd,
            "models": list(line.models),
        }
        out["burnRate"] = out["projection"] = None
        if extra["active"]:
            out["burnRate"] = {"costPerHour": extra["usd_per_hour"]}
            out["projection"] = {
                "totalCost": extra["projected_usd"],
                "remainingMinutes": extra["remaining_min"],
            }
        return out
    return {}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def as_table(report: Report) -> Table:
    """The report as a rich table: one row per line, sub-rows for the breakdown, totals."""
    _, _, heading = LABELS[report.kind]
    title = f"Gasometer {report.kind} usage ({report.tz})"
    if report.kind == "blocks":
        title = "Gasometer 5-hour billing blocks"
    table = Table(title=title, show_footer=False)
    table.add_column(heading, no_wrap=True)
    lead = _lead_columns(report)
    for name in lead:
        table.add_column(name, no_wrap=True)
    table.add_column("Models")
    for name in ("Input", "Output", "Cache Create", "Cache Read", "Total Tokens", "Cost (USD)"):
        table.add_column(name, justify="right", no_wrap=True)
    for line in report.lines:
        cells = _lead_cells(report, line)
        table.add_row(line.label, *cells, _models(line), *_figures(line.usage))
        for key, usage in _costliest(line.breakdown):
            blanks = [""] * len(lead)
            table.add_row(f"  └ {key}", *blanks, "", *_figures(usage), style="dim")
    table.add_section()
    blanks = [""] * len(lead)
    table.add_row("Total", *blanks, "", *_figures(report.totals), style="bold")
    return table


def _lead_columns(report: Report) -> list[str]:
    if report.kind == "session":
        return ["Role", "Rig", "Worker", "Last Activity"]
    if report.kind == "blocks":
        return ["Status"]
    return []


def _lead_cells(report: Report, line: Line) -> list[str]:
    extra = line.extra
    if report.kind == "session":
        return [extra["role"], extra["rig"], extra["worker"], extra["last_day"]]
    if report.kind == "blocks":
        if not extra["active"]:
            return [f"last {extra['last_at'].astimezone(UTC):%H:%M}"]
        return [
            f"ACTIVE, {extra['remaining_min']} min left, "
            f"${extra['usd_per_hour']:,.2f}/h → ${extra['projected_usd']:,.2f}"
        ]
    return []


def _models(line: Line) -> str:
    return ", ".join(short_model(name) for name, _ in _costliest(line.models))


def short_model(name: str) -> str:
    """`claude-opus-4-5-20251101` as `opus-4-5` (ccusage's habit)."""
    parts = name.removeprefix("claude-").split("-")
    if parts and len(parts[-1]) == 8 and parts[-1].isdigit():
        parts = parts[:-1]
    return "-".join(parts)


def _figures(usage: Usage) -> list[str]:
    return [
        f"{usage.input_tokens:,}",
        f"{usage.output_tokens:,}",
        f"{usage.cache_creation_tokens:,}",
        f"{usage.cache_read_tokens:,}",
        f"{usage.total_tokens:,}",
        f"${usage.total_usd:,.2f}",
    ]
