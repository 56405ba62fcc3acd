"""What the SQL worker processes cost: starting one, and a statement through a warm one.

No data set needed: an empty store is enough to time the fixed costs (a fresh locked-down
DuckDB database per statement, the snapshot sent as Arrow IPC, the pipe).
Run: `.venv/bin/pytest benchmarks/bench_sql_worker.py --benchmark-enable`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gasometer.config import load_settings
from gasometer.query.pool import WorkerProcess
from gasometer.query.sandbox import Limits, Sandbox
from gasometer.runtime import Gasometer

from .conftest import record


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    data_dir = tmp_path_factory.mktemp("sqlbench") / "data"
    gm = Gasometer.open(load_settings({"data_dir": data_dir}, environ={}), background=False)
    box = Sandbox(gm.store.snapshot, Limits())
    try:
        yield box
    finally:
        box.close()
        gm.close()


def test_worker_start_up(benchmark: Any, tmp_path: Path) -> None:
    """Python, DuckDB and PyArrow imports until the worker says `ready`."""

    def start() -> None:
        WorkerProcess(2 * 10**9, tmp_path).kill()

    benchmark.pedantic(start, rounds=5, iterations=1)
    record("sql worker start-up", median_s=round(benchmark.stats.stats.median, 3))


def test_select_1_through_a_warm_worker(benchmark: Any, sandbox: Sandbox) -> None:
    sandbox.run("SELECT 1")
    benchmark.pedantic(lambda: sandbox.run("SELECT 1"), rounds=30, iterations=1)
    record("sql SELECT 1 (warm worker)", median_ms=round(benchmark.stats.stats.median * 1000, 1))


def test_named_query_through_a_warm_worker(benchmark: Any, sandbox: Sandbox) -> None:
    sandbox.run_named("totals", {})
    benchmark.pedantic(lambda: sandbox.run_named("totals", {}), rounds=30, iterations=1)
    record("named query totals (warm)", median_ms=round(benchmark.stats.stats.median * 1000, 1))
