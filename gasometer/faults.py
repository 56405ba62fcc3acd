"""Pause points: let a test stop the process at an exact moment (then SIGKILL it there).

`GASOMETER_PAUSE_AT=<name>` makes `pause_point(name)` write a marker file
`<GASOMETER_PAUSE_DIR or the working directory>/.paused-<name>` and block forever, so a
crash test kills the process at that point instead of hoping a sleep lands there.
Unset (always, outside tests), it costs one dictionary lookup.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path


def pause_point(name: str) -> None:
    """Block here forever if the environment asks to pause at `name`."""
    if os.environ.get("GASOMETER_PAUSE_AT") != name:
        return
    marker = Path(os.environ.get("GASOMETER_PAUSE_DIR", ".")) / f".paused-{name}"
    marker.write_text(str(os.getpid()))
    threading.Event().wait()
