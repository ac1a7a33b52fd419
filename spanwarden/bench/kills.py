"""Kills under load: a guarded agent (the real `DecisionWatcher` long-polling the service, and `Guard`) is
killed and resumed over and over; each kill is timed from the command being sent to the guard refusing the
agent's next call (checked every millisecond). A kill not refused within `timeout_s` is `missed`.

`in_own_process` runs the guarded agent in a process of its own, as a real agent is: in the load
generator's process its threads would wait for the GIL behind the client threads building span batches
(measured: that added tens of ms to each kill, none of it the service's)."""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import dataclass, field

import requests

from spanwarden.collector.decision_watcher import DecisionWatcher
from spanwarden.collector.guard import AgentHalted, Guard


class KillTimer:
    def __init__(self, url: str, admin_token: str, agent: str, timeout_s: float = 5.0) -> None:
        self.url, self.agent, self.timeout_s = url, agent, timeout_s
        self.headers = {"Authorization": f"Bearer {admin_token}"}
        self.session = requests.Session()
        self.watcher = DecisionWatcher(url, agent, wait_s=20).start()
        self.guard = Guard(agent, self.watcher)
        self.latencies_ms: list[float] = []
        self.missed = 0

    def _command(self, command: str) -> dict[str, object]:
        answer = self.session.post(f"{self.url}/v1/commands", headers=self.headers, timeout=30,
                                   json={"command": command, "agent": self.agent, "reason": "soak"})
        answer.raise_for_status()
        result: dict[str, object] = answer.json()
        return result

    def kill_once(self) -> None:
        resumed = self._command("resume")
        self.watcher.wait_for_version(int(str(resumed["version"])), self.timeout_s)
        time.sleep(0.05)  # the poll is held, as it would be between events
        started = time.perf_counter()
        try:
            self._command("kill")
        except requests.RequestException:
            self.missed += 1
            return
        while True:
            try:
                self.guard.admit()
            except AgentHalted:
                self.latencies_ms.append((time.perf_counter() - started) * 1000)
                return
            if time.perf_counter() - started > self.timeout_s:
                self.missed += 1
                return
            time.sleep(0.001)

    def run_until(self, deadline_monotonic: float, every_s: float = 0.5) -> None:
        time.sleep(1.0)  # the load is under way
        while time.monotonic() + self.timeout_s < deadline_monotonic:
            try:
                self.kill_once()
            except requests.RequestException:
                self.missed += 1
            time.sleep(every_s)

    def p99_ms(self) -> float | None:
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        return round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 2)

    def close(self) -> None:
        self.watcher.stop()


@dataclass
class KillFigures:
    latencies_ms: list[float] = field(default_factory=list)
    missed: int = 0

    def p99_ms(self) -> float | None:
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        return round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 2)


def _child(url: str, admin_token: str, agent: str, deadline_monotonic: float, out: multiprocessing.Queue) -> None:
    timer = KillTimer(url, admin_token, agent)
    try:
        timer.run_until(deadline_monotonic)
    finally:
        timer.close()
        out.put((timer.latencies_ms, timer.missed))


class KillsInOwnProcess:
    """`KillTimer.run_until` in a spawned process (time.monotonic is the same clock in every process)."""

    def __init__(self, url: str, admin_token: str, agent: str, deadline_monotonic: float) -> None:
        context = multiprocessing.get_context("spawn")
        self._out: multiprocessing.Queue = context.Queue()
        self._process = context.Process(target=_child, args=(url, admin_token, agent, deadline_monotonic,
                                                             self._out), daemon=True)
        self._process.start()

    def join(self, timeout_s: float) -> KillFigures:
        """The figures once the process is done (a process that did not report counts one miss)."""
        try:
            latencies, missed = self._out.get(timeout=timeout_s)
        except Exception:  # noqa: BLE001 - queue.Empty, or the child died: say so in the figures
            self._process.kill()
            return KillFigures([], 1)
        self._process.join(5)
        return KillFigures(list(latencies), int(missed))
