"""`gasometer …`: the one command-line entry point.

Errors reach the user as one line on stderr and a non-zero exit; data goes to stdout.
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import secrets
import sqlite3
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from gasometer import __version__
from gasometer.config import TOKEN_FILE, Settings, load_settings
from gasometer.errors import ConfigError, GasometerError

Command = Callable[[argparse.Namespace, Settings], int]
COMMANDS: dict[str, Command] = {}


def command(name: str) -> Callable[[Command], Command]:
    """Register a subcommand implementation."""

    def register(func: Command) -> Command:
        COMMANDS[name] = func
        return func

    return register


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="gasometer", description=__doc__)
    parser.add_argument("--version", action="version", version=f"gasometer {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir", type=Path, help="data directory (default ./data, env GASOMETER_DATA_DIR)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", parents=[common], help="serve the API and dashboard")
    _server_args(serve)

    demo = sub.add_parser("demo", parents=[common], help="write demo data, then serve")
    demo.add_argument("--events", type=int, default=200_000, help="events to generate")
    demo.add_argument("--days", type=int, default=60, help="days of history")
    demo.add_argument("--seed", type=int, default=7, help="random seed")
    demo.add_argument("--if-empty", action="store_true", help="write only into an empty store")
    demo.add_argument("--no-serve", action="store_true", help="only write the data")
    _server_args(demo)

    sql = sub.add_parser("sql", parents=[common], help="run read-only SQL over the store")
    sql.add_argument("query", help="one SELECT over `events`, `hourly` and `queries.<name>(…)`")
    sql.add_argument("--format", choices=["table", "csv", "json", "parquet"], default="table")
    sql.add_argument("--output", type=Path, help="file for --format parquet")

    sub.add_parser("compact", parents=[common], help="merge small Parquet files now")
    sub.add_parser("health", parents=[common], help="print the store's health as JSON")
    keep = sub.add_parser(
        "retention", parents=[common], help="remove raw event files older than retention_days"
    )
    keep.add_argument("--days", type=float, help="override retention_days for this run")
    keep.add_argument("--dry-run", action="store_true", help="only list the files that would go")
    token = sub.add_parser("token", parents=[common], help="create an ingest token")
    token.add_argument("--label", default="token", help="a name to remember it by")

    imp = sub.add_parser("import", parents=[common], help="import Claude Code transcripts")
    imp.add_argument(
        "paths",
        nargs="*",
        type=Path,
        help="files or folders (default: Claude's projects/ folders)",
    )
    imp.add_argument(
        "--gt-costs",
        action="store_true",
        help="also import Gas Town's ~/.gt/costs.jsonl (same spend as the transcripts: "
        "use one or the other)",
    )
    imp.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    imp.add_argument("--batch-events", type=int, default=5000, help="events per durable batch")
    sub.add_parser("pricing", parents=[common], help="list the model pricing table")
    _hook_parsers(sub, common)
    return parser


def _hook_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    hook = sub.add_parser("hook", help="Claude Code hook: send new transcript usage (stdin JSON)")
    hook.add_argument(
        "--gt-costs",
        nargs="?",
        const="",
        metavar="PATH",
        help="forward Gas Town's cost log (default ~/.gt/costs.jsonl) as running totals",
    )
    hooks = sub.add_parser("hooks", help="install or remove the hook in Claude's settings.json")
    action = hooks.add_subparsers(dest="action", required=True)
    for name in ("install", "uninstall"):
        p = action.add_parser(
            name, parents=[common], help=f"{name} Gasometer's Stop/SubagentStop/SessionEnd hooks"
        )
        p.add_argument(
            "--settings", type=Path, help="settings file (default ~/.claude/settings.json)"
        )
    install = action.choices["install"]
    install.add_argument(
        "--command", dest="hook_command", help="hook command (default: gasometer hook)"
    )
    install.add_argument(
        "--http", metavar="SERVER_URL", help="install an http hook to this server instead"
    )
    install.add_argument("--url", help="server URL the hook sends to (stored for the hook)")
    install.add_argument("--token", help="ingest token the hook sends with (stored, mode 600)")
    action.add_parser("status", parents=[common], help="the hook's spool, settings and last log")


def _server_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default 8000)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; exit 1 with one clear line on any user-facing error."""
    args = build_parser().parse_args(argv)
    if args.command == "hook":
        return _hook(args)
    try:
        overrides: dict[str, Any] = {
            "data_dir": args.data_dir,
            "host": getattr(args, "host", None),
            "port": getattr(args, "port", None),
        }
        settings = load_settings(overrides)
        logging.basicConfig(
            level=settings.log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        return COMMANDS[args.command](args, settings)
    except GasometerError as exc:
        print(f"gasometer: error: {exc}", file=sys.stderr)
        return 1
    except (OSError, sqlite3.Error) as exc:
        print(f"gasometer: error: {_system_error(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _system_error(exc: OSError | sqlite3.Error) -> str:
    """One line for an error of the file system or the ledger (e.g. an unusable --data-dir)."""
    if isinstance(exc, FileExistsError | NotADirectoryError) and exc.filename:
        return f"{exc.filename}: not a directory"
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror}"
    if isinstance(exc, sqlite3.Error):
        return f"cannot use the ledger in the data directory: {exc}"
    return str(exc)


def _refuse_if_in_use(data_dir: Path) -> None:
    """Fail with one line before uvicorn starts if another process owns the data directory
    (the same check inside the app's startup would end in a traceback)."""
    from gasometer.store.store import StoreLocked

    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise StoreLocked(
            f"{data_dir.resolve()} is in use by another gasometer process (stop it first)"
        ) from None
    finally:
        os.close(fd)


@command("serve")
def serve(_: argparse.Namespace, settings: Settings) -> int:
    """Serve the API, live stream and dashboard with uvicorn."""
    _refuse_if_in_use(settings.data_dir)
    import uvicorn

    from gasometer.api.app import create_app
    from gasometer.api.connections import server_options

    if not settings.token_digests():
        print(
            "gasometer: warning: no ingest token configured; "
            "create one with `gasometer token` or set GASOMETER_TOKENS",
            file=sys.stderr,
        )
    print(f"Gasometer {__version__} on http://{settings.host}:{settings.port}", flush=True)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        **server_options(settings),
    )
    return 0


