"""Access tokens and their scopes: the tokens file, the settings, and who may do what.

A token is a random string given to a client; only its SHA-256 digest is kept. Each has a
scope: `ingest` (agents: ingest, hooks, OTLP), `read` (dashboards: stats, costs, export,
the live stream, metrics) or `admin` (SQL, import, rebuilds; implies the other two).

The tokens file (`tokens.sha256` in the data directory) holds one token per line:
`<sha256 hex> scope=<scope> label=<label> created=<RFC 3339>`. Lines written by older
versions (`<sha256 hex> [label]`) are ingest tokens. Blank lines and `#` comments are kept.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from gasometer.errors import ConfigError

if TYPE_CHECKING:
    from gasometer.config import Settings

log = logging.getLogger("gasometer.tokens")
TOKEN_FILE = "tokens.sha256"
Scope = Literal["ingest", "read", "admin"]
SCOPES: tuple[Scope, ...] = ("ingest", "read", "admin")
GRANTS: dict[str, frozenset[str]] = {
    "ingest": frozenset({"ingest"}),
    "read": frozenset({"read"}),
    "admin": frozenset({"admin", "read", "ingest"}),
}
LABEL = re.compile(r"[A-Za-z0-9._@-]{1,64}")
HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
MIN_PREFIX = 6


def digest_of(token: str) -> bytes:
    """The SHA-256 digest a token is known by."""
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class TokenEntry:
    """One line of the tokens file."""

    digest: str
    scope: Scope
    label: str
    created: str

    def line(self) -> str:
        """The entry as a line of the tokens file."""
        return f"{self.digest} scope={self.scope} label={self.label} created={self.created}"


def parse_line(line: str) -> TokenEntry | None:
    """An entry from a line (None for blanks and comments); raise ConfigError if malformed."""
    words = line.split("#", 1)[0].split()
    if not words:
        return None
    digest = words[0].lower()
    if not HEX_DIGEST.fullmatch(digest):
        raise ConfigError(f"{TOKEN_FILE}: a line does not start with a SHA-256 hex digest")
    fields = {"scope": "ingest", "label": "", "created": ""}
    for word in words[1:]:
        key, sep, value = word.partition("=")
        if sep and key in fields:
            fields[key] = value
        elif not sep and not fields["label"]:
            fields["label"] = word
    scope = fields["scope"]
    if scope not in SCOPES:
        raise ConfigError(f"{TOKEN_FILE}: unknown scope {scope!r} (ingest, read or admin)")
    return TokenEntry(digest, scope, fields["label"], fields["created"])


def read_entries(path: Path) -> list[TokenEntry]:
    """Every token of a tokens file (none if it does not exist)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    return [e for e in (parse_line(line) for line in text.splitlines()) if e is not None]


def settings_grants(settings: Settings) -> dict[bytes, frozenset[str]]:
    """Digest -> scopes of the tokens given in settings (`tokens` and `token_sha256` are
    ingest; `read_tokens`, `admin_tokens` as named); a token named twice gets both."""
    grants: dict[bytes, frozenset[str]] = {}

    def add(digest: bytes, scope: str) -> None:
        grants[digest] = grants.get(digest, frozenset()) | GRANTS[scope]

    for token in settings.tokens:
        add(digest_of(token), "ingest")
    for hexdigest in settings.token_sha256:
        add(bytes.fromhex(hexdigest), "ingest")
    for token in settings.read_tokens:
        add(digest_of(token), "read")
    for token in settings.admin_tokens:
        add(digest_of(token), "admin")
    return grants


def file_grants(path: Path) -> dict[bytes, frozenset[str]]:
    """Digest -> scopes of the tokens in a tokens file."""
    grants: dict[bytes, frozenset[str]] = {}
    for entry in read_entries(path):
        digest = bytes.fromhex(entry.digest)
        grants[digest] = grants.get(digest, frozenset()) | GRANTS[entry.scope]
    return grants


