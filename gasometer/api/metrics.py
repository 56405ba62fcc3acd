"""GET /metrics in the Prometheus text format, and the middleware timing every request.

Cost, event and token counters per role, rig and model come from the hourly rollup
(all time, so they only grow); ingest counters from the writer; request latencies from
`timing_middleware` as a histogram per method, route template and status.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from litestar import Request, get
from litestar.datastructures import State
from litestar.response import Response
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from gasometer.runtime import Gasometer

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
TOKEN_TYPES = ("input", "output", "cache_creation", "cache_read")


@dataclass
class Histogram:
    """Cumulative bucket counts, sum and count of one label set."""

    buckets: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))
    total: float = 0.0
    count: int = 0

    def observe(self, seconds: float) -> None:
        """Count one observation."""
        for index, bound in enumerate(BUCKETS):
            if seconds <= bound:
                self.buckets[index] += 1
        self.total += seconds
        self.count += 1


class RequestTimings:
    """Request latencies per (method, route template, status), kept on the app state."""

    def __init__(self) -> None:
        self.series: dict[tuple[str, str, str], Histogram] = {}

    def observe(self, method: str, path: str, status: int, seconds: float) -> None:
        """Record one request (called on the event loop only)."""
        key = (method, path, str(status))
        histogram = self.series.get(key)
        if histogram is None:
            histogram = self.series[key] = Histogram()
        histogram.observe(seconds)

    def lines(self) -> list[str]:
        """The histogram in the text format."""
        name = "gasometer_http_request_duration_seconds"
        out = [
            f"# HELP {name} Time to answer HTTP requests (to the last byte).",
            f"# TYPE {name} histogram",
        ]
        for (method, path, status), hist in sorted(self.series.items()):
            labels = _labels(method=method, path=path, status=status)
            for bound, count in zip(BUCKETS, hist.buckets, strict=True):
                out.append(f'{name}_bucket{{{labels},le="{bound}"}} {count}')
            out.append(f'{name}_bucket{{{labels},le="+Inf"}} {hist.count}')
            out.append(f"{name}_sum{{{labels}}} {hist.total!r}")
            out.append(f"{name}_count{{{labels}}} {hist.count}")
        return out


def timings_of(state: State) -> RequestTimings:
    """The app's RequestTimings, created on first use."""
    timings: RequestTimings | None = getattr(state, "request_timings", None)
    if timings is None:
        timings = RequestTimings()
        state.request_timings = timings
    return timings


