"""One process per state directory: `serve`, `serve --kafka` and `worker` take an OS lock on
`STATE_DIR/lock` before they write anything there, so two of them can never append to one audit chain."""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path
from typing import IO

LOCK_NAME = "lock"


class StateDirError(RuntimeError):
    """The state directory cannot be used: locked by another process, or not writable (one line)."""


class StateDirLock:
    """An exclusive, non-blocking `flock` held for the life of the process (the OS drops it on a crash)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / LOCK_NAME
        self._file: IO[str] | None = None

    def acquire(self, what: str) -> StateDirLock:
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            handle = open(self.path, "a+")  # noqa: SIM115 - held open until release()
        except OSError as exc:
            raise StateDirError(f"cannot use the state directory {self.state_dir}: {exc.strerror or exc}; "
                                f"choose a writable one with --state-dir or SPANWARDEN_STATE_DIR") from exc
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise StateDirError(f"cannot lock {self.path}: {exc.strerror or exc}") from exc
            raise StateDirError(f"{self.state_dir} is in use by {holder}: stop it, or give this {what} its own "
                                f"--state-dir / SPANWARDEN_STATE_DIR") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"spanwarden {what} (pid {os.getpid()})\n")
        handle.flush()
        self._file = handle
        return self

    def release(self) -> None:
        """Let the directory go (again is a no-op)."""
        if self._file is not None:
            self._file.close()  # closing the descriptor drops the flock
            self._file = None
