"""The ad-hoc SQL sandbox: every known escape is refused with a reason and leaves the disk
untouched; time, row and memory limits hold; the API needs a token; results are right."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from gasometer import cli
from gasometer.errors import QueryError
from gasometer.model import CostEvent
from gasometer.query import worker
from gasometer.query.sandbox import (
    Limits,
    Sandbox,
    SqlBusy,
    SqlRefused,
    SqlTimeout,
    check_sql,
    encode,
)
from gasometer.runtime import Gasometer
from tests.conftest import TOKEN, ServerProcess, free_port, make_settings, server_env

BASE = datetime(2026, 10, 3, 8, 0, tzinfo=UTC)


def make_events(n: int, seed: int = 11) -> list[CostEvent]:
    """Events of a few sessions over two months (October and November 2026)."""
    rng = random.Random(seed)
    events = []
    for i in range(n):
        ended = BASE + timedelta(minutes=rng.randrange(0, 60 * 24 * 50))
        events.append(
            CostEvent(
                session_id=rng.choice(["ga-nux", "ga-toast", "bd-witness", "hq-mayor"]),
                cost_usd=round(rng.uniform(0.01, 2.0), 4),
                ended_at=ended,
                input_tokens=rng.randrange(0, 5000),
                issue=rng.choice(["ga-12", "ga-13", None]),
                event_id=f"e{i}",
            )
        )
    return events


class Box:
    """An open Gasometer with data on disk (and some pending), and a sandbox over it."""

    def __init__(self, gm: Gasometer, events: list[CostEvent], sandbox: Sandbox) -> None:
        self.gm = gm
        self.events = events
        self.sandbox = sandbox
        self.data_dir = gm.store.data_dir

    def some_parquet(self) -> Path:
        return next(iter(sorted((self.data_dir / "events").rglob("*.parquet"))))


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    data_dir = tmp_path_factory.mktemp("sandbox") / "data"
    settings = make_settings(data_dir)
    gm = Gasometer.open(settings, background=False)
    events = make_events(400)
    gm.ingest(events[:300])
    gm.store.flush(force=True)
    gm.ingest(events[300:])  # stays pending: in memory, visible to queries
    limits = Limits(timeout_s=1.0, max_rows=1000, memory_limit="256MB", threads=1)
    sandbox = Sandbox(gm.store.snapshot, limits)
    try:
        yield Box(gm, events, sandbox)
    finally:
        sandbox.close()
        gm.close()


def tree(root: Path) -> dict[str, str]:
    """Every file below `root` with a hash of its bytes (directories as entries too)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        out[rel] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return out


# -- results are right ----------------------------------------------------------------------


def test_events_and_hourly_match_the_input(box: Box) -> None:
    result = box.sandbox.run("SELECT count(*), sum(cost_usd), sum(input_tokens) FROM events")
    count, cost, tokens = result.rows()[0]
    assert count == len(box.events)
    assert cost == pytest.approx(sum(e.cost_usd for e in box.events))
    assert tokens == sum(e.input_tokens for e in box.events)
    hourly = box.sandbox.run("SELECT sum(event_count), sum(cost_usd) FROM hourly").rows()[0]
    assert hourly[0] == len(box.events)
    assert hourly[1] == pytest.approx(sum(e.cost_usd for e in box.events))
    assert not result.truncated


def test_named_query_macro_matches_python(box: Box) -> None:
    expected: dict[str, float] = defaultdict(float)
    for e in box.events:
        if e.ended_at >= datetime(2026, 11, 1, tzinfo=UTC):
            expected[e.ended_at.date().isoformat()] += e.cost_usd
    result = box.sandbox.run(
        "SELECT date::VARCHAR AS d, sum(total_usd) FROM queries.daily("
        "p_start := TIMESTAMPTZ '2026-11-01 00:00:00+00') GROUP BY d ORDER BY d"
    )
    got = dict(result.rows())
    assert sorted(got) == sorted(expected)
    for day, usd in expected.items():
        assert got[day] == pytest.approx(usd)


