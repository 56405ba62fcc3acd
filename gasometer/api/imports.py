"""POST /api/import starts a server-side import; GET /api/import/status reports on it."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Annotated

import msgspec
from litestar import Request, get, post
from litestar.datastructures import State

from gasometer.errors import BadRequest, GasometerError
from gasometer.importer.roots import MAX_PATH_CHARS, check_under, import_roots
from gasometer.importer.run import Importer, ImportProgress, NothingToImport, check_paths
from gasometer.runtime import Gasometer

log = logging.getLogger("gasometer.api.imports")


MAX_PATHS = 10_000
Path_ = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_PATH_CHARS)]


class ImportRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Optional body of POST /api/import: files or folders on the server's disk, inside
    the import roots (at most 10,000 paths of at most 4,096 characters)."""

    paths: Annotated[list[Path_], msgspec.Meta(max_length=MAX_PATHS)] | None = None


_decoder = msgspec.json.Decoder(ImportRequest)


class ImportRunning(GasometerError):
    """Only one import runs at a time."""

    status = 409


class ImportJob:
    """The server's one import: a background thread and its progress."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.progress = ImportProgress()
        self.thread: threading.Thread | None = None

    def start(self, gm: Gasometer, paths: list[Path], roots: list[Path]) -> ImportProgress:
        """Start importing in a thread; refuse while one is running."""
        with self.lock:
            if self.thread is not None and self.thread.is_alive():
                raise ImportRunning("an import is already running: see GET /api/import/status")
            importer = Importer(gm, roots=roots)
            self.progress = importer.progress
            self.progress.state = "running"
            self.thread = threading.Thread(
                target=self._run, args=(importer, paths), name="gasometer-import", daemon=True
            )
            self.thread.start()
            return self.snapshot()

    def _run(self, importer: Importer, paths: list[Path]) -> None:
        try:
            importer.run(paths)
        except Exception:
            log.exception("import failed")

    def snapshot(self) -> ImportProgress:
        """A copy of the progress, safe to encode while the import goes on."""
        p = self.progress
        return msgspec.structs.replace(
            p, skipped_types=dict(p.skipped_types), unknown_models=dict(p.unknown_models)
        )


def _job(state: State) -> ImportJob:
    job: ImportJob | None = getattr(state, "import_job", None)
    if job is None:
        job = ImportJob()
        state.import_job = job
    return job


@post("/api/import", status_code=202, opt={"scope": "admin"})
async def start_import(request: Request, gm: Gasometer) -> ImportProgress:
    """Start importing Claude Code transcripts (default: the server user's Claude folders)
    in the background; only from the import roots; 409 while another import runs."""
    body = await request.body()
    job = _job(request.app.state)
    return await asyncio.to_thread(_start, job, gm, body)


def _start(job: ImportJob, gm: Gasometer, body: bytes) -> ImportProgress:
    """Decode the request, check its paths against the import roots, start (blocking work,
    run off the event loop)."""
    req = ImportRequest()
    if body.strip():
        try:
            req = _decoder.decode(body)
        except msgspec.DecodeError as exc:
            raise BadRequest(f"invalid import request: {exc}") from exc
    roots = import_roots(gm.settings.import_roots)
    if req.paths:
        paths = check_under(req.paths, roots)
    else:
        paths = [r for r in roots if r.is_dir()]
        if not paths:
            raise BadRequest("no import root exists on the server (setting import_roots)")
    try:
        checked = check_paths(paths)
    except NothingToImport as exc:
        raise BadRequest(str(exc)) from exc
    return job.start(gm, checked, roots)


@get("/api/import/status", opt={"scope": "read"})
async def import_status(request: Request) -> ImportProgress:
    """Progress of the current (or last) import: files, bytes, events, duplicates, bad lines,
    unknown models, and state idle/running/finished/error (counts only, never content)."""
    return _job(request.app.state).snapshot()


routes = [start_import, import_status]