class TokenRegistry:
    """Every token the server accepts and its scopes; the tokens file is read again
    whenever it changes (a stat per lookup), so a token made while serving works at once."""

    def __init__(self, settings: Settings) -> None:
        self.path = settings.data_dir / TOKEN_FILE
        self.static = settings_grants(settings)
        self._stamp: tuple[int, int, int] | None = None
        self._file: dict[bytes, frozenset[str]] = {}

    def _current(self) -> dict[bytes, frozenset[str]]:
        try:
            st = os.stat(self.path)
            stamp: tuple[int, int, int] | None = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            stamp = None
        if stamp != self._stamp:
            try:
                self._file = file_grants(self.path) if stamp is not None else {}
            except (ConfigError, OSError, ValueError) as exc:
                log.warning("ignoring the tokens file until it is fixed: %s", exc)
                self._file = {}
            self._stamp = stamp
        return self._file

    def grants_of_digest(self, digest: bytes) -> frozenset[str]:
        """The scopes of a digest, compared in constant time with every known digest."""
        found: frozenset[str] = frozenset()
        for source in (self.static, self._current()):
            for known, scopes in source.items():
                if hmac.compare_digest(digest, known):
                    found |= scopes
        return found

    def grants(self, token: str) -> frozenset[str]:
        """The scopes a presented token carries (empty if unknown)."""
        return self.grants_of_digest(digest_of(token))

    def any_with(self, scope: str) -> bool:
        """Whether any configured token carries this scope."""
        return any(scope in s for src in (self.static, self._current()) for s in src.values())


def create_token(path: Path, scope: Scope, label: str | None) -> tuple[str, TokenEntry]:
    """Make a token, append its digest (never its value) to the tokens file, return both.

    A label given explicitly must be new; without one, `<scope>-<n>` is picked, so a
    second token never replaces the first.
    """
    entries = read_entries(path)
    taken = {e.label for e in entries}
    if label is None:
        n = 1
        while f"{scope}-{n}" in taken:
            n += 1
        label = f"{scope}-{n}"
    elif not LABEL.fullmatch(label):
        raise ConfigError("label: 1-64 letters, digits, '.', '_', '@' or '-'")
    elif label in taken:
        raise ConfigError(f"a token labelled {label!r} exists: revoke it first or pick another")
    value = secrets.token_urlsafe(32)
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    entry = TokenEntry(hashlib.sha256(value.encode()).hexdigest(), scope, label, created)
    _append(path, entry.line())
    return value, entry


def revoke_tokens(path: Path, which: str) -> list[TokenEntry]:
    """Remove the tokens whose label is `which`, else the one whose digest starts with it
    (at least 6 hex digits, matching exactly one); raise ConfigError if none match."""
    entries = read_entries(path)
    gone = [e for e in entries if e.label and e.label == which]
    if not gone:
        prefix = which.lower()
        if len(prefix) < MIN_PREFIX or not re.fullmatch(r"[0-9a-f]+", prefix):
            raise ConfigError(f"no token labelled {which!r} (or give 6+ hex digits of a digest)")
        gone = [e for e in entries if e.digest.startswith(prefix)]
        if len(gone) > 1:
            raise ConfigError(f"{which!r} matches {len(gone)} tokens: give more digits")
    if not gone:
        raise ConfigError(f"no token labelled {which!r} or with a digest starting so")
    drop = {e.digest for e in gone}
    kept = [
        line
        for line in path.read_text().splitlines()
        if (e := _entry_or_none(line)) is None or e.digest not in drop
    ]
    _replace(path, "\n".join(kept) + ("\n" if kept else ""))
    return gone


def _entry_or_none(line: str) -> TokenEntry | None:
    try:
        return parse_line(line)
    except ConfigError:
        return None


def _append(path: Path, line: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        existing = os.fstat(fd).st_size
        prefix = b""
        if existing:
            with path.open("rb") as f:
                f.seek(existing - 1)
                prefix = b"" if f.read(1) == b"\n" else b"\n"
        os.write(fd, prefix + line.encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    path.chmod(0o600)


def _replace(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
