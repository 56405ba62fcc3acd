"""Where the files shipped beside the code live: queries/*.sql and web/.

In a checkout (editable install) they are the top-level folders; in a wheel they are
packaged as gasometer/_queries and gasometer/_web.
"""

from __future__ import annotations

import functools
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _shipped(name: str) -> Path:
    checkout = _PACKAGE.parent / name
    return checkout if checkout.is_dir() else _PACKAGE / f"_{name}"


QUERIES_DIR = _shipped("queries")
WEB_DIR = _shipped("web")


@functools.cache
def query_text(name: str) -> str:
    """The SQL of queries/<name>.sql."""
    return (QUERIES_DIR / f"{name}.sql").read_text()


def query_names() -> list[str]:
    """Every named query shipped in queries/, sorted."""
    return sorted(p.stem for p in QUERIES_DIR.glob("*.sql"))


def query_header(name: str) -> str:
    """The leading comment of a named query: what it answers and its parameters."""
    lines = []
    for line in query_text(name).splitlines():
        if not line.startswith("--"):
            break
        lines.append(line[2:].strip())
    return "\n".join(lines)