def test_plain_explain_and_read_only_pragmas_run(box: Box) -> None:
    plan = box.sandbox.run("EXPLAIN SELECT count(*) FROM events")
    assert plan.columns == ["explain_key", "explain_value"]
    text = " ".join(str(v) for row in plan.rows() for v in row)
    assert "READ_PARQUET" in text.upper()
    assert str(box.data_dir) not in text
    names = {row[0] for row in box.sandbox.run("SHOW TABLES").rows()}
    assert {"events", "hourly"} <= names


def test_reading_the_store_s_own_parquet_is_allowed(box: Box) -> None:
    path = box.some_parquet()
    rows = box.sandbox.run(f"SELECT count(*) FROM read_parquet('{path}')").rows()[0][0]
    assert rows == pq.ParquetFile(path).metadata.num_rows


# -- escapes: refused with a reason, nothing on disk changes ---------------------------------

REFUSED_BY_TYPE = {
    "COPY (SELECT 1) TO '{inside}'": "COPY",
    "COPY (SELECT 1) TO '/tmp/gasometer-escape.csv'": "COPY",
    "COPY events FROM '{inside}'": "COPY",
    "ATTACH '{dir}/events/new.duckdb' AS x": "ATTACH",
    "ATTACH ':memory:' AS x": "ATTACH",
    "DETACH memory": "DETACH",
    "EXPORT DATABASE '{dir}/events/export'": "EXPORT",
    "INSTALL httpfs": "INSTALL",
    "LOAD httpfs": "LOAD",
    "SET memory_limit = '100GB'": "SET",
    "SET enable_external_access = true": "SET",
    "SET lock_configuration = false": "SET",
    "RESET memory_limit": "SET",
    "PRAGMA memory_limit = '100GB'": "PRAGMA x = y",
    "PRAGMA threads = 64": "PRAGMA x = y",
    "USE system": "USE",
    "PRAGMA disable_optimizer": "PRAGMA",
    "PRAGMA enable_profiling": "PRAGMA",
    "PRAGMA force_checkpoint": "PRAGMA",
    "CREATE TABLE t AS SELECT 1": "CREATE",
    "CREATE TEMP TABLE t AS SELECT 1": "CREATE",
    "CREATE MACRO m() AS 1": "CREATE",
    "CREATE OR REPLACE TEMP VIEW events AS SELECT 1": "CREATE",
    "CREATE SECRET s (TYPE s3)": "CREATE",
    "DROP VIEW events": "DROP",
    "ALTER VIEW events RENAME TO x": "ALTER",
    "INSERT INTO events SELECT * FROM events": "INSERT",
    "UPDATE events SET cost_usd = 0": "UPDATE",
    "DELETE FROM events": "DELETE",
    "TRUNCATE events": "DELETE",
    "SET VARIABLE x = 1": "SET VARIABLE",
    "CALL pragma_version()": "CALL",
    "CHECKPOINT": "CHECKPOINT",
    "FORCE CHECKPOINT": "CHECKPOINT",
    "VACUUM": "VACUUM",
    "BEGIN TRANSACTION": "transaction",
    "PREPARE p AS SELECT 1": "PREPARE",
    "EXPLAIN ANALYZE CREATE TABLE t AS SELECT 1": "EXPLAIN ANALYZE",
    "EXPLAIN ANALYZE COPY (SELECT 1) TO '{inside}'": "EXPLAIN ANALYZE",
    "EXPLAIN /* hidden */ analyse SELECT 1": "EXPLAIN ANALYZE",
    "EXPLAIN (FORMAT json, ANALYZE) SELECT 1": "EXPLAIN ANALYZE",
    "EXPLAIN CREATE TABLE t AS SELECT 1": "EXPLAIN is allowed only for a SELECT",
    "EXPLAIN COPY (SELECT 1) TO '{inside}'": "EXPLAIN is allowed only for a SELECT",
    "SELECT 1; DROP VIEW events": "one statement",
    "SELECT 1; SELECT 2": "one statement",
    "PIVOT events ON role USING sum(cost_usd)": "one statement",
    "": "no SQL statement",
    "-- just a comment": "no SQL statement",
}