def timing_middleware(app: ASGIApp) -> ASGIApp:
    """Litestar middleware: time each HTTP request, labelled by its route template."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_and_note)
        finally:
            path = scope.get("path_template") or "unrouted"
            timings = timings_of(scope["litestar_app"].state)
            method = str(scope.get("method", "GET"))
            timings.observe(method, path, status, time.perf_counter() - started)

    return middleware


@get("/metrics", sync_to_thread=True, include_in_schema=False, opt={"scope": "read"})
def metrics(request: Request, gm: Gasometer) -> Response[str]:
    """Prometheus text format: cost, events and tokens by role/rig/model, ingest counters,
    live clients, budget alerts and request latencies."""
    lines = [*cost_lines(gm), *ingest_lines(gm, request.app.state)]
    lines += otlp_lines(request.app.state)
    lines += timings_of(request.app.state).lines()
    return Response("\n".join(lines) + "\n", media_type=CONTENT_TYPE)


def cost_lines(gm: Gasometer) -> list[str]:
    """Counters per role, rig and model from the rollup."""
    rows = gm.engine.run("metrics_totals", {}).rows
    cost = ["# HELP gasometer_cost_usd_total Cost of stored events in USD."]
    cost.append("# TYPE gasometer_cost_usd_total counter")
    events = ["# HELP gasometer_events_total Stored events (first versions)."]
    events.append("# TYPE gasometer_events_total counter")
    tokens = ["# HELP gasometer_tokens_total Tokens of stored events by type."]
    tokens.append("# TYPE gasometer_tokens_total counter")
    for role, rig, model, usd, count, *token_counts in rows:
        labels = _labels(role=role, rig=rig, model=model)
        cost.append(f"gasometer_cost_usd_total{{{labels}}} {float(usd)!r}")
        events.append(f"gasometer_events_total{{{labels}}} {count}")
        for kind, value in zip(TOKEN_TYPES, token_counts, strict=True):
            tokens.append(f'gasometer_tokens_total{{{labels},type="{kind}"}} {value}')
    return cost + events + tokens


def ingest_lines(gm: Gasometer, state: State) -> list[str]:
    """Writer counters and a few gauges."""
    c = gm.ingestor.counters
    counters = (
        ("gasometer_ingest_requests_total", "Ingest requests committed.", c.requests),
        ("gasometer_ingest_accepted_total", "Events accepted.", c.accepted),
        ("gasometer_ingest_duplicates_total", "Events dropped as duplicates.", c.duplicates),
        ("gasometer_ingest_commits_total", "Group commits to the ledger.", c.commits),
        ("gasometer_ingest_refused_full_total", "Requests refused: disk full.", c.refused_full),
    )
    hub = getattr(state, "hub", None)
    monitor = getattr(state, "alert_monitor", None)
    gauges = (
        ("gasometer_pending_events", "Events durable but not yet in Parquet.", _pending(gm)),
        ("gasometer_live_clients", "Connected live WebSocket clients.", _clients(hub)),
        (
            "gasometer_quarantined_events",
            "Acknowledged events set aside because their batch could not be flushed.",
            sum(q.events for q in gm.store.quarantined()),
        ),
    )
    out = []
    for name, text, value in counters:
        out += [f"# HELP {name} {text}", f"# TYPE {name} counter", f"{name} {value}"]
    alerts = monitor.fired if monitor is not None else 0
    name = "gasometer_budget_alerts_total"
    out += [f"# HELP {name} Budget alerts sent.", f"# TYPE {name} counter", f"{name} {alerts}"]
    for name, text, value in gauges:
        out += [f"# HELP {name} {text}", f"# TYPE {name} gauge", f"{name} {value}"]
    return out


def otlp_lines(state: State) -> list[str]:
    """OTLP receiver counters; log records of other event names by `event` label."""
    receiver = getattr(state, "otlp", None)
    if receiver is None:
        return []
    c = receiver.counters
    counters = (
        ("gasometer_otlp_log_records_total", "OTLP log records received.", c.log_records),
        (
            "gasometer_otlp_api_requests_total",
            "api_request records received (stored once each).",
            c.api_requests,
        ),
        (
            "gasometer_otlp_rejected_log_records_total",
            "Log records rejected.",
            c.rejected_log_records,
        ),
        ("gasometer_otlp_data_points_total", "OTLP metric data points received.", c.data_points),
        (
            "gasometer_otlp_metric_points_used_total",
            "Cost/token points stored.",
            c.metric_points_used,
        ),
        (
            "gasometer_otlp_metric_points_ignored_total",
            "Points of sessions with log records.",
            c.metric_points_ignored,
        ),
        (
            "gasometer_otlp_rejected_data_points_total",
            "Metric data points rejected.",
            c.rejected_data_points,
        ),
        ("gasometer_otlp_retractions_total", "Metric-derived events retracted.", c.retractions),
    )
    out = []
    for name, text, value in counters:
        out += [f"# HELP {name} {text}", f"# TYPE {name} counter", f"{name} {value}"]
    name = "gasometer_otlp_other_events_total"
    out += [
        f"# HELP {name} OTLP log records of other event names (not costs).",
        f"# TYPE {name} counter",
    ]
    for event, count in sorted(c.other_events.items()):
        out.append(f"{name}{{{_labels(event=event)}}} {count}")
    return out


def _pending(gm: Gasometer) -> int:
    return gm.store.pending_count()


def _clients(hub: object) -> int:
    clients: Iterable[object] = getattr(hub, "clients", ())
    return len(list(clients))


def _labels(**values: str) -> str:
    return ",".join(f'{key}="{_escape(value)}"' for key, value in values.items())


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


routes = [metrics]
