"""Browser tests: Debian's chromium driven by Playwright for Python against a real
`gasometer serve` on loopback. One server and one browser per module; a fresh context
per test. Every page is watched: a console error, a page error, a failed request or an
HTTP error answer (the browser's own /favicon.ico included) fails the test."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.conftest import ServerProcess, free_port, server_env

CHROMIUM = Path("/usr/bin/chromium")
WEB = Path(__file__).resolve().parents[2] / "web"
AXE = WEB / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
CSP = "default-src 'self'"
"""Contract A's Content-Security-Policy (less frame-ancestors, which only a header can
carry): the pages state it themselves in a <meta> tag, so every browser test runs under
it, whether or not the server sends the header yet."""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("no /usr/bin/chromium: run `make chromium` (apt-get install chromium)")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield instance
        finally:
            instance.close()


def start_demo_server(base: Path, events: int, days: int, **env: str) -> ServerProcess:
    """Write demo data through the real ingest path, then serve it (with `env` settings)."""
    data = base / "data"
    cmd = [sys.executable, "-m", "gasometer", "demo", "--data-dir", str(data)]
    cmd += ["--events", str(events), "--days", str(days), "--no-serve"]
    subprocess.run(cmd, check=True, capture_output=True, env=server_env(), timeout=300)
    return ServerProcess(data, free_port(), server_env(**env)).start()


@dataclass
class Watched:
    """A page and everything that went wrong on it."""

    page: Page
    context: BrowserContext
    problems: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        """Tolerate problems matching `pattern` (e.g. a socket refused while the server
        is deliberately down)."""
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [p for p in self.problems if not any(a.search(p) for a in self.allowed)]


def watch(page: Page, context: BrowserContext) -> Watched:
    """Record console errors, page errors, failed requests and HTTP error answers."""
    watched = Watched(page, context)
    record = watched.problems.append
    page.on("console", lambda m: m.type == "error" and record(f"console {m.type}: {m.text}"))
    page.on("pageerror", lambda e: record(f"page error: {e}"))
    page.on("requestfailed", lambda r: _failed(r, record))
    page.on("response", lambda r: r.status >= 400 and record(f"HTTP {r.status}: {r.url}"))
    return watched


@pytest.fixture
def open_page(browser: Browser) -> Iterator:
    """open_page(url, **context options) -> Watched; asserts at teardown that nothing
    went wrong on any page opened."""
    opened: list[Watched] = []

    def open_(url: str, **options: object) -> Watched:
        options = {"viewport": {"width": 1280, "height": 900}, "timezone_id": "UTC", **options}
        context = browser.new_context(**options)  # type: ignore[arg-type]
        page = context.new_page()
        page.set_default_timeout(30_000)
        watched = watch(page, context)
        opened.append(watched)
        page.goto(url)
        return watched

    yield open_
    problems = [p for w in opened for p in w.unexpected()]
    for w in opened:
        w.context.close()
    assert problems == []


def wait_drawn(page: Page) -> None:
    """Until every panel has drawn (the page marks <html data-drawn="all">)."""
    page.wait_for_selector("html[data-drawn=all]", state="attached", timeout=60_000)


def _failed(request: Any, record: Any) -> None:
    """Record a failed request, except one the page cancelled itself (ERR_ABORTED: a
    reload or navigation while it was in flight), which says nothing about the server."""
    if "ERR_ABORTED" not in str(request.failure):
        record(f"request failed: {request.url} {request.failure}")
