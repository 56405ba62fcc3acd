"""POST /api/rollups/rebuild: recompute the hourly rollups from raw events."""

from __future__ import annotations

import msgspec
from litestar import post

from gasometer.runtime import Gasometer


class RebuildResult(msgspec.Struct):
    """The months whose rollup was recomputed (months past retention keep theirs)."""

    months: list[str]


@post("/api/rollups/rebuild", status_code=200, sync_to_thread=True, opt={"scope": "admin"})
def rebuild_rollups(gm: Gasometer) -> RebuildResult:
    """Rebuild every month's hourly rollup from its raw events, one month at a time; reads
    and ingest go on meanwhile, each month switching over in one ledger transaction."""
    return RebuildResult(months=gm.store.rebuild_rollups())


routes = [rebuild_rollups]
