"""Attribution from the agent's environment, which Gas Town sets for every agent it starts.

`GT_ROLE` is `mayor`, `deacon`, `boot`, `dog`, `<rig>/witness`, `<rig>/refinery`,
`<rig>/polecats/<name>` or `<rig>/crew/<name>` (a bare `polecat`, `crew`, `witness`… with
`GT_RIG`, `GT_POLECAT`, `GT_CREW` is accepted too; `BD_ACTOR` has the same slash form).
`GT_SESSION` is the tmux session name, read as the server reads session names.
`GT_WORK_BEAD` is the bead being worked on.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from gasometer.ingest.attribution import ROLES, TOWN_RIG, Attributor, prefixes_from_town

TOWN_ROLES = ("mayor", "deacon", "boot", "dog")
_PLURALS = {"polecats": "polecat", "crew": "crew"}


class EnvAttribution(NamedTuple):
    """What the environment says about who is spending; None where it says nothing."""

    role: str | None = None
    rig: str | None = None
    worker: str | None = None
    issue: str | None = None

    def merged_over(self, other: EnvAttribution) -> EnvAttribution:
        """These values where set, else the other's."""
        return EnvAttribution(*(a if a else b for a, b in zip(self, other, strict=True)))


def parse_role_path(value: str) -> EnvAttribution:
    """Role, rig and worker from `mayor`, `<rig>/witness`, `<rig>/polecats/<name>`…"""
    parts = [p for p in value.strip().split("/") if p]
    if len(parts) == 1:
        role = parts[0].lower()
        if role in TOWN_ROLES:
            worker = role if role != "dog" else None
            return EnvAttribution(role=role, rig=TOWN_RIG, worker=worker)
        return EnvAttribution(role=role if role in ROLES else None)
    if len(parts) == 2 and parts[1] in ("witness", "refinery", "mayor"):
        return EnvAttribution(role=parts[1], rig=parts[0], worker=parts[1])
    if len(parts) == 2 and parts[0] in ("dogs", "dog"):
        return EnvAttribution(role="dog", rig=TOWN_RIG, worker=parts[1])
    if len(parts) >= 3 and parts[1] in ("dogs", "dog"):
        return EnvAttribution(role="dog", rig=TOWN_RIG, worker=parts[2])
    if len(parts) >= 3 and parts[1] in _PLURALS:
        return EnvAttribution(role=_PLURALS[parts[1]], rig=parts[0], worker=parts[2])
    return EnvAttribution()


def from_environment(environ: Mapping[str, str]) -> EnvAttribution:
    """Attribution from the GT_* variables that name the agent directly (not the session
    name, which ranks below the working directory); fields not given stay None."""
    found = parse_role_path(environ.get("GT_ROLE", ""))
    found = found.merged_over(parse_role_path(environ.get("BD_ACTOR", "")))
    worker_vars = (("GT_POLECAT", "polecat"), ("GT_CREW", "crew"), ("GT_DOG", "dog"))
    for name, role in worker_vars:
        if environ.get(name):
            found = found.merged_over(EnvAttribution(role=role, worker=environ[name]))
    found = found.merged_over(EnvAttribution(rig=environ.get("GT_RIG") or None))
    return found.merged_over(EnvAttribution(issue=environ.get("GT_WORK_BEAD") or None))


def from_session_name(environ: Mapping[str, str]) -> EnvAttribution:
    """Attribution read from the Gas Town session name in `GT_SESSION`, if any."""
    session = environ.get("GT_SESSION")
    if not session:
        return EnvAttribution()
    prefixes: dict[str, str] = {}
    town = environ.get("GT_ROOT") or environ.get("GT_TOWN_ROOT")
    if town:
        prefixes = prefixes_from_town(Path(town))
    derived = Attributor(prefixes).from_session(session)
    if derived.role == "unknown":
        return EnvAttribution()
    return EnvAttribution(role=derived.role, rig=derived.rig, worker=derived.worker)
