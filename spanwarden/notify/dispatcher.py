"""Sends notices off the caller's thread: a bounded queue (the oldest dropped when full, and counted), a
worker that retries 5xx and connection failures with exponential backoff and waits out a 429's Retry-After,
and gives up on other 4xx at once (the payload or key is wrong: retrying cannot help). A target's failure is
reported once through `on_failure` (the service audits it), until the target works again."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

import requests

from spanwarden.notify.notice import Notice
from spanwarden.notify.targets import Target

log = logging.getLogger("spanwarden.notify")
Post = Callable[[str, bytes, dict[str, str]], tuple[int, dict[str, str]]]
MAX_RETRY_AFTER_S = 60.0


def http_post(session: requests.Session | None = None, timeout_s: float = 10.0) -> Post:
    client = session or requests.Session()

    def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
        response = client.post(url, data=body, headers=headers, timeout=timeout_s)
        return response.status_code, dict(response.headers)

    return post


@dataclass
class _Job:
    target: Target
    notice: Notice
    body: bytes
    headers: dict[str, str]
    attempt: int = 0


class Notifier:
    def __init__(self, targets: list[Target], console_url: str | None = None, post: Post | None = None,
                 on_failure: Callable[[Target, Notice, str], None] | None = None, max_queue: int = 1000,
                 max_attempts: int = 5, backoff_s: float = 1.0, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.targets = targets
        self.console_url = console_url.rstrip("/") if console_url else None
        self.post = post or http_post()
        self.on_failure = on_failure
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.clock = clock
        self.sleep = sleep
        self.sent: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.retries: Counter[str] = Counter()
        self._failing: set[str] = set()
        self._queue: deque[_Job] = deque()
        self._max_queue = max_queue
        self._lock = threading.Condition()
        self._closed = False
        self._busy = False
        self._thread = threading.Thread(target=self._run, name="spanwarden-notify", daemon=True)
        self._thread.start()

    def health(self) -> str | None:
        """None while the delivery thread runs; else why it does not (for the supervisor's watch)."""
        return None if self._thread.is_alive() else "the notifications thread ended"

    def link(self, notice: Notice) -> str | None:
        return f"{self.console_url}{notice.path}" if self.console_url and notice.path else None

    def notify(self, notice: Notice) -> None:
        """Queue `notice` for every target that takes it; never blocks, never raises."""
        link = self.link(notice)
        with self._lock:
            for target in self.targets:
                if not target.wants(notice):
                    continue
                body, headers = target.request(notice, link, self.clock())
                if len(self._queue) >= self._max_queue:
                    self.dropped[self._queue.popleft().target.name] += 1
                self._queue.append(_Job(target, notice, body, headers))
            self._lock.notify()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    self._lock.wait()
                if not self._queue:
                    return
                job = self._queue.popleft()
                self._busy = True
            try:
                self._deliver(job)
            finally:
                with self._lock:
                    self._busy = False
                    self._lock.notify_all()

    def _deliver(self, job: _Job) -> None:
        name = job.target.name
        while True:
            job.attempt += 1
            try:
                status, headers = self.post(job.target.url, job.body, job.headers)
                why = f"HTTP {status}"
            except requests.RequestException as exc:
                status, headers, why = 0, {}, f"{exc.__class__.__name__}"
            if 200 <= status < 300:
                self.sent[name] += 1
                if name in self._failing:
                    self._failing.discard(name)
                    log.info("notifications to %s work again", name)
                return
            retryable = status == 0 or status == 429 or status >= 500
            if not retryable or job.attempt >= self.max_attempts or self._closed:
                self._give_up(job, why)
                return
            self.retries[name] += 1
            self.sleep(self._wait(status, headers, job.attempt))

    def _wait(self, status: int, headers: dict[str, str], attempt: int) -> float:
        if status == 429:
            try:
                return min(MAX_RETRY_AFTER_S, max(0.0, float(headers.get("Retry-After", "1"))))
            except ValueError:
                return 1.0
        return self.backoff_s * 2 ** (attempt - 1)

    def _give_up(self, job: _Job, why: str) -> None:
        name = job.target.name
        self.failed[name] += 1
        log.warning("could not notify %s of %s (%s, %d attempts)", name, job.notice.key, why, job.attempt)
        if name not in self._failing:
            self._failing.add(name)
            if self.on_failure is not None:
                self.on_failure(job.target, job.notice, why)

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything queued was sent or given up (True), or `timeout_s` passed."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
        return True

    def close(self, timeout_s: float = 5.0) -> None:
        """Send what is queued within `timeout_s`, then stop."""
        self.flush(timeout_s)
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        self._thread.join(timeout_s)
