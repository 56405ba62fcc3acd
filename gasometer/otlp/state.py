"""What the OTLP receiver remembers across restarts (`otlp.sqlite` in the data directory).

- `log_sessions`: sessions that sent `api_request` log records (or, once cost metrics have
  been received at all, had responses stored by any other path). Their metric points are
  ignored from then on.
- `meta`: `metrics_seen`, set by the first stored metric point; until then no session of
  the other paths is marked, so a server without OTLP metrics pays nothing for them.
- `series`: the last point of each cumulative metric series, to turn running values into
  increases (a new start time, or a fall, is a restarted exporter: a new run).
- `metric_events`: the metric-derived events stored for sessions that have not (yet)
  sent log records. When a session's first records arrive, these are cancelled by
  retraction rows in the same ingest transaction as the records, then forgotten.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import NamedTuple

import msgspec

from gasometer.model import CostEvent

FILE = "otlp.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS log_sessions (session_id TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS series (
    key BLOB PRIMARY KEY, start_ns INTEGER NOT NULL, time_ns INTEGER NOT NULL,
    value REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS metric_events (
    event_id TEXT PRIMARY KEY, session_id TEXT NOT NULL, event BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS metric_events_session ON metric_events (session_id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
"""
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(CostEvent)


class SeriesPoint(NamedTuple):
    """The last point seen of a cumulative series."""

    start_ns: int
    time_ns: int
    value: float


class ReceiverState:
    """The receiver's durable memory; callers serialise access (one lock)."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(data_dir / FILE, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.executescript(_SCHEMA)
        self.log_sessions = {r[0] for r in self.conn.execute("SELECT session_id FROM log_sessions")}
        rows = self.conn.execute("SELECT DISTINCT session_id FROM metric_events")
        self.metric_sessions = {r[0] for r in rows}
        self._series: dict[bytes, SeriesPoint | None] = {}
        seen = self.conn.execute("SELECT 1 FROM meta WHERE key = 'metrics_seen'").fetchone()
        self.metrics_seen = seen is not None

    def mark_log_sessions(self, sessions: set[str]) -> None:
        """Remember that these sessions send api_request records (durably)."""
        new = sessions - self.log_sessions
        if not new:
            return
        with self.conn:
            self.conn.executemany(
                "INSERT OR IGNORE INTO log_sessions VALUES (?)", [(s,) for s in new]
            )
        self.log_sessions |= new

    def metric_events_of(self, sessions: set[str]) -> list[CostEvent]:
        """The stored metric-derived events of these sessions, not yet retracted."""
        wanted = sessions & self.metric_sessions
        out: list[CostEvent] = []
        for session in sorted(wanted):
            rows = self.conn.execute(
                "SELECT event FROM metric_events WHERE session_id = ? ORDER BY event_id", (session,)
            )
            out += [_decoder.decode(r[0]) for r in rows]
        return out

    def forget_metric_events(self, sessions: set[str]) -> None:
        """Drop the metric events of sessions whose retraction is durable."""
        wanted = sessions & self.metric_sessions
        if not wanted:
            return
        with self.conn:
            self.conn.executemany(
                "DELETE FROM metric_events WHERE session_id = ?", [(s,) for s in wanted]
            )
        self.metric_sessions -= wanted

    def series_point(self, key: bytes) -> SeriesPoint | None:
        """The last point of a cumulative series, if any."""
        if key not in self._series:
            row = self.conn.execute(
                "SELECT start_ns, time_ns, value FROM series WHERE key = ?", (key,)
            ).fetchone()
            self._series[key] = SeriesPoint(*row) if row else None
        return self._series[key]

    def save_metrics(self, points: dict[bytes, SeriesPoint], events: list[CostEvent]) -> None:
        """Record series positions and metric events once their events are durable."""
        if not points and not events:
            return
        with self.conn:
            if not self.metrics_seen:
                self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('metrics_seen', '1')")
            self.conn.executemany(
                "INSERT OR REPLACE INTO series VALUES (?, ?, ?, ?)",
                [(k, *p) for k, p in points.items()],
            )
            self.conn.executemany(
                "INSERT OR IGNORE INTO metric_events VALUES (?, ?, ?)",
                [(e.event_id, e.session_id, _encoder.encode(e)) for e in events],
            )
        self._series.update(points)
        self.metric_sessions |= {e.session_id for e in events}
        self.metrics_seen = True

    def close(self) -> None:
        """Close the database."""
        self.conn.close()
