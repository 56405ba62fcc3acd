"""The cached benchmark data set: `--events` demo events, built once and reused.

Built with `gasometer demo --no-serve` (the real ingest path, then a full compaction)
under `$GASOMETER_BENCH_DIR` (default: the system's temp directory). A data set built
by other storage or ingest code (a different on-disk format) is rebuilt. Build one ahead
of a benchmark run with `python -m benchmarks.dataset --events 10000000`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gasometer

TOKEN = "bench-token-0123456789abcdef"
SEED = 7
DAYS = 60


@dataclass
class Dataset:
    """A cached demo data set: where it lives and how it was built."""

    root: Path
    events: int
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"


def code_version() -> str:
    """A digest of the code that decides the on-disk format (store and ingest)."""
    package = Path(gasometer.__file__).parent
    digest = hashlib.sha256()
    for path in sorted([*package.glob("store/*.py"), *package.glob("ingest/*.py")]):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def server_env() -> dict[str, str]:
    """Our settings only: no GASOMETER_* of the developer leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GASOMETER_")}
    env.update({"GASOMETER_TOKENS": TOKEN, "GASOMETER_LOG_LEVEL": "warning"})
    return env


def ensure_dataset(events: int) -> Dataset:
    """The data set of `events` demo events, built now unless a matching one exists."""
    base = Path(os.environ.get("GASOMETER_BENCH_DIR", tempfile.gettempdir()))
    found = Dataset(base / f"gasometer-bench-{events}-seed{SEED}", events)
    marker = found.root / "complete.json"
    info = json.loads(marker.read_text()) if marker.exists() else {}
    if info.get("code") != code_version():
        info = _build(found)
        marker.write_text(json.dumps(info))
    found.info = info
    return found


def _build(found: Dataset) -> dict[str, Any]:
    shutil.rmtree(found.data_dir, ignore_errors=True)
    found.root.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "gasometer", "demo", "--no-serve"]
    cmd += ["--data-dir", str(found.data_dir), "--events", str(found.events)]
    cmd += ["--seed", str(SEED), "--days", str(DAYS)]
    started = time.monotonic()
    subprocess.run(cmd, check=True, env=server_env(), stdout=subprocess.DEVNULL)
    seconds = time.monotonic() - started
    return {
        "events": found.events,
        "seed": SEED,
        "days": DAYS,
        "code": code_version(),
        "build_seconds": round(seconds),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main() -> None:
    """Build (or find) the data set and print where it is and how long it took."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    found = ensure_dataset(args.events)
    print(json.dumps({"data_dir": str(found.data_dir), **found.info}))


if __name__ == "__main__":
    main()