@pytest.mark.parametrize("template", list(REFUSED_BY_TYPE))
def test_statement_is_refused_with_its_reason(box: Box, template: str) -> None:
    inside = box.some_parquet()
    sql = template.format(inside=inside, dir=box.data_dir)
    before = tree(box.data_dir)
    with pytest.raises(SqlRefused) as refused:
        box.sandbox.run(sql)
    message = str(refused.value)
    assert message.startswith("refused: ")
    assert REFUSED_BY_TYPE[template] in message
    assert "\n" not in message
    assert tree(box.data_dir) == before
    assert not Path("/tmp/gasometer-escape.csv").exists()


def test_refusal_happens_before_anything_runs() -> None:
    """The check alone (no database at all) refuses: nothing is ever executed."""
    with pytest.raises(SqlRefused):
        check_sql("COPY (SELECT 1) TO 'x.csv'")
    assert check_sql("SELECT 1").type.name == "SELECT"


def outside_files(data_dir: Path) -> list[str]:
    return [
        "/etc/passwd",
        "/etc/hostname",
        "/etc/*",
        str(data_dir / "ledger.sqlite"),
        str(data_dir / "tokens.sha256"),
        str(data_dir / "events" / ".." / "ledger.sqlite"),
        str(data_dir / "events" / "escape-link.csv"),
        "https://example.com/data.csv",
    ]


FILE_READERS = [
    "SELECT * FROM read_csv('{path}')",
    "SELECT * FROM read_text('{path}')",
    "SELECT * FROM read_blob('{path}')",
    "SELECT * FROM glob('{path}')",
    "SELECT * FROM read_parquet('{path}')",
    "SELECT * FROM read_json_auto('{path}')",
    "SELECT * FROM '{path}'",
    "SELECT * FROM sniff_csv('{path}')",
]


@pytest.mark.parametrize("reader", FILE_READERS)
def test_no_file_outside_the_store_can_be_read(box: Box, reader: str, tmp_path: Path) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("a,b\n1,2\n")
    link = box.data_dir / "events" / "escape-link.csv"
    if not link.is_symlink():
        link.symlink_to(secret)
    (box.data_dir / "tokens.sha256").touch()
    before = tree(box.data_dir)
    for path in [*outside_files(box.data_dir), str(secret)]:
        with pytest.raises(QueryError) as refused:
            box.sandbox.run(reader.format(path=path))
        message = str(refused.value)
        assert "\n" not in message
        reasons = ["refused: ", "disabled by configuration"]
        if reader == "SELECT * FROM '{path}'" and not path.endswith(".csv"):
            reasons.append("does not exist")  # no replacement scan without a known suffix
        assert any(why in message for why in reasons), message
    assert tree(box.data_dir) == before


STATE_FUNCTIONS = {
    "SELECT * FROM enable_logging(storage := 'file', storage_path := '{tmp}/log')": "logging",
    "SELECT * FROM system.main.\"Enable_Logging\" (level := 'trace')": "logging",
    "SELECT * FROM disable_logging()": "logging",
    "SELECT * FROM truncate_duckdb_logs()": "logging",
    "SELECT * FROM enable_profiling(save_location := '{tmp}/profile.txt')": "profiling",
    "SELECT * FROM disable_profiling()": "profiling",
    "SELECT * FROM checkpoint()": "storage maintenance",
    "SELECT * FROM force_checkpoint()": "storage maintenance",
    "SELECT * FROM query('SELECT * FROM enable_logging()')": "SQL built at run time",
    "SELECT * FROM query('CREATE TABLE t AS SELECT 1')": "SQL built at run time",
    "SELECT * FROM json_execute_serialized_sql(json_serialize_sql('SELECT 1'))": "run time",
}


