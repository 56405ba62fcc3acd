"""Where the server may read transcripts from: the import roots.

A token holder names files (`POST /api/import`, a Claude Code http hook); the server reads
only inside its roots, checked on the fully resolved path (symlinks and `..` followed)
before anything is listed or opened, so a refusal can tell nothing about what lies
outside. By default the roots are the server user's Claude `projects/` folders.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from gasometer.errors import GasometerError

MAX_PATH_CHARS = 4096


class OutsideRoots(GasometerError):
    """A path the server will not read: outside every import root (or not a usable path)."""

    status = 403


def claude_project_roots(environ: Mapping[str, str]) -> list[Path]:
    """The `projects/` folders of every Claude config directory of this user:
    each `CLAUDE_CONFIG_DIR` entry (comma-separated), `~/.claude`, `~/.config/claude`."""
    dirs = [d.strip() for d in environ.get("CLAUDE_CONFIG_DIR", "").split(",") if d.strip()]
    home = Path(environ.get("HOME") or Path.home())
    dirs += [str(home / ".claude"), str(home / ".config" / "claude")]
    return [Path(d).expanduser() / "projects" for d in dirs]


def import_roots(
    configured: Sequence[Path], environ: Mapping[str, str] | None = None
) -> list[Path]:
    """The resolved roots: the configured `import_roots`, else the Claude projects folders."""
    env = os.environ if environ is None else environ
    roots = list(configured) or claude_project_roots(env)
    return list(dict.fromkeys(Path(os.path.realpath(r.expanduser())) for r in roots))


def resolve(path: str | Path) -> Path | None:
    """`path` made absolute with symlinks and `..` resolved; None if it cannot be a path."""
    text = str(path)
    if not text or len(text) > MAX_PATH_CHARS or "\x00" in text:
        return None
    try:
        return Path(os.path.realpath(Path(text).expanduser()))
    except (OSError, ValueError, RuntimeError):
        return None


def is_under(path: str | Path, roots: Sequence[Path]) -> bool:
    """Whether `path`, resolved, lies inside one of the (resolved) `roots`."""
    real = resolve(path)
    return real is not None and any(real.is_relative_to(root) for root in roots)


def check_under(paths: Sequence[str], roots: Sequence[Path], what: str = "paths") -> list[Path]:
    """Every path resolved, or OutsideRoots naming only its index (nothing found on disk)."""
    out = []
    for i, raw in enumerate(paths):
        real = resolve(raw)
        if real is None or not any(real.is_relative_to(root) for root in roots):
            raise OutsideRoots(
                f"{what}[{i}]: not inside an import root (setting import_roots; default: "
                "the server user's Claude projects folders)"
            )
        out.append(real)
    return out
