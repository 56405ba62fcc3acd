"""Benchmark fixtures: a cached demo data set of `--events` events and real servers on it.

The data set (see dataset.py) is built once per size and reused by later runs. Read
benchmarks run against a server over that data set; ingest benchmarks against a server
over a fresh copy of it, so the cached data set never changes. Run with `make bench`
(1 million events) or `make bench-10m`.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from gasometer.store.ledger import LEDGER_FILE

from .dataset import TOKEN, Dataset, ensure_dataset, server_env

RESULTS: list[dict[str, Any]] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--events", type=int, default=1_000_000, help="demo events in the benchmark data set"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Building a large data set takes minutes: no per-test time limit here."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.timeout(0))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print every figure the benchmarks recorded (p95s, rates, footprint) in one table."""
    if not RESULTS:
        return
    terminalreporter.section("gasometer figures")
    for row in RESULTS:
        name = row["name"]
        rest = ", ".join(f"{k}={v}" for k, v in row.items() if k != "name")
        terminalreporter.write_line(f"{name:<34} {rest}")


def record(name: str, **figures: Any) -> None:
    """Keep a named set of figures for the summary table and results.json."""
    RESULTS.append({"name": name, **figures})


@pytest.fixture(scope="session")
def dataset(request: pytest.FixtureRequest) -> Iterator[Dataset]:
    """The demo data set of `--events` events, built on first use and then reused."""
    found = ensure_dataset(int(request.config.getoption("--events")))
    yield found
    results = {"events": found.events, "dataset": found.info, "results": RESULTS}
    (found.root / "results.json").write_text(json.dumps(results, indent=2, default=str))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A `gasometer serve` process on a free loopback port."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> Server:
        cmd = [sys.executable, "-m", "gasometer", "serve", "--data-dir", str(self.data_dir)]
        cmd += ["--port", str(self.port)]
        self.process = subprocess.Popen(cmd, env=server_env(), stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}")
            try:
                if httpx.get(self.url + "/health", timeout=5).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("server did not start in time")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def memory(self) -> dict[str, int]:
        """Resident memory of the server now and at its peak, in MiB."""
        assert self.process is not None
        status = Path(f"/proc/{self.process.pid}/status").read_text().splitlines()
        fields = dict(line.split(":", 1) for line in status if ":" in line)
        mib = {k: int(fields[k].split()[0]) // 1024 for k in ("VmRSS", "VmHWM")}
        return {"rss_mib": mib["VmRSS"], "peak_rss_mib": mib["VmHWM"]}


def ledger_mib(data_dir: Path) -> float:
    """The ledger's size on disk (SQLite file and its WAL), in MiB."""
    paths = [data_dir / LEDGER_FILE, data_dir / (LEDGER_FILE + "-wal")]
    return round(sum(p.stat().st_size for p in paths if p.exists()) / 2**20, 1)


@pytest.fixture(scope="session")
def read_server(dataset: Dataset) -> Iterator[Server]:
    """A server over the cached data set, for read benchmarks only."""
    server = Server(dataset.data_dir).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def ingest_server(dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server over a copy of the data set: ingest lands on a store of `--events` events."""
    copy = tmp_path_factory.mktemp("ingest") / "data"
    shutil.copytree(dataset.data_dir, copy, ignore=shutil.ignore_patterns(".lock"))
    server = Server(copy).start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(copy, ignore_errors=True)


@pytest.fixture
def auth_header() -> str:
    return f"Bearer {TOKEN}"
