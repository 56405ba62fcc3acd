"""Dashboard speed in a real browser (Debian chromium, headless, via Playwright):

1. page load: navigation start to the last panel drawn (the page's own
   `gasometer:drawn` performance mark), over a store of `--events` demo events, for the
   default view (last 7 days up to now) and for the last 7 days of the data set (whole
   days, as the date pickers ask);
2. live delay: from the 202 of `POST /api/ingest` to the event's row in the live feed.

Run: `make bench-web` (1 M events) or `python -m benchmarks.web_dashboard --events N`.
Uses the cached benchmark data set (benchmarks/dataset.py) on a copy, since it ingests.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright

from benchmarks.conftest import Server
from benchmarks.dataset import TOKEN, ensure_dataset

CHROMIUM = "/usr/bin/chromium"


def load_ms(page: Page, url: str) -> float:
    """One cold load (new page): ms from navigation start to the last panel drawn."""
    page.goto(url)
    page.wait_for_selector("html[data-drawn=all]", state="attached", timeout=120_000)
    return float(
        page.evaluate("() => performance.getEntriesByName('gasometer:drawn')[0].startTime")
    )


def live_delay_ms(page: Page, server: Server) -> float:
    """Post one event; ms from its 202 to its row in the feed (both clocks: this host's)."""
    event_id = f"bench-live-{uuid.uuid4().hex}"
    page.evaluate(
        """id => { window.__arrived = new Promise(resolve => {
            const seen = () => document.querySelector(`#feed li[data-event="${id}"]`);
            new MutationObserver((_, obs) => { if (seen()) { obs.disconnect();
              resolve(performance.timeOrigin + performance.now()); } })
              .observe(document.querySelector('#feed'), {childList: true, subtree: true});
        }); }""",
        event_id,
    )
    event = {
        "session_id": "gt-bench-live",
        "event_id": event_id,
        "role": "polecat",
        "rig": "gastown",
        "worker": "bench",
        "cost_usd": 0.5,
        "ended_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    response = httpx.post(
        server.url + "/api/ingest", json=event, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    acked = time.time() * 1000
    assert response.status_code == 202, response.text
    arrived = float(page.evaluate("() => window.__arrived"))
    return arrived - acked


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "median_ms": round(statistics.median(ordered)),
        "p95_ms": round(p95),
        "min_ms": round(ordered[0]),
        "max_ms": round(ordered[-1]),
        "runs": len(ordered),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--loads", type=int, default=7, help="page loads per view")
    parser.add_argument("--live", type=int, default=20, help="live events to time")
    args = parser.parse_args()
    dataset = ensure_dataset(args.events)
    work = Path(tempfile.mkdtemp(prefix="gasometer-bench-web-"))
    shutil.copytree(dataset.data_dir, work / "data", ignore=shutil.ignore_patterns(".lock"))
    server = Server(work / "data").start()
    built = datetime.strptime(dataset.info["built_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    # The data set's last 7 days, as the date pickers (or a calendar click) ask for them.
    last_week = f"/?from={(built - timedelta(days=6)).date()}&to={built.date()}&tz=UTC"
    results: dict[str, object] = {"events": args.events}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            context = browser.new_context(viewport={"width": 1920, "height": 1080})
            for name, path in (("load_default_view", "/"), ("load_data_last_7_days", last_week)):
                times = []
                for _ in range(args.loads + 1):
                    page = context.new_page()
                    times.append(load_ms(page, server.url + path))
                    page.close()
                results[name] = summary(times[1:])  # the first load warms the server's caches
            page = context.new_page()
            load_ms(page, server.url + "/")
            page.wait_for_selector("#live[data-status=live]")
            delays = [live_delay_ms(page, server) for _ in range(args.live)]
            results["live_delay"] = summary(delays)
            browser.close()
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
