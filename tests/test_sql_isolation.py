"""Issue 11's reproductions against a real server: ad-hoc SQL runs in worker processes that
may crash, run out of memory or be killed while the server keeps serving, its memory flat."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import TOKEN, ServerProcess, free_port, server_env

AUTH = {"Authorization": f"Bearer {TOKEN}"}
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def sql_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with the default SQL limits (10 s, 1GB DuckDB memory, 2GB per worker)."""
    data_dir = tmp_path_factory.mktemp("isolation") / "data"
    proc = ServerProcess(data_dir, free_port(), server_env()).start()
    try:
        yield proc
    finally:
        proc.stop()


def post_sql(server: ServerProcess, sql: str) -> httpx.Response:
    return httpx.post(server.url + "/api/sql", json={"sql": sql}, headers=AUTH, timeout=60)


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def children(pid: int) -> list[int]:
    """Process ids of the direct children of `pid`."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(child) for child in text]
    return found


def cpu_ticks(pid: int) -> int:
    """User plus system CPU time of a process, in clock ticks (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def assert_still_serving(server: ServerProcess, pid: int) -> None:
    assert server.process is not None and server.process.pid == pid
    assert server.process.poll() is None
    assert httpx.get(server.url + "/health").status_code == 200
    answer = post_sql(server, "SELECT 42 AS answer")
    assert answer.status_code == 200, answer.text
    assert answer.json()["rows"] == [[42]]


def test_the_crash_query_is_answered_with_an_error(sql_server: ServerProcess) -> None:
    assert sql_server.process is not None
    pid = sql_server.process.pid
    for sql in [
        "SELECT * FROM pandas_scan(NULL)",
        "SELECT * FROM arrow_scan(NULL, NULL, NULL)",
        "SELECT * FROM python_map_function(NULL)",
    ]:
        crashed = post_sql(sql_server, sql)
        assert crashed.status_code == 400, crashed.text
        body = crashed.json()
        assert body["ok"] is False
        assert body["error"].startswith("refused: ")
        assert "Python objects" in body["error"]
    assert_still_serving(sql_server, pid)


def test_the_list_building_query_is_stopped_in_its_worker(sql_server: ServerProcess) -> None:
    """`len(range(200000000))` needs about 1.6 GB for one list, past DuckDB's memory limit
    and past the worker's address-space cap: the worker fails, the server's memory stays flat."""
    assert sql_server.process is not None
    pid = sql_server.process.pid
    post_sql(sql_server, "SELECT 1")  # the worker pool exists: its start is not measured
    before = rss_bytes(pid)
    peak = [before]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss_bytes(pid))
            stop.wait(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        hungry = post_sql(sql_server, "SELECT len(range(200000000))")
    finally:
        stop.set()
        sampler.join()
    assert hungry.status_code == 422, hungry.text
    assert "memory" in hungry.json()["error"]
    growth = peak[0] - before
    print(f"server RSS {before / MIB:.0f} MiB before, peak {peak[0] / MIB:.0f} MiB during")
    assert growth < 200 * MIB, f"server RSS grew by {growth / MIB:.0f} MiB"
    assert_still_serving(sql_server, pid)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT enable_logging/**/()",
        "SELECT * FROM enable_logging/**/(storage := 'file', storage_path := '/tmp/gm-log')",
        "SELECT * FROM checkpoint/**/()",
        "SELECT * FROM query/**/('SELECT * FROM enable_logging()')",
    ],
)
def test_comment_tricks_are_refused(sql_server: ServerProcess, sql: str) -> None:
    refused = post_sql(sql_server, sql)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"].startswith("refused: ")
    assert "is not allowed" in refused.json()["error"]
    assert not Path("/tmp/gm-log").exists()


def test_errors_name_no_paths(sql_server: ServerProcess) -> None:
    data_dir = str(sql_server.data_dir.resolve())
    home = os.path.expanduser("~")
    statements = [
        f"SELECT * FROM read_parquet('{data_dir}/events/nope/*.parquet')",
        f"SELECT * FROM read_parquet('{data_dir}/hourly/missing.parquet')",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM duckdb_settings()",
        "SELECT current_setting('home_directory')",
        "SELECT no_such_column FROM events",
    ]
    for sql in statements:
        failed = post_sql(sql_server, sql)
        assert failed.status_code == 400, failed.text
        error = failed.json()["error"]
        assert data_dir not in error, error
        assert home not in error, error
        assert str(sql_server.data_dir) not in error, error


def test_a_killed_worker_leaves_the_server_serving(sql_server: ServerProcess) -> None:
    assert sql_server.process is not None
    pid = sql_server.process.pid
    slow = "SELECT sum(a.range * b.range) FROM range(1000000) a, range(1000000) b"
    answers: list[httpx.Response] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            answers.append(post_sql(sql_server, slow))
        except BaseException as exc:
            errors.append(exc)

    post_sql(sql_server, "SELECT 1")
    idle = {child: cpu_ticks(child) for child in children(pid)}
    thread = threading.Thread(target=run)
    thread.start()
    killed: set[int] = set()
    while thread.is_alive() and not killed:  # the worker busy with the join: it uses CPU
        for child in children(pid):
            if cpu_ticks(child) - idle.get(child, 60) > 50:
                os.kill(child, signal.SIGKILL)
                killed.add(child)
        thread.join(0.05)
    thread.join()
    if errors:
        raise errors[0]
    assert killed
    assert answers[0].status_code == 422, answers[0].text
    assert "worker process" in answers[0].json()["error"]
    assert_still_serving(sql_server, pid)
    assert not set(children(pid)) & killed


def test_workers_exit_with_a_killed_server(server: ServerProcess) -> None:
    """No orphaned worker keeps running once the server is gone, even SIGKILLed in the
    middle of a statement (the worker is busy, so it never reads the closed pipe)."""
    assert server.process is not None
    pid = server.process.pid
    assert post_sql(server, "SELECT 1").status_code == 200
    idle = {child: cpu_ticks(child) for child in children(pid)}
    outcome: list[BaseException | httpx.Response] = []

    def run() -> None:
        try:
            outcome.append(
                post_sql(
                    server, "SELECT sum(a.range * b.range) FROM range(1000000) a, range(1000000) b"
                )
            )
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    busy: list[int] = []
    while thread.is_alive() and not busy:
        busy = [c for c in children(pid) if cpu_ticks(c) - idle.get(c, 60) > 50]
        thread.join(0.05)
    assert busy
    workers = children(pid)
    server.kill()
    thread.join()
    assert isinstance(outcome[0], httpx.TransportError), outcome
    deadline = time.monotonic() + 60  # a bound on waiting, not a measured time
    alive = workers
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if "State:\tZ" not in proc_status(p)]
        time.sleep(0.1)
    assert alive == []


def proc_status(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return "State:\tZ"
