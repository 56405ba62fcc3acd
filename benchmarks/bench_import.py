"""Import speed on generated transcripts, and a daily report after import, against ccusage
re-reading everything (ccusage from `make tools`, else CCUSAGE_BIN or PATH).

Size with GASOMETER_BENCH_MB (default 100 MB of transcripts). Run with `make bench`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gasometer.config import load_settings
from gasometer.importer.fake import Corpus, generate
from gasometer.importer.run import Importer
from gasometer.importer.transcript import read_transcript
from gasometer.query import stats
from gasometer.runtime import Gasometer

MB = 1e6
BENCH_MB = float(os.environ.get("GASOMETER_BENCH_MB", "100"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    root = tmp_path_factory.mktemp("claude") / "projects"
    sessions = max(10, int(BENCH_MB / 0.3))
    return generate(root, sessions=sessions, responses=30, days=30, seed=2)


def _mb_per_s(nbytes: int, seconds: float) -> float:
    return round(nbytes / MB / seconds, 1)


def test_parse_only(benchmark: pytest.FixtureRequest, corpus: Corpus) -> None:
    """The parse loop alone (msgspec decode, largest usage per response, pricing)."""

    def parse() -> int:
        return sum(read_transcript(f).bytes_read for f in corpus.files)

    began = time.perf_counter()
    nbytes = benchmark.pedantic(parse, rounds=3, iterations=1)  # type: ignore[attr-defined]
    elapsed = (time.perf_counter() - began) / 3
    benchmark.extra_info.update(mb=round(nbytes / MB, 1), mb_per_s=_mb_per_s(nbytes, elapsed))  # type: ignore[attr-defined]


def test_full_import(benchmark: pytest.FixtureRequest, corpus: Corpus, tmp_path: Path) -> None:
    """Open a fresh data directory, import everything durably, close (flush to Parquet)."""
    runs: list[tuple[int, float]] = []

    def setup() -> tuple[tuple[Path], dict[str, object]]:
        target = tmp_path / f"data{len(runs)}"
        shutil.rmtree(target, ignore_errors=True)
        return (target,), {}

    def run(target: Path) -> None:
        began = time.perf_counter()
        gm = Gasometer.open(load_settings({"data_dir": target}, environ={}))
        try:
            progress = Importer(gm).run([corpus.root])
        finally:
            gm.close()
        runs.append((progress.bytes_done, time.perf_counter() - began))

    benchmark.pedantic(run, setup=setup, rounds=3)  # type: ignore[attr-defined]
    best = max(_mb_per_s(n, s) for n, s in runs)
    benchmark.extra_info.update(mb=round(runs[0][0] / MB, 1), best_mb_per_s=best)  # type: ignore[attr-defined]
    print(f"\nimport: {runs[0][0] / MB:.0f} MB, best {best} MB/s over {len(runs)} runs")


@pytest.fixture(scope="module")
def imported(corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gasometer]:
    data = tmp_path_factory.mktemp("imported")
    gm = Gasometer.open(load_settings({"data_dir": data}, environ={}))
    Importer(gm).run([corpus.root])
    gm.store.flush(force=True)
    try:
        yield gm
    finally:
        gm.close()


def test_daily_report_after_import(benchmark: pytest.FixtureRequest, imported: Gasometer) -> None:
    """A 60-day daily report per role from the store (target: under 100 ms)."""
    filters = stats.Filters(start="2026-03-01", end="2026-05-01", tz="UTC")
    rows = benchmark(stats.daily, imported.engine, filters)  # type: ignore[operator]
    assert rows


def _ccusage() -> str | None:
    pinned = Path(__file__).resolve().parent.parent / "tools" / "node_modules" / ".bin" / "ccusage"
    if pinned.exists():
        return str(pinned)
    return os.environ.get("CCUSAGE_BIN") or shutil.which("ccusage")


@pytest.mark.skipif(_ccusage() is None, reason="ccusage not installed")
def test_ccusage_daily(benchmark: pytest.FixtureRequest, corpus: Corpus) -> None:
    """ccusage 18 re-reading every transcript for the same daily report."""
    env = {**os.environ, "CLAUDE_CONFIG_DIR": str(corpus.root.parent)}
    cmd = [str(_ccusage()), "daily", "--json", "--mode", "calculate", "--offline",
           "--timezone", "UTC"]  # fmt: skip

    def run() -> None:
        subprocess.run(cmd, env=env, capture_output=True, check=True, timeout=600)

    benchmark.pedantic(run, rounds=2, iterations=1)  # type: ignore[attr-defined]
