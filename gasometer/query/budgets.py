"""Budget alerts: a message and a log line each time spend crosses a budget threshold.

`AlertMonitor.on_commit` is an ingest listener. It reads today's and this month's spend
once from the rollup (at start and when a day or month begins) and afterwards adds the
cost of each committed event in memory, so a commit costs a few comparisons per event.
Thresholds are `budget_warn_ratio` x budget ("warning") and the budget itself
("exceeded"); an alert fires when spend goes from below a threshold to at or above it,
once per crossing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NamedTuple

from gasometer.config import Settings
from gasometer.errors import BadRequest, ConfigError
from gasometer.model import StoredEvent
from gasometer.query.analytics import periods
from gasometer.query.engine import QueryEngine
from gasometer.query.window import Window, exact_hours, local_midnight, zone

log = logging.getLogger("gasometer.budgets")

Period = Literal["day", "month"]
Scope = Literal["overall", "rig", "role"]


class BudgetKey(NamedTuple):
    """One budget: overall, or of one rig or role, for a day or a month."""

    scope: Scope
    name: str | None
    period: Period


class PeriodBounds(NamedTuple):
    """The current day and month in the budget zone, in microseconds since the epoch."""

    day_start: int
    day_end: int
    month_start: int
    month_end: int


def budget_table(settings: Settings) -> dict[BudgetKey, float]:
    """Every configured budget in USD, keyed by scope, name and period."""
    table: dict[BudgetKey, float] = {}
    overall = (("day", settings.budget_daily_usd), ("month", settings.budget_monthly_usd))
    for period, usd in overall:
        if usd:
            table[BudgetKey("overall", None, period)] = usd  # type: ignore[arg-type]
    groups: tuple[tuple[Scope, dict[str, Any]], ...] = (
        ("rig", settings.rig_budgets),
        ("role", settings.role_budgets),
    )
    for scope, budgets in groups:
        for name, budget in budgets.items():
            if budget.daily_usd:
                table[BudgetKey(scope, name, "day")] = budget.daily_usd
            if budget.monthly_usd:
                table[BudgetKey(scope, name, "month")] = budget.monthly_usd
    return table


class AlertMonitor:
    """Tracks spend against budgets as events commit, and announces threshold crossings."""

    def __init__(
        self,
        engine: QueryEngine,
        settings: Settings,
        publish: Callable[[dict[str, Any]], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.publish = publish
        self.clock = clock
        try:
            self.tz = zone(settings.budget_tz).key
        except BadRequest:
            raise ConfigError(f"budget_tz: unknown time zone {settings.budget_tz!r}") from None
        self.budgets = budget_table(settings)
        self.ratios = sorted({min(settings.budget_warn_ratio, 1.0), 1.0})
        self.rigs = {k.name for k in self.budgets if k.scope == "rig"}
        self.roles = {k.name for k in self.budgets if k.scope == "role"}
        self.spend: dict[BudgetKey, float] = {}
        self.above: set[tuple[BudgetKey, float, int]] = set()
        self.bounds = PeriodBounds(0, 0, 0, 0)
        self.fired = 0
        self._lock = threading.Lock()
        if self.budgets:
            self._reload(announce=False)

    def on_commit(self, events: list[StoredEvent]) -> None:
        """Ingest listener: add the events' cost and announce any threshold crossed."""
        if not self.budgets:
            return
        with self._lock:
            now_us = int(self.clock() * 1e6)
            if now_us >= self.bounds.day_end or now_us >= self.bounds.month_end:
                self._reload(announce=True)
                return
            self._add(events)
            self._check(announce=True)

    def _add(self, events: list[StoredEvent]) -> None:
        """Add the events' cost to the current day and month: two integer comparisons per
        event, and a dict update only for rigs and roles that have budgets."""
        b = self.bounds
        rigs, roles = self.rigs, self.roles
        day = month = 0.0
        rig_day: dict[str, float] = {}
        rig_month: dict[str, float] = {}
        role_day: dict[str, float] = {}
        role_month: dict[str, float] = {}
        for event in events:
            at = event.ended_at_us
            if at < b.month_start or at >= b.month_end:
                continue
            cost = event.cost_usd
            month += cost
            in_day = b.day_start <= at < b.day_end
            if in_day:
                day += cost
            rig, role = event.rig, event.role
            if rig in rigs:
                rig_month[rig] = rig_month.get(rig, 0.0) + cost
                if in_day:
                    rig_day[rig] = rig_day.get(rig, 0.0) + cost
            if role in roles:
                role_month[role] = role_month.get(role, 0.0) + cost
                if in_day:
                    role_day[role] = role_day.get(role, 0.0) + cost
        sums: list[tuple[Scope, Period, dict[str, float]]] = [
            ("rig", "day", rig_day),
            ("rig", "month", rig_month),
            ("role", "day", role_day),
            ("role", "month", role_month),
        ]
        self.spend[BudgetKey("overall", None, "day")] += day
        self.spend[BudgetKey("overall", None, "month")] += month
        for scope, period, totals in sums:
            for name, cost in totals.items():
                key = BudgetKey(scope, name, period)
                if key in self.spend:
                    self.spend[key] += cost

    def _reload(self, *, announce: bool) -> None:
        """Read the current day's and month's spend from the store (at start, and when a
        new day or month begins: its thresholds start uncrossed)."""
        now = datetime.fromtimestamp(self.clock(), UTC)
        day_start, month_start, month_end = periods(now, self.tz)
        day_end = local_midnight(day_start + timedelta(hours=26), self.tz)
        self.bounds = PeriodBounds(*(_us(t) for t in (day_start, day_end, month_start, month_end)))
        params = {"month_start": month_start, "day_start": day_start}
        cut = exact_hours(Window(month_start, day_start, self.tz), by_day=False)
        rows = self.engine.run("budget_spend", params, exact_hours=cut).rows
        self.spend = {key: 0.0 for key in self.budgets}
        day: Period = "day"
        month: Period = "month"
        for period in (day, month):
            self.spend.setdefault(BudgetKey("overall", None, period), 0.0)
        for role, rig, day_usd, month_usd in rows:
            for period, usd in ((day, day_usd), (month, month_usd)):
                for key in (
                    BudgetKey("overall", None, period),
                    BudgetKey("rig", rig, period),
                    BudgetKey("role", role, period),
                ):
                    if key in self.spend:
                        self.spend[key] += usd
        current = {self.bounds.day_start, self.bounds.month_start}
        self.above = {mark for mark in self.above if mark[2] in current}
        self._check(announce=announce)

    def _check(self, *, announce: bool) -> None:
        for key, budget in self.budgets.items():
            spent = self.spend[key]
            start = self.bounds.day_start if key.period == "day" else self.bounds.month_start
            for ratio in self.ratios:
                mark = (key, ratio, start)
                if spent >= ratio * budget:
                    if mark not in self.above:
                        self.above.add(mark)
                        if announce:
                            self._announce(key, ratio, budget, spent)
                else:
                    self.above.discard(mark)

    def _announce(self, key: BudgetKey, ratio: float, budget: float, spent: float) -> None:
        start = self.bounds.day_start if key.period == "day" else self.bounds.month_start
        local = datetime.fromtimestamp(start / 1e6, UTC).astimezone(zone(self.tz))
        period_start = local.strftime("%Y-%m-%d" if key.period == "day" else "%Y-%m")
        level = "exceeded" if ratio >= 1.0 else "warning"
        message = {
            "type": "alert",
            "level": level,
            "scope": key.scope,
            "name": key.name,
            "period": key.period,
            "period_start": period_start,
            "threshold": ratio,
            "budget_usd": budget,
            "spent_usd": round(spent, 6),
            "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        self.fired += 1
        who = key.scope if key.name is None else f"{key.scope} {key.name}"
        log.warning(
            "budget %s: %s %s spend %.2f USD reached %.0f%% of %.2f USD (%s)",
            level,
            who,
            key.period,
            spent,
            ratio * 100,
            budget,
            period_start,
        )
        self.publish(message)


def _us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)
