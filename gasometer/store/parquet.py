"""Parquet files written so that a crash never leaves a half-written file in place."""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

import duckdb

from gasometer.fsutil import fsync_dir

ROW_GROUP_SIZE = 122_880


def copy_to_parquet(
    conn: duckdb.DuckDBPyConnection,
    select_sql: str,
    dest: Path,
    metadata: dict[str, str] | None = None,
) -> int:
    """Write the rows of `select_sql` to `dest` atomically (temp file, fsync, rename),
    with `metadata` as the file's key-value metadata.

    Returns the number of rows written. `select_sql` and `metadata` must not hold user
    input: COPY takes no bound parameters.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        row = conn.execute(
            f"COPY ({select_sql}) TO '{_quoted(tmp)}' "
            f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {ROW_GROUP_SIZE}"
            f"{_kv_option(metadata)})"
        ).fetchone()
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, dest)
        fsync_dir(dest.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return int(row[0]) if row else 0


def _kv_option(metadata: dict[str, str] | None) -> str:
    if not metadata:
        return ""
    pairs = ", ".join(f"'{_sql_text(k)}': '{_sql_text(v)}'" for k, v in metadata.items())
    return f", KV_METADATA {{{pairs}}}"


def _sql_text(text: str) -> str:
    return text.replace("'", "''")


def parquet_list_sql(paths: list[str] | tuple[str, ...]) -> str:
    """A DuckDB list literal of file paths (our own generated names, quoted anyway)."""
    return "[" + ", ".join(f"'{_quoted(Path(p))}'" for p in paths) + "]"


def _quoted(path: Path) -> str:
    return _sql_text(str(path))