def _hook(args: argparse.Namespace) -> int:
    """`gasometer hook` skips settings and logging set-up: it must start fast and exit 0."""
    try:
        from gasometer.hook.run import run_hook
    except Exception:
        return 0
    return run_hook(cost_log=args.gt_costs)


@command("hooks")
def hooks(args: argparse.Namespace, _: Settings) -> int:
    """Add or remove Gasometer's entries in Claude Code's settings.json, or show status."""
    import os

    from gasometer.hook import install as inst
    from gasometer.hook.config import hook_home

    if args.action == "status":
        from gasometer.hook.config import load_hook_config
        from gasometer.hook.status import hook_status

        report = hook_status(load_hook_config(os.environ))
        print(msgspec.json.format(msgspec.json.encode(report)).decode())
        return 0
    path = args.settings or inst.default_settings_path(os.environ)
    if args.action == "uninstall":
        change = inst.uninstall(path)
        print(f"{path}: removed {change.removed} Gasometer hook(s)" + _backup_note(change.backup))
        return 0
    hook = (
        inst.http_hook(args.http)
        if args.http
        else inst.command_hook(args.hook_command or inst.default_command())
    )
    change = inst.install(path, hook)
    stored = inst.write_client_config(hook_home(os.environ), args.url, args.token)
    what = "installed" if change.changed else "already installed"
    print(
        f"{path}: Gasometer hook {what} for {', '.join(inst.EVENTS)}" + _backup_note(change.backup)
    )
    if stored:
        print(f"hook settings stored in {stored}")
    return 0


def _backup_note(backup: Path | None) -> str:
    return f" (backup: {backup})" if backup else ""


@command("token")
def token(args: argparse.Namespace, settings: Settings) -> int:
    """Create a token, store only its SHA-256, print it once."""
    print(add_token(settings, args.label))
    return 0


def add_token(settings: Settings, label: str) -> str:
    """A new random ingest token whose digest is stored in the data directory."""
    import hashlib

    value = secrets.token_urlsafe(24)
    path = settings.data_dir / TOKEN_FILE
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    kept = [
        line
        for line in (path.read_text().splitlines() if path.exists() else [])
        if line.split()[1:2] != [label]
    ]
    kept.append(f"{hashlib.sha256(value.encode()).hexdigest()} {label}")
    path.write_text("\n".join(kept) + "\n")
    path.chmod(0o600)
    return value


