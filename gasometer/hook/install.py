"""`gasometer hooks install|uninstall`: register the hook in Claude Code's settings.json.

Only the `hooks.Stop`, `hooks.SubagentStop` and `hooks.SessionEnd` lists are touched, and
in them only Gasometer's own entries (a command running `gasometer hook`, or an http hook
posting to `/api/hooks/claude`). Every other setting and hook is kept as it was. The file
is backed up before each change and replaced atomically; running install twice changes
nothing the second time.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gasometer.errors import GasometerError
from gasometer.hook.files import write_atomic

EVENTS = ("Stop", "SubagentStop", "SessionEnd")
HTTP_PATH = "/api/hooks/claude"
COMMAND_TIMEOUT_S = 10
HTTP_TIMEOUT_S = 5
HTTP_HEADERS = {
    "Authorization": "Bearer $GASOMETER_TOKEN",
    "X-GT-Role": "$GT_ROLE",
    "X-GT-Rig": "$GT_RIG",
    "X-GT-Polecat": "$GT_POLECAT",
    "X-GT-Crew": "$GT_CREW",
    "X-GT-Session": "$GT_SESSION",
    "X-GT-Work-Bead": "$GT_WORK_BEAD",
}
_OURS = re.compile(r"(^|[/\s\"'])gasometer(\.exe)?[\"']?\s+hook\s*$")


class SettingsError(GasometerError):
    """Claude's settings.json cannot be read or written safely."""


@dataclass
class Change:
    """What install or uninstall did to the settings file."""

    path: Path
    changed: bool
    backup: Path | None = None
    added: int = 0
    removed: int = 0


def default_settings_paths(environ: Mapping[str, str]) -> list[Path]:
    """`settings.json` in every entry of a comma-separated `$CLAUDE_CONFIG_DIR` (Claude
    Code reads each), else `~/.claude/settings.json`."""
    config_dirs = [d.strip() for d in environ.get("CLAUDE_CONFIG_DIR", "").split(",")]
    paths = [Path(d).expanduser() / "settings.json" for d in config_dirs if d]
    if paths:
        return list(dict.fromkeys(paths))
    home = environ.get("HOME") or str(Path.home())
    return [Path(home) / ".claude" / "settings.json"]


def installed_events(path: Path) -> list[str]:
    """The hook events under which `path` holds a Gasometer hook (read only)."""
    _, settings = _load(path)
    hooks = settings.get("hooks")
    if not isinstance(hooks, dict):
        return []
    found = []
    for event in EVENTS:
        groups = hooks.get(event)
        for group in groups if isinstance(groups, list) else []:
            inner = group.get("hooks") if isinstance(group, dict) else None
            if isinstance(inner, list) and any(is_ours(h) for h in inner):
                found.append(event)
                break
    return found


def default_command() -> str:
    """`<full path of this gasometer> hook`: agents may not share the installing shell's
    PATH (a venv, pipx); plain `gasometer hook` when no executable can be found."""
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is not None and script.name == "gasometer" and script.exists():
        return f"{shlex.quote(str(script.absolute()))} hook"
    found = shutil.which("gasometer")
    return f"{shlex.quote(found)} hook" if found else "gasometer hook"


def is_ours(hook: Any) -> bool:
    """A hook entry Gasometer installed: a command ending in `gasometer hook` (any path),
    or an http hook to our endpoint. `gasometer hook --gt-costs` lines are the user's own."""
    if not isinstance(hook, dict):
        return False
    if hook.get("type") == "command":
        return bool(_OURS.search(str(hook.get("command", ""))))
    if hook.get("type") == "http":
        return str(hook.get("url", "")).rstrip("/").endswith(HTTP_PATH)
    return False


def command_hook(command: str) -> dict[str, Any]:
    """The settings entry that runs the hook command."""
    return {"type": "command", "command": command, "timeout": COMMAND_TIMEOUT_S}


