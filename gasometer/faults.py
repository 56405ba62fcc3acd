"""Pause points: named places where a test can stop a process to kill it there.

A test that must SIGKILL a process at one exact moment (say, after compaction wrote its
new file and before it is published) starts the process with `GASOMETER_PAUSE_AT=<name>`.
When the process reaches `pause_point(<name>, data_dir)` it creates the marker file
`<data_dir>/.paused-<name>` and blocks forever; the test waits for the marker, then kills.
Without the variable a pause point costs one environment lookup.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

PAUSE_ENV = "GASOMETER_PAUSE_AT"


def marker(data_dir: Path, name: str) -> Path:
    """The file a process paused at `name` creates in `data_dir`."""
    return data_dir / f".paused-{name}"


def pause_point(name: str, data_dir: Path) -> None:
    """Block forever here when `GASOMETER_PAUSE_AT` names this point (tests only)."""
    if os.environ.get(PAUSE_ENV) != name:
        return
    path = marker(data_dir, name)
    with open(path, "w") as f:
        f.write(f"{os.getpid()}\n")
        f.flush()
        os.fsync(f.fileno())
    threading.Event().wait()
