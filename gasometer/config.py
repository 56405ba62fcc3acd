"""One configuration object, read from defaults, an optional TOML file, then the environment.

Precedence (lowest first): field defaults, the TOML file (`GASOMETER_CONFIG`, else
`gasometer.toml` in the data directory), `GASOMETER_<FIELD>` environment variables,
then explicit overrides (CLI flags, tests).
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any

import msgspec

from gasometer.errors import ConfigError

ENV_PREFIX = "GASOMETER_"
TOKEN_FILE = "tokens.sha256"
DEFAULT_DATA_DIR = Path("./data")


class Budget(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A rig's or role's budget in USD (TOML: `[rig_budgets.<rig>]`, `[role_budgets.<role>]`)."""

    daily_usd: float | None = None
    monthly_usd: float | None = None


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Every setting of the service, documented in README's Configuration table."""

    data_dir: Path = Path("./data")
    host: str = "127.0.0.1"
    port: int = 8000
    tokens: list[str] = []
    token_sha256: list[str] = []
    max_body_bytes: int = 10 * 1024 * 1024
    flush_interval_s: float = 2.0
    flush_max_events: int = 100_000
    compact_min_files: int = 8
    compact_target_rows: int = 4_000_000
    retired_file_grace_s: float = 120.0
    min_free_bytes: int = 64 * 1024 * 1024
    ws_queue_size: int = 1000
    query_threads: int = 2
    query_memory_limit: str = "2GB"
    sql_timeout_s: float = 10.0
    sql_max_rows: int = 100_000
    sql_memory_limit: str = "1GB"
    sql_threads: int = 2
    sql_max_temp_size: str = "2GB"
    retention_days: Annotated[float, msgspec.Meta(gt=0)] | None = None
    rig_prefixes: dict[str, str] = {}
    town_dir: Path | None = None
    cwd_rules: list[dict[str, str]] = []
    log_level: str = "info"
    budget_daily_usd: float | None = None
    budget_monthly_usd: float | None = None
    budget_warn_ratio: float = 0.8
    budget_tz: str = "UTC"
    rig_budgets: dict[str, Budget] = {}
    role_budgets: dict[str, Budget] = {}
    otlp_grpc_port: Annotated[int, msgspec.Meta(ge=1, le=65535)] | None = None

    def token_digests(self) -> set[bytes]:
        """SHA-256 digests of every accepted ingest token, whatever source they came from."""
        digests = {hashlib.sha256(t.encode()).digest() for t in self.tokens if t}
        digests |= {bytes.fromhex(h) for h in self.token_sha256}
        digests |= read_token_file(self.data_dir / TOKEN_FILE)
        return digests


def read_token_file(path: Path) -> set[bytes]:
    """Token digests stored one per line as `<sha256 hex> [label]` (plain tokens never hit disk)."""
    if not path.exists():
        return set()
    digests = set()
    for line in path.read_text().splitlines():
        word = line.split("#", 1)[0].split()
        if word:
            digests.add(bytes.fromhex(word[0]))
    return digests


def _from_env(environ: dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for field in Settings.__struct_fields__:
        raw = environ.get(ENV_PREFIX + field.upper())
        if raw is None:
            continue
        if field in ("tokens", "token_sha256"):
            values[field] = [t.strip() for t in raw.split(",") if t.strip()]
        elif field == "rig_prefixes":
            pairs = (p.split("=", 1) for p in raw.split(",") if "=" in p)
            values[field] = {k.strip(): v.strip() for k, v in pairs}
        else:
            values[field] = raw
    return values


def _config_file(values: dict[str, Any], environ: dict[str, str]) -> Path | None:
    explicit = environ.get(ENV_PREFIX + "CONFIG")
    if explicit:
        return Path(explicit)
    candidate = Path(values.get("data_dir") or DEFAULT_DATA_DIR) / "gasometer.toml"
    return candidate if candidate.exists() else None


def load_settings(
    overrides: dict[str, Any] | None = None, environ: dict[str, str] | None = None
) -> Settings:
    """Build the Settings for this process; raise ConfigError with one clear line if invalid."""
    environ = dict(os.environ) if environ is None else environ
    layered: dict[str, Any] = {}
    env_values = _from_env(environ)
    clean_overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    path = _config_file({**env_values, **clean_overrides}, environ)
    if path is not None:
        try:
            layered.update(tomllib.loads(path.read_text()))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    layered.update(env_values)
    layered.update(clean_overrides)
    try:
        return msgspec.convert(layered, Settings, strict=False, dec_hook=_decode_path)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from exc


def _decode_path(kind: type, value: Any) -> Any:
    if kind is Path:
        return Path(value)
    raise NotImplementedError(kind)
