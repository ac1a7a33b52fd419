"""How the eval fleet's spans reach the pipeline: as each replica's BatchSpanProcessor sends them (queued at
span end, exported every second as `instrument()` sets it up, at the replica's own phase, after a short network
delay), encoded as OTLP
protobuf, decoded and normalised by the receiver's own code, and stamped with the time the service received
them — never straight into the pipeline in perfect time order."""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from typing import Any

from spanwarden.collector.instrument import EXPORT_DELAY_MS
from spanwarden.collector.normalize import Normalizer
from spanwarden.collector.otlp_decode import PROTOBUF, decode_request
from spanwarden.collector.otlp_encode import to_request
from spanwarden.collector.pricing import PriceTable
from spanwarden.collector.span_record import SpanRecord

EXPORT_EVERY_S = EXPORT_DELAY_MS / 1000  # the BatchSpanProcessor schedule delay `instrument()` sets


class Transport:
    def __init__(self, seed: int, epoch: float, deliver: Callable[[list[SpanRecord]], Any]) -> None:
        self.rng = random.Random(seed)
        self.epoch = epoch
        self.deliver = deliver
        self.normalizer = Normalizer(PriceTable.load())
        self.phases: dict[tuple[str, int], float] = {}
        self.delays: dict[tuple[str, int, int], float] = {}
        self.queue: list[tuple[float, int, str, int, list[SpanRecord]]] = []
        self.seq = 0
        self.spans = 0

    def send(self, agent_id: str, replica: int, skew_s: float, records: list[SpanRecord]) -> None:
        """Queue one call's spans at their replica; each leaves with the export after it ends."""
        for record in records:
            self._queue(agent_id, replica, skew_s, record)

    def _queue(self, agent_id: str, replica: int, skew_s: float, record: SpanRecord) -> None:
        phase = self.phases.setdefault((agent_id, replica), self.rng.uniform(0, EXPORT_EVERY_S))
        ended = record.end_ns / 1e9 - self.epoch - skew_s  # by the true clock
        tick = int((ended - phase) // EXPORT_EVERY_S) + 1
        delay = self.delays.get((agent_id, replica, tick))
        if delay is None:
            delay = self.delays[(agent_id, replica, tick)] = self.rng.uniform(0.02, 0.5)
            if len(self.delays) > 100_000:
                self.delays.clear()
        arrival = phase + tick * EXPORT_EVERY_S + delay
        self.seq += 1
        heapq.heappush(self.queue, (arrival, self.seq, agent_id, replica, [record]))

    def until(self, t: float) -> None:
        """Deliver every export that has arrived by `t`, one OTLP request per export."""
        while self.queue and self.queue[0][0] <= t:
            arrival, _, agent_id, replica, records = heapq.heappop(self.queue)
            batch = list(records)
            while self.queue and self.queue[0][0] == arrival and self.queue[0][2:4] == (agent_id, replica):
                batch.extend(heapq.heappop(self.queue)[4])
            self._receive(batch, self.epoch + arrival)

    def _receive(self, records: list[SpanRecord], received_s: float) -> None:
        body = to_request(records).SerializeToString()
        decoded = self.normalizer.records(decode_request(body, PROTOBUF))
        self.spans += len(decoded)
        self.deliver([r._replace(received_s=received_s) for r in decoded])
