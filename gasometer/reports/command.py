"""`gasometer daily|weekly|monthly|session|blocks`: ccusage's reports over Gasometer's store.

The flags are ccusage's (`--since`, `--until`, `--timezone`, `--json`, `--breakdown`,
`--order`) plus Gasometer's dimensions (`--role`, `--rig`, `--worker`, `--issue`, `--by`).
Data comes from a running server (`--url`) or a data directory, opened read-only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from gasometer.config import Settings
from gasometer.errors import ConfigError
from gasometer.reports import WEEKDAYS

if TYPE_CHECKING:
    from gasometer.query.stats import GroupBy
    from gasometer.reports.build import Kind, Options, Report


REPORTS: dict[str, str] = {
    "daily": "cost and tokens per day (like `ccusage daily`)",
    "weekly": "cost and tokens per week",
    "monthly": "cost and tokens per month",
    "session": "cost and tokens per agent session, most recent last",
    "blocks": "cost and tokens per 5-hour billing block, the running one projected",
}


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """One subparser per report, sharing ccusage's flags and Gasometer's filters."""
    for name, help_text in REPORTS.items():
        p = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
        _report_args(p)
        if name == "weekly":
            p.add_argument(
                "-w",
                "--start-of-week",
                choices=WEEKDAYS,
                default="sunday",
                help="day weeks start on (default: sunday, as ccusage)",
            )
        if name == "session":
            p.add_argument(
                "--limit",
                type=int,
                default=1000,
                help="most recent sessions listed (default: 1000)",
            )


def _report_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-s", "--since", help="first day, YYYYMMDD or YYYY-MM-DD")
    p.add_argument("-u", "--until", help="last day (included), YYYYMMDD or YYYY-MM-DD")
    p.add_argument(
        "-z", "--timezone", help="IANA zone the days are cut in (default: this machine's zone)"
    )
    p.add_argument("-j", "--json", action="store_true", help="JSON shaped like ccusage's --json")
    p.add_argument("-b", "--breakdown", action="store_true", help="break each row down by model")
    p.add_argument(
        "-o", "--order", choices=["asc", "desc"], default="asc", help="row order (default: asc)"
    )
    p.add_argument("--by", choices=["role", "rig", "worker", "model"], help="break rows down by")
    for dim in ("role", "rig", "worker", "issue"):
        p.add_argument(f"--{dim}", help=f"only this {dim}" + (" (bead)" if dim == "issue" else ""))
    p.add_argument("--url", help="read from this running server instead of a data directory")
    p.add_argument("--token", help="read token for --url (default: env GASOMETER_TOKEN)")


def run_report(kind: str, args: argparse.Namespace, settings: Settings) -> int:
    """Build and print one report (the query layer is imported here, not at start-up:
    `gasometer hook` shares this parser and must start fast)."""
    from gasometer.reports.build import build
    from gasometer.reports.render import as_json, as_table
    from gasometer.reports.source import RemoteSource
    from gasometer.terminal import console

    report_kind = cast("Kind", kind)
    options = options_from(args)
    if args.url:
        token = args.token or os.environ.get("GASOMETER_TOKEN")
        report = build(report_kind, RemoteSource(args.url, token), options)
    else:
        report = _local_report(report_kind, settings, options)
    if args.json:
        sys.stdout.write(json.dumps(as_json(report), indent=2) + "\n")
    else:
        console().print(as_table(report))
    return 0


def _local_report(kind: Kind, settings: Settings, options: Options) -> Report:
    from gasometer.query.engine import QueryEngine
    from gasometer.reports.build import build
    from gasometer.reports.source import LocalSource, Source
    from gasometer.store.store import Store

    store = Store(settings, readonly=True)
    engine = QueryEngine(store, threads=settings.query_threads)
    try:
        source: Source = LocalSource(engine)
        return build(kind, source, options)
    finally:
        engine.close()
        store.close()


def options_from(args: argparse.Namespace) -> Options:
    """The report options of the command line, validated (one clear error each)."""
    from gasometer.reports.build import Options

    by: GroupBy | None = "model" if args.breakdown and not args.by else args.by
    if args.breakdown and args.by not in (None, "model"):
        raise ConfigError("--breakdown is --by model; pass one or the other")
    return Options(
        since=parse_day(args.since, "--since"),
        until=parse_day(args.until, "--until"),
        tz=args.timezone or local_zone(),
        order=args.order,
        by=by,
        role=args.role,
        rig=args.rig,
        worker=args.worker,
        issue=args.issue,
        start_of_week=getattr(args, "start_of_week", "sunday"),
        limit=getattr(args, "limit", 1000),
    )


def parse_day(value: str | None, flag: str) -> str | None:
    """YYYYMMDD (ccusage) or YYYY-MM-DD as YYYY-MM-DD."""
    if value is None:
        return None
    match = re.fullmatch(r"(\d{4})-?(\d{2})-?(\d{2})", value)
    if not match:
        raise ConfigError(f"{flag}: {value!r} is not a date (YYYYMMDD)")
    return "-".join(match.groups())


def local_zone() -> str:
    """This machine's IANA zone (TZ, else /etc/localtime), UTC if it cannot be told."""
    tz = os.environ.get("TZ", "").lstrip(":").split("zoneinfo/")[-1]
    if tz:
        return tz
    try:
        target = str(Path("/etc/localtime").resolve())
    except OSError:
        return "UTC"
    return target.split("zoneinfo/", 1)[1] if "zoneinfo/" in target else "UTC"
