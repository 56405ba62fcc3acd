"""Output for people at a terminal: one console that never cuts a table when piped."""

from __future__ import annotations

import sys

from rich.console import Console

PIPED_WIDTH = 100_000
"""Width of a console writing to a pipe or file: a pipe has no width to fit tables into."""


def console() -> Console:
    """A rich console: at a terminal, its width; piped, wide enough that no column is ever
    shrunk to `r…`, and without colours."""
    if sys.stdout.isatty():
        return Console()
    return Console(width=PIPED_WIDTH, no_color=True, highlight=False)
