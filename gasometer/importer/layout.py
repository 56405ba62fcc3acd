"""Who spent it, from where they worked: Gas Town attribution by working directory.

Gas Town gives every agent its own directory: `<town>/mayor`, `<town>/deacon`
(`deacon/dogs/<name>` for dogs, `deacon/dogs/boot` for boot), `<town>/<rig>/witness`,
`<town>/<rig>/refinery/…`, `<town>/<rig>/polecats/<name>/…`, `<town>/<rig>/crew/<name>/…`
and `<town>/<rig>/mayor/rig` (the mayor's clone of a rig). Anything else is role
`unknown` with the project directory's name as rig. A bead id in the git branch (or in the
working directory) fills `issue`. The transcript importer and the Stop hook share this.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import PurePosixPath
from typing import NamedTuple

UNKNOWN = "unknown"
TOWN_RIG = "hq"


class Place(NamedTuple):
    """Role, rig, worker (and bead, when one is found) of one working directory."""

    role: str
    rig: str
    worker: str
    issue: str | None = None


class CwdRule(NamedTuple):
    """A regex over a `/`-separated path; groups `rig` and `worker` fill in the blanks."""

    pattern: re.Pattern[str]
    role: str
    rig: str | None = None
    worker: str | None = None


def rule(regex: str, role: str, rig: str | None = None, worker: str | None = None) -> CwdRule:
    """A CwdRule from a regex string (searched, not anchored, unless it anchors itself)."""
    return CwdRule(re.compile(regex), role, rig, worker)


_SEG = r"[^/]+"
_END = r"(?:/|$)"
DEFAULT_RULES: tuple[CwdRule, ...] = (
    rule(rf"/(?P<rig>{_SEG})/polecats/(?P<worker>{_SEG}){_END}", "polecat"),
    rule(rf"/(?P<rig>{_SEG})/crew/(?P<worker>{_SEG}){_END}", "crew"),
    rule(rf"/(?P<rig>{_SEG})/witness{_END}", "witness", worker="witness"),
    rule(rf"/(?P<rig>{_SEG})/refinery{_END}", "refinery", worker="refinery"),
    rule(rf"/deacon/dogs/boot{_END}", "boot", TOWN_RIG, "boot"),
    rule(rf"/deacon/dogs/(?P<worker>{_SEG}){_END}", "dog", TOWN_RIG),
    rule(rf"/deacon{_END}", "deacon", TOWN_RIG, "deacon"),
    rule(rf"/(?P<rig>{_SEG})/mayor/rig{_END}", "mayor", worker="mayor"),
    rule(rf"/mayor{_END}", "mayor", TOWN_RIG, "mayor"),
)


def parse_rules(entries: Iterable[Mapping[str, str]]) -> list[CwdRule]:
    """Rules from configuration, e.g. TOML `[[cwd_rules]]` tables with `pattern`, `role`
    and optional `rig`, `worker` (fixed values where the pattern has no such group).
    Configured rules go before the defaults; raise ValueError on a bad entry."""
    rules = []
    for entry in entries:
        try:
            rules.append(
                rule(entry["pattern"], entry["role"], entry.get("rig"), entry.get("worker"))
            )
        except (KeyError, re.error) as exc:
            raise ValueError(f"invalid cwd rule {dict(entry)}: {exc}") from exc
    return rules


_BEAD = re.compile(r"^([a-z][a-z0-9]{1,5})-([a-z0-9]{2,8})(?:\.\d+)*$")
_NOT_PREFIXES = frozenset(
    {"feat", "fix", "bug", "chore", "docs", "doc", "test", "wip", "dev", "hot", "rel", "ci"}
)


def bead_in(
    text: str | None,
    prefixes: Iterable[str] = (),
    *,
    strict: bool = False,
    not_prefixes: Iterable[str] = (),
) -> str | None:
    """The last path segment of `text` shaped like a bead id (`gt-abc12`, `ga-pcx.1`).

    With known beads prefixes, only those count. Otherwise: not a conventional branch word
    or one of `not_prefixes` (e.g. the worker's own name), and a hash with a digit, or (not
    `strict`, as for branch names) a prefix of at most three letters.
    """
    if not text:
        return None
    known = set(prefixes)
    excluded = _NOT_PREFIXES | {p.lower() for p in not_prefixes}
    found = None
    for segment in re.split(r"[/\\]", text):
        m = _BEAD.match(segment)
        if m is None:
            continue
        prefix, digest = m[1], m[2]
        if known:
            if prefix in known:
                found = segment
        elif prefix not in excluded and (
            any(c.isdigit() for c in digest) or (not strict and len(prefix) <= 3)
        ):
            found = segment
    return found


class Layout:
    """Attribution rules for working directories, optionally anchored at a known town."""

    def __init__(
        self,
        town_dir: str | None = None,
        rig_prefixes: dict[str, str] | None = None,
        rules: Sequence[CwdRule] = DEFAULT_RULES,
    ) -> None:
        self.town = None if town_dir is None else str(PurePosixPath(town_dir)).rstrip("/")
        self.prefixes = {*(rig_prefixes or {}), "hq", "gt"} if rig_prefixes else set()
        self.rules = tuple(rules)
        self._cache: dict[tuple[str, str | None], Place] = {}

    def place(self, cwd: str | None, git_branch: str | None = None) -> Place:
        """Role, rig, worker and bead of an agent working in `cwd` on `git_branch` (cached)."""
        key = (cwd or "", git_branch)
        found = self._cache.get(key)
        if found is None:
            found = self._derive(cwd or "", git_branch)
            if len(self._cache) < 100_000:
                self._cache[key] = found
        return found

    def _derive(self, cwd: str, git_branch: str | None) -> Place:
        place = self._place(cwd.replace("\\", "/").rstrip("/"))
        names = (place.worker, place.rig)
        issue = bead_in(git_branch, self.prefixes, not_prefixes=names) or bead_in(
            cwd, self.prefixes, strict=True, not_prefixes=names
        )
        return place._replace(issue=issue)

    def _place(self, path: str) -> Place:
        if self.town is not None:
            if path != self.town and not path.startswith(self.town + "/"):
                return Place(UNKNOWN, _project(path), UNKNOWN)
            path = "/" + PurePosixPath(self.town).name + path[len(self.town) :]
        for r in self.rules:
            m = r.pattern.search(path)
            if m is None:
                continue
            groups = m.groupdict()
            rig = groups.get("rig") or r.rig or UNKNOWN
            worker = groups.get("worker") or r.worker or r.role
            return Place(r.role, rig, worker)
        return Place(UNKNOWN, _project(path), UNKNOWN)


def _project(path: str) -> str:
    name = PurePosixPath(path).name if path else ""
    return name or UNKNOWN
