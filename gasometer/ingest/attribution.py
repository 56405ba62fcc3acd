"""Who spent it: role, rig and worker derived from a Gas Town session name.

Gas Town names town-level sessions `hq-mayor`, `hq-deacon`, `hq-boot`, `hq-dog-<name>`
and rig-level ones `<prefix>-witness`, `<prefix>-refinery`, `<prefix>-crew-<name>`,
`<prefix>-<name>` (a polecat), where `<prefix>` is the rig's beads prefix. The older
`<rig>-<role>-<worker>` form is accepted too. Anything else is `unknown`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, NamedTuple

UNKNOWN = "unknown"
TOWN_RIG = "hq"
ROLES = ("mayor", "deacon", "boot", "dog", "witness", "refinery", "polecat", "crew")

_TOWN = re.compile(r"^hq-(mayor|deacon|boot)$")
_DOG = re.compile(r"^hq-dog-(.+)$")
_RIG_SINGLETON = re.compile(r"^([a-z][a-z0-9_]*)-(witness|refinery)$")
_CREW = re.compile(r"^([a-z][a-z0-9_]*)-crew-(.+)$")
_OLD_FORM = re.compile(rf"^([a-z][a-z0-9_]*)-({'|'.join(ROLES)})-([^-]+)$")
_POLECAT = re.compile(r"^([a-z][a-z0-9_]*)-([a-z0-9_]+)$")


class Attribution(NamedTuple):
    """Role, rig and worker of one session."""

    role: str
    rig: str
    worker: str


class Attributor:
    """Derives attribution from session names, resolving beads prefixes to rig names."""

    def __init__(self, rig_prefixes: dict[str, str] | None = None) -> None:
        self.rig_prefixes = dict(rig_prefixes or {})
        self._cache: dict[str, Attribution] = {}

    def rig_for(self, prefix: str) -> str:
        """The rig a beads prefix stands for; an unknown prefix stands for itself."""
        return self.rig_prefixes.get(prefix, prefix)

    def from_session(self, session_id: str) -> Attribution:
        """Role, rig and worker for a Gas Town session name (cached: names repeat)."""
        found = self._cache.get(session_id)
        if found is None:
            found = self._derive(session_id)
            if len(self._cache) < 100_000:
                self._cache[session_id] = found
        return found

    def _derive(self, name: str) -> Attribution:
        if m := _TOWN.match(name):
            return Attribution(m[1], TOWN_RIG, m[1])
        if m := _DOG.match(name):
            return Attribution("dog", TOWN_RIG, m[1])
        if m := _RIG_SINGLETON.match(name):
            return Attribution(m[2], self.rig_for(m[1]), m[2])
        if m := _CREW.match(name):
            return Attribution("crew", self.rig_for(m[1]), m[2])
        if m := _OLD_FORM.match(name):
            return Attribution(m[2], self.rig_for(m[1]), m[3])
        if (m := _POLECAT.match(name)) and m[1] != TOWN_RIG:
            return Attribution("polecat", self.rig_for(m[1]), m[2])
        return Attribution(UNKNOWN, UNKNOWN, UNKNOWN)


def prefixes_from_town(town_dir: Path) -> dict[str, str]:
    """The prefix → rig map read from a Gas Town town's `mayor/rigs.json`, if present."""
    path = town_dir / "mayor" / "rigs.json"
    try:
        data: Any = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    rigs = data.get("rigs", data) if isinstance(data, dict) else {}
    found: dict[str, str] = {}
    items = rigs.items() if isinstance(rigs, dict) else ((r.get("name"), r) for r in rigs)
    for name, info in items:
        if isinstance(info, dict) and isinstance(name, str):
            prefix = info.get("prefix") or info.get("beads_prefix")
            if isinstance(prefix, str) and prefix:
                found[prefix.rstrip("-")] = name
    return found
