"""POST /api/import starts a server-side import; GET /api/import/status reports on it."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import msgspec
from litestar import Request, get, post
from litestar.datastructures import State

from gasometer.errors import BadRequest, GasometerError
from gasometer.importer.run import Importer, ImportProgress, NothingToImport, check_paths
from gasometer.runtime import Gasometer

log = logging.getLogger("gasometer.api.imports")


class ImportRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Optional body of POST /api/import: files or folders on the server's disk."""

    paths: list[str] | None = None


class ImportRunning(GasometerError):
    """Only one import runs at a time."""

    status = 409


class ImportJob:
    """The server's one import: a background thread and its progress."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.progress = ImportProgress()
        self.thread: threading.Thread | None = None

    def start(self, gm: Gasometer, paths: list[Path] | None) -> ImportProgress:
        """Start importing in a thread; refuse while one is running."""
        with self.lock:
            if self.thread is not None and self.thread.is_alive():
                raise ImportRunning("an import is already running: see GET /api/import/status")
            importer = Importer(gm)
            self.progress = importer.progress
            self.progress.state = "running"
            self.thread = threading.Thread(
                target=self._run, args=(importer, paths), name="gasometer-import", daemon=True
            )
            self.thread.start()
            return self.snapshot()

    def _run(self, importer: Importer, paths: list[Path] | None) -> None:
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
    in the background; 409 while another import runs."""
    body = await request.body()
    paths = None
    if body.strip():
        try:
            req = msgspec.json.decode(body, type=ImportRequest)
        except msgspec.DecodeError as exc:
            raise BadRequest(f"invalid import request: {exc}") from exc
        paths = [Path(p) for p in req.paths] if req.paths else None
    try:
        checked = check_paths(paths)
    except NothingToImport as exc:
        raise BadRequest(str(exc)) from exc
    return _job(request.app.state).start(gm, checked)


@get("/api/import/status", opt={"scope": "read"})
async def import_status(request: Request) -> ImportProgress:
    """Progress of the current (or last) import: files, bytes, events, duplicates, bad lines,
    unknown models, and state idle/running/finished/error."""
    return _job(request.app.state).snapshot()


routes = [start_import, import_status]