def http_hook(server_url: str) -> dict[str, Any]:
    """The settings entry that lets Claude Code post its hook input to the server itself,
    with the agent's Gas Town identity in headers."""
    return {
        "type": "http",
        "url": server_url.rstrip("/") + HTTP_PATH,
        "timeout": HTTP_TIMEOUT_S,
        "headers": dict(HTTP_HEADERS),
        "allowedEnvVars": sorted({v.split("$", 1)[1] for v in HTTP_HEADERS.values()}),
    }


def install(path: Path, hook: dict[str, Any]) -> Change:
    """Make `hook` Gasometer's one entry for each event (replacing an older one of ours)."""
    original, settings = _load(path)
    removed = _remove_ours(settings)
    hooks = settings.setdefault("hooks", {})
    if not isinstance(hooks, dict):
        raise SettingsError(f"{path}: `hooks` is not an object; fix it by hand first")
    for event in EVENTS:
        groups = hooks.setdefault(event, [])
        if not isinstance(groups, list):
            raise SettingsError(f"{path}: `hooks.{event}` is not a list; fix it by hand first")
        groups.append({"matcher": "", "hooks": [dict(hook)]})
    change = _save(path, original, settings)
    if change.changed:
        change.added, change.removed = len(EVENTS), removed
    return change


def uninstall(path: Path) -> Change:
    """Remove Gasometer's entries and nothing else."""
    original, settings = _load(path)
    removed = _remove_ours(settings)
    change = _save(path, original, settings)
    change.removed = removed
    return change


def _remove_ours(settings: dict[str, Any]) -> int:
    hooks = settings.get("hooks")
    if not isinstance(hooks, dict):
        return 0
    removed = 0
    for event in EVENTS:
        groups = hooks.get(event)
        if not isinstance(groups, list):
            continue
        kept_groups = []
        for group in groups:
            inner = group.get("hooks") if isinstance(group, dict) else None
            if not isinstance(inner, list):
                kept_groups.append(group)
                continue
            kept = [h for h in inner if not is_ours(h)]
            removed += len(inner) - len(kept)
            if kept or not inner:
                kept_groups.append({**group, "hooks": kept})
        if kept_groups or not groups:
            hooks[event] = kept_groups
        else:
            del hooks[event]
    return removed


def _load(path: Path) -> tuple[Any, dict[str, Any]]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None, {}
    except OSError as exc:
        raise SettingsError(f"cannot read {path}: {exc.strerror}") from exc
    if not text.strip():
        return None, {}
    try:
        original = json.loads(text)
    except ValueError as exc:
        raise SettingsError(f"{path} is not valid JSON ({exc}); left untouched") from exc
    if not isinstance(original, dict):
        raise SettingsError(f"{path} does not hold a JSON object; left untouched")
    return original, json.loads(text)


def _save(path: Path, original: Any, settings: dict[str, Any]) -> Change:
    if settings == (original if original is not None else {}):
        return Change(path, changed=False)
    backup = None
    if path.exists():
        stamp = time.strftime("%Y%m%dT%H%M%S")
        backup = path.with_name(f"{path.name}.gasometer-backup-{stamp}")
        n = 1
        while backup.exists():
            backup = path.with_name(f"{path.name}.gasometer-backup-{stamp}-{n}")
            n += 1
        shutil.copy2(path, backup)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    write_atomic(path, (json.dumps(settings, indent=2) + "\n").encode(), durable=True)
    os.chmod(path, mode)
    return Change(path, changed=True, backup=backup)


def write_client_config(home: Path, url: str | None, token: str | None) -> Path | None:
    """Store the server URL and token for the hook in `<hook home>/config.toml` (mode 600),
    so agents need no GASOMETER_* variables; None when there is nothing to store."""
    if not url and not token:
        return None
    lines = ["[hook]"]
    if url:
        lines.append(f"url = {json.dumps(url)}")
    if token:
        lines.append(f"token = {json.dumps(token)}")
    home.mkdir(parents=True, exist_ok=True)
    path = home / "config.toml"
    write_atomic(path, ("\n".join(lines) + "\n").encode(), durable=True)
    os.chmod(path, 0o600)
    return path
