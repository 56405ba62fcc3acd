"""One configuration object, read from defaults, an optional TOML file, then the environment.

Precedence (lowest first): field defaults, the TOML file (`GASOMETER_CONFIG`, else
`gasometer.toml` in the data directory), `GASOMETER_<FIELD>` environment variables,
then explicit overrides (CLI flags, tests).
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from gasometer.errors import ConfigError

ENV_PREFIX = "GASOMETER_"
DEFAULT_DATA_DIR = Path("./data")
LogLevel = Literal["debug", "info", "warning", "error", "critical"]


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
    read_tokens: list[str] = []
    admin_tokens: list[str] = []
    public_read: bool | None = None
    allowed_hosts: list[str] = []
    max_body_bytes: int = 10 * 1024 * 1024
    flush_interval_s: float = 2.0
    flush_max_events: int = 100_000
    compact_min_files: int = 8
    compact_target_rows: int = 4_000_000
    retired_file_grace_s: float = 120.0
    identity_seal_rows: Annotated[int, msgspec.Meta(ge=1)] = 200_000
    min_free_bytes: int = 64 * 1024 * 1024
    ws_max_backlog_bytes: Annotated[int, msgspec.Meta(ge=1)] = 64 * 1024 * 1024
    ws_max_clients: Annotated[int, msgspec.Meta(ge=0)] = 100
    keep_alive_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    request_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    max_connections: Annotated[int, msgspec.Meta(ge=1)] = 1000
    import_roots: list[Path] = []
    query_threads: int = 2
    query_memory_limit: str = "2GB"
    sql_timeout_s: float = 10.0
    sql_max_rows: int = 100_000
    sql_memory_limit: str = "1GB"
    sql_threads: int = 2
    sql_max_temp_size: str = "2GB"
    sql_workers: Annotated[int, msgspec.Meta(ge=1)] = 2
    named_query_workers: Annotated[int, msgspec.Meta(ge=1)] = 2
    sql_worker_memory: str = "2GB"
    retention_days: Annotated[float, msgspec.Meta(ge=1)] | None = None
    rig_prefixes: dict[str, str] = {}
    town_dir: Path | None = None
    cwd_rules: list[dict[str, str]] = []
    log_level: LogLevel = "info"
    budget_daily_usd: float | None = None
    budget_monthly_usd: float | None = None
    budget_warn_ratio: float = 0.8
    budget_tz: str = "UTC"
    rig_budgets: dict[str, Budget] = {}
    role_budgets: dict[str, Budget] = {}
    otlp_grpc_port: Annotated[int, msgspec.Meta(ge=1, le=65535)] | None = None

    def loopback(self) -> bool:
        """Whether `host` is a loopback address (or `localhost`): only this machine connects."""
        if self.host.lower() == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host.strip("[]")).is_loopback
        except ValueError:
            return False

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.budget_tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"budget_tz: unknown time zone {self.budget_tz!r} (use an IANA name like "
                "Europe/Paris)"
            ) from None

    def reads_open(self) -> bool:
        """Whether read routes answer without a token: `public_read` if set, else on loopback."""
        return self.loopback() if self.public_read is None else self.public_read


LIST_FIELDS = (
    "tokens",
    "token_sha256",
    "read_tokens",
    "admin_tokens",
    "allowed_hosts",
    "import_roots",
)
"""Settings given in the environment as comma-separated lists."""


def _from_env(environ: dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for field in Settings.__struct_fields__:
        raw = environ.get(ENV_PREFIX + field.upper())
        if raw is None:
            continue
        if field in (
            "tokens",
            "token_sha256",
            "read_tokens",
            "admin_tokens",
            "allowed_hosts",
            "import_roots",
        ):
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
        hint = f" (one of {', '.join(get_args(LogLevel))})" if "log_level" in str(exc) else ""
        raise ConfigError(f"invalid configuration: {exc}{hint}") from exc


def _decode_path(kind: type, value: Any) -> Any:
    if kind is Path:
        return Path(value)
    raise NotImplementedError(kind)
