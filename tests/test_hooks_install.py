"""`gasometer hooks install|uninstall` on Claude Code's settings.json."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest

from gasometer.cli import main

EXISTING: dict[str, Any] = {
    "model": "opus",
    "permissions": {"allow": ["Bash(git status)"], "deny": []},
    "env": {"GT_ROOT": "/home/u/gt"},
    "hooks": {
        "SessionStart": [
            {"matcher": "", "hooks": [{"type": "command", "command": "gt prime --hook"}]}
        ],
        "Stop": [
            {
                "matcher": "",
                "hooks": [
                    {"type": "command", "command": "gt costs record --session $GT_SESSION"},
                    {"type": "command", "command": "gasometer hook --gt-costs"},
                ],
            }
        ],
        "PreToolUse": [
            {"matcher": "Bash", "hooks": [{"type": "command", "command": "guard.sh", "timeout": 5}]}
        ],
    },
    "statusLine": {"type": "command", "command": "gt status-line"},
}
EVENTS = ("Stop", "SubagentStop", "SessionEnd")


def write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4))


def ours(settings: dict[str, Any], event: str) -> list[dict[str, Any]]:
    """Hooks under `event` whose command is exactly the transcript hook."""
    found = []
    for group in settings.get("hooks", {}).get(event, []):
        for hook in group["hooks"]:
            if hook.get("command", "").endswith("gasometer hook") or "url" in hook:
                found.append(hook)
    return found


def cli(*args: str) -> int:
    return main(["hooks", *args])


def test_install_keeps_every_other_setting_and_hook(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / ".claude" / "settings.json"
    write(path, EXISTING)
    path.chmod(0o640)
    assert cli("install", "--settings", str(path), "--command", "gasometer hook") == 0
    after = json.loads(path.read_text())
    for event in EVENTS:
        assert ours(after, event) == [
            {"type": "command", "command": "gasometer hook", "timeout": 10}
        ], event
    expected = copy.deepcopy(EXISTING)
    stripped = copy.deepcopy(after)
    for event in EVENTS:
        groups = stripped["hooks"][event]
        groups[:] = [g for g in groups if g["hooks"] != ours(after, event)]
        if not groups:
            del stripped["hooks"][event]
    assert stripped == expected
    assert os.stat(path).st_mode & 0o777 == 0o640
    backups = list(path.parent.glob("settings.json.gasometer-backup-*"))
    assert len(backups) == 1
    assert json.loads(backups[0].read_text()) == EXISTING
    assert "installed" in capsys.readouterr().out


def test_install_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    write(path, EXISTING)
    assert cli("install", "--settings", str(path), "--command", "gasometer hook") == 0
    once = path.read_text()
    assert cli("install", "--settings", str(path), "--command", "gasometer hook") == 0
    assert path.read_text() == once
    assert len(list(tmp_path.glob("settings.json.gasometer-backup-*"))) == 1


def test_reinstall_with_a_new_path_replaces_the_old_entry(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    write(path, EXISTING)
    cli("install", "--settings", str(path), "--command", "/old/venv/bin/gasometer hook")
    cli("install", "--settings", str(path), "--command", "/new/venv/bin/gasometer hook")
    after = json.loads(path.read_text())
    for event in EVENTS:
        assert [h["command"] for h in ours(after, event)] == ["/new/venv/bin/gasometer hook"]


def test_uninstall_removes_only_its_own_entries(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    write(path, EXISTING)
    cli("install", "--settings", str(path), "--command", "gasometer hook")
    cli("install", "--settings", str(path), "--http", "http://127.0.0.1:8000")
    assert cli("uninstall", "--settings", str(path)) == 0
    assert json.loads(path.read_text()) == EXISTING
    assert cli("uninstall", "--settings", str(path)) == 0
    assert json.loads(path.read_text()) == EXISTING


def test_our_hook_in_a_shared_group_is_removed_alone(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    mixed = copy.deepcopy(EXISTING)
    stop_hooks = mixed["hooks"]["Stop"][0]["hooks"]
    stop_hooks.append({"type": "command", "command": "/opt/gasometer/bin/gasometer hook"})
    write(path, mixed)
    cli("uninstall", "--settings", str(path))
    assert json.loads(path.read_text()) == EXISTING


def test_install_into_missing_file_and_uninstall(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "settings.json"
    assert cli("install", "--settings", str(path), "--command", "gasometer hook") == 0
    after = json.loads(path.read_text())
    assert set(after["hooks"]) == set(EVENTS)
    assert after["hooks"]["SessionEnd"] == [
        {"matcher": "", "hooks": [{"type": "command", "command": "gasometer hook", "timeout": 10}]}
    ]
    assert not list(path.parent.glob("*.gasometer-backup-*"))
    cli("uninstall", "--settings", str(path))
    assert json.loads(path.read_text()) == {"hooks": {}}


def test_http_hook_entry(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    cli("install", "--settings", str(path), "--http", "http://10.0.0.5:8000/")
    (hook,) = ours(json.loads(path.read_text()), "Stop")
    assert hook["type"] == "http"
    assert hook["url"] == "http://10.0.0.5:8000/api/hooks/claude"
    assert hook["headers"]["Authorization"] == "Bearer $GASOMETER_TOKEN"
    assert hook["headers"]["X-GT-Role"] == "$GT_ROLE"
    used = {v.split("$", 1)[1] for v in hook["headers"].values()}
    assert set(hook["allowedEnvVars"]) == used


def test_invalid_settings_file_is_left_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "settings.json"
    path.write_text('{"model": "opus",,}')
    assert cli("install", "--settings", str(path)) == 1
    assert path.read_text() == '{"model": "opus",,}'
    err = capsys.readouterr().err.strip()
    assert err.startswith("gasometer: error:") and "not valid JSON" in err
    assert len(err.splitlines()) == 1


def test_default_path_and_stored_client_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    monkeypatch.delenv("GASOMETER_HOOK_HOME", raising=False)
    assert cli("install", "--url", "http://gm:8000", "--token", "s3cret") == 0
    settings = json.loads((tmp_path / ".claude" / "settings.json").read_text())
    assert set(settings["hooks"]) == set(EVENTS)
    config = tmp_path / ".gasometer" / "hook" / "config.toml"
    assert os.stat(config).st_mode & 0o777 == 0o600
    from gasometer.hook.config import load_hook_config

    loaded = load_hook_config({"HOME": str(tmp_path)})
    assert (loaded.url, loaded.token) == ("http://gm:8000", "s3cret")
    loaded = load_hook_config({"HOME": str(tmp_path), "GASOMETER_TOKEN": "env-wins"})
    assert loaded.token == "env-wins"


def test_default_command_is_recognised_as_ours(tmp_path: Path) -> None:
    from gasometer.hook.install import is_ours

    path = tmp_path / "settings.json"
    write(path, EXISTING)
    assert cli("install", "--settings", str(path)) == 0
    (hook,) = ours(json.loads(path.read_text()), "SessionEnd")
    assert hook["command"].endswith("gasometer hook") and is_ours(hook)
    assert not is_ours({"type": "command", "command": "gasometer hook --gt-costs"})
    assert not is_ours({"type": "command", "command": "notgasometer hook"})
    assert is_ours({"type": "command", "command": "'/opt/my tools/gasometer' hook"})
    cli("uninstall", "--settings", str(path))
    assert json.loads(path.read_text()) == EXISTING
