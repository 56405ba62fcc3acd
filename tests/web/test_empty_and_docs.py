"""A fresh data directory in the browser: the getting-started page (not empty axes),
which turns into the dashboard when the first event arrives; and the API docs at
/schema, rendered offline from the vendored Swagger UI."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.conftest import TOKEN, ServerProcess, free_port, server_env
from tests.web.conftest import Watched, wait_drawn


@pytest.fixture(scope="module")
def empty_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = Path(tmp_path_factory.mktemp("empty")) / "data"
    server = ServerProcess(data, free_port(), server_env()).start()
    try:
        yield server
    finally:
        server.stop()


def test_empty_store_shows_getting_started_then_the_dashboard(
    empty_server: ServerProcess, open_page
) -> None:
    w: Watched = open_page(empty_server.url + "/")
    page = w.page
    page.wait_for_selector("body[data-view=start]", state="attached")
    assert page.is_visible("#start")
    assert not page.is_visible("#dashboard")
    curl = page.inner_text("#start-curl")
    assert f"{empty_server.url}/api/ingest" in curl and "curl -X POST" in curl
    assert f"--url {empty_server.url}" in page.inner_text("#start-hook")
    assert "gasometer import" in page.inner_text("#start")
    page.wait_for_selector("#live[data-status=live]")

    event = {
        "session_id": "gt-first",
        "role": "polecat",
        "rig": "gastown",
        "worker": "first",
        "cost_usd": 0.42,
        "ended_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "event_id": "first-event",
    }
    response = httpx.post(
        empty_server.url + "/api/ingest", json=event, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert response.status_code == 202
    page.wait_for_selector("body[data-view=dashboard]", state="attached", timeout=30_000)
    wait_drawn(page)
    assert not page.is_visible("#start")
    page.wait_for_selector("#feed li[data-event='first-event']")
    assert page.inner_text("[data-tile=today] .value") == "$0.42"


def test_api_docs_render_offline_from_vendored_assets(
    empty_server: ServerProcess, open_page
) -> None:
    requests: list[str] = []
    w: Watched = open_page("about:blank")
    page = w.page
    page.on("request", lambda r: requests.append(r.url))
    page.goto(empty_server.url + "/schema")
    page.wait_for_selector(".swagger-ui .opblock", timeout=60_000)
    assert page.locator(".swagger-ui .opblock").count() >= 15
    assert page.locator(".swagger-ui .opblock-summary-path", has_text="/api/stats/hourly").count()
    assert "Gasometer" in page.inner_text(".swagger-ui .info")
    outside = [u for u in requests if not u.startswith(empty_server.url)]
    assert outside == []  # nothing from a CDN: it renders offline
    assert any(u.endswith("/vendor/swagger-ui-bundle.js") for u in requests)
