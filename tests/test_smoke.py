"""The server starts, accepts an event and counts it."""

from __future__ import annotations

import httpx

from tests.conftest import ServerProcess


def test_ingest_then_read(server: ServerProcess, auth: dict[str, str]) -> None:
    event = {"session_id": "ga-nux", "cost_usd": 1.25, "ended_at": "2026-11-20T10:00:00Z"}
    response = httpx.post(server.url + "/api/ingest", json=event, headers=auth)
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 1, "duplicates": 0}
    days = httpx.get(server.url + "/api/stats/daily").json()["days"]
    assert [(d["date"], d["role"], d["total_usd"]) for d in days] == [
        ("2026-11-20", "polecat", 1.25)
    ]
