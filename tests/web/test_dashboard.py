"""The dashboard in a real browser against a real server holding demo data: every panel
draws, the tiles say what the API says, the URL is the state, a click or a drag sets the
range, live events arrive without a reload, the page reconnects after a restart, and it
passes axe-core's accessibility checks in both themes."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from tests.conftest import TOKEN, ServerProcess
from tests.web.conftest import AXE, SCREENSHOTS, Watched, start_demo_server, wait_drawn

TILES = ("today", "week", "month", "burn", "projected")


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # A daily budget the live test's large event crosses: a budget alert on the river,
    # and zones on the gauge.
    server = start_demo_server(
        Path(tmp_path_factory.mktemp("dash")),
        events=60_000,
        days=21,
        GASOMETER_BUDGET_DAILY_USD="400",
    )
    try:
        yield server
    finally:
        server.stop()


def tile_values(page) -> dict[str, float]:
    values = page.eval_on_selector_all(
        "[data-tile]", "els => els.map(e => [e.dataset.tile, Number(e.dataset.usd)])"
    )
    return dict(values)


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlparse(url).query)


def test_every_panel_draws_real_marks(demo_server: ServerProcess, open_page) -> None:
    w: Watched = open_page(demo_server.url + "/")
    page = w.page
    wait_drawn(page)
    counts = page.evaluate(
        """() => {
        const n = (s) => document.querySelectorAll(s).length;
        return {
          tiles: n('[data-tile]'), layers: n('#river path.layer'), zones: n('#gauge path.zone'),
          needle: n('#gauge .needle line'), spark: n('#gauge .spark-line'),
          days: n('#calendar rect.day'), spentDays: n('#calendar rect.day:not(.level-0)'),
          sessions: n('#timeline rect.session'), links: n('#timeline path.link'),
          concurrency: n('#timeline path.concurrency'), cells: n('#treemap .cell rect'),
          beads: n('#beads circle.bead'), feed: n('#feed li'), rows: n('#events tbody tr'),
          status: n('#status details.status'),
        };
    }"""
    )
    assert counts["tiles"] == 5
    assert counts["layers"] >= 4  # several roles spent in the last week
    assert counts["zones"] == 3 and counts["needle"] == 1 and counts["spark"] == 1
    assert counts["days"] >= 365 and counts["spentDays"] >= 15
    assert counts["sessions"] >= 10 and counts["links"] >= 1 and counts["concurrency"] == 1
    assert counts["cells"] >= 5 and counts["beads"] >= 5
    assert counts["feed"] >= 10 and counts["rows"] == 25 and counts["status"] == 1
    # Every chart is an image with a name, and every panel states its numbers in words.
    charts = page.eval_on_selector_all(
        "svg.chart", "els => els.map(e => [e.getAttribute('role'), e.getAttribute('aria-label')])"
    )
    assert len(charts) >= 7
    assert all(role == "img" and label and "$" in label for role, label in charts)
    summaries = page.eval_on_selector_all(".panel .summary", "els => els.map(e => e.textContent)")
    assert len(summaries) == 10 and all(len(s) > 10 for s in summaries)
    assert page.get_attribute("#live", "data-status") == "live"


def test_tiles_equal_the_summary_endpoint(demo_server: ServerProcess, open_page) -> None:
    w: Watched = open_page("about:blank", timezone_id="America/New_York")
    page = w.page
    with page.expect_response(lambda r: "/api/stats/summary" in r.url) as info:
        page.goto(demo_server.url + "/")
    wait_drawn(page)
    response = info.value
    assert query_of(response.url)["tz"] == ["America/New_York"]
    summary = response.json()
    expected = {
        "today": summary["today"]["total_usd"],
        "week": summary["week"]["total_usd"],
        "month": summary["month"]["total_usd"],
        "burn": summary["burn_rate_usd_per_hour"],
        "projected": summary["projected_month_usd"],
    }
    assert tile_values(page) == pytest.approx(expected, rel=1e-12)
    text = page.inner_text("[data-tile=month] .value")
    assert text == "${:,.2f}".format(summary["month"]["total_usd"])
    # And the API answers the same to anyone asking for the same zone.
    again = httpx.get(demo_server.url + "/api/stats/summary", params={"tz": "America/New_York"})
    assert again.json()["month"]["session_count"] == summary["month"]["session_count"]


def test_filters_change_numbers_and_url_and_the_url_reproduces_the_view(
    demo_server: ServerProcess, open_page
) -> None:
    w: Watched = open_page("about:blank")
    page = w.page
    with page.expect_response(lambda r: "/api/stats/hourly" in r.url) as all_roles:
        page.goto(demo_server.url + "/")
    wait_drawn(page)
    before = tile_values(page)
    with (
        page.expect_response(
            lambda r: "/api/stats/summary" in r.url and "role=polecat" in r.url
        ) as info,
        page.expect_response(
            lambda r: "/api/stats/hourly" in r.url and "role=polecat" in r.url
        ) as river,
    ):
        page.select_option("#f-role", "polecat")
    polecat = info.value.json()
    page.wait_for_function(
        "v => Number(document.querySelector('[data-tile=month]').dataset.usd) === v",
        arg=polecat["month"]["total_usd"],
    )
    assert query_of(page.url)["role"] == ["polecat"]
    # The last week (always full of demo data, whatever the hour): polecats spent part.
    week_all = sum(h["total_usd"] for h in all_roles.value.json()["hours"])
    week_polecat = sum(h["total_usd"] for h in river.value.json()["hours"])
    assert 0 < week_polecat < week_all
    page.wait_for_function(
        "() => [...document.querySelectorAll('#river path.layer')]"
        ".every(p => p.dataset.key === 'polecat')"
    )
    assert page.is_visible("[data-chip=role]")
    filtered = tile_values(page)
    filtered_river = page.get_attribute("#river svg.chart", "aria-label")

    # The same URL in a new page shows the same view.
    other = w.context.new_page()
    other.goto(page.url)
    wait_drawn(other)
    assert other.input_value("#f-role") == "polecat"
    assert other.is_visible("[data-chip=role]")
    assert tile_values(other)["month"] == filtered["month"]
    assert other.get_attribute("#river svg.chart", "aria-label") == filtered_river
    other.close()

    # Back: the filter goes, the numbers come back.
    page.go_back()
    page.wait_for_function("() => !location.search.includes('role=')")
    page.wait_for_function(
        "v => Number(document.querySelector('[data-tile=month]').dataset.usd) === v",
        arg=before["month"],
    )
    assert page.input_value("#f-role") == ""
    assert not page.is_visible("[data-chip=role]")


def test_calendar_click_and_a_brush_set_the_range(demo_server: ServerProcess, open_page) -> None:
    w: Watched = open_page(demo_server.url + "/")
    page = w.page
    wait_drawn(page)
    day = page.locator("#calendar rect.day.level-4").first
    date = day.get_attribute("data-date")
    assert date is not None
    with page.expect_response(lambda r: "/api/stats/treemap" in r.url and f"from={date}" in r.url):
        day.click()
    assert query_of(page.url)["from"] == [date] and query_of(page.url)["to"] == [date]
    assert page.input_value("#from") == date and page.input_value("#to") == date
    page.wait_for_selector(f"#calendar rect.day.selected[data-date='{date}']")
    page.wait_for_function("() => document.querySelector('#river svg.chart') !== null")

    # Drag across the middle of the river: the range becomes the dragged span.
    box = page.locator("#river svg.chart").bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.3, y)
    page.mouse.down()
    with page.expect_response(lambda r: "/api/stats/hourly" in r.url):
        page.mouse.move(box["x"] + box["width"] * 0.6, y, steps=8)
        page.mouse.up()
    page.wait_for_url(re.compile(r"from=\d{4}-\d\d-\d\dT"))
    page.wait_for_selector("#river:not([aria-busy])", state="attached")
    q = query_of(page.url)
    start = datetime.fromisoformat(q["from"][0].replace("Z", "+00:00"))
    end = datetime.fromisoformat(q["to"][0].replace("Z", "+00:00"))
    day_start = datetime.fromisoformat(date).replace(tzinfo=UTC)
    assert day_start <= start < end <= day_start.replace(hour=23, minute=59, second=59)
    assert page.is_visible("[data-chip=range]")

    # Keyboard alternative to the brush: zoom out doubles the range around its middle.
    page.focus("#river [data-move=zoom-out]")
    page.keyboard.press("Enter")
    page.wait_for_function("t => !location.search.includes(t)", arg=q["to"][0])
    wider = query_of(page.url)
    wide_start = datetime.fromisoformat(wider["from"][0].replace("Z", "+00:00"))
    wide_end = datetime.fromisoformat(wider["to"][0].replace("Z", "+00:00"))
    assert wide_end - wide_start == pytest.approx(2 * (end - start), abs=timedelta(seconds=1))
    page.click("#reset")
    page.wait_for_function("() => location.search === ''")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_accessible_and_screenshots(demo_server: ServerProcess, open_page, scheme: str) -> None:
    w: Watched = open_page(
        demo_server.url + "/",
        color_scheme=scheme,
        reduced_motion="reduce",
        bypass_csp=True,  # axe-core is injected as a script
    )
    page = w.page
    wait_drawn(page)
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    serious = [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"][:5]]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert serious == [], json.dumps(serious, indent=1)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width in (1280, 1920):
        page.set_viewport_size({"width": width, "height": 1000})
        page.wait_for_function(
            "w => document.querySelector('#river svg.chart').getAttribute('width') > w",
            arg=width - 200,
        )
        page.screenshot(path=str(SCREENSHOTS / f"dashboard-{scheme}-{width}.png"), full_page=True)


def _event(cost: float) -> dict[str, object]:
    return {
        "session_id": f"gt-live-{uuid.uuid4().hex[:6]}",
        "event_id": f"live-{uuid.uuid4().hex}",
        "role": "polecat",
        "rig": "gastown",
        "worker": "live",
        "model": "claude-opus-4-5",
        "cost_usd": cost,
        "ended_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "input_tokens": 1000,
        "output_tokens": 200,
    }


def _post(server: ServerProcess, event: dict[str, object]) -> None:
    response = httpx.post(
        server.url + "/api/ingest", json=event, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert response.status_code == 202, response.text


def test_a_posted_event_shows_in_feed_tiles_and_gauge_without_reload(
    demo_server: ServerProcess, open_page
) -> None:
    w: Watched = open_page(demo_server.url + "/")
    page = w.page
    wait_drawn(page)
    page.wait_for_selector("#live[data-status=live]")
    page.evaluate("() => { window.__notReloaded = true; }")
    before = tile_values(page)
    needle = float(page.get_attribute("#gauge .needle", "data-usd-per-hour") or 0)
    event = _event(450.0)
    _post(demo_server, event)
    page.wait_for_selector(f"#feed li[data-event='{event['event_id']}']", timeout=30_000)
    # Today grows by the event (or, should a new day have begun meanwhile, starts with
    # it); the last hour's rate includes it (the demo burns far less than $450/h).
    page.wait_for_function(
        """b => { const v = Number(document.querySelector('[data-tile=today]').dataset.usd);
                  return v >= b + 449.99 || (v < b && v >= 449.99); }""",
        arg=before["today"],
        timeout=30_000,
    )
    assert needle < 449.99
    page.wait_for_function(
        "v => Number(document.querySelector('#gauge .needle').dataset.usdPerHour) >= v",
        arg=449.99,
        timeout=30_000,
    )
    page.wait_for_selector("#river g.alert.exceeded line", state="attached", timeout=30_000)
    assert page.evaluate("() => window.__notReloaded") is True
    assert page.is_visible(f"#feed li.fresh[data-event='{event['event_id']}']")


def test_reconnects_after_a_server_restart(demo_server: ServerProcess, open_page) -> None:
    w: Watched = open_page(demo_server.url + "/")
    page = w.page
    # While the server is down the socket's retries are refused: expected here.
    w.allow(r"ws/live|ERR_CONNECTION_REFUSED|ERR_CONNECTION_RESET|ERR_EMPTY_RESPONSE")
    wait_drawn(page)
    page.wait_for_selector("#live[data-status=live]")
    demo_server.stop()
    page.wait_for_selector("#live[data-status=disconnected]", timeout=30_000)
    assert "disconnected" in page.inner_text("#live")
    demo_server.start()
    page.wait_for_selector("#live[data-status=live]", timeout=60_000)
    event = _event(1.25)
    _post(demo_server, event)
    page.wait_for_selector(f"#feed li[data-event='{event['event_id']}']", timeout=30_000)
