"""`gasometer hooks install|uninstall|status`: Gasometer's entries in Claude Code's
settings files (every file of a comma-separated CLAUDE_CONFIG_DIR, or `--settings`)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import msgspec

from gasometer.hook import install as inst
from gasometer.hook.config import hook_home, load_hook_config
from gasometer.hook.status import hook_status

NO_TOKEN_WARNING = (
    "gasometer: warning: no ingest token for the hook (no --token, none stored, "
    "GASOMETER_TOKEN unset): the server will refuse every hook run with 401; create one "
    "with `gasometer token` on the server and run `gasometer hooks install --token …`"
)
NO_HTTP_TOKEN_WARNING = (
    "gasometer: warning: the http hook sends $GASOMETER_TOKEN, which is not set here: "
    "set it in the agents' environment or the server will refuse every hook run with 401"
)


def run_hooks(args: argparse.Namespace) -> int:
    """Install, remove or show Gasometer's hook entries; warn when runs would be refused."""
    paths = [args.settings] if args.settings else inst.default_settings_paths(os.environ)
    if args.action == "status":
        report = hook_status(load_hook_config(os.environ), paths)
        print(msgspec.json.format(msgspec.json.encode(report)).decode())
        return 0
    if args.action == "uninstall":
        for path in paths:
            change = inst.uninstall(path)
            print(f"{path}: removed {change.removed} Gasometer hook(s)" + _backup(change.backup))
        return 0
    hook = (
        inst.http_hook(args.http)
        if args.http
        else inst.command_hook(args.hook_command or inst.default_command())
    )
    for path in paths:
        change = inst.install(path, hook)
        what = "installed" if change.changed else "already installed"
        events = ", ".join(inst.EVENTS)
        print(f"{path}: Gasometer hook {what} for {events}" + _backup(change.backup))
    stored = inst.write_client_config(hook_home(os.environ), args.url, args.token)
    if stored:
        print(f"hook settings stored in {stored}")
    _warn_without_token(bool(args.http))
    return 0


def _warn_without_token(http: bool) -> None:
    if http:
        if not os.environ.get("GASOMETER_TOKEN"):
            print(NO_HTTP_TOKEN_WARNING, file=sys.stderr)
    elif not load_hook_config(os.environ).token:
        print(NO_TOKEN_WARNING, file=sys.stderr)


def _backup(backup: Path | None) -> str:
    return f" (backup: {backup})" if backup else ""
