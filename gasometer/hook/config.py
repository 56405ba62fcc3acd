"""Where the hook sends, with which token, where it keeps its state, and how long it may take.

Read from the environment (`GASOMETER_URL`, `GASOMETER_TOKEN`, `GASOMETER_HOOK_HOME`,
`GASOMETER_HOOK_BUDGET_S`, `GASOMETER_HOOK_SPOOL_MAX_BYTES`), then from `config.toml` in the
hook home (written by `gasometer hooks install`), then defaults. The environment wins.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8000"
CONFIG_FILE = "config.toml"
SESSION_END_BUDGET_S = 0.9
DEFAULT_BUDGET_S = 1.5
DEFAULT_SPOOL_MAX_BYTES = 64 * 1024 * 1024
ENV_NAMES = {
    "url": "GASOMETER_URL",
    "token": "GASOMETER_TOKEN",
    "budget_s": "GASOMETER_HOOK_BUDGET_S",
    "spool_max_bytes": "GASOMETER_HOOK_SPOOL_MAX_BYTES",
}


@dataclass(frozen=True)
class HookConfig:
    """The hook's settings for one run."""

    home: Path
    url: str = DEFAULT_URL
    token: str | None = None
    budget_s: float = DEFAULT_BUDGET_S
    spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES

    @property
    def state_dir(self) -> Path:
        """Per-transcript read offsets."""
        return self.home / "state"

    @property
    def spool_dir(self) -> Path:
        """Events waiting for the server."""
        return self.home / "spool"


def hook_home(environ: Mapping[str, str]) -> Path:
    """`$GASOMETER_HOOK_HOME`, else `~/.gasometer/hook`."""
    explicit = environ.get("GASOMETER_HOOK_HOME")
    if explicit:
        return Path(explicit).expanduser()
    home = environ.get("HOME") or str(Path.home())
    return Path(home) / ".gasometer" / "hook"


def load_hook_config(environ: Mapping[str, str] | None = None) -> HookConfig:
    """The hook's settings; never raises (a bad value falls back to its default)."""
    environ = os.environ if environ is None else environ
    home = hook_home(environ)
    values = _read_file(home / CONFIG_FILE)
    for key, name in ENV_NAMES.items():
        raw = environ.get(name)
        if raw:
            values[key] = raw
    return HookConfig(
        home=home,
        url=str(values.get("url") or DEFAULT_URL).rstrip("/"),
        token=str(values["token"]) if values.get("token") else None,
        budget_s=_float(values.get("budget_s"), DEFAULT_BUDGET_S),
        spool_max_bytes=int(_float(values.get("spool_max_bytes"), DEFAULT_SPOOL_MAX_BYTES)),
    )


def _read_file(path: Path) -> dict[str, object]:
    try:
        text = path.read_text()
    except OSError:
        return {}
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return {}
    return dict(data.get("hook", data))


def _float(raw: object, default: float) -> float:
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
    return value if value > 0 else default
