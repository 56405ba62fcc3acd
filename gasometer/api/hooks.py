"""POST /api/hooks/claude: Claude Code's own `http` hooks, handled on the server.

When agents and server share a machine, Claude Code can post its Stop, SubagentStop and
SessionEnd input here instead of running `gasometer hook`: the server reads the new part
of the named transcripts from disk and ingests it directly, exactly as the command hook
would (same reader, same attribution, same event ids). The agent's Gas Town identity
comes in `X-GT-*` headers, which Claude Code fills from the agent's environment.

Only transcripts inside the import roots are read (by default the `projects/` folder of
the server's `CLAUDE_CONFIG_DIR`, `~/.claude`, `~/.config/claude`): a token holder cannot
make the server read arbitrary files, nor learn what exists outside them. The answer is
200 with an empty body (an http hook's body would be shown to the agent); counts are in
`X-Gasometer-*` headers.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from litestar import Request, Response, post

from gasometer.errors import BadRequest, GasometerError
from gasometer.hook.env import from_environment, from_session_name
from gasometer.hook.harvest import Attribution, HarvestResult, harvest, transcript_files
from gasometer.hook.payload import MAX_INPUT_BYTES, HookInput, decode_input
from gasometer.importer.layout import Layout
from gasometer.importer.roots import OutsideRoots, check_under, import_roots, is_under
from gasometer.model import CostEvent
from gasometer.runtime import Gasometer

STATE_DIR = Path("hooks") / "state"
TIME_LIMIT_S = 4.0
HEADER_VARS = {
    "x-gt-role": "GT_ROLE",
    "x-gt-rig": "GT_RIG",
    "x-gt-polecat": "GT_POLECAT",
    "x-gt-crew": "GT_CREW",
    "x-gt-session": "GT_SESSION",
    "x-gt-work-bead": "GT_WORK_BEAD",
}


class Forbidden(GasometerError):
    """The hook named a file the server will not read."""

    status = 403


@post("/api/hooks/claude", status_code=200, opt={"scope": "ingest"})
async def claude_hook(request: Request, gm: Gasometer) -> Response[bytes]:
    """Ingest what the transcripts named in a Claude Code hook input gained since last time."""
    body = await request.body()
    environ = {var: request.headers.get(h, "") for h, var in HEADER_VARS.items()}
    result = await asyncio.to_thread(harvest_body, gm, body, environ)
    headers = {
        "X-Gasometer-Files": str(result.files),
        "X-Gasometer-Events": str(result.events),
        "X-Gasometer-Busy": str(result.busy),
    }
    return Response(b"", status_code=200, headers=headers, media_type="text/plain")


def harvest_body(gm: Gasometer, body: bytes, environ: dict[str, str]) -> HarvestResult:
    """Decode a hook input and harvest it (blocking: run off the event loop)."""
    payload = decode_input(body) if len(body) <= MAX_INPUT_BYTES else None
    if payload is None:
        raise BadRequest("body is not a Claude Code hook input (JSON with transcript_path)")
    return harvest_on_server(gm, payload, environ)


def harvest_on_server(gm: Gasometer, payload: HookInput, environ: dict[str, str]) -> HarvestResult:
    """Read, attribute and ingest the new part of the payload's transcripts (blocking).

    The named paths are checked against the import roots before anything is listed, and
    the refusal names none of them; subagent files found beside a checked transcript are
    checked again (a symlink out is skipped)."""
    roots = import_roots(gm.settings.import_roots)
    try:
        check_under(payload.transcripts(), roots, what="transcript")
    except OutsideRoots:
        raise Forbidden(
            "transcript_path is not under a Claude projects directory of this server"
        ) from None
    files = [f for f in transcript_files(payload) if is_under(f, roots)]

    def deliver(events: list[CostEvent]) -> bool:
        gm.ingest(events, default_source="hook")
        return True

    attribution = Attribution(from_environment(environ), from_session_name(environ))
    town = gm.settings.town_dir
    layout = Layout(None if town is None else str(town), gm.attributor.rig_prefixes)
    state_dir = gm.settings.data_dir / STATE_DIR
    return harvest(files, state_dir, deliver, attribution, layout, time.monotonic() + TIME_LIMIT_S)


routes = [claude_hook]
