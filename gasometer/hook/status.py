"""`gasometer hooks status`: what the hook on this machine holds and last complained about."""

from __future__ import annotations

import msgspec

from gasometer.hook.config import HookConfig
from gasometer.hook.run import LOG_FILE
from gasometer.hook.spool import Spool

LOG_TAIL = 5


class HookStatus(msgspec.Struct):
    """The hook's configuration, its spool, and the end of its log."""

    home: str
    url: str
    token_set: bool
    spool_batches: int
    spool_bytes: int
    rejected_batches: int
    transcripts_tracked: int
    last_log: list[str]


def hook_status(config: HookConfig) -> HookStatus:
    """Read the hook home without changing it."""
    spool = Spool(config.spool_dir, config.spool_max_bytes)
    rejected = config.spool_dir / "rejected"
    try:
        log_lines = (config.home / LOG_FILE).read_text(errors="replace").splitlines()
    except OSError:
        log_lines = []
    return HookStatus(
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
