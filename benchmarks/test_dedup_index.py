"""The cost of dedup forever: the ledger's identity index at `--events` identities.

Builds (once, cached under $TMPDIR) an index of N random 12-byte keys the way the store
does: flushes publish chunks of 100,000 into the ledger's table, the background step seals
the table into runs and merges similar runs (store/identity_runs.py). Then measures what
ingest and flushes pay at that size:
- looking up the identities of one 1,000-event request (half known, half new);
- publishing one flush's 10,000 new identities into a table half full (one durable
  transaction);
- the index's size on disk (ledger plus runs).
`make bench` runs it at 1 M, `make bench-10m` at 10 M; `--events 100000000` for 100 M.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gasometer.store import ledger
from gasometer.store.identity_runs import FAN_IN, SEAL_ROWS, IdentityIndex
from gasometer.store.identity_runs import ROW as RUN_ROW
from gasometer.store.ledger import IdentityRow

from .conftest import record

CHUNK = 100_000
REQUEST = 1_000
FLUSH = 10_000
ROW = IdentityRow(0, (0.01, 100, 200, 0, 0))


DIRECT_FROM = 50_000_000
"""From this size on, runs are written directly in their steady-state shape (one large
run, then FAN_IN - 1 runs of each smaller level: the most runs a lookup ever probes)
instead of through a billion seals and merges."""


def build_index(path: Path, size: int) -> None:
    """Write `size` random identities as flushes do, unless the cache has them already."""
    done = path / "built"
    if done.exists():
        return
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    if size >= DIRECT_FROM:
        started = time.perf_counter()
        build_steady_state(path, size)
        done.write_text(f"{time.perf_counter() - started:.1f} (runs written directly)")
        return
    conn = ledger.connect(path)
    index = IdentityIndex(path / "identity", conn)
    rng = random.Random(11)
    started = time.perf_counter()
    for start in range(0, size, CHUNK):
        keys = {rng.randbytes(12): ROW for _ in range(min(CHUNK, size - start))}
        with ledger.transaction(conn):
            ledger.save_identities(conn, keys)
        index.hot_rows += len(keys)
        index.maintain(conn)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    done.write_text(f"{time.perf_counter() - started:.1f}")


def build_steady_state(path: Path, size: int) -> None:
    """Runs of random identities shaped as sealing and merging leave them at `size`."""
    conn = ledger.connect(path)
    sizes = []
    level = SEAL_ROWS
    while level * FAN_IN <= size:
        sizes += [level] * (FAN_IN - 1)
        level *= FAN_IN
    sizes.insert(0, size - sum(sizes))
    rng = np.random.default_rng(11)
    for seq, rows in enumerate(sizes, start=1):
        name = f"run-{seq:04d}"
        hi = np.sort(rng.integers(0, 2**63, size=rows, dtype=np.uint64))
        table = np.zeros(rows, dtype=RUN_ROW)
        table["lo"] = rng.integers(0, 2**32, size=rows, dtype=np.uint32)
        table["cost"] = 0.01
        table["tokens"] = (100, 200, 0, 0)
        (path / "identity").mkdir(exist_ok=True)
        np.save(path / "identity" / f"{name}.keys.npy", hi)
        np.save(path / "identity" / f"{name}.rows.npy", table)
        with ledger.transaction(conn):
            conn.execute("INSERT INTO identity_runs VALUES (?, ?, ?)", (name, seq, rows))
    conn.close()


@pytest.fixture(scope="module")
def index(request: pytest.FixtureRequest) -> Path:
    size: int = request.config.getoption("--events")
    path = Path(tempfile.gettempdir()) / f"gasometer-dedup-{size}"
    build_index(path, size)
    return path


def known_keys(conn: Any, runs: IdentityIndex, rng: random.Random) -> list[bytes]:
    """Keys the index holds: from its runs (and its table when nothing is sealed yet)."""
    keys = []
    for run in runs.runs:
        picks = [rng.randrange(len(run)) for _ in range(REQUEST)]
        for pick in picks:
            hi = int(run.hi[pick]).to_bytes(8, "big")
            keys.append(hi + int(run.rows[pick]["lo"]).to_bytes(4, "big"))
    return keys or [r[0] for r in conn.execute("SELECT key FROM identity LIMIT 100000")]


def test_dedup_lookup_per_request(benchmark: Any, index: Path, request: Any) -> None:
    size = request.config.getoption("--events")
    conn = ledger.connect(index)
    runs = IdentityIndex(index / "identity", conn)
    rng = random.Random(5)
    known = sorted(set(known_keys(conn, runs, rng)))
    batches = [
        rng.sample(known, REQUEST // 2) + [rng.randbytes(12) for _ in range(REQUEST // 2)]
        for _ in range(50)
    ]
    found: list[int] = []

    def lookup() -> None:
        keys = batches[len(found) % len(batches)]
        found.append(len(runs.lookup(conn, keys)))

    benchmark.pedantic(lookup, rounds=50, iterations=1)
    assert min(found) == REQUEST // 2
    stats = benchmark.stats.stats
    disk = sum(p.stat().st_size for p in index.rglob("*") if p.is_file())
    record(
        f"dedup lookup, {REQUEST} ids @ {size:,}",
        median_ms=round(stats.median * 1000, 2),
        p95_ms=round(sorted(stats.data)[int(len(stats.data) * 0.95) - 1] * 1000, 2),
        runs=len(runs.runs),
        index_mib=round(disk / 2**20, 1),
        bytes_per_identity=round(disk / size, 1),
        build_s=(index / "built").read_text(),
    )
    conn.close()


def test_dedup_publish_per_flush(benchmark: Any, index: Path, request: Any) -> None:
    size = request.config.getoption("--events")
    conn = ledger.connect(index)
    rng = random.Random(time.time_ns())
    with ledger.transaction(conn):
        ledger.save_identities(conn, {rng.randbytes(12): ROW for _ in range(SEAL_ROWS // 2)})

    def publish() -> None:
        keys = {rng.randbytes(12): ROW for _ in range(FLUSH)}
        with ledger.transaction(conn):
            ledger.save_identities(conn, keys)

    benchmark.pedantic(publish, rounds=10, iterations=1)
    stats = benchmark.stats.stats
    record(
        f"dedup publish, {FLUSH} ids @ {size:,}",
        median_ms=round(stats.median * 1000, 1),
        max_ms=round(stats.max * 1000, 1),
    )
    conn.execute("DELETE FROM identity")
    conn.close()
