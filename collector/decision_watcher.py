"""The control channel, agent side: a daemon thread that long-polls the service for this agent's decision,
reconnecting with jittered backoff, and knows how long it has been out of touch."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

import requests

from spanwarden.enforcers.decision import Decision, allow

log = logging.getLogger(__name__)


class DecisionWatcher:
    """Keeps `current` up to date with the newest decision version the service has for `agent_id`."""

    def __init__(self, endpoint: str, agent_id: str, wait_s: float = 20.0,
                 clock: Callable[[], float] = time.monotonic, session: requests.Session | None = None,
                 environment: str = "") -> None:
        self.base = endpoint.rstrip("/")
        self.url = f"{self.base}/v1/decisions/{agent_id}"
        self.environment = environment
        self.approval_tools: tuple[str, ...] = ()  # tool patterns that need a human's approval, from the service
        # Operations held by their effect: (effect, resource patterns); and, where egress is held, the domain
        # patterns of the agent's own services (writes to any other host are asked for). From the service.
        self.approval_effects: tuple[tuple[str, tuple[str, ...]], ...] = ()
        self.egress_internal: tuple[str, ...] | None = None  # None: egress is not held where the agent runs
        self.models_held = False  # a first call to a model is asked about (collector/model_gate.py)
        self.access_hold = "wait"  # how a call to a resource awaiting approval is held: wait | fail_fast
        self.access_timeout_s = 300.0
        self.agent_id = agent_id
        self.wait_s = wait_s
        self.clock = clock
        self.current: Decision = allow(agent_id)
        self.scoped: list[Decision] = []  # decisions for some of the agent's calls (a tool, a model)
        self.version = 0  # the newest version seen, agent-wide or scoped
        self.failing_since: float | None = clock()  # out of touch until the first poll answers
        self.ever_connected = False
        self._session = session or requests.Session()
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=f"spanwarden-watch-{agent_id}", daemon=True)

    def start(self) -> DecisionWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._session.close()

    def seconds_out_of_touch(self) -> float:
        """0 while polls succeed (a held long-poll counts); else seconds since the first failure, or since
        the watcher was made if it has never reached the service."""
        if self.failing_since is None:
            return 0.0
        return max(0.0, self.clock() - self.failing_since)

    @property
    def heard(self) -> bool:
        """Whether the service has answered (its decisions and approval rules are known)."""
        return self.ever_connected or self.failing_since is None

    def wait_heard(self, timeout_s: float) -> bool:
        """Block until the service has answered once (or `timeout_s` runs out); True if it has."""
        with self._changed:
            return self._changed.wait_for(lambda: self.heard, max(0.0, timeout_s))

    def wait_for_version(self, version: int, timeout_s: float) -> bool:
        """Block until decisions up to at least `version` (agent-wide or scoped) have arrived."""
        with self._changed:
            return self._changed.wait_for(lambda: self.version >= version, timeout_s)

    def poll_once(self, wait_s: float = 0.0) -> Decision:
        response = self._session.get(self.url, params={"after": self.version, "wait": wait_s},
                                     timeout=wait_s + 10)
        response.raise_for_status()
        view = response.json()
        version = int(view.get("board_version", view["version"]))
        first, newer = not self.ever_connected, version > self.version
        if newer:  # before anything else: a kill must not wait on another request
            self._apply(Decision.from_dict(view), [Decision.from_dict(d) for d in view.get("scoped", ())],
                        version)
        if first or newer:
            self._refresh_approval_rules()
        # Heard only now: a guard holding a first tool call must know which tools need approval.
        with self._changed:
            self.failing_since = None
            self.ever_connected = True
            self._changed.notify_all()
        return self.current

    def _refresh_approval_rules(self) -> None:
        response = self._session.get(f"{self.base}/v1/approvals/rules", timeout=10,
                                     params={"agent": self.agent_id, "environment": self.environment})
        response.raise_for_status()
        rules = response.json()
        self.approval_tools = tuple(str(t) for t in rules["tools"])
        self.approval_effects = tuple((str(r["effect"]), tuple(str(p) for p in r.get("resources", ("*",))))
                                      for r in rules.get("effects") or ())
        egress = rules.get("egress") or {}
        self.egress_internal = tuple(str(d) for d in egress.get("internal", ())) if egress.get("applies") else None
        self.models_held = bool((rules.get("models") or {}).get("applies"))
        access = rules.get("access") or {}
        self.access_hold = str(access.get("hold", "wait"))
        self.access_timeout_s = float(access.get("timeout_s", 300.0))

    @property
    def session(self) -> requests.Session:
        return self._session

    def _apply(self, decision: Decision, scoped: list[Decision], version: int) -> None:
        with self._changed:
            self.current, self.scoped, self.version = decision, scoped, version
            self._changed.notify_all()

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                # Until the service has answered once, ask without waiting, so a new guard knows its
                # decision (and its approval rules) at once; then hold long-polls.
                self.poll_once(self.wait_s if self.ever_connected else 0.0)
                backoff = 0.1
            except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
                if self._stop.is_set():
                    return
                if self.failing_since is None:
                    self.failing_since = self.clock()
                log.warning("spanwarden control channel %s unreachable (%s); retrying", self.url, exc)
                self._stop.wait(backoff * random.uniform(0.5, 1.5))
                backoff = min(backoff * 2, 10.0)
