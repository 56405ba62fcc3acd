"""The living demo town: after `gasometer demo` has written its history, a few simulated
agents keep working, one event every second or so, posted to the server's own
`/api/ingest` (the real ingest path), so the live parts of the dashboard move.

It only ever runs on a store holding demo data only: one that `write_demo` marked
(`demo.json` in the data directory) because it wrote its history into an empty store, and
that has received no event from any other source since.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

from gasometer.config import Settings
from gasometer.demo import PRICES, is_demo_store

log = logging.getLogger("gasometer.demo")


@dataclass
class Agent:
    """One simulated agent: its Gas Town identity, model, and the session it is in."""

    role: str
    rig: str
    worker: str
    session_prefix: str
    model: str
    output_scale: float
    issues: tuple[str, ...] = ()
    session_id: str = ""
    turns_left: int = 0
    issue: str | None = None


AGENTS = (
    Agent("mayor", "hq", "mayor", "hq-mayor", "claude-opus-4-6", 1.0),
    Agent("witness", "gasometer", "witness", "ga-witness", "claude-sonnet-4-5-20250929", 0.6),
    Agent("polecat", "gasometer", "nux", "ga-nux", "claude-opus-4-6", 1.2, ("ga-4f2k", "ga-9x1")),
    Agent(
        "polecat",
        "gastown",
        "furiosa",
        "gt-furiosa",
        "claude-opus-4-5-20251101",
        1.2,
        ("gt-7q3m", "gt-0b2c"),
    ),
    Agent("crew", "beads", "max", "bd-crew-max", "claude-sonnet-4-5-20250929", 1.3, ("bd-31",)),
    Agent("dog", "hq", "rex", "hq-dog-rex", "claude-haiku-4-5-20251001", 0.6),
)


@dataclass
class LiveTown:
    """Agents posting events to a server until stopped (a daemon thread)."""

    url: str
    token: str | None
    interval_s: float = 1.0
    seed: int | None = None
    agents: list[Agent] = field(default_factory=lambda: [Agent(**a.__dict__) for a in AGENTS])
    posted: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Start working in the background once the server answers."""
        self._thread = threading.Thread(target=self._run, name="demo-town", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current event."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        rng = random.Random(self.seed)
        if not self._wait_for_server():
            return
        while not self._stop.is_set():
            event = self.next_event(rng, datetime.now(UTC))
            try:
                self._post(event)
                self.posted += 1
            except (OSError, http.client.HTTPException, RuntimeError) as exc:
                log.warning("demo town: event not posted (%s); trying again", exc)
            self._stop.wait(self.interval_s * rng.uniform(0.5, 1.5))

    def next_event(self, rng: random.Random, now: datetime) -> dict[str, object]:
        """One agent's next API response, priced at its model's list price."""
        agent = rng.choice(self.agents)
        if agent.turns_left <= 0:  # a new session: the timeline shows it start
            agent.session_id = f"{agent.session_prefix}-live-{uuid.uuid4().hex[:6]}"
            agent.turns_left = rng.randint(20, 120)
            agent.issue = rng.choice(agent.issues) if agent.issues else None
        agent.turns_left -= 1
        tokens = {
            "input_tokens": rng.randint(20, 2_500),
            "output_tokens": int(rng.randint(80, 3_000) * agent.output_scale),
            "cache_creation_tokens": rng.choice([0, 0, rng.randint(500, 25_000)]),
            "cache_read_tokens": rng.randint(8_000, 160_000),
        }
        price = PRICES[agent.model]
        cost = (
            tokens["input_tokens"] * price.input
            + tokens["output_tokens"] * price.output
            + tokens["cache_creation_tokens"] * price.cache_write
            + tokens["cache_read_tokens"] * price.cache_read
        ) / 1e6
        ended = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return {
            "session_id": agent.session_id,
            "role": agent.role,
            "rig": agent.rig,
            "worker": agent.worker,
            "model": agent.model,
            "issue": agent.issue,
            "ended_at": ended,
            "cost_usd": round(cost, 6),
            **tokens,
            "source": "demo",
            "event_id": f"demo-live-{uuid.uuid4().hex}",
        }

    def _wait_for_server(self) -> bool:
        while not self._stop.is_set():
            try:
                status, _ = self._request("GET", "/health", None)
                if status < 500:  # answering (reads may be closed to an ingest token)
                    return True
            except (OSError, http.client.HTTPException):
                pass
            self._stop.wait(0.2)
        return False

    def _post(self, event: dict[str, object]) -> None:
        status, body = self._request("POST", "/api/ingest", json.dumps([event]).encode())
        if status != 202:
            raise RuntimeError(f"HTTP {status}: {body[:200]!r}")

    def _request(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        parts = urlsplit(self.url)
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()


def local_url(host: str, port: int) -> str:
    """The URL this machine reaches a server listening on host:port at."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def foreign_sources(settings: Settings) -> dict[str, int]:
    """Events per source other than the demo's in this store (read-only)."""
    from gasometer.query.engine import QueryEngine
    from gasometer.store.store import Store

    store = Store(settings, readonly=True)
    engine = QueryEngine(store, threads=1)
    try:
        rows = engine.run("event_sources", {}).rows
    finally:
        engine.close()
        store.close()
    return {str(source): int(count) for source, count in rows if source != "demo"}


def start_live_town(settings: Settings, token: str) -> LiveTown | None:
    """Start the town against the server about to serve `settings` if its store holds
    demo data only (marked by the demo, no event from elsewhere); say what happens."""
    reason = None
    if not is_demo_store(settings.data_dir):
        reason = "its data was not written by the demo (no demo.json)"
    elif others := foreign_sources(settings):
        listed = ", ".join(f"{n:,} from {source}" for source, n in others.items())
        reason = f"it holds events besides the demo's ({listed})"
    if reason:
        print(f"No live demo town on {settings.data_dir}: {reason}", flush=True)
        return None
    town = LiveTown(local_url(settings.host, settings.port), token)
    town.start()
    print(
        f"Live demo town: {len(town.agents)} agents post an event about every second "
        "(--no-live turns them off)",
        flush=True,
    )
    return town