@pytest.mark.parametrize("template", list(STATE_FUNCTIONS))
def test_state_changing_table_functions_are_refused(
    box: Box, template: str, tmp_path: Path
) -> None:
    """They type as SELECT yet change configuration; a file log outside the allowed
    directories even aborts the whole process when DuckDB later tries to write it."""
    before = tree(box.data_dir)
    with pytest.raises(SqlRefused, match=STATE_FUNCTIONS[template]):
        box.sandbox.run(template.format(tmp=tmp_path))
    assert tree(box.data_dir) == before
    assert list(tmp_path.iterdir()) == []


def test_names_alone_are_not_refused(box: Box) -> None:
    result = box.sandbox.run("SELECT 'enable_logging()' AS query, 1 AS checkpoint")
    assert result.rows() == [("enable_logging()", 1)]


def test_configuration_is_locked_and_confined(box: Box) -> None:
    """The worker's connection, built as for a statement, then inspected directly (the
    settings table itself is refused to callers: it names paths)."""
    snapshot = box.gm.store.snapshot()
    temp = box.data_dir / ".sql-tmp" / "inspect"
    temp.mkdir(parents=True, exist_ok=True)
    request = worker.Request(
        sql="SELECT 1",
        data_dir=str(snapshot.data_dir),
        temp_dir=str(temp),
        event_files=list(snapshot.event_files),
        hourly_files=list(snapshot.hourly_files),
        pending=worker.table_to_ipc(snapshot.pending),
        version=snapshot.version,
        limits=box.sandbox.limits.for_worker(),
    )
    conn = worker.connect(request)
    try:
        settings = dict(
            conn.execute(
                "SELECT name, value FROM duckdb_settings() WHERE name IN ("
                "'enable_external_access', 'lock_configuration', 'threads', 'memory_limit', "
                "'temp_directory', 'autoinstall_known_extensions', 'autoload_known_extensions')"
            ).fetchall()
        )
    finally:
        conn.close()
        temp.rmdir()
    assert settings["enable_external_access"] == "false"
    assert settings["lock_configuration"] == "true"
    assert settings["threads"] == "1"
    assert settings["autoinstall_known_extensions"] == "false"
    assert settings["autoload_known_extensions"] == "false"
    assert settings["memory_limit"].startswith(("244", "256"))
    assert Path(settings["temp_directory"]).is_relative_to(box.data_dir)


def test_the_service_connection_is_untouched(box: Box) -> None:
    """The sandbox never shares the engine's connection: its settings stay as they were."""
    box.sandbox.run("SELECT 1")
    engine_access = box.gm.engine.execute("SELECT current_setting('enable_external_access')")
    assert engine_access.rows[0][0] is True
    count = box.gm.engine.execute("SELECT count(*) FROM events").rows[0][0]
    assert count == len(box.events)


# -- limits ---------------------------------------------------------------------------------


def test_a_slow_statement_is_interrupted_at_the_time_limit(box: Box) -> None:
    with pytest.raises(SqlTimeout, match="time limit of 1 s"):
        box.sandbox.run("SELECT sum(a.range * b.range) FROM range(100000) a, range(100000) b")
    assert box.sandbox.run("SELECT 42").rows() == [(42,)]


def test_rows_are_cut_at_the_limit_and_it_says_so(box: Box) -> None:
    cut = box.sandbox.run("SELECT * FROM range(5000)")
    assert cut.truncated
    assert [r[0] for r in cut.rows()] == list(range(1000))
    exact = box.sandbox.run("SELECT * FROM range(1000)")
    assert not exact.truncated
    assert exact.table.num_rows == 1000


