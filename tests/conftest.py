"""Shared fixtures: settings on a temporary data directory, an open Gasometer, and a real
server (uvicorn in its own process, on a free loopback port)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gasometer.config import Settings, load_settings
from gasometer.runtime import Gasometer

TOKEN = "test-token-0123456789"
"""The tests' all-purpose token: an ingest token that is also an admin token (SQL, import)."""
INGEST_TOKEN = "test-ingest-token-0123456789"
READ_TOKEN = "test-read-token-0123456789"
ADMIN_TOKEN = "test-admin-token-0123456789"
"""One token per scope, for tests of what each scope may do."""

ROOT = Path(__file__).resolve().parent.parent


def ccusage_bin() -> Path:
    """ccusage 18.0.11 as `make test` installs it (`npm ci --prefix tools`)."""
    return ROOT / "tools" / "node_modules" / ".bin" / "ccusage"


def isolate_home(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """Point HOME and Claude Code's config directory at `home`: nothing of the user running
    the tests (their ~/.claude/projects, their hook settings) is read or written."""
    home.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(home / ".claude"))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)


@pytest.fixture(scope="session", autouse=True)
def session_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A HOME for the session, in place before module-scoped servers start."""
    home = tmp_path_factory.mktemp("session-home")
    with pytest.MonkeyPatch.context() as monkeypatch:
        isolate_home(monkeypatch, home)
        yield home


@pytest.fixture(autouse=True)
def own_home(
    session_home: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every test runs with its own empty HOME (servers it starts inherit it)."""
    home = tmp_path_factory.mktemp("home")
    isolate_home(monkeypatch, home)
    return home


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    """Settings for a test: nothing from the developer's environment leaks in."""
    tokens = {
        "tokens": [TOKEN, INGEST_TOKEN],
        "read_tokens": [READ_TOKEN],
        "admin_tokens": [TOKEN, ADMIN_TOKEN],
    }
    return load_settings({"data_dir": data_dir, **tokens, **overrides}, environ={})


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


@pytest.fixture
def gm(settings: Settings) -> Iterator[Gasometer]:
    app = Gasometer.open(settings)
    try:
        yield app
    finally:
        app.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """A `gasometer serve` process on loopback; restartable and killable by tests."""

    data_dir: Path
    port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        """The server's stderr (appended across restarts; a file, so it never blocks)."""
        return self.data_dir.parent / f"server-{self.port}.log"

    def log_text(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def start(self, timeout: float = 120.0) -> ServerProcess:
        cmd = [sys.executable, "-m", "gasometer", "serve", "--data-dir", str(self.data_dir)]
        cmd += ["--port", str(self.port)]
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early: {self.log_text()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("server did not start in time")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()


def server_env(**extra: str) -> dict[str, str]:
    """The environment of a test server: ours only, no GASOMETER_* of the developer, and
    the test's own HOME (see `own_home`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GASOMETER_")}
    env.update(
        {
            "GASOMETER_TOKENS": f"{TOKEN},{INGEST_TOKEN}",
            "GASOMETER_READ_TOKENS": READ_TOKEN,
            "GASOMETER_ADMIN_TOKENS": f"{TOKEN},{ADMIN_TOKEN}",
            "GASOMETER_LOG_LEVEL": "warning",
            **extra,
        }
    )
    return env


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A fresh server on an empty data directory."""
    proc = ServerProcess(tmp_path / "data", free_port(), server_env())
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


ServerFactory = Callable[..., ServerProcess]


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start servers with extra GASOMETER_* settings (e.g. `flush_interval_s="0.2"`);
    `data_dir` defaults to tmp_path/data. Every server is stopped at the end."""
    started: list[ServerProcess] = []

    def start(data_dir: Path | None = None, **settings: str) -> ServerProcess:
        extra = {f"GASOMETER_{k.upper()}": str(v) for k, v in settings.items()}
        proc = ServerProcess(data_dir or tmp_path / "data", free_port(), server_env(**extra))
        started.append(proc)
        return proc.start()

    try:
        yield start
    finally:
        for proc in started:
            proc.stop()


def fetch_all_costs(url: str, limit: int = 1000, **params: str) -> list[dict[str, Any]]:
    """Every event GET /api/costs returns, following `next_cursor` to the end."""
    events: list[dict[str, Any]] = []
    cursor: str | None = None
    with httpx.Client(base_url=url, timeout=30) as client:
        while True:
            query: dict[str, Any] = {**params, "limit": limit}
            if cursor:
                query["cursor"] = cursor
            response = client.get("/api/costs", params=query)
            assert response.status_code == 200, response.text
            page = response.json()
            events += page["events"]
            cursor = page["next_cursor"]
            if cursor is None:
                return events


@pytest.fixture
def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}
