"""Every failure a user can cause at the command line is one line on stderr, with a non-zero exit; the
traceback only with --debug. One test per case, each through the real `spanwarden` command."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

import pytest

from spanwarden.cli import errors
from spanwarden.embedded.service import EmbeddedService
from spanwarden.enforcers.audit_log import AgentRef, verify
from spanwarden.settings import Settings


def spanwarden(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SPANWARDEN_", "DD_"))}
    return subprocess.run([sys.executable, "-m", "spanwarden.cli", *args], capture_output=True, text=True,
                          timeout=90, cwd=cwd, env={**clean, **env})


def one_line(done: subprocess.CompletedProcess, code: int = 2) -> str:
    """The single stderr line of a failed command (and that it failed with `code`)."""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == code, (done.returncode, done.stderr)
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("spanwarden: ")
    return lines[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


@pytest.fixture
def service(tmp_path) -> Iterator[tuple[str, EmbeddedService]]:
    svc = EmbeddedService(Settings(port=0, state_dir=tmp_path / "running", admin_token="t", audit_fsync="never"))
    url = f"http://127.0.0.1:{svc.start_in_thread()}"
    yield url, svc
    svc.stop()


@pytest.fixture
def not_spanwarden() -> Iterator[str]:
    class Other(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_error(404)

        do_POST = do_GET

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Other)
    Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_serve_on_a_busy_port_leaves_the_audit_log_untouched(tmp_path, busy_port):
    line = one_line(spanwarden("serve", "--port", str(busy_port), "--state-dir", str(tmp_path / "s")))
    assert f"port {busy_port}" in line and "already in use" in line and "--port" in line
    assert not (tmp_path / "s" / "audit.jsonl").exists()


def test_serve_on_an_address_not_of_this_machine(tmp_path):
    line = one_line(spanwarden("serve", "--host", "192.0.2.1", "--port", "0", "--state-dir", str(tmp_path)))
    assert "192.0.2.1" in line and "not an address of this machine" in line


def test_a_second_serve_on_one_state_dir_refuses_and_writes_nothing(tmp_path, service):
    url, running = service
    audit = running.settings.audit_path
    before = audit.read_bytes()
    line = one_line(spanwarden("serve", "--port", "0", "--state-dir", str(running.settings.state_dir)))
    assert "is in use by spanwarden serve (pid" in line and "--state-dir" in line
    assert audit.read_bytes() == before
    # The running service's next entry still continues its own chain.
    running.call(lambda: running.pipeline.audit.append("service", AgentRef(), "service", "still one chain", 1.0))
    assert verify(audit).ok


def test_unwritable_state_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    line = one_line(spanwarden("serve", "--port", "0", "--state-dir", str(blocker / "state")))
    assert "cannot use the state directory" in line


def test_serve_kafka_unreachable(tmp_path):
    line = one_line(spanwarden("serve", "--kafka", "127.0.0.1:1", "--port", "0", "--state-dir", str(tmp_path)))
    assert "cannot reach Kafka at 127.0.0.1:1" in line and "Connection refused" in line


def test_worker_kafka_unreachable(tmp_path):
    line = one_line(spanwarden("worker", "--bootstrap", "127.0.0.1:1", "--state-dir", str(tmp_path)))
    assert "cannot reach Kafka at 127.0.0.1:1" in line


def test_worker_without_kafka(tmp_path):
    assert "worker needs Kafka" in one_line(spanwarden("worker", "--state-dir", str(tmp_path)))


def test_datadog_push_without_keys():
    assert "needs DD_API_KEY and DD_APP_KEY" in one_line(spanwarden("datadog", "push"))


def test_datadog_push_without_network():
    line = one_line(spanwarden("datadog", "push", "--host", "http://127.0.0.1:1", DD_API_KEY="k", DD_APP_KEY="a"))
    assert "cannot reach Datadog at http://127.0.0.1:1" in line


def test_datadog_record_on_a_busy_port(busy_port):
    line = one_line(spanwarden("datadog", "record", "--port", str(busy_port), "--seconds", "1"))
    assert "already in use" in line and "--port" in line


def test_bad_pin_file(tmp_path, service):
    url, _ = service
    bad = tmp_path / "reviewed.json"
    bad.write_text("{not json")
    line = one_line(spanwarden("profile", "a", "--pin-file", str(bad), "--reason", "r", "--url", url,
                               SPANWARDEN_TOKEN="t"))
    assert "is not JSON" in line
    line = one_line(spanwarden("profile", "a", "--pin-file", str(tmp_path / "missing.json"), "--reason", "r",
                               "--url", url, SPANWARDEN_TOKEN="t"))
    assert "No such file" in line


def test_service_unreachable():
    line = one_line(spanwarden("status", "--url", "http://127.0.0.1:1", SPANWARDEN_TOKEN="t"))
    assert "cannot reach spanwarden at http://127.0.0.1:1 (connection refused)" in line


def test_url_without_a_scheme():
    line = one_line(spanwarden("status", "--url", "127.0.0.1:4318", SPANWARDEN_TOKEN="t"))
    assert "is not an http(s) URL: use e.g. http://127.0.0.1:4318" in line


def test_a_server_that_is_not_spanwarden(not_spanwarden):
    line = one_line(spanwarden("status", "--url", not_spanwarden, SPANWARDEN_TOKEN="t"))
    assert "is not a spanwarden service" in line


def test_no_token(tmp_path, service):
    url, _ = service
    assert "no token" in one_line(spanwarden("status", "--url", url, "--state-dir", str(tmp_path / "none")))


def test_kill_of_an_agent_never_seen_does_nothing_unless_new(service):
    url, running = service
    line = one_line(spanwarden("kill", "dd-bto", "--reason", "typo", "--url", url, SPANWARDEN_TOKEN="t"),
                    errors.UNKNOWN_AGENT)
    assert "'dd-bto' has never reported" in line and "--new" in line
    assert running.board.version("dd-bto") == 0
    done = spanwarden("kill", "dd-bto", "--new", "--reason", "expected", "--url", url, SPANWARDEN_TOKEN="t")
    assert done.returncode == 0 and "halt" in done.stdout
    assert running.board.get("dd-bto").action.value == "halt"
    again = spanwarden("resume", "dd-bto", "--url", url, SPANWARDEN_TOKEN="t")  # known now: no --new needed
    assert again.returncode == 0, again.stderr
    assert one_line(spanwarden("kill", "--team", "nobody", "--reason", "r", "--url", url, SPANWARDEN_TOKEN="t"),
                    errors.UNKNOWN_AGENT)
    unknown = spanwarden("profile", "dd-bt0", "--url", url, SPANWARDEN_TOKEN="t")
    assert "no agent named 'dd-bt0'" in one_line(unknown, errors.UNKNOWN_AGENT)


def test_a_missing_extra_names_it():
    missing = errors._known(ModuleNotFoundError("No module named 'faust'", name="faust"))
    assert missing is not None and "pip install 'spanwarden[kafka]'" in str(missing)


def test_debug_shows_the_traceback(tmp_path, busy_port):
    done = spanwarden("serve", "--port", str(busy_port), "--state-dir", str(tmp_path), "--debug")
    assert done.returncode != 0 and "Traceback" in done.stderr and "ListenError" in done.stderr