def test_memory_limit_stops_a_hungry_statement(box: Box) -> None:
    hungry = Sandbox(box.gm.store.snapshot, Limits(timeout_s=60, memory_limit="256MB"))
    with pytest.raises(QueryError, match="memory limit of 256MB"):
        hungry.run("SELECT list(range) FROM range(100000000)")
    assert not list((box.data_dir / ".sql-tmp").iterdir())


SPILLING = (
    "SELECT count(*) FROM (SELECT DISTINCT (range * 7919) % 6000000 AS a, range AS b "
    "FROM range(6000000))"
)


def spill_watcher(temp_root: Path) -> tuple[set[str], threading.Event, threading.Thread]:
    """Names of files that appear below `temp_root` while a statement runs."""
    seen: set[str] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            if temp_root.exists():
                seen.update(p.name for p in temp_root.rglob("*") if p.is_file())
            stop.wait(0.01)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return seen, stop, thread


def test_spills_go_to_the_data_dir_and_are_removed(box: Box) -> None:
    spill = Limits(timeout_s=60, memory_limit="64MB", threads=1, max_temp_size="2GB")
    seen, stop, thread = spill_watcher(box.data_dir / ".sql-tmp")
    try:
        rows = Sandbox(box.gm.store.snapshot, spill).run(SPILLING).rows()
    finally:
        stop.set()
        thread.join()
    assert rows == [(6_000_000,)]
    assert any(name.startswith("duckdb_temp_storage") for name in seen)
    assert not list((box.data_dir / ".sql-tmp").iterdir())


def test_temp_space_is_capped(box: Box) -> None:
    tight = Limits(timeout_s=60, memory_limit="64MB", threads=1, max_temp_size="20MB")
    with pytest.raises(QueryError, match="temp space of 20MB"):
        Sandbox(box.gm.store.snapshot, tight).run(SPILLING)
    assert not list((box.data_dir / ".sql-tmp").iterdir())


def test_every_slot_busy_is_a_clear_503(box: Box) -> None:
    sandbox = Sandbox(box.gm.store.snapshot, Limits(timeout_s=0.2, concurrency=1))
    slots = sandbox.pool("admin").slots
    assert slots.acquire(timeout=1)
    try:
        with pytest.raises(SqlBusy, match="all 1 admin SQL slots are busy") as busy:
            sandbox.run("SELECT 1")
        assert busy.value.status == 503
    finally:
        slots.release()
    assert sandbox.run("SELECT 1").rows() == [(1,)]
    sandbox.close()


def test_types_without_a_json_or_parquet_twin_still_answer(box: Box) -> None:
    result = box.sandbox.run(
        "SELECT INTERVAL 90 MINUTE AS i, TIMESTAMP_NS '2026-01-01 10:00:00.123456789' AS ns, "
        "'\\xAA'::BLOB AS b, 12345678901234567890::HUGEINT AS h"
    )
    body = json.loads(encode(result, "json"))
    big = 12345678901234567890
    assert body["rows"] == [["P0M0DT5400S", "2026-01-01T10:00:00.123456", "qg==", big]]
    assert encode(result, "csv").decode().splitlines()[1] == (
        "P0M0DT5400S,2026-01-01T10:00:00.123456,\\xaa,12345678901234567890"
    )
    table = pq.read_table(io.BytesIO(encode(result, "parquet")))
    assert table.column("i").to_pylist() == ["P0M0DT5400S"]
    union = box.sandbox.run("SELECT union_value(a := 1) AS u")
    with pytest.raises(QueryError, match="cannot write this result as parquet"):
        encode(union, "parquet")


# -- CLI ------------------------------------------------------------------------------------


