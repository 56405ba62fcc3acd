"""The command line as a new user meets it: help that says what the tool is, defaults in
help, settings files found where Claude Code reads them, warnings before silent failures,
and every mistake answered with one line (never a traceback, never a created directory)."""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from gasometer.hook.install import EVENTS


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it, piped, with none of the developer's GASOMETER_* settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GASOMETER_")}
    clean.pop("CLAUDE_CONFIG_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "gasometer", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**clean, **(env or {})},
    )


def one_line_error(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gasometer: error: "), done.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    """A user with an empty home: no Claude settings, no hook config, no token."""
    return {"HOME": str(tmp_path / "home"), "GASOMETER_HOOK_HOME": str(tmp_path / "hook")}


def test_top_level_help_is_for_users() -> None:
    done = run("--help")
    assert done.returncode == 0
    text = done.stdout
    assert "what every Claude Code agent" in text and "common commands:" in text
    for line in (
        "gasometer demo",
        "gasometer import",
        "gasometer hooks install",
        "gasometer daily",
    ):
        assert line in text
    assert "docs/operating.md" in text and "--help" in text
    assert "Errors reach the user" not in text  # the module docstring is for developers


def test_help_shows_defaults() -> None:
    assert "default: table" in run("sql", "--help").stdout
    assert "default: 200000" in run("demo", "--help").stdout
    assert "default: table" in run("pricing", "--help").stdout


@pytest.mark.parametrize("command", [["pricing"], ["hooks", "status"], ["hooks", "install"]])
def test_commands_without_a_data_directory_refuse_the_flag(
    command: list[str], tmp_path: Path
) -> None:
    done = run(*command, "--data-dir", str(tmp_path / "d"))
    assert done.returncode == 2 and "unrecognized arguments: --data-dir" in done.stderr
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("command", [["health"], ["sql", "SELECT 1"], ["daily"]])
def test_a_mistyped_data_directory_is_an_error_and_never_created(
    command: list[str], tmp_path: Path
) -> None:
    typo = tmp_path / "typo"
    one_line_error(run(*command, "--data-dir", str(typo)), str(typo), "no Gasometer data")
    assert not typo.exists()


@pytest.mark.parametrize(
    ("setting", "words"),
    [
        ({"GASOMETER_BUDGET_TZ": "Mars/X"}, ["budget_tz", "Mars/X"]),
        ({"GASOMETER_LOG_LEVEL": "loud"}, ["log_level", "debug, info, warning"]),
    ],
)
@pytest.mark.parametrize("command", [["serve"], ["health"]])
def test_a_bad_setting_is_one_line(
    setting: dict[str, str], words: list[str], command: list[str], tmp_path: Path
) -> None:
    one_line_error(run(*command, "--data-dir", str(tmp_path / "d"), env=setting), *words)


def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        done = run("serve", "--data-dir", str(tmp_path / "d"), "--port", port)
    one_line_error(done, f"127.0.0.1:{port}", "already in use", "--port")


@pytest.mark.parametrize("days", ["-5", "0"])
def test_retention_days_must_be_positive(days: str, tmp_path: Path) -> None:
    one_line_error(
        run("retention", "--data-dir", str(tmp_path / "d"), f"--days={days}"),
        "--days: must be more than 0",
    )


def test_hooks_status_takes_settings_and_names_the_file(
    tmp_path: Path, home: dict[str, str]
) -> None:
    path = tmp_path / "claude" / "settings.json"
    status = json.loads(run("hooks", "status", "--settings", str(path), env=home).stdout)
    assert status["installed"] is False
    assert status["settings"] == [{"path": str(path), "exists": False, "hook_events": []}]
    done = run("hooks", "install", "--settings", str(path), "--token", "t0k", env=home)
    assert done.returncode == 0, done.stderr
    status = json.loads(run("hooks", "status", "--settings", str(path), env=home).stdout)
    assert status["installed"] is True and status["token_set"] is True
    assert status["settings"] == [{"path": str(path), "exists": True, "hook_events": list(EVENTS)}]


def test_every_claude_config_dir_gets_the_hook(tmp_path: Path, home: dict[str, str]) -> None:
    dirs = [tmp_path / "work-claude", tmp_path / "personal claude"]
    env = {**home, "CLAUDE_CONFIG_DIR": f"{dirs[0]}, {dirs[1]},"}
    done = run("hooks", "install", "--token", "t0k", env=env)
    assert done.returncode == 0, done.stderr
    for d in dirs:
        assert str(d / "settings.json") in done.stdout
        hooks = json.loads((d / "settings.json").read_text())["hooks"]
        assert set(hooks) == set(EVENTS)
    status = json.loads(run("hooks", "status", env=env).stdout)
    assert [s["path"] for s in status["settings"]] == [str(d / "settings.json") for d in dirs]
    assert all(s["hook_events"] == list(EVENTS) for s in status["settings"])
    assert run("hooks", "uninstall", env=env).returncode == 0
    for d in dirs:
        assert json.loads((d / "settings.json").read_text()) == {"hooks": {}}
    assert not (Path(home["HOME"]) / ".claude").exists()


def test_install_without_a_token_warns(tmp_path: Path, home: dict[str, str]) -> None:
    path = str(tmp_path / "settings.json")
    done = run("hooks", "install", "--settings", path, env=home)
    assert done.returncode == 0
    assert "warning" in done.stderr and "401" in done.stderr and "--token" in done.stderr
    done = run("hooks", "install", "--settings", path, "--token", "t0k", env=home)
    assert done.returncode == 0 and done.stderr == ""
    done = run("hooks", "install", "--settings", path, env=home)  # the stored token counts
    assert done.stderr == ""
    done = run("hooks", "install", "--settings", path, "--http", "http://gm:8000", env=home)
    assert "GASOMETER_TOKEN" in done.stderr and "401" in done.stderr
    env = {**home, "GASOMETER_TOKEN": "t0k"}
    done = run("hooks", "install", "--settings", path, "--http", "http://gm:8000", env=env)
    assert done.stderr == ""


def test_piped_tables_keep_every_character(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert run("compact", "--data-dir", str(data)).returncode == 0  # an empty store
    health = run("health", "--data-dir", str(data))
    assert health.returncode == 0, health.stderr
    wide = "SELECT repeat('r', 300) AS a_rather_long_column_name, 42 AS answer"
    done = run("sql", wide, "--data-dir", str(data))
    assert done.returncode == 0, done.stderr
    assert "r" * 300 in done.stdout and "a_rather_long_column_name" in done.stdout
    assert "…" not in done.stdout
    table = run("pricing")
    assert table.returncode == 0 and "…" not in table.stdout
    assert "claude-sonnet-4-5" in table.stdout and "long context" in table.stdout


def test_pricing_formats() -> None:
    doc = json.loads(run("pricing", "--format", "json").stdout)
    sonnet = next(f for f in doc["families"] if f["name"] == "claude-sonnet-4-5")
    first = sonnet["rates"][0]
    assert (first["input"], first["output"], first["cache_read"]) == (3.0, 15.0, 0.3)
    assert first["long_context_threshold"] == 200_000 and first["long_input"] == 6.0
    rows = list(csv.DictReader(io.StringIO(run("pricing", "--format", "csv").stdout)))
    haiku = next(r for r in rows if r["model"] == "claude-haiku-4-5")
    assert float(haiku["input"]) == 1.0 and float(haiku["cache_write_1h"]) == 2.0
    assert {r["model"] for r in rows} == {f["name"] for f in doc["families"]}
