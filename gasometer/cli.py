"""`gasometer …`: the one command-line entry point.

Errors reach the user as one line on stderr and a non-zero exit; data goes to stdout.
"""

from __future__ import annotations

import argparse
import fcntl
import functools
import logging
import os
import sqlite3
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from gasometer import __version__
from gasometer.config import Settings, load_settings
from gasometer.errors import ConfigError, GasometerError
from gasometer.reports import command as reports
from gasometer.tokens import SCOPES, TOKEN_FILE, TokenRegistry, create_token, read_entries

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
    parser = argparse.ArgumentParser(
        prog="gasometer",
        description=USAGE,
        epilog=NEXT_STEPS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"gasometer {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir", type=Path, help="data directory (default ./data, env GASOMETER_DATA_DIR)"
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="<command>", title="all commands"
    )

    serve = sub.add_parser("serve", parents=[common], help="serve the API and dashboard")
    _server_args(serve)

    demo = sub.add_parser(
        "demo", parents=[common], help="write demo data, then serve it with a live demo town"
    )
    demo.add_argument(
        "--events", type=int, default=200_000, help="events to generate (default: %(default)s)"
    )
    demo.add_argument("--days", type=int, default=60, help="days of history (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=7, help="random seed (default: %(default)s)")
    demo.add_argument("--if-empty", action="store_true", help="write only into an empty store")
    demo.add_argument("--no-serve", action="store_true", help="only write the data")
    demo.add_argument(
        "--no-live", action="store_true", help="no simulated agents posting events while serving"
    )
    _server_args(demo)

    sql = sub.add_parser("sql", parents=[common], help="run read-only SQL over the store")
    sql.add_argument("query", help="one SELECT over `events`, `hourly` and `queries.<name>(…)`")
    sql.add_argument(
        "--format",
        choices=["table", "csv", "json", "parquet"],
        default="table",
        help="output format (default: %(default)s)",
    )
    sql.add_argument("--output", type=Path, help="file for --format parquet")

    sub.add_parser("compact", parents=[common], help="merge small Parquet files now")
    sub.add_parser("health", parents=[common], help="print the store's health as JSON")
    sub.add_parser(
        "rebuild-catalog",
        parents=[common],
        help="recreate a lost or damaged ledger from the Parquet files (server stopped)",
    )
    quarantine = sub.add_parser(
        "quarantine",
        parents=[common],
        help="list, show, release or drop batches that could not flush",
    )
    quarantine.add_argument(
        "action", nargs="?", default="list", choices=["list", "show", "release", "drop"]
    )
    quarantine.add_argument("batch", nargs="?", type=int, help="batch id (show, release, drop)")
    keep = sub.add_parser(
        "retention", parents=[common], help="remove raw event files older than retention_days"
    )
    keep.add_argument("--days", type=float, help="override retention_days for this run")
    keep.add_argument("--dry-run", action="store_true", help="only list the files that would go")
    token = sub.add_parser("token", parents=[common], help="create, list or revoke tokens")
    token.add_argument("--scope", choices=SCOPES, default="ingest", help="what it may do")
    token.add_argument("--label", help="a new name to remember it by (default <scope>-<n>)")
    what = token.add_mutually_exclusive_group()
    what.add_argument("--list", action="store_true", help="list tokens (never their values)")
    what.add_argument("--revoke", metavar="LABEL_OR_DIGEST", help="revoke by label or digest")

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
    prices = sub.add_parser("pricing", help="list the model pricing table")
    prices.add_argument(
        "--format",
        choices=["table", "json", "csv"],
        default="table",
        help="output format (default: %(default)s)",
    )
    reports.add_parsers(sub, common)
    _hook_parsers(sub)
    return parser


USAGE = """\
Gasometer: what every Claude Code agent of your fleet costs, right now and over time.

It takes in cost events (Claude Code hooks, transcript imports, HTTP), keeps them in
Parquet and answers with a live dashboard, a REST API and live stream, read-only SQL,
and ccusage-style reports.

common commands:
  gasometer demo                 demo data and a live demo town on http://127.0.0.1:8000
  gasometer serve                serve your own data (./data) on http://127.0.0.1:8000
  gasometer import               import Claude Code transcripts (~/.claude/projects)
  gasometer hooks install        report every agent session from now on (Claude Code hooks)
  gasometer daily                cost and tokens per day, like `ccusage daily`
  gasometer sql "SELECT ..."     read-only SQL over the stored events"""

NEXT_STEPS = """\
Run `gasometer <command> --help` for a command's options. README.md has the quick
start and the API; docs/operating.md covers running it for a fleet, backups and
troubleshooting."""


def _hook_parser(sub: Any) -> None:
    hook = sub.add_parser("hook", help="Claude Code hook: send new transcript usage (stdin JSON)")
    hook.add_argument(
        "--gt-costs",
        nargs="?",
        const="",
        metavar="PATH",
        help="forward Gas Town's cost log (default ~/.gt/costs.jsonl) as running totals",
    )


def _hook_parsers(sub: Any) -> None:
    _hook_parser(sub)
    hooks = sub.add_parser(
        "hooks", help="install, remove or check the hook in Claude Code's settings"
    )
    action = hooks.add_subparsers(dest="action", required=True)
    for name in ("install", "uninstall"):
        action.add_parser(name, help=f"{name} Gasometer's Stop/SubagentStop/SessionEnd hooks")
    action.add_parser("status", help="the hook's settings files, spool and last log lines")
    for p in action.choices.values():
        p.add_argument(
            "--settings",
            type=Path,
            help="Claude Code settings file (default: settings.json in each CLAUDE_CONFIG_DIR "
            "entry, else ~/.claude/settings.json)",
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


def _server_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default 8000)")
    parser.add_argument(
        "--public-read",
        action="store_const",
        const=True,
        help="serve reads without a token even off loopback (setting public_read)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; exit 1 with one clear line on any user-facing error."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["hook"]:  # run by every agent turn: parse only what it takes
        hook_only = argparse.ArgumentParser(prog="gasometer")
        _hook_parser(hook_only.add_subparsers(dest="command", required=True))
        return _hook(hook_only.parse_args(argv))
    args = build_parser().parse_args(argv)
    try:
        overrides: dict[str, Any] = {
            "data_dir": getattr(args, "data_dir", None),
            "host": getattr(args, "host", None),
            "port": getattr(args, "port", None),
            "public_read": getattr(args, "public_read", None),
        }
        # `pricing` and `hooks` use no server setting: a bad one must not stop them
        settings = Settings() if args.command in ("pricing", "hooks") else load_settings(overrides)
        logging.basicConfig(
            level=settings.log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        return COMMANDS[args.command](args, settings)
    except GasometerError as exc:
        print(f"gasometer: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `gasometer pricing | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (OSError, sqlite3.Error) as exc:
        print(f"gasometer: error: {_system_error(exc)}", file=sys.stderr)
        return 1


COMMANDS.update({name: functools.partial(reports.run_report, name) for name in reports.REPORTS})


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
    from gasometer.store.store import open_ledger

    _refuse_if_in_use(settings.data_dir)
    open_ledger(settings.data_dir.resolve()).close()
    from gasometer import serving
    from gasometer.api.app import create_app

    sock = serving.bind(settings.host, settings.port)
    try:
        _check_exposure(settings)
    except ConfigError:
        sock.close()
        raise
    print(
        f"Gasometer {__version__} on http://{settings.host}:{settings.port} (Ctrl-C stops it)",
        flush=True,
    )
    serving.run(create_app(settings), settings, sock)
    return 0


def _check_exposure(settings: Settings) -> None:
    """Refuse to listen beyond loopback with no token able to ingest; warn on loopback;
    say which Host names are answered when bound to every interface."""
    has_ingest = TokenRegistry(settings).any_with("ingest")
    if not has_ingest and not settings.loopback():
        raise ConfigError(
            f"refusing to listen on {settings.host} with no ingest or admin token: "
            "create one with `gasometer token` (or bind to 127.0.0.1)"
        )
    if not has_ingest:
        print(
            "gasometer: warning: no ingest token configured; "
            "create one with `gasometer token` or set GASOMETER_TOKENS",
            file=sys.stderr,
        )
    if settings.host in ("0.0.0.0", "::") and not settings.allowed_hosts:
        print(
            "gasometer: note: only requests naming localhost, 127.0.0.1 or ::1 are answered; "
            "add the names clients use to allowed_hosts",
            file=sys.stderr,
        )


def _hook(args: argparse.Namespace) -> int:
    """`gasometer hook` skips settings and logging set-up: it must start fast and exit 0."""
    try:
        from gasometer.hook.run import run_hook
    except Exception:
        return 0
    return run_hook(cost_log=args.gt_costs)


@command("hooks")
def hooks(args: argparse.Namespace, _: Settings) -> int:
    """Add or remove Gasometer's entries in Claude Code's settings files, or show status."""
    from gasometer.hook.commands import run_hooks

    return run_hooks(args)


@command("token")
def token(args: argparse.Namespace, settings: Settings) -> int:
    """Create a token (print it once, store only its SHA-256), list them, or revoke one."""
    from gasometer.tokens import revoke_tokens

    path = settings.data_dir / TOKEN_FILE
    if args.list:
        print(f"{'LABEL':<20} {'SCOPE':<7} {'DIGEST':<12} CREATED")
        for entry in read_entries(path):
            label = entry.label or "-"
            print(f"{label:<20} {entry.scope:<7} {entry.digest[:12]:<12} {entry.created or '-'}")
        return 0
    if args.revoke:
        for entry in revoke_tokens(path, args.revoke):
            print(f"revoked {entry.label or '-'} ({entry.scope}, {entry.digest[:12]})")
        return 0
    value, entry = create_token(path, args.scope, args.label)
    print(f"gasometer: {entry.scope} token {entry.label!r} created", file=sys.stderr)
    print(value)
    return 0


def demo_token(settings: Settings) -> str:
    """The demo's admin token: a fresh one each run, replacing the previous run's `demo`."""
    from gasometer.tokens import revoke_tokens

    path = settings.data_dir / TOKEN_FILE
    if any(e.label == "demo" for e in read_entries(path)):
        revoke_tokens(path, "demo")
    return create_token(path, "admin", "demo")[0]


@command("demo")
def demo(args: argparse.Namespace, settings: Settings) -> int:
    """Write demo data (unless the store has some and --if-empty), then serve it with the
    live demo town (simulated agents) unless --no-live."""
    from gasometer.demo import write_demo

    write_demo(settings, events=args.events, days=args.days, seed=args.seed, if_empty=args.if_empty)
    if args.no_serve:
        return 0
    value = demo_token(settings)
    print(f"Admin token (ingest, read, SQL, import): {value}", flush=True)
    from gasometer.demo_live import start_live_town

    town = None if args.no_live else start_live_town(settings, value)
    try:
        return serve(args, settings)
    finally:
        if town is not None:
            town.stop()


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

    if args.days is not None and not args.days > 0:
        raise ConfigError(f"--days: must be more than 0 (got {args.days:g})")
    days = args.days if args.days is not None else settings.retention_days
    if days is None:
        raise ConfigError("no retention set: pass --days N or set GASOMETER_RETENTION_DAYS")
    if days < 1:
        raise ConfigError(f"--days {days:g}: retention keeps at least 1 day of raw events")
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


@command("rebuild-catalog")
def rebuild_catalog(_: argparse.Namespace, settings: Settings) -> int:
    """Recreate the ledger from the data files: catalog, identity index, totals, counters."""
    from gasometer.store.catalog import rebuild_catalog as rebuild

    _refuse_if_in_use(settings.data_dir)
    report = rebuild(settings.data_dir, lambda line: print(line, file=sys.stderr, flush=True))
    print(msgspec.json.format(msgspec.json.encode(report)).decode())
    return 0


@command("quarantine")
def quarantine(args: argparse.Namespace, settings: Settings) -> int:
    """Inspect batches set aside because they could not be flushed; release or drop one."""
    from gasometer.store import ledger
    from gasometer.store.store import open_ledger

    _refuse_if_in_use(settings.data_dir)
    conn = open_ledger(settings.data_dir)
    try:
        if args.action == "list":
            rows = [q._asdict() for q in ledger.quarantined(conn)]
            print(msgspec.json.format(msgspec.json.encode(rows)).decode())
            return 0
        if args.batch is None:
            raise ConfigError(f"quarantine {args.action} needs a batch id (see `quarantine list`)")
        done = {
            "show": lambda: _print_batch(ledger.quarantined_payload(conn, args.batch)),
            "release": lambda: ledger.release_quarantined(conn, args.batch),
            "drop": lambda: ledger.drop_quarantined(conn, args.batch),
        }[args.action]()
        if not done:
            raise ConfigError(f"no quarantined batch {args.batch}")
        if args.action != "show":
            print(f"batch {args.batch}: {args.action} done")
    finally:
        conn.close()
    return 0


def _print_batch(payload: bytes | None) -> bool:
    """Print a batch's stored events as NDJSON; False if there is none."""
    from gasometer.model import StoredEvent

    if payload is None:
        return False
    for event in msgspec.msgpack.decode(payload, type=list[StoredEvent]):
        print(msgspec.json.encode(msgspec.structs.asdict(event)).decode())
    return True


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
def pricing(args: argparse.Namespace, _: Settings) -> int:
    """List the pricing table shipped with this version."""
    from gasometer.importer.console import print_pricing

    print_pricing(fmt=args.format)
    return 0


@command("sql")
def sql(args: argparse.Namespace, settings: Settings) -> int:
    """Run one read-only statement in the SQL sandbox; print a table, CSV, JSON or write Parquet."""
    from gasometer.query.sandbox import Limits, Sandbox, encode
    from gasometer.store.store import Store

    if args.format == "parquet" and args.output is None:
        raise ConfigError("--format parquet needs --output FILE")
    store = Store(settings, readonly=True)
    sandbox = Sandbox(store.snapshot, Limits.from_settings(settings))
    try:
        result = sandbox.run(args.query)
    finally:
        sandbox.close()
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
    from rich.table import Table

    from gasometer.terminal import console

    table = Table(*columns)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console().print(table)