def test_cli_sql_prints_json_and_refuses_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in list(os.environ):
        if key.startswith("GASOMETER_"):
            monkeypatch.delenv(key)
    data_dir = tmp_path / "data"
    events = make_events(50)
    gm = Gasometer.open(make_settings(data_dir), background=False)
    gm.ingest(events)
    gm.close()
    args = ["sql", "--data-dir", str(data_dir), "--format", "json"]
    assert cli.main([*args, "SELECT count(*) AS n, sum(cost_usd) AS usd FROM events"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["columns"] == ["n", "usd"]
    assert body["rows"][0][0] == 50
    assert body["rows"][0][1] == pytest.approx(sum(e.cost_usd for e in events))
    target = tmp_path / "out.csv"
    assert cli.main([*args, f"COPY (SELECT 1) TO '{target}'"]) == 1
    assert "refused: " in capsys.readouterr().err
    assert not target.exists()


# -- HTTP -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sql_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("sqlserver") / "data"
    env = server_env(GASOMETER_SQL_MAX_ROWS="50", GASOMETER_SQL_TIMEOUT_S="1")
    proc = ServerProcess(data_dir, free_port(), env).start()
    try:
        yield proc
    finally:
        proc.stop()


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_api_sql_needs_a_token(sql_server: ServerProcess) -> None:
    body = {"sql": "SELECT 1"}
    missing = httpx.post(sql_server.url + "/api/sql", json=body)
    assert missing.status_code == 401
    assert missing.json()["ok"] is False
    wrong = httpx.post(
        sql_server.url + "/api/sql", json=body, headers={"Authorization": "Bearer nope"}
    )
    assert wrong.status_code == 401


def test_api_sql_formats(sql_server: ServerProcess) -> None:
    events = [
        {"session_id": "ga-nux", "cost_usd": 1.25, "ended_at": "2026-11-20T10:00:00Z"},
        {"session_id": "ga-toast", "cost_usd": 0.5, "ended_at": "2026-11-20T11:30:00Z"},
    ]
    posted = httpx.post(sql_server.url + "/api/ingest", json=events, headers=AUTH)
    assert posted.status_code == 202, posted.text
    sql = "SELECT session_id, cost_usd, ended_at FROM events ORDER BY ended_at"
    url = sql_server.url + "/api/sql"
    as_json = httpx.post(url, json={"sql": sql}, headers=AUTH)
    assert as_json.status_code == 200, as_json.text
    body = as_json.json()
    assert body["columns"] == ["session_id", "cost_usd", "ended_at"]
    assert body["types"] == ["VARCHAR", "DOUBLE", "TIMESTAMP WITH TIME ZONE"]
    assert body["rows"] == [
        ["ga-nux", 1.25, "2026-11-20T10:00:00Z"],
        ["ga-toast", 0.5, "2026-11-20T11:30:00Z"],
    ]
    assert body["truncated"] is False
    as_csv = httpx.post(url, json={"sql": sql, "format": "csv"}, headers=AUTH)
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.text.splitlines() == [
        "session_id,cost_usd,ended_at",
        "ga-nux,1.25,2026-11-20T10:00:00+00:00",
        "ga-toast,0.5,2026-11-20T11:30:00+00:00",
    ]
    as_parquet = httpx.post(url, json={"sql": sql, "format": "parquet"}, headers=AUTH)
    table = pq.read_table(io.BytesIO(as_parquet.content))
    assert table.column("session_id").to_pylist() == ["ga-nux", "ga-toast"]
    assert table.column("cost_usd").to_pylist() == [1.25, 0.5]


def test_api_sql_limits_and_refusals(sql_server: ServerProcess) -> None:
    url = sql_server.url + "/api/sql"
    cut = httpx.post(url, json={"sql": "SELECT * FROM range(80)"}, headers=AUTH)
    assert cut.status_code == 200
    assert cut.json()["row_count"] == 50
    assert cut.json()["truncated"] is True
    assert cut.headers["x-gasometer-truncated"] == "true"
    slow = "SELECT sum(a.range * b.range) FROM range(100000) a, range(100000) b"
    timed_out = httpx.post(url, json={"sql": slow}, headers=AUTH, timeout=120)
    assert timed_out.status_code == 422
    assert "time limit" in timed_out.json()["error"]
    data_dir = sql_server.data_dir
    target = data_dir / "events" / "x.parquet"
    refused = httpx.post(url, json={"sql": f"COPY (SELECT 1) TO '{target}'"}, headers=AUTH)
    assert refused.status_code == 400
    assert refused.json() == {
        "error": "refused: only SELECT and EXPLAIN are allowed; COPY reads or writes files",
        "status": 400,
        "ok": False,
    }
    assert not target.exists()
    bad = httpx.post(url, json={"sql": "SELECT 1", "format": "xml"}, headers=AUTH)
    assert bad.status_code == 400
    log = "SELECT * FROM enable_logging(storage := 'file', storage_path := '/tmp/gm-log')"
    logging = httpx.post(url, json={"sql": log}, headers=AUTH)
    assert logging.status_code == 400
    assert "enable_logging() is not allowed" in logging.json()["error"]
    assert httpx.get(sql_server.url + "/health").status_code == 200


def test_named_queries_never_take_the_admin_slots(box: Box) -> None:
    """Every read slot busy (three slow anonymous named queries, say): admin SQL still runs
    at once, and the other way round."""
    limits = Limits(timeout_s=1, concurrency=1, read_concurrency=1)
    sandbox = Sandbox(box.gm.store.snapshot, limits)
    try:
        read_slots = sandbox.pool("read").slots
        assert read_slots.acquire(timeout=1)
        try:
            assert sandbox.run("SELECT 1").rows() == [(1,)]
            with pytest.raises(SqlBusy, match="read SQL slots are busy"):
                sandbox.run_named("totals", {})
        finally:
            read_slots.release()
        admin_slots = sandbox.pool("admin").slots
        assert admin_slots.acquire(timeout=1)
        try:
            totals = sandbox.run_named("totals", {})
            assert totals.rows()[0][0] == pytest.approx(sum(e.cost_usd for e in box.events))
        finally:
            admin_slots.release()
    finally:
        sandbox.close()


def wait_for(probe: Callable[[], list[int]], timeout: float = 60.0) -> list[int]:
    """The first non-empty answer of `probe`, polled (a condition, not a time limit)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def test_a_worker_that_does_not_answer_is_killed_and_replaced(box: Box) -> None:
    """The pool's own deadline, not DuckDB's interrupt: here the worker's timer is set far
    beyond it, as when one operator ignores the interrupt, so only the kill can stop it."""
    sandbox = Sandbox(box.gm.store.snapshot, Limits(timeout_s=60, concurrency=1))
    try:
        pool = sandbox.pool("admin")
        assert sandbox.run("SELECT 1").rows() == [(1,)]
        [first] = pool.pids()
        snapshot = box.gm.store.snapshot()
        request = worker.Request(
            sql="SELECT sum(a.range * b.range) FROM range(1000000) a, range(1000000) b",
            data_dir=str(snapshot.data_dir),
            temp_dir=str(snapshot.data_dir / ".sql-tmp"),
            event_files=list(snapshot.event_files),
            hourly_files=list(snapshot.hourly_files),
            pending=worker.table_to_ipc(snapshot.pending),
            version=snapshot.version,
            limits=sandbox.limits.for_worker(),
        )
        with pytest.raises(SqlTimeout, match=r"stopped at the time limit of 0\.1 s") as stopped:
            pool.run(request, wait_s=1, timeout_s=0.1)
        assert stopped.value.status == 422
        assert not Path(f"/proc/{first}").exists()  # killed and reaped
        warmed = wait_for(pool.pids)  # a replacement started in the background
        assert first not in warmed
        assert sandbox.run("SELECT 2").rows() == [(2,)]
        assert pool.pids() == warmed  # it lived on, served, and went back to the pool
    finally:
        sandbox.close()
