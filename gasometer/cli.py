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
from gasometer.errors import GasometerError

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
    sql.add_argument("query", help="SQL over the views `events` and `hourly`")
    sql.add_argument("--format", choices=["table", "csv", "json", "parquet"], default="table")
    sql.add_argument("--output", type=Path, help="file for --format parquet")

    sub.add_parser("compact", parents=[common], help="merge small Parquet files now")
    sub.add_parser("health", parents=[common], help="print the store's health as JSON")
    token = sub.add_parser("token", parents=[common], help="create an ingest token")
    token.add_argument("--label", default="token", help="a name to remember it by")

    imp = sub.add_parser("import", parents=[common], help="import Claude Code transcripts")
    imp.add_argument(
        "paths",
        nargs="*",
        type=Path,
        help="files or folders (default: Claude's projects/ folders and ~/.gt/costs.jsonl)",
    )
    imp.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    imp.add_argument("--batch-events", type=int, default=5000, help="events per durable batch")
    sub.add_parser("pricing", parents=[common], help="list the model pricing table")
    return parser


def _server_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default 8000)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; exit 1 with one clear line on any user-facing error."""
    args = build_parser().parse_args(argv)
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
    )
    return 0


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


@command("health")
def health(_: argparse.Namespace, settings: Settings) -> int:
    """Print the store's health as JSON."""
    from gasometer.api.reads import health_report
    from gasometer.query.engine import QueryEngine
    from gasometer.runtime import Gasometer
    from gasometer.store.store import Store

    store = Store(settings, readonly=True)
    engine = QueryEngine(store)
    try:
        report = health_report(Gasometer(settings, store, None, engine, None))  # type: ignore[arg-type]
        print(msgspec.json.format(msgspec.json.encode(report)).decode())
    finally:
        engine.close()
        store.close()
    return 0


@command("import")
def import_(args: argparse.Namespace, settings: Settings) -> int:
    """Import transcripts (only what is new since the last import) with a progress bar."""
    from gasometer.importer.console import run_import

    run_import(settings, args.paths, quiet=args.quiet, batch_events=args.batch_events)
    return 0


@command("pricing")
def pricing(_: argparse.Namespace, __: Settings) -> int:
    """List the pricing table shipped with this version."""
    from gasometer.importer.console import print_pricing

    print_pricing()
    return 0


@command("sql")
def sql(args: argparse.Namespace, settings: Settings) -> int:
    """Run SQL over the store and print a table, CSV, JSON or write Parquet."""
    from gasometer.query.engine import QueryEngine
    from gasometer.store.store import Store

    store = Store(settings, readonly=True)
    engine = QueryEngine(store)
    try:
        result = engine.execute(args.query)
        _print_result(result.columns, result.rows, args.format)
    finally:
        engine.close()
        store.close()
    return 0


def _print_result(columns: list[str], rows: list[tuple[Any, ...]], fmt: str) -> None:
    if fmt == "json":
        print(msgspec.json.encode({"columns": columns, "rows": rows}).decode())
    elif fmt == "csv":
        import csv

        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows(rows)
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(*columns)
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        Console().print(table)
