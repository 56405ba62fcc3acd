"""The OTLP receiver: export requests in, cost events durably stored, OTLP answers out.

Shared by OTLP/HTTP (gasometer.api.otlp) and OTLP/gRPC (gasometer.otlp.grpc_server).
Blocking: call it from a worker thread. `StorageFull` from the store propagates so each
transport can answer "retry later" in its own terms.

Logs and metrics carry the same spend twice (Claude Code records each API request as an
`api_request` log record and adds it to `claude_code.cost.usage`/`token.usage`), so the
rule is: a session's log records count; its metric points count only while it has sent
no `api_request` record, nor had a response stored by another path (hook, import).

Metric points are stored at once (source `otlp-metrics`). A session's first records are
stored together with retraction rows that cancel its metric-derived events, in one ingest
transaction; responses stored by other paths are noticed by `on_commit` and retracted by
a background thread. One lock orders it all: a metrics export checks, stores and records
its events under it, and sessions are marked under it, so no metric event can slip in
unseen by a later retraction.
"""

from __future__ import annotations

import hashlib
import logging
import math
import queue
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import msgspec
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsPartialSuccess,
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality, Metric

from gasometer.errors import BadRequest
from gasometer.ingest.normalize import Draft, normalize
from gasometer.model import CostEvent, StoredEvent
from gasometer.otlp import decode
from gasometer.otlp.mapping import (
    API_REQUEST,
    COST_METRIC,
    LOG_SOURCE,
    METRIC_SOURCE,
    TOKEN_METRIC,
    Rejected,
    api_request_event,
    attributes,
    event_name,
    from_nanos,
    gas_town,
    metric_event,
)
from gasometer.otlp.state import ReceiverState, SeriesPoint
from gasometer.runtime import Gasometer
from gasometer.store.identity import identity_digest

log = logging.getLogger("gasometer.otlp")
Signal = Literal["logs", "metrics"]
MAX_EVENT_NAMES = 100
RETRACT_PREFIX = "retract:"
_DELTA = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
_CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE


@dataclass
class OtlpCounters:
    """Totals since start, for /health and /metrics."""

    log_records: int = 0
    api_requests: int = 0
    rejected_log_records: int = 0
    other_events: Counter[str] = field(default_factory=Counter)
    data_points: int = 0
    metric_points_used: int = 0
    metric_points_ignored: int = 0
    rejected_data_points: int = 0
    retractions: int = 0

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        out = {k: v for k, v in vars(self).items() if k != "other_events"}
        out["other_events"] = dict(sorted(self.other_events.items()))
        return out


class _Tally:
    """Rejections of one request: how many, and the first reasons."""

    def __init__(self) -> None:
        self.count = 0
        self.reasons: list[str] = []

    def reject(self, where: str, reason: str) -> None:
        self.count += 1
        if len(self.reasons) < 3:
            self.reasons.append(f"{where}: {reason}")

    def message(self) -> str:
        more = self.count - len(self.reasons)
        tail = f" (and {more} more)" if more > 0 else ""
        return "; ".join(self.reasons) + tail


