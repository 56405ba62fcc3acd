"""Every read goes through here: named queries from queries/ run by DuckDB over a snapshot.

Each thread gets its own DuckDB cursor holding two views, rebuilt only when the store's
snapshot changes: `events` (raw events: Parquet files plus unflushed ones) and `hourly`
(the hourly rollup: rollup files plus the rollup of unflushed events).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import duckdb

from gasometer import duck
from gasometer.errors import QueryError
from gasometer.resources import query_text
from gasometer.store.parquet import parquet_list_sql
from gasometer.store.store import Snapshot, Store

SPLIT_ROLLUP = (
    "SELECT * FROM hourly WHERE epoch_us(hour) // 3600000000 "
    "NOT IN (SELECT unnest(CAST($exact_hours AS BIGINT[]))) "
    f"UNION ALL BY NAME ({query_text('rollup_of_exact_hours')})"
)
"""`hourly` where some hours must be cut finer than the rollup can: raw events in those
hours, rollup rows in all others."""


def _hour_start(hour: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(hours=hour)


class Result(NamedTuple):
    """Columns and rows of one query."""

    columns: list[str]
    rows: list[tuple[Any, ...]]

    def dicts(self) -> list[dict[str, Any]]:
        """Rows as dicts keyed by column name."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


class QueryEngine:
    """Runs named and ad-hoc SQL over the store's current snapshot, one cursor per thread."""

    def __init__(self, store: Store, threads: int = 2, memory_limit: str = "2GB") -> None:
        self.store = store
        self.root = duck.connect(threads=threads, memory_limit=memory_limit)
        self.root.execute("SET parquet_metadata_cache = true")
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._cursors_lock = threading.Lock()

    def close(self) -> None:
        """Close every cursor and the database."""
        with self._cursors_lock:
            for cursor in self._cursors:
                cursor.close()
            self._cursors.clear()
        self.root.close()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor, its views matching the store's latest snapshot."""
        cursor: duckdb.DuckDBPyConnection | None = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self.root.cursor()
            cursor.execute("SET TimeZone = 'UTC'")
            self._local.cursor = cursor
            self._local.version = -1
            with self._cursors_lock:
                self._cursors.append(cursor)
        snapshot = self.store.snapshot()
        if self._local.version != snapshot.version:
            install_views(cursor, snapshot)
            self._local.version = snapshot.version
        return cursor

    def run(self, name: str, params: dict[str, Any], *, exact_hours: Sequence[int] = ()) -> Result:
        """Run queries/<name>.sql with bound parameters.

        `exact_hours` (UTC hours, numbered from the epoch) are the hours the rollup cannot
        answer (a window edge or a local midnight falls inside them): there `hourly` holds
        one row per raw event, at its own time; everywhere else it is the rollup. Hours
        before the retention horizon stay with the rollup: their raw events may be gone."""
        sql = query_text(name)
        horizon = self.store.raw_horizon_us
        if horizon is not None:
            exact_hours = [h for h in exact_hours if h * 3_600_000_000 >= horizon]
        if exact_hours:
            sql = with_relation(sql, "hourly", SPLIT_ROLLUP)
            hours = sorted(set(exact_hours))
            params = {
                **params,
                "exact_hours": hours,
                "exact_from": _hour_start(hours[0]),
                "exact_to": _hour_start(hours[-1] + 1),
            }
        return self.execute(sql, params)

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> Result:
        """Run SQL on this thread's cursor; DuckDB errors become QueryError."""
        cursor = self.cursor()
        if not sql.strip():
            raise QueryError("no SQL statement given")
        try:
            relation = cursor.execute(sql, params or {})
            columns = [d[0] for d in relation.description] if relation.description else []
            return Result(columns, relation.fetchall())
        except duckdb.Error as exc:
            raise QueryError(str(exc).splitlines()[0]) from exc


def install_views(cursor: duckdb.DuckDBPyConnection, snapshot: Snapshot) -> None:
    """(Re)define `events` and `hourly` on a cursor for one snapshot."""
    cursor.register("pending_events", snapshot.pending)
    cursor.execute(
        "CREATE OR REPLACE TEMP VIEW events AS "
        + _union(snapshot.event_files, "SELECT * FROM pending_events")
    )
    cursor.execute(
        "CREATE OR REPLACE TEMP VIEW hourly AS "
        + _union(snapshot.hourly_files, f"SELECT * FROM ({query_text('rollup_hourly')})")
    )


def _union(files: tuple[str, ...], pending_sql: str) -> str:
    if not files:
        return pending_sql
    return (
        f"SELECT * FROM read_parquet({parquet_list_sql(files)}, hive_partitioning = true, "
        "union_by_name = true) "
        f"UNION ALL BY NAME {pending_sql}"
    )


def with_relation(sql: str, name: str, definition: str) -> str:
    """`sql` with `name` bound to `definition` by a leading CTE (shadowing the view)."""
    body = "\n".join(line for line in sql.splitlines() if not line.startswith("--"))
    stripped = body.lstrip()
    if stripped[:4].upper() == "WITH":
        return f"WITH {name} AS ({definition}),{stripped[4:]}"
    return f"WITH {name} AS ({definition}) {stripped}"
