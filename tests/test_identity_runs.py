"""The identity index beyond the ledger's table: sealed, merged runs still deduplicate
every identity, keep each event_id's latest version, and survive restarts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from gasometer.model import CostEvent
from gasometer.runtime import Gasometer
from gasometer.store import identity_runs
from tests.conftest import make_settings

DAY0 = datetime(2026, 9, 1, tzinfo=UTC)


def events(start: int, count: int) -> list[CostEvent]:
    out = []
    for n in range(start, start + count):
        ended = DAY0 + timedelta(minutes=n)
        event_id = None if n % 5 == 0 else f"req-{n}"
        out.append(
            CostEvent(
                session_id=f"s{n % 7}",
                cost_usd=0.25,
                ended_at=ended,
                event_id=event_id,
                output_tokens=10,
            )
        )
    return out


def flush_and_maintain(gm: Gasometer) -> None:
    gm.store.flush()
    gm.store._maintain_identities()


def test_sealed_and_merged_runs_keep_every_identity(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", identity_seal_rows=40)
    gm = Gasometer.open(settings, background=False)
    try:
        for start in range(0, 1200, 60):
            assert gm.ingest(events(start, 60)).accepted == 60
            flush_and_maintain(gm)
        index = gm.store.identities
        assert index.runs, "nothing was sealed"
        assert len(index.runs) < identity_runs.FAN_IN, "similar runs were not merged"
        assert max(len(run) for run in index.runs) > 40 * identity_runs.FAN_IN - 1
        for start in range(0, 1200, 300):
            assert gm.ingest(events(start, 300)).accepted == 0
        grown = events(7, 1)[0]
        bigger = CostEvent(**{**_fields(grown), "cost_usd": 1.0, "output_tokens": 40})
        assert gm.ingest([bigger]).accepted == 1
        assert gm.ingest([bigger]).accepted == 0
    finally:
        gm.close()
    stray = tmp_path / "data" / "identity" / "run-1.keys.npy"
    stray.write_bytes(b"left by a crash")
    gm = Gasometer.open(settings, background=False)
    try:
        assert not stray.exists()
        assert gm.ingest(events(0, 1200)).accepted == 0
        gm.store.flush()
        table = gm.store.snapshot()
        assert table.pending.num_rows == 0
        rows = gm.engine.execute(
            "SELECT count(*) FILTER (WHERE revision = 0), sum(cost_usd), sum(output_tokens) "
            "FROM events"
        ).rows[0]
        assert rows == (1200, 1200 * 0.25 + 0.75, 1200 * 10 + 30)
    finally:
        gm.close()


def _fields(event: CostEvent) -> dict[str, object]:
    return {f: getattr(event, f) for f in event.__struct_fields__}
