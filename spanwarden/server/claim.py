"""What a service takes before it writes anything, in this order: the state directory's lock (one process per
audit chain), then its port (a service that cannot listen leaves the audit log untouched). Both runtimes'
services start with `claim` and give it back with `release`."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from spanwarden.server.listen import bind
from spanwarden.server.state_lock import StateDirLock


@dataclass
class Claim:
    lock: StateDirLock
    socket: socket.socket

    @property
    def port(self) -> int:
        return int(self.socket.getsockname()[1])

    def release(self) -> None:
        """Close the socket (if no server took it over) and let the state dir go; again is a no-op."""
        self.socket.close()
        self.lock.release()


def claim(state_dir: Path, host: str, port: int, what: str) -> Claim:
    lock = StateDirLock(state_dir).acquire(what)
    try:
        return Claim(lock, bind(host, port))
    except BaseException:
        lock.abandon()  # nothing was written: the state dir is left as it was found
        raise
