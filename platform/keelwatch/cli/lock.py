"""The data dir's ``up.lock``: one ``keelwatch up`` per data dir."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO


class StackRunningError(RuntimeError):
    """Another supervisor holds the data dir's lock."""


class StackLock:
    """An exclusive ``flock`` on ``<data_dir>/run/up.lock``, held for the supervisor's life.

    The kernel drops the lock when the holder dies, so a crashed ``keelwatch up`` never blocks
    the next one; the file only carries the holder's pid for the error message. Python opens
    files close-on-exec, so the children never inherit (and never keep) the lock.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`StackRunningError` naming the holder."""
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise StackRunningError(
                f"another `keelwatch up` (pid {holder}) is running on data dir "
                f"{self.path.parent.parent}; stop it first (Ctrl-C there, or kill -TERM {holder})"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        """Drop the lock (closing the file releases it)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> StackLock:
        self.acquire()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()
