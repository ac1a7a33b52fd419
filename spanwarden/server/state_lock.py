"""One process per state directory: `serve`, `serve --kafka` and `worker` take an OS lock on
`STATE_DIR/lock` before they write anything there, so two of them can never append to one audit chain.

Taking it also makes the directory private (`private`): the audit log, state.db, the activity journal and
the tokens hold agents' prompts' metadata, spend and credentials' digests, so the directory is 0700, what is
already in it is made owner-only, and the process's umask becomes 077, so that every file the service
writes later (rotated segments, SQLite's journals, new activity files) is 0600 too."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path
from typing import IO

LOCK_NAME = "lock"
PRIVATE_UMASK = 0o077
MARKERS = (LOCK_NAME, "audit.jsonl", "audit.jsonl.head", "state.db")  # what tells a state dir


class StateDirError(RuntimeError):
    """The state directory cannot be used: locked by another process, or not writable (one line)."""


class StateDirLock:
    """An exclusive, non-blocking `flock` held for the life of the process (the OS drops it on a crash)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / LOCK_NAME
        self._file: IO[str] | None = None
        self._made: list[Path] = []  # what acquire created (the lock file, the directory), newest first

    def acquire(self, what: str) -> StateDirLock:
        for _ in range(5):  # again when the file was removed while we waited for it (`abandon`)
            handle = self._lock(what)
            try:
                if os.fstat(handle.fileno()).st_ino == os.stat(self.path).st_ino:
                    break
            except FileNotFoundError:
                pass
            handle.close()
        else:
            raise StateDirError(f"cannot lock {self.path}: it keeps being removed")
        handle.seek(0)
        handle.truncate()
        handle.write(f"spanwarden {what} (pid {os.getpid()})\n")
        handle.flush()
        self._file = handle
        return self

    def _lock(self, what: str) -> IO[str]:
        self._made = [self.state_dir] if not self.state_dir.exists() else []
        self._made[:0] = [self.path] if not self.path.exists() else []
        try:
            self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            private(self.state_dir)
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
        return handle

    def release(self) -> None:
        """Let the directory go (again is a no-op)."""
        if self._file is not None:
            self._file.close()  # closing the descriptor drops the flock
            self._file = None

    def abandon(self) -> None:
        """Let the directory go as it was found, when nothing was written there (the port was busy): the lock
        file and the directory removed if acquire made them, else the file names no holder."""
        if self._file is None:
            return
        self._file.seek(0)
        self._file.truncate()
        try:  # still holding the flock: whoever opened the file meanwhile finds it gone and opens it afresh
            for made in self._made:
                if made == self.path:
                    made.unlink()
                else:
                    made.rmdir()  # only when empty
        except OSError:
            pass  # something else is in the directory now: it stays
        self.release()


def private(state_dir: Path) -> None:
    """Set the process's umask to 077 and take group and other access from `state_dir` and, when it is
    spanwarden's (it holds `MARKERS`), from what is in it two levels down (`activity/*.jsonl`: what an
    older version wrote 0644). A directory of other things named as the state dir keeps its contents'
    modes; what is not the user's is left alone."""
    os.umask(PRIVATE_UMASK)
    _owner_only(str(state_dir), 0o700)
    if not any((state_dir / m).exists() for m in MARKERS):
        return
    for root, dirs, files in os.walk(state_dir):
        depth = len(Path(root).relative_to(state_dir).parts)
        dirs[:] = [d for d in dirs if depth < 1 and not os.path.islink(os.path.join(root, d))]
        _owner_only(root, 0o700)
        for name in files:
            _owner_only(os.path.join(root, name), 0)


def _owner_only(path: str, at_least: int) -> None:
    try:
        st = os.lstat(path)
        if st.st_uid == os.getuid() and st.st_mode & 0o077 and not stat.S_ISLNK(st.st_mode):
            os.chmod(path, (st.st_mode & 0o700) | at_least)
    except OSError:
        pass  # gone meanwhile, or not ours to change
