"""The JSON Claude Code passes to a hook (on stdin, or as the body of an `http` hook)."""

from __future__ import annotations

import msgspec

MAX_INPUT_BYTES = 1024 * 1024


class HookInput(msgspec.Struct, kw_only=True):
    """The fields of a Stop, SubagentStop or SessionEnd input that the hook uses.

    Unknown fields are ignored: Claude Code adds fields between versions.
    """

    session_id: str | None = None
    transcript_path: str | None = None
    cwd: str | None = None
    hook_event_name: str | None = None
    agent_id: str | None = None
    agent_transcript_path: str | None = None
    reason: str | None = None

    @property
    def is_session_end(self) -> bool:
        """SessionEnd: the agent is leaving, the hook gets about 1.5 s in total."""
        return self.hook_event_name == "SessionEnd"

    def transcripts(self) -> list[str]:
        """The transcript files this input names: the session's, then a subagent's."""
        paths = [self.transcript_path, self.agent_transcript_path]
        return list(dict.fromkeys(p for p in paths if p))


_decoder = msgspec.json.Decoder(HookInput)


def decode_input(raw: bytes) -> HookInput | None:
    """The hook input, or None when it is empty, too large or not the expected JSON."""
    if not raw.strip() or len(raw) > MAX_INPUT_BYTES:
        return None
    try:
        return _decoder.decode(raw)
    except msgspec.DecodeError:
        return None
