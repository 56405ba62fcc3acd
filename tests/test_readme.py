"""The docs stay true to the code: every setting and every command is in the reference,
and README's quick start is the two commands."""

from __future__ import annotations

import argparse
from pathlib import Path

from gasometer.cli import build_parser
from gasometer.config import Settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
REFERENCE = (ROOT / "docs" / "reference.md").read_text()


def section(title: str, text: str = README) -> str:
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_every_doc_link_resolves() -> None:
    """Relative links in README and docs/ point at files that exist."""
    import re

    for page in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), (page.name, target)


def test_every_setting_is_in_the_configuration_table() -> None:
    table = section("Configuration", REFERENCE)
    missing = [f for f in Settings.__struct_fields__ if f"`{f}`" not in table]
    assert missing == []


def test_every_command_is_in_the_command_table() -> None:
    table = section("Command line", REFERENCE)
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [name for name in subparsers.choices if f"| `{name}" not in table]
    assert missing == []


def test_quick_start_is_the_two_commands() -> None:
    quick = section("Quick start")
    commands = [line.strip() for line in quick.splitlines() if line.startswith("    make")]
    assert commands == ["make demo", "make test"]
