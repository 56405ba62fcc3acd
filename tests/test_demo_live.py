"""The living demo town: `gasometer demo` (a real process) keeps simulated agents posting
through the server's own ingest path, and never on a store holding anything else."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from gasometer.demo import MARKER, is_demo_store, write_demo
from tests.conftest import TOKEN, ServerProcess, free_port, make_settings, server_env

LIST_PRICES = {  # USD per million tokens: input, output, 5-minute cache write, cache read
    "claude-opus-4-6": (5, 25, 6.25, 0.50),
    "claude-opus-4-5-20251101": (5, 25, 6.25, 0.50),
    "claude-sonnet-4-5-20250929": (3, 15, 3.75, 0.30),
    "claude-haiku-4-5-20251001": (1, 5, 1.25, 0.10),
}
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Demo:
    """`gasometer demo` in its own process, its output in a file."""

    def __init__(self, data_dir: Path, *flags: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.out = data_dir.parent / f"demo-{self.port}.out"
        cmd = [sys.executable, "-m", "gasometer", "demo", "--data-dir", str(data_dir)]
        cmd += ["--port", str(self.port), "--events", "2000", "--days", "3", *flags]
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        with self.out.open("wb") as out:
            self.process = subprocess.Popen(cmd, env=server_env(), stdout=out, stderr=out)

    def output(self) -> str:
        return self.out.read_text()

    def wait_until(self, check: Callable[[], Any], timeout: float = 120.0) -> Any:
        """Poll `check` until it returns something truthy (generous timeout, no window)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"demo exited: {self.output()}")
            try:
                found = check()
                if found:
                    return found
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"timed out; demo said: {self.output()}")

    def events(self) -> list[dict[str, Any]]:
        body = httpx.get(self.url + "/api/costs", params={"limit": 10000}, timeout=10).json()
        events: list[dict[str, Any]] = body["events"]
        return events

    def live_events(self) -> list[dict[str, Any]]:
        return [e for e in self.events() if (e["event_id"] or "").startswith("demo-live-")]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def demos() -> Iterator[Callable[..., Demo]]:
    started: list[Demo] = []

    def start(data_dir: Path, *flags: str) -> Demo:
        demo = Demo(data_dir, *flags)
        started.append(demo)
        return demo

    yield start
    for demo in started:
        demo.stop()


def list_price(event: dict[str, Any]) -> float:
    rates = LIST_PRICES[event["model"]]
    keys = ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens")
    return sum(event[k] * rate for k, rate in zip(keys, rates, strict=True)) / 1e6


def posted_and_seen(demo: Demo) -> dict[str, Any]:
    """Post an event of our own and wait until the server lists it (a sync point)."""
    mine = {"session_id": "ga-mine", "cost_usd": 0.5, "ended_at": "2026-11-01T10:00:00Z",
            "event_id": "mine-1", "source": "api"}  # fmt: skip
    response = httpx.post(demo.url + "/api/ingest", json=mine, headers=AUTH, timeout=10)
    assert response.status_code == 202, response.text
    found: dict[str, Any] = demo.wait_until(
        lambda: next((e for e in demo.events() if e["event_id"] == "mine-1"), None)
    )
    return found


def test_the_town_keeps_working_through_the_real_server(
    tmp_path: Path, demos: Callable[..., Demo]
) -> None:
    demo = demos(tmp_path / "data")
    demo.wait_until(lambda: httpx.get(demo.url + "/health", timeout=2).status_code == 200)
    assert is_demo_store(tmp_path / "data")
    with connect(demo.url.replace("http://", "ws://") + "/ws/live") as socket:
        frame = json.loads(socket.recv(timeout=60))
    moving = frame.get("events") or [frame.get("event")]
    assert moving and all(e["event_id"].startswith("demo-live-") for e in moving)
    live = demo.wait_until(lambda: len(demo.live_events()) >= 4 and demo.live_events())
    for event in live:
        assert event["source"] == "demo" and event["role"] and event["rig"]
        assert event["cost_usd"] == pytest.approx(list_price(event), abs=1e-6)
    assert len({(e["role"], e["worker"]) for e in live}) >= 2 or len(live) < 6
    assert "Live demo town" in demo.output() and "Admin token" in demo.output()
    assert len(demo.events()) >= 2000 + 4


def test_no_live_turns_the_town_off(tmp_path: Path, demos: Callable[..., Demo]) -> None:
    demo = demos(tmp_path / "data", "--no-live")
    demo.wait_until(lambda: httpx.get(demo.url + "/health", timeout=2).status_code == 200)
    posted_and_seen(demo)
    assert demo.live_events() == []
    assert "Live demo town" not in demo.output()


def test_never_on_a_store_holding_other_data(tmp_path: Path, demos: Callable[..., Demo]) -> None:
    data = tmp_path / "data"
    server = ServerProcess(data, free_port(), server_env()).start()
    try:
        real = {"session_id": "ga-nux", "cost_usd": 1.25, "ended_at": "2026-10-01T09:00:00Z"}
        assert httpx.post(server.url + "/api/ingest", json=real, headers=AUTH).status_code == 202
    finally:
        server.stop()
    demo = demos(data, "--if-empty")
    demo.wait_until(lambda: httpx.get(demo.url + "/health", timeout=2).status_code == 200)
    posted_and_seen(demo)
    assert demo.live_events() == []
    assert len(demo.events()) == 2  # the real event and ours: no demo data written
    assert "not writing demo data" in demo.output() and "No live demo town" in demo.output()
    assert not (data / MARKER).exists()


def test_not_on_a_demo_store_that_has_since_received_real_events(
    tmp_path: Path, demos: Callable[..., Demo]
) -> None:
    data = tmp_path / "data"
    assert write_demo(make_settings(data), events=500, days=2, seed=3, if_empty=True) == 500
    server = ServerProcess(data, free_port(), server_env()).start()
    try:
        real = {"session_id": "ga-nux", "cost_usd": 1.25, "ended_at": "2026-10-01T09:00:00Z",
                "source": "hook"}  # fmt: skip
        assert httpx.post(server.url + "/api/ingest", json=real, headers=AUTH).status_code == 202
    finally:
        server.stop()
    demo = demos(data, "--if-empty")
    demo.wait_until(lambda: httpx.get(demo.url + "/health", timeout=2).status_code == 200)
    posted_and_seen(demo)
    assert demo.live_events() == []
    assert "No live demo town" in demo.output() and "1 from hook" in demo.output()


def test_only_a_store_the_demo_filled_from_empty_is_marked(tmp_path: Path) -> None:
    empty = make_settings(tmp_path / "empty")
    assert write_demo(empty, events=500, days=2, seed=3, if_empty=True) == 500
    assert is_demo_store(empty.data_dir)
    assert write_demo(empty, events=500, days=2, seed=3, if_empty=True) == 0  # make demo again
    assert is_demo_store(empty.data_dir)
    used = make_settings(tmp_path / "used")
    assert write_demo(used, events=300, days=2, seed=4, if_empty=False) == 300
    (used.data_dir / MARKER).unlink()  # as if real data had been there first
    assert write_demo(used, events=300, days=2, seed=5, if_empty=False) == 300
    assert not is_demo_store(used.data_dir)