class OtlpReceiver:
    """Turns OTLP exports into cost events in one Gasometer store."""

    def __init__(self, gm: Gasometer) -> None:
        self.gm = gm
        self.state = ReceiverState(gm.settings.data_dir)
        self.counters = OtlpCounters()
        self.lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._handoff: queue.SimpleQueue[set[str] | None] = queue.SimpleQueue()
        self._closed = False
        self._retractor = threading.Thread(
            target=self._retract_loop, name="gasometer-otlp-retractor", daemon=True
        )
        self._retractor.start()
        self._reconcile()

    def handle(
        self, signal: Signal, body: bytes, content_type: str, content_encoding: str = ""
    ) -> tuple[bytes, str]:
        """One OTLP/HTTP request body to its response body and Content-Type."""
        encoding = decode.body_encoding(content_type)
        data = decode.inflate(body, content_encoding, self.gm.settings.max_body_bytes)
        if signal == "logs":
            logs = decode.parse(ExportLogsServiceRequest(), data, encoding)
            return decode.serialize(self.export_logs(logs), encoding)
        metrics = decode.parse(ExportMetricsServiceRequest(), data, encoding)
        return decode.serialize(self.export_metrics(metrics), encoding)

    def export_logs(self, request: ExportLogsServiceRequest) -> ExportLogsServiceResponse:
        """Store each api_request record as a cost event; count the other records."""
        tally = _Tally()
        drafts: list[Draft] = []
        others: Counter[str] = Counter()
        index = 0
        for resource_logs in request.resource_logs:
            resource = attributes(resource_logs.resource.attributes)
            who = gas_town(resource, self.gm.attributor)
            for scope_logs in resource_logs.scope_logs:
                for record in scope_logs.log_records:
                    attrs = attributes(record.attributes)
                    name = event_name(record, attrs)
                    if name == API_REQUEST:
                        try:
                            event = api_request_event(
                                record, attrs, resource, self.gm.attributor, who
                            )
                            drafts += normalize([event], self.gm.attributor)
                        except (Rejected, BadRequest) as exc:
                            tally.reject(f"log record {index}", str(exc))
                    else:
                        others[name] += 1
                    index += 1
        with self._count_lock:
            self.counters.log_records += index
            self.counters.rejected_log_records += tally.count
            self._count_others(others)
        if drafts:
            self._store_logs(drafts)
        response = ExportLogsServiceResponse()
        if tally.count:
            response.partial_success.CopyFrom(
                ExportLogsPartialSuccess(
                    rejected_log_records=tally.count, error_message=tally.message()
                )
            )
        return response

    def _count_others(self, others: Counter[str]) -> None:
        known = self.counters.other_events
        for name, count in others.items():
            if name in known or len(known) < MAX_EVENT_NAMES:
                known[name] += count
            else:
                known["(other)"] += count

    def _store_logs(self, drafts: list[Draft]) -> None:
        sessions = {d.session_id for d in drafts}
        with self.lock:
            self.state.mark_log_sessions(sessions)
            earlier = self.state.metric_events_of(sessions)
        retractions = [retraction(e, self.gm) for e in earlier]
        self.gm.ingestor.ingest(retractions + drafts)
        with self._count_lock:
            self.counters.api_requests += len(drafts)
            self.counters.retractions += len(retractions)
        if earlier:
            with self.lock:
                self.state.forget_metric_events(sessions)

    def export_metrics(self, request: ExportMetricsServiceRequest) -> ExportMetricsServiceResponse:
        """Store the increases of the cost and token metrics of sessions without log
        records; other metrics are accepted and ignored."""
        tally = _Tally()
        with self.lock:
            batch = _MetricBatch(self)
            for resource_metrics in request.resource_metrics:
                resource = attributes(resource_metrics.resource.attributes)
                for scope_metrics in resource_metrics.scope_metrics:
                    for metric in scope_metrics.metrics:
                        batch.add_metric(metric, resource, tally)
            if batch.drafts:
                self.gm.ingestor.ingest(batch.drafts)
            self.state.save_metrics(batch.points, batch.events)
        with self._count_lock:
            self.counters.rejected_data_points += tally.count
        response = ExportMetricsServiceResponse()
        if tally.count:
            response.partial_success.CopyFrom(
                ExportMetricsPartialSuccess(
                    rejected_data_points=tally.count, error_message=tally.message()
                )
            )
        return response

    def on_commit(self, stored: list[StoredEvent]) -> None:
        """Writer listener: sessions that just got per-request events (an `event_id`) by
        any path but OTLP metrics (hook, import, OTLP records, the API) go to the
        retractor thread, which marks them and retracts their metric-derived events.
        Only once cost metrics have been received at all. Runs on the writer thread: set
        look-ups only, never the lock."""
        state = self.state
        if not state.metrics_seen:
            return
        sessions = {
            e.session_id
            for e in stored
            if e.event_id is not None
            and e.source != METRIC_SOURCE
            and (e.session_id not in state.log_sessions or e.session_id in state.metric_sessions)
        }
        if sessions and not self._closed:
            self._handoff.put(sessions)

    def _reconcile(self) -> None:
        """At start-up: sessions with metric events that gained request-level events
        while the receiver was not watching (an offline import, a crash between a commit
        and its retraction) are handed to the retractor."""
        pending = sorted(self.state.metric_sessions)
        if not pending:
            return
        params = {"sessions": "\n".join(pending)}
        rows = self.gm.engine.run("otlp_sessions_with_requests", params).rows
        found = {row[0] for row in rows}
        if found:
            self._handoff.put(found)

    def _retract_loop(self) -> None:
        while True:
            sessions = self._handoff.get()
            if sessions is None:
                return
            stop = False
            while not stop:
                try:
                    more = self._handoff.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                else:
                    sessions |= more
            self._retract(sessions)
            if stop:
                return

    def _retract(self, sessions: set[str]) -> None:
        try:
            with self.lock:
                self.state.mark_log_sessions(sessions)
                earlier = self.state.metric_events_of(sessions)
            if not earlier:
                return
            result = self.gm.ingestor.ingest([retraction(e, self.gm) for e in earlier])
            with self._count_lock:
                self.counters.retractions += result.accepted
            with self.lock:
                self.state.forget_metric_events(sessions)
        except Exception:
            log.exception("retracting metric-derived events failed (retried on the next event)")

    def close(self) -> None:
        """Finish pending retractions and release the receiver's state database."""
        self._closed = True
        self._handoff.put(None)
        self._retractor.join()
        with self.lock:
            self.state.close()


