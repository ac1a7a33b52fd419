"""Event time held to the service's clock, and records put back in event-time order before anyone judges them.

A record's event time (its span's end) comes from the agent, so it is clamped to [received − max lateness,
received + max skew] (the clamped record is flagged `clamped_time` and counted). Each agent's records then wait
in a small buffer until the service clock has passed their event time by the lateness bound, and leave it in
event-time order: records that arrive out of order within the bound, or interleaved from several replicas of
the agent, are judged exactly as if they had arrived in order. A record is judged at its *decision time*,
event time + max lateness — never later than the service clock at release, so no span can move a decision,
a lapse or a grant ahead of the service's own time, and deterministic, so a replay decides the same.

With a max lateness of 0 (the default for in-process callers) records are judged as they come; a record
without a receive time (a simulator, a test, a replay) counts as received at its own event time.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any

from spanwarden.collector.span_record import SpanRecord

CLAMPED = "clamped_time"
_Entry = tuple[int, str, str, int, SpanRecord]  # event time (ns), trace, span, arrival number: a total order
_FLAGS = SpanRecord._fields.index("flags")
_NEVER = float("-inf")


@dataclass(frozen=True)
class TimeBounds:
    max_lateness_s: float = 0.0
    max_skew_s: float = 5.0


def clamp(record: SpanRecord, bounds: TimeBounds) -> SpanRecord:
    """The record with its event time held within the bounds around its receive time (flagged if moved)."""
    received = record.received_s
    if not received:
        return record
    t = record.time_s
    low, high = received - bounds.max_lateness_s, received + bounds.max_skew_s
    if low <= t <= high:
        return record
    end_ns = int((low if t < low else high) * 1e9)  # the same rounding as the clock it is released by
    shift = end_ns - record.end_ns
    return record._replace(start_ns=record.start_ns + shift, end_ns=end_ns, flags=(*record.flags, CLAMPED))


class Arrivals:
    """Per-agent reorder buffers. With a `shared` clock (one process sees the whole fleet) every record that
    arrives moves every agent's clock; otherwise each agent's clock is its own latest receive time, so an
    agent's decisions depend on its own records alone (a partitioned runtime, replaying)."""

    def __init__(self, bounds: TimeBounds, shared: bool = True) -> None:
        self.bounds = bounds
        self.shared = shared
        self.service_now = float("-inf")
        self.agent_now: dict[str, float] = {}
        self.pending: dict[str, list[_Entry]] = {}
        self.due: list[tuple[int, str]] = []  # (head event time, agent) per agent with pending records
        self.arrived = 0
        self.clamped = 0

    def admit(self, record: SpanRecord) -> None:
        self.hold(self.stamp(record))

    def stamp(self, record: SpanRecord) -> _Entry:
        """A record arrives: its time held to the bounds, the clocks moved, its place in the order given (the
        entry `hold` buffers; `admit` is the two)."""
        received = record.received_s
        if received:
            t = record.end_ns / 1e9  # `time_s`; `clamp` inline while the record is within the bounds
            bounds = self.bounds
            if not received - bounds.max_lateness_s <= t <= received + bounds.max_skew_s:
                record = clamp(record, bounds)
        else:
            received = record.end_ns / 1e9  # no receive time: received at its own event time
        flags = record.flags
        if flags and flags[-1] == CLAMPED:
            self.clamped += 1
        agent = record.agent_id
        agent_now = self.agent_now
        own = agent_now.get(agent)
        if own is None:
            agent_now[agent] = received if received > _NEVER else _NEVER  # max(-inf, received)
        elif received > own:
            agent_now[agent] = received
        if self.shared and received > self.service_now:
            self.service_now = received
        self.arrived += 1
        return (record.end_ns, record.trace_id, record.span_id, self.arrived, record)

    def hold(self, entry: _Entry) -> None:
        """Buffer a stamped record until it is due."""
        agent = entry[4].agent_id
        shared = self.shared
        heap = self.pending.get(agent)
        if heap is None:  # the agent's first pending record: its heap is this one entry
            self.pending[agent] = [entry]
            if shared:
                heapq.heappush(self.due, (entry[0], agent))
            return
        if shared and (not heap or entry < heap[0]):
            heapq.heappush(self.due, (entry[0], agent))
        heapq.heappush(heap, entry)

    def settle(self, entries: list[_Entry], agents: set[str] | None = None,
               limit: int | None = None) -> list[tuple[float, SpanRecord]]:
        """Buffer stamped records (`hold`) and release those now due (`release`). When nothing is buffered, the
        clock is shared, the entries come in the order they would leave in and all are due already, they leave
        at once without the buffer: the same records in the same order, and the buffer left as empty as the
        release would leave it."""
        if (agents is None and self.shared and entries and not self.pending and not self.due
                and (limit is None or len(entries) <= limit)):
            lateness_ns = int(self.bounds.max_lateness_s * 1e9)
            last = entries[-1]
            if last[0] + lateness_ns <= int(self.service_now * 1e9) and _in_release_order(entries):
                # Every clock is at least the service's (`clock`), so every record is due; with nothing held
                # and each agent's records in order, the release merge by (head time, agent) is this order.
                return [((e[0] + lateness_ns) / 1e9, e[4]) for e in entries]
        for entry in entries:
            self.hold(entry)
        return self.release(agents, limit)

    def advance(self, now_s: float) -> None:
        """The service's clock has reached `now_s` (with no record to say so)."""
        if self.shared:
            self.service_now = max(self.service_now, now_s)

    def clock(self, agent: str) -> float:
        own = self.agent_now.get(agent, float("-inf"))
        return max(own, self.service_now) if self.shared else own

    def release(self, agents: set[str] | None = None, limit: int | None = None) -> list[tuple[float, SpanRecord]]:
        """Records now due, each with its decision time, in event-time order per agent (from `agents` only,
        or every agent whose head is due: at most `limit` of them, the rest stay due for the next call)."""
        out: list[tuple[float, SpanRecord]] = []
        lateness_ns = int(self.bounds.max_lateness_s * 1e9)
        if agents is None:  # the whole fleet, merged in event-time order (fleet-wide learning sees it so)
            # `_head_due` and `_release_agent(agent, lateness_ns, 1)` inline: one record per turn. The clocks
            # do not move while records are released, so each agent's is read once per turn.
            due, pending, shared = self.due, self.pending, self.shared
            agent_now, service_now = self.agent_now, self.service_now
            heappop, heappush = heapq.heappop, heapq.heappush
            while due and (limit is None or len(out) < limit):
                head_ns, agent = due[0]
                own = agent_now.get(agent, _NEVER)
                clock_ns = int((max(own, service_now) if shared else own) * 1e9)
                if not head_ns + lateness_ns <= clock_ns:
                    break
                heappop(due)
                heap = pending.get(agent)
                if not heap:
                    continue
                if heap[0][0] + lateness_ns <= clock_ns:
                    record = heappop(heap)[4]
                    out.append(((record.end_ns + lateness_ns) / 1e9, record))
                if not heap:
                    del pending[agent]
                elif shared:
                    heappush(due, (heap[0][0], agent))
        else:
            for agent in sorted(agents):
                out.extend(self._release_agent(agent, lateness_ns))
        return out

    def _head_due(self, lateness_ns: int) -> bool:
        return self.due[0][0] + lateness_ns <= int(self.clock(self.due[0][1]) * 1e9)

    def has_due(self) -> bool:
        """Records are due that a `release` with a limit left (a shared clock only)."""
        return bool(self.due) and self._head_due(int(self.bounds.max_lateness_s * 1e9))

    def _release_agent(self, agent: str, lateness_ns: int) -> list[tuple[float, SpanRecord]]:
        heap = self.pending.get(agent)
        out: list[tuple[float, SpanRecord]] = []
        if not heap:
            return out
        limit = int(self.clock(agent) * 1e9)
        while heap and heap[0][0] + lateness_ns <= limit:
            record = heapq.heappop(heap)[4]
            out.append(((record.end_ns + lateness_ns) / 1e9, record))
        if not heap:
            del self.pending[agent]
        elif self.shared:
            heapq.heappush(self.due, (heap[0][0], agent))
        return out

    def to_state(self) -> dict[str, Any]:
        return {"service_now": None if self.service_now == float("-inf") else self.service_now,
                "agent_now": dict(self.agent_now), "arrived": self.arrived, "clamped": self.clamped,
                "pending": {a: [[e[3], _row(e[4])] for e in heap] for a, heap in self.pending.items()}}

    def load_state(self, state: dict[str, Any]) -> None:
        now = state.get("service_now")
        self.service_now = float("-inf") if now is None else float(now)
        self.agent_now = {a: float(t) for a, t in state.get("agent_now", {}).items()}
        self.arrived, self.clamped = int(state.get("arrived", 0)), int(state.get("clamped", 0))
        self.pending, self.due = {}, []
        for agent, entries in state.get("pending", {}).items():
            self.load_agent(agent, entries)

    def agent_state(self, agent: str) -> dict[str, Any]:
        return {"now": self.agent_now.get(agent),
                "pending": [[e[3], _row(e[4])] for e in self.pending.get(agent, [])]}

    def load_agent(self, agent: str, entries: list[list[Any]], now: float | None = None) -> None:
        if now is not None:
            self.agent_now[agent] = float(now)
        heap = [_entry(int(n), row) for n, row in entries]
        if heap:
            self.pending[agent] = heap  # saved as a heap, restored as the same heap
            if self.shared:
                heapq.heappush(self.due, (heap[0][0], agent))
        else:
            self.pending.pop(agent, None)

    def forget_agent(self, agent: str) -> None:
        self.pending.pop(agent, None)
        self.agent_now.pop(agent, None)


def _in_release_order(entries: list[_Entry]) -> bool:
    """The entries are ordered by (event time, agent, trace, span, arrival): the order a release of them all
    merges them in when each agent's first one heads its buffer."""
    prev = entries[0]
    prev_ns, prev_agent = prev[0], prev[4].agent_id
    for entry in entries[1:]:
        ns, agent = entry[0], entry[4].agent_id
        if ns < prev_ns:
            return False
        if ns == prev_ns and (agent < prev_agent
                              or (agent == prev_agent and (entry[1], entry[2]) < (prev[1], prev[2]))):
            return False
        prev, prev_ns, prev_agent = entry, ns, agent
    return True


def _row(record: SpanRecord) -> list[Any]:
    row = list(record)
    row[_FLAGS] = list(record.flags)
    return row


def _entry(n: int, row: list[Any]) -> _Entry:
    row = list(row)
    row[_FLAGS] = tuple(row[_FLAGS])
    record = SpanRecord(*row)
    return (record.end_ns, record.trace_id, record.span_id, n, record)
