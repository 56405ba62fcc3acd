"""`gasometer hooks status`: what the hook on this machine holds and last complained about."""

from __future__ import annotations

from pathlib import Path

import msgspec

from gasometer.hook.config import HookConfig
from gasometer.hook.install import installed_events
from gasometer.hook.run import LOG_FILE
from gasometer.hook.spool import Spool

LOG_TAIL = 5


class SettingsFile(msgspec.Struct):
    """One Claude Code settings file and the events it runs Gasometer's hook on."""

    path: str
    exists: bool
    hook_events: list[str]


class HookStatus(msgspec.Struct):
    """The hook's configuration, its spool, and the end of its log."""

    settings: list[SettingsFile]
    installed: bool
    home: str
    url: str
    token_set: bool
    spool_batches: int
    spool_bytes: int
    rejected_batches: int
    transcripts_tracked: int
    last_log: list[str]


def hook_status(config: HookConfig, settings_paths: list[Path]) -> HookStatus:
    """Read the hook home and the settings files without changing them."""
    files = [
        SettingsFile(str(path), path.exists(), installed_events(path)) for path in settings_paths
    ]
    spool = Spool(config.spool_dir, config.spool_max_bytes)
    rejected = config.spool_dir / "rejected"
    try:
        log_lines = (config.home / LOG_FILE).read_text(errors="replace").splitlines()
    except OSError:
        log_lines = []
    return HookStatus(
        settings=files,
        installed=any(f.hook_events for f in files),
        home=str(config.home),
        url=config.url,
        token_set=bool(config.token),
        spool_batches=len(spool.pending()),
        spool_bytes=spool.size(),
        rejected_batches=len(list(rejected.glob("*.ndjson"))) if rejected.is_dir() else 0,
        transcripts_tracked=len(list(config.state_dir.glob("*.json")))
        if config.state_dir.is_dir()
        else 0,
        last_log=log_lines[-LOG_TAIL:],
    )
