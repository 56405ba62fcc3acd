"""How far the hook has read each transcript (and each Gas Town cost log).

One small JSON file per transcript, named by a hash of its path, replaced atomically; a
separate lock file serialises hooks of parallel sessions that touch the same transcript.
A lost update only makes the next run send events again, which the server deduplicates,
so state writes need no fsync.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec

from gasometer.hook.files import file_lock, write_atomic


class ReadState(msgspec.Struct):
    """The byte offset read so far, and which file (inode) it belongs to."""

    path: str
    offset: int = 0
    inode: int = 0


class StateFile:
    """The read state of one source file, used under its lock."""

    def __init__(self, state_dir: Path, source: Path) -> None:
        self.source = source
        key = hashlib.blake2b(str(source).encode(), digest_size=12).hexdigest()
        self.path = state_dir / f"{key}.json"
        self.lock_path = state_dir / f"{key}.lock"

    def start_offset(self) -> int:
        """Where to read from: the saved offset, or 0 if the file was replaced or shrank."""
        saved = self._load()
        try:
            st = os.stat(self.source)
        except OSError:
            return 0
        if saved is None or saved.inode != st.st_ino or saved.offset > st.st_size:
            return 0
        return saved.offset

    def save(self, offset: int) -> None:
        """Remember that everything before `offset` has been delivered."""
        try:
            inode = os.stat(self.source).st_ino
        except OSError:
            return
        state = ReadState(path=str(self.source), offset=offset, inode=inode)
        write_atomic(self.path, msgspec.json.encode(state), durable=False)

    def _load(self) -> ReadState | None:
        try:
            return msgspec.json.decode(self.path.read_bytes(), type=ReadState)
        except (OSError, msgspec.DecodeError):
            return None


@contextmanager
def locked_state(state_dir: Path, source: Path, timeout_s: float) -> Iterator[StateFile | None]:
    """The state of `source` while holding its lock; None if another run kept it busy."""
    state = StateFile(state_dir, source)
    with file_lock(state.lock_path, timeout_s) as acquired:
        yield state if acquired else None