class _MetricBatch:
    """The increases of one metrics export, computed against the series state."""

    def __init__(self, receiver: OtlpReceiver) -> None:
        self.receiver = receiver
        self.state = receiver.state
        self.counters = receiver.counters
        self.points: dict[bytes, SeriesPoint] = {}
        self.events: list[CostEvent] = []
        self.drafts: list[Draft] = []
        self.index = 0

    def add_metric(self, metric: Metric, resource: dict[str, Any], tally: _Tally) -> None:
        kind = metric.WhichOneof("data")
        data = getattr(metric, kind) if kind else None
        count = len(data.data_points) if data is not None else 0
        self.counters.data_points += count
        if metric.name not in (COST_METRIC, TOKEN_METRIC):
            self.index += count
            return
        if kind != "sum":
            for _ in range(count):
                tally.reject(f"data point {self.index}", f"{metric.name} is not a sum")
                self.index += 1
            return
        temporality = metric.sum.aggregation_temporality
        for point in metric.sum.data_points:
            try:
                self._add_point(metric.name, temporality, point, resource)
            except (Rejected, BadRequest) as exc:
                tally.reject(f"data point {self.index}", str(exc))
            self.index += 1

    def _add_point(self, name: str, temporality: int, point: Any, resource: dict[str, Any]) -> None:
        attrs = {**resource, **attributes(point.attributes)}
        session = attrs.get("session.id")
        if not session:
            raise Rejected("missing session.id (OTEL_METRICS_INCLUDE_SESSION_ID must stay on)")
        if session in self.state.log_sessions:
            self.counters.metric_points_ignored += 1
            return
        value = float(point.as_double if point.WhichOneof("value") == "as_double" else point.as_int)
        if not math.isfinite(value) or value < 0:
            raise Rejected(f"value {value!r} is not a finite, non-negative number")
        if point.time_unix_nano == 0:
            raise Rejected("no time_unix_nano")
        key = series_key(name, attrs)
        increase = self._increase(key, temporality, point, value)
        if increase is None:
            return
        delta, started = increase
        event_id = (
            "otlpm:"
            + hashlib.blake2b(
                key + f"\0{point.start_time_unix_nano}\0{point.time_unix_nano}".encode(),
                digest_size=16,
            ).hexdigest()
        )
        ended = from_nanos(point.time_unix_nano)
        event = metric_event(
            name, attrs, delta, started, ended, event_id, self.receiver.gm.attributor
        )
        self.drafts += normalize([event], self.receiver.gm.attributor)
        self.events.append(event)
        self.counters.metric_points_used += 1

    def _increase(
        self, key: bytes, temporality: int, point: Any, value: float
    ) -> tuple[float, datetime | None] | None:
        """(increase, start of its interval) of a point, None when it adds nothing."""
        start, now = point.start_time_unix_nano, point.time_unix_nano
        if temporality == _DELTA:
            return (value, from_nanos(start) if start else None) if value > 0 else None
        if temporality != _CUMULATIVE:
            raise Rejected("aggregation temporality unspecified")
        previous = self.points.get(key) or self.state.series_point(key)
        if previous is not None and (
            start < previous.start_ns or (start == previous.start_ns and now <= previous.time_ns)
        ):
            return None
        self.points[key] = SeriesPoint(start, now, value)
        if previous is None or start != previous.start_ns or value < previous.value:
            since = start
            delta = value
        else:
            since = previous.time_ns
            delta = value - previous.value
        return (delta, from_nanos(since) if since else None) if delta > 0 else None


def series_key(name: str, attrs: dict[str, Any]) -> bytes:
    """A metric series' identity: its name and every attribute (resource and point)."""
    raw = msgspec.json.encode([name, sorted((k, str(v)) for k, v in attrs.items())])
    return hashlib.blake2b(raw, digest_size=16).digest()


def retraction(event: CostEvent, gm: Gasometer) -> Draft:
    """A row cancelling a metric-derived event: same attribution and time, negated
    amounts, its own event id (so a retried retraction is a duplicate)."""
    draft = normalize([event], gm.attributor)[0]
    event_id = RETRACT_PREFIX + (event.event_id or "")
    return msgspec.structs.replace(
        draft,
        event_id=event_id,
        digest=identity_digest(draft.session_id, draft.ended_at_us, event_id),
        source=METRIC_SOURCE,
        amounts=(
            -draft.amounts[0],
            -draft.amounts[1],
            -draft.amounts[2],
            -draft.amounts[3],
            -draft.amounts[4],
        ),
    )


__all__ = ["LOG_SOURCE", "METRIC_SOURCE", "OtlpCounters", "OtlpReceiver"]