@command("demo")
def demo(args: argparse.Namespace, settings: Settings) -> int:
    """Write demo data (unless the store has some and --if-empty), then serve."""
    from gasometer.demo import write_demo

    write_demo(settings, events=args.events, days=args.days, seed=args.seed, if_empty=args.if_empty)
    if args.no_serve:
        return 0
    value = add_token(settings, "demo")
    print(f"Ingest token: {value}", flush=True)
    return serve(args, settings)


@command("compact")
def compact(_: argparse.Namespace, settings: Settings) -> int:
    """Flush the WAL and merge every partition's small files."""
    from gasometer.store.store import Store

    store = Store(settings)
    try:
        store.flush(force=True)
        replaced = store.compact(full=True)
        store.delete_retired(grace_s=0)
        print(f"compacted {replaced} files into {len(store.files())} live files")
    finally:
        store.close()
    return 0


@command("retention")
def retention(args: argparse.Namespace, settings: Settings) -> int:
    """Retire raw event files wholly older than the horizon; rollups keep every total."""
    from gasometer.store import retention as keep
    from gasometer.store.store import Store

    days = args.days if args.days is not None else settings.retention_days
    if days is None or days <= 0:
        raise ConfigError("no retention set: pass --days N or set GASOMETER_RETENTION_DAYS")
    store = Store(settings, readonly=args.dry_run)
    try:
        if args.dry_run:
            horizon = keep.horizon_us(days)
            expired = keep.expired_files(store.data_dir, store.files(), horizon)
            for entry in expired:
                print(f"would remove {entry.path} ({entry.rows} rows)")
            print(f"horizon {keep.iso(horizon)}: {len(expired)} files would go")
            return 0
        outcome = store.apply_retention(days)
        store.delete_retired(grace_s=0)
        print(
            f"horizon {outcome.horizon}: removed {len(outcome.files)} raw event files "
            f"({outcome.rows} rows); hourly rollups kept"
        )
    finally:
        store.close()
    return 0


@command("health")
def health(_: argparse.Namespace, settings: Settings) -> int:
    """Print the store's health as JSON."""
    from gasometer.query.engine import QueryEngine
    from gasometer.query.health import health_report
    from gasometer.store.store import Store

    store = Store(settings, readonly=True)
    engine = QueryEngine(store)
    try:
        report = health_report(store, engine)
        print(msgspec.json.format(msgspec.json.encode(report)).decode())
    finally:
        engine.close()
        store.close()
    return 0


@command("import")
def import_(args: argparse.Namespace, settings: Settings) -> int:
    """Import transcripts (only what is new since the last import) with a progress bar."""
    from gasometer.importer.console import run_import

    run_import(
        settings,
        args.paths,
        quiet=args.quiet,
        batch_events=args.batch_events,
        gt_costs=args.gt_costs,
    )
    return 0


@command("pricing")
def pricing(_: argparse.Namespace, __: Settings) -> int:
    """List the pricing table shipped with this version."""
    from gasometer.importer.console import print_pricing

    print_pricing()
    return 0


@command("sql")
def sql(args: argparse.Namespace, settings: Settings) -> int:
    """Run one read-only statement in the SQL sandbox; print a table, CSV, JSON or write Parquet."""
    from gasometer.query.sandbox import Limits, Sandbox, encode
    from gasometer.store.store import Store

    if args.format == "parquet" and args.output is None:
        raise ConfigError("--format parquet needs --output FILE")
    store = Store(settings, readonly=True)
    try:
        result = Sandbox(store.snapshot, Limits.from_settings(settings)).run(args.query)
    finally:
        store.close()
    if args.format == "parquet":
        args.output.write_bytes(encode(result, "parquet"))
    elif args.format in ("json", "csv"):
        sys.stdout.write(encode(result, args.format).decode().rstrip("\n") + "\n")
    else:
        _print_table(result.columns, result.rows())
    if result.truncated:
        print(f"gasometer: note: only the first {result.table.num_rows} rows", file=sys.stderr)
    return 0


def _print_table(columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    Console().print(table)
