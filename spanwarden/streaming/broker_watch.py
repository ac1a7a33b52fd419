"""One line when the Kafka broker goes away and one when it is back, for the gateway and each worker.

The Kafka clients (aiokafka under the gateway and under Faust) reconnect on their own; without this, a
broker restart shows only as a burst of their retry warnings and then silence, and nobody can tell from the
log whether the process came back. The watch probes the bootstrap address (a TCP connect every half second,
and a Kafka metadata request once it accepts again) and says so on each change; while the broker is away the
clients' own retry errors (hundreds a second) are muted."""

from __future__ import annotations

import asyncio
import logging
import time

from spanwarden.streaming.broker_check import BrokerUnreachable, _connect_errors, _hosts, check

log = logging.getLogger(__name__)


class BrokerWatch:
    def __init__(self, bootstrap: str, who: str, every_s: float = 0.5) -> None:
        self.bootstrap = bootstrap
        self.who = who
        self.every_s = every_s
        self.away_since: float | None = None
        self.outages = 0
        self._client_level = logging.NOTSET

    async def _reachable(self) -> str | None:
        """None when a broker answers; else why not."""
        errors = await asyncio.to_thread(_connect_errors, _hosts(self.bootstrap), min(self.every_s, 2.0))
        if errors:
            return "; ".join(errors)
        if self.away_since is None:
            return None  # was up and still accepts connections: no need to ask it more each second
        try:
            await check(self.bootstrap, timeout_s=5.0)
        except BrokerUnreachable as exc:
            return str(exc)
        return None

    async def step(self) -> None:
        why = await self._reachable()
        if why is not None and self.away_since is None:
            self.away_since = time.monotonic()
            self.outages += 1
            log.warning("%s: the Kafka broker at %s is away (%s); retrying, its clients' errors muted until it "
                        "is back", self.who, self.bootstrap, why.split(": start the broker")[0])
            clients = logging.getLogger("aiokafka")  # each retry is an error line, hundreds a second
            self._client_level = clients.level
            clients.setLevel(logging.CRITICAL)
        elif why is None and self.away_since is not None:
            logging.getLogger("aiokafka").setLevel(self._client_level)
            log.warning("%s: the Kafka broker at %s is back after %.1f s; reconnected, carrying on", self.who,
                        self.bootstrap, time.monotonic() - self.away_since)
            self.away_since = None

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            await self.step()
            try:
                await asyncio.wait_for(stopping.wait(), self.every_s)
            except TimeoutError:
                pass
