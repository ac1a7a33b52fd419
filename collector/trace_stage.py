"""The cross-span stage both runtimes run right after normalisation (and after ingest admission): each
LLM call costed once (collector/call_dedupe.py), and the agent of spans that take it from their trace —
the nearest `invoke_agent`/AGENT ancestor's stable name — resolved within a bounded wait.

Spans end, and are exported, children first, so a chat span under an agent span usually arrives before
it. A record that must inherit its agent (the normaliser marked it "inherit": its service declares several
agents, or it carries a placeholder or per-run agent id) is held until an ancestor
with a stable agent name arrives, the walk up its known ancestors reaches the trace's root (no agent span:
it keeps its service's identity), or `wait_s` passes on the caller's clock. When the ancestor never comes
the record is released under its service's identity (or the agent its ingest token speaks for, or
`unknown`) with `agent_source="ancestor_missing"` and the flag `agent_ancestor_missing`; later spans of the
agent still resolve when the agent span does arrive. A span of a resource without any identity and without
an agent hint ("lookup") takes an agent span's name only from ancestors already seen, and never waits.
Called without a clock (`now=None`, the Kafka worker: offsets are committed per batch) nothing is held: the
batch and the spans seen before decide.

All state is bounded (`max_spans` known spans, `max_held` held records; the oldest go first) and follows
only the records' order and the clock passed in, so a replay gives the same records.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from spanwarden.collector.agent_identity import qualify
from spanwarden.collector.bounded import BoundedDict
from spanwarden.collector.call_dedupe import CallDedupe
from spanwarden.collector.normalize import NO_USAGE
from spanwarden.collector.span_record import UNKNOWN_AGENT, SpanRecord

DEFAULT_WAIT_S = 5.0  # longer than the OTel SDK's batch export delay (5 s by default)
MAX_DEPTH = 64
INHERIT, LOOKUP, AGENT_SPAN = "inherit", "lookup", "agent_span"
MISSING_FLAG = "agent_ancestor_missing"
_TRACKED = frozenset({INHERIT, LOOKUP, AGENT_SPAN, "unknown"})

Key = tuple[str, str]


class _Node(NamedTuple):
    parent: str
    agent_name: str


class TraceStage:
    """`process` each batch of records as it arrives; `expire` on a timer releases what waited too long."""

    def __init__(self, wait_s: float = DEFAULT_WAIT_S, max_spans: int = 200_000, max_held: int = 20_000,
                 max_calls: int = 100_000) -> None:
        if wait_s < 0:
            raise ValueError(f"wait_s must be >= 0, got {wait_s}")
        self.wait_s = wait_s
        self.max_held = max_held
        self.dedupe = CallDedupe(max_calls)
        self._spans: BoundedDict[Key, _Node] = BoundedDict(max_spans)
        self._held: dict[Key, tuple[float, SpanRecord]] = {}  # insertion order: oldest first
        self.inherited = 0
        self.missing = 0
        # Per agent: spans that look like LLM calls but report no usage (an unknown convention, made visible).
        self.without_usage: BoundedDict[str, int] = BoundedDict(10_000)
        self.identity: BoundedDict[str, str] = BoundedDict(10_000)  # agent -> where its id came from, lately

    @property
    def held(self) -> int:
        return len(self._held)

    def process(self, records: Iterable[SpanRecord], now: float | None = None) -> list[SpanRecord]:
        """The records ready to go on, in arrival order, then the held ones this batch resolved."""
        apply = self.dedupe.apply
        batch = [apply(r) for r in records]
        tracked = [r for r in batch if r.agent_source in _TRACKED]
        for r in tracked:  # only services whose agents come from their traces need the index
            self._spans[(r.trace_id, r.span_id)] = _Node(r.parent_span_id, r.agent_name)
        if not tracked and not self._held:  # every record's agent is final, nothing waits: all go on as they are
            return self._counted(batch)
        out: list[SpanRecord] = []
        traces: set[str] = set()
        for r in batch:
            traces.add(r.trace_id)
            resolved = self._resolve(r)
            if resolved is not None:
                out.append(resolved)
            elif now is None or self.wait_s == 0:
                out.append(self._missing(r))
            else:
                self._held[(r.trace_id, r.span_id)] = (now + self.wait_s, r)
        if self._held:
            out += self._retry(traces)
            while len(self._held) > self.max_held:
                out.append(self._missing(self._held.pop(next(iter(self._held)))[1]))
            if now is not None:
                out += self._due(now)
        return self._counted(out)

    def expire(self, now: float) -> list[SpanRecord]:
        """Held records whose wait is over, under their fallback identity."""
        return self._counted(self._due(now))

    def _due(self, now: float) -> list[SpanRecord]:
        due = [key for key, (deadline, _) in self._held.items() if deadline <= now]
        return [self._missing(self._held.pop(key)[1]) for key in due]

    def _counted(self, records: list[SpanRecord]) -> list[SpanRecord]:
        identity, without_usage = self.identity, self.without_usage
        for r in records:
            if identity.get(r.agent_id) != r.agent_source:
                identity[r.agent_id] = r.agent_source
            if r.flags and NO_USAGE in r.flags:
                without_usage[r.agent_id] = without_usage.get(r.agent_id, 0) + 1
        return records

    def _retry(self, traces: set[str]) -> list[SpanRecord]:
        out = []
        for key in [k for k in self._held if k[0] in traces]:
            resolved = self._resolve(self._held[key][1])
            if resolved is not None:
                del self._held[key]
                out.append(resolved)
        return out

    def _resolve(self, r: SpanRecord) -> SpanRecord | None:
        """The record with its agent decided, or None while the ancestor that decides it is unknown."""
        if r.agent_source == AGENT_SPAN:
            return r._replace(agent_id=qualify(r.agent_id, r.agent_name))
        if r.agent_source not in (INHERIT, LOOKUP):
            return r
        name = self._ancestor_name(r.trace_id, r.parent_span_id)
        if name is None:
            if r.agent_source == INHERIT:
                return None
            name = ""  # a lookup does not wait
        if not name:  # the trace's root is known and no agent span is above: the service's identity
            if r.agent_id == UNKNOWN_AGENT:
                flags = r.flags if "no_agent_identity" in r.flags else (*r.flags, "no_agent_identity")
                return r._replace(agent_source="unknown", flags=flags)
            return r._replace(agent_source="service")
        self.inherited += 1
        self._spans[(r.trace_id, r.span_id)] = _Node(r.parent_span_id, name)
        return r._replace(agent_id=qualify(r.agent_id, name), agent_name=name, agent_source="inherited")

    def _ancestor_name(self, trace_id: str, parent: str) -> str | None:
        """The nearest known ancestor's stable agent name; "" at a root without one; None when the chain
        runs into a span not seen yet."""
        for _ in range(MAX_DEPTH):
            if not parent:
                return ""
            node = self._spans.get((trace_id, parent))
            if node is None:
                return None
            if node.agent_name:
                return node.agent_name
            parent = node.parent
        return ""

    def _missing(self, r: SpanRecord) -> SpanRecord:
        self.missing += 1
        flags = (*r.flags, MISSING_FLAG, "no_agent_identity") if r.agent_id == UNKNOWN_AGENT else (
            *r.flags, MISSING_FLAG)
        return r._replace(agent_source="ancestor_missing", flags=flags)
