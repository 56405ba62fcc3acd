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


def test_formats_state_and_live_frames_in_the_browser(
    empty_server: ServerProcess, open_page
) -> None:
    """The page's own modules, run in the browser: DASHBOARD.md's number formats, the
    URL state's round trip, and both shapes of live frame (batched and single)."""
    w: Watched = open_page(empty_server.url + "/")
    page = w.page
    page.wait_for_selector("body:not([data-view=loading])", state="attached")
    got = page.evaluate(
        """async () => {
        const f = await import('/app/format.js');
        const s = await import('/app/state.js');
        const api = await import('/app/api.js');
        const calls = [];
        const live = new api.Live({ onEvents: (e) => calls.push(['events', e.length]),
          onAlert: (a) => calls.push(['alert', a.level]), onStatus() {}, onReconnect() {} });
        live.receive(JSON.stringify({type: 'events', events: [{id: 1}, {id: 2}, {id: 3}]}));
        live.receive(JSON.stringify({type: 'event', event: {id: 4}}));
        live.receive(JSON.stringify({type: 'alert', level: 'exceeded'}));
        live.receive(JSON.stringify({type: 'filter', filter: {}}));
        live.receive('not json');
        const state = s.parse('?role=polecat&from=2026-11-02&to=2026-11-03&tz=Asia/Kolkata&by=rig');
        return {
          money: [f.money(1234.5), f.money(0.0042), f.money(0), f.money(12)],
          axis: [f.moneyAxis(1200), f.moneyAxis(2500000), f.moneyAxis(0.5)],
          rate: f.rate(48.8), tokens: f.tokens(1234567),
          midnight: new Date(f.zonedMidnight('2026-11-02', 'Asia/Kolkata')).toISOString(),
          state, query: s.query(state), quick: s.parse('?range=1y&role=crew'),
          bad: s.parse('?range=2w&tz=Mars/Olympus&by=colour'), calls,
        };
    }"""
    )
    assert got["money"] == ["$1,234.50", "$0.0042", "$0.00", "$12.00"]
    assert got["axis"] == ["$1.2k", "$2.5M", "$0.5"]
    assert got["rate"] == "$48.80/h" and got["tokens"] == "1.2M"
    assert got["midnight"] == "2026-11-01T18:30:00.000Z"
    assert got["state"] == {
        "from": "2026-11-02", "to": "2026-11-03", "tz": "Asia/Kolkata", "role": "polecat",
        "by": "rig",
    }  # fmt: skip
    assert got["query"] == "from=2026-11-02&to=2026-11-03&tz=Asia%2FKolkata&role=polecat&by=rig"
    assert got["quick"]["range"] == "1y" and got["quick"]["role"] == "crew"
    assert got["bad"]["range"] == "7d" and got["bad"]["tz"] == "UTC" and got["bad"]["by"] == "role"
    assert got["calls"] == [["events", 3], ["events", 1], ["alert", "exceeded"]]
