"""The terminal side of `gasometer import` and `gasometer pricing` (rich output)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import msgspec
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from gasometer.config import Settings
from gasometer.errors import GasometerError
from gasometer.importer.run import Importer, ImportProgress, check_paths
from gasometer.pricing import PricingTable, default_table
from gasometer.pricing.table import Rates
from gasometer.terminal import console


class DataDirBusy(GasometerError):
    """The data directory is held by a running server: import through its API instead."""


def run_import(
    settings: Settings,
    paths: list[Path],
    *,
    quiet: bool = False,
    batch_events: int = 5000,
    gt_costs: bool = False,
) -> ImportProgress:
    """Open the data directory, import with a progress bar, print the summary."""
    from gasometer.runtime import Gasometer
    from gasometer.store.store import StoreLocked

    paths = check_paths(paths, gt_costs=gt_costs)
    try:
        gm = Gasometer.open(settings)
    except StoreLocked:
        raise DataDirBusy(
            f"{settings.data_dir} is held by a running `gasometer serve`; "
            "import through it instead: POST /api/import (with your token)"
        ) from None
    err = Console(stderr=True)
    bar = Progress(
        TextColumn("[bold]import"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TextColumn("files {task.fields[files]}"),
        TimeElapsedColumn(),
        console=err,
        disable=quiet or not err.is_terminal,
        transient=True,
    )
    try:
        with bar:
            task = bar.add_task("import", total=None, files="0/0")

            def show(p: ImportProgress) -> None:
                files = f"{p.files_done}/{p.files_total}"
                bar.update(task, total=max(p.bytes_total, 1), completed=p.bytes_done, files=files)

            progress = Importer(gm, on_progress=show, batch_events=batch_events).run(paths or None)
    finally:
        gm.close()
    if not quiet:
        print_summary(progress)
    return progress


def print_summary(p: ImportProgress) -> None:
    """The end summary: files, lines, events, duplicates, bad lines, unknown models, time."""
    mb = p.bytes_done / 1e6
    rate = mb / p.elapsed_s if p.elapsed_s > 0 else 0.0
    print(
        f"imported {p.files_total} files ({p.files_unchanged} unchanged, "
        f"{p.files_failed} unreadable), {mb:.1f} MB in {p.elapsed_s:.1f} s ({rate:.0f} MB/s)"
    )
    print(
        f"lines {p.lines}, responses {p.responses}, events stored {p.accepted}, "
        f"duplicates skipped {p.duplicates}, bad lines {p.bad_lines}, "
        f"other lines {p.skipped_lines}, API errors (<synthetic>) {p.synthetic}"
    )
    if p.truncated_files:
        print(f"{p.truncated_files} files end in an incomplete line (read on next import)")
    if p.unknown_models:
        names = ", ".join(f"{m} ({n})" for m, n in sorted(p.unknown_models.items()))
        print(
            f"gasometer: warning: {p.unknown_responses} responses of unknown models "
            f"stored with cost 0 (tokens kept): {names}",
            file=sys.stderr,
        )


def print_pricing(table: PricingTable | None = None, fmt: str = "table") -> None:
    """The pricing table, one row per family and rate period (USD per million tokens), as
    a table, JSON (every family with its aliases and dated rates) or CSV."""
    table = table or default_table()
    if fmt == "json":
        families = msgspec.to_builtins(table.families)
        doc = {"version": table.version, "unit": "USD per million tokens", "families": families}
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(doc)).decode() + "\n")
        return
    if fmt == "csv":
        _pricing_csv(table)
        return
    out = Table(
        title=f"Claude prices, USD per million tokens (table {table.version})",
        caption="long: whole request at these rates when input+cache > threshold",
    )
    out.add_column("model", no_wrap=True)
    out.add_column("from", no_wrap=True)
    for name in ("in", "out", "w5m", "w1h", "read"):
        out.add_column(name, justify="right")
    out.add_column("long context")
    out.add_column("fast", justify="right")
    for family in table.families:
        for index, period in enumerate(family.rates):
            long = ""
            if period.long_context_threshold is not None:
                rates = "/".join(f"{v:g}" for v in period.long())
                long = f">{period.long_context_threshold // 1000}k: {rates}"
            fast = f"x{family.fast_multiplier:g}" if family.fast_multiplier != 1.0 else ""
            out.add_row(
                family.name,
                period.since.isoformat() if index else "",
                *(f"{v:g}" for v in period.standard()),
                long,
                fast,
            )
    console().print(out)


def _pricing_csv(table: PricingTable) -> None:
    fields = list(Rates.__struct_fields__)
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["model", "label", *fields, "fast_multiplier"])
    for family in table.families:
        for period in family.rates:
            values = ["" if v is None else v for v in (getattr(period, f) for f in fields)]
            writer.writerow([family.name, family.label, *values, family.fast_multiplier])
