"""What a worker tells the gateway of its agents' activity (`spanwarden.activity`, keyed by agent): bounded
rollups of the records it learned, for the gateway's activity journal and per-agent metrics (the console's
charts, `/metrics/agents`, `spanwarden incident`, the profile's tools and models).

Records are grouped per agent by (10-second bucket of the service's time, call kind, model, tool, resource,
error type), the service's time being the span's clamped to its receive time as the pipeline and `serve`'s
journal take it (unless span times are trusted); each group becomes one line in the journal's own format
(`embedded/activity_journal.py`) with `n`, the calls it stands for, its spend and rows summed, its earliest
time and one trace id. Writes and destructive operations stay one line each (what a rollback needs:
operation summary, trace and span ids, approval), at most `MAX_WRITES` per agent a flush. Past `MAX_GROUPS`
groups of an agent in one bucket, further records are summed into one line per call kind and outcome that
names no model, tool or resource: calls, spend and errors still add up. A message holds at most `MAX_LINES`
lines (a replay's flush spans many buckets: it goes as several). No attribute of a span is sent beyond those
normalised fields. Pure: no I/O, no clock."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from spanwarden.collector.span_record import LLM_OPERATIONS, SpanRecord
from spanwarden.event_time import TimeBounds, clamp

BUCKET_S = 10.0
FLUSH_S = 5.0  # how often a worker publishes its rollups (seconds)
MAX_GROUPS = 32  # per agent and bucket
MAX_LINES = 2000  # per message (~400 KB)
MAX_WRITES = 50  # per agent and flush
FORMAT = 1

_by_time = itemgetter("t")
GroupKey = tuple[float, str, str, str, str, str]  # bucket, call, model, tool, resource, error


def call_kind(record: SpanRecord) -> str:
    return "llm" if record.is_llm_call else "tool" if record.is_tool_call else "other"


def error_of(record: SpanRecord) -> str:
    return (record.error_type or "error") if record.is_error else ""


@dataclass
class _Agent:
    team: str = ""
    environment: str = ""
    groups: dict[GroupKey, list[Any]] = field(default_factory=dict)  # [first t, n, usd, rows, a trace id]
    per_bucket: dict[float, int] = field(default_factory=dict)  # groups made in each bucket
    writes: list[dict[str, Any]] = field(default_factory=list)
    writes_summed: int = 0  # past MAX_WRITES: counted in the groups instead


class ActivityRollup:
    def __init__(self, max_groups: int = MAX_GROUPS, max_writes: int = MAX_WRITES,
                 max_lines: int = MAX_LINES, bounds: TimeBounds | None = None) -> None:
        self.bounds = bounds  # None: the spans' own times are trusted (SPANWARDEN_TRUST_SPAN_TIME)
        self.max_groups = max_groups
        self.max_writes = max_writes
        self.max_lines = max_lines
        self._agents: dict[str, _Agent] = {}

    def add(self, records: Iterable[SpanRecord]) -> None:
        agent_id, agent = None, _Agent()
        groups: dict[GroupKey, list[Any]] = {}
        per_bucket: dict[float, int] = {}
        bounds, max_groups = self.bounds, self.max_groups
        for r in records:
            if r.agent_id != agent_id:  # one agent's records at a time, as the detect stage hands them
                agent_id = r.agent_id
                found = self._agents.get(agent_id)
                agent = self._agents[agent_id] = _Agent() if found is None else found
                agent.team, agent.environment = r.team, r.environment
                groups, per_bucket = agent.groups, agent.per_bucket
            t = r.end_ns / 1e9  # r.time_s
            received = r.received_s
            if bounds is not None and received and not (
                    received - bounds.max_lateness_s <= t <= received + bounds.max_skew_s):
                t = clamp(r, bounds).time_s  # as `serve`'s journal has it (`activity_journal.entry`)
            if r.effect and r.is_write:
                if len(agent.writes) < self.max_writes:
                    agent.writes.append(_write_line(r, t))
                    continue
                agent.writes_summed += 1
            bucket = t - t % BUCKET_S
            model, tool = r.model, r.tool_name
            call = ("llm" if model or r.operation in LLM_OPERATIONS else
                    "tool" if tool or r.operation == "execute_tool" else "other")  # call_kind, inlined
            error = (r.error_type or "error") if r.is_error else ""  # error_of, inlined
            key: GroupKey = (bucket, call, model, tool, r.resource, error)
            group = groups.get(key)
            if group is None:  # a new group of the bucket, or past `max_groups` its overflow line
                made = per_bucket.get(bucket, 0)
                if made >= max_groups:
                    key = (bucket, call, "", "", "", error)
                    group = groups.get(key)
                if group is None:
                    per_bucket[bucket] = made + 1
                    groups[key] = [t, 1, 0.0 + r.cost_usd, 0 + r.rows, r.trace_id]  # as 0 + each record
                    continue
            group[1] += 1
            group[2] += r.cost_usd
            group[3] += r.rows
            if t < group[0]:
                group[0] = t

    def __len__(self) -> int:
        return len(self._agents)

    def drain(self) -> list[tuple[str, dict[str, Any]]]:
        """Each agent's messages since the last drain (and forget them): `(agent, {"format", "team",
        "environment", "lines"})`, lines oldest first, at most `max_lines` a message."""
        return [message for agent in self.drain_agents() for message in agent]

    def drain_agents(self) -> Iterator[list[tuple[str, dict[str, Any]]]]:
        """`drain()` one agent at a time: what is added meanwhile goes to the next drain (a worker yields its
        event loop between two agents, instead of holding it for a whole flush's lines)."""
        agents, self._agents = self._agents, {}
        for agent_id, agent in agents.items():
            yield self._messages(agent_id, agent)

    def _messages(self, agent_id: str, agent: _Agent) -> list[tuple[str, dict[str, Any]]]:
        # a sum is rounded (float noise); one record's cost is sent as it is (round(x, 9) costs ~1 us)
        lines = [{"t": t, "n": n, "call": call, "model": model, "tool": tool, "resource": resource,
                  "error": error, "usd": usd if n == 1 else round(usd, 9), "rows": rows, "trace": trace,
                  "span": ""}
                 for (_, call, model, tool, resource, error), (t, n, usd, rows, trace) in agent.groups.items()]
        lines.extend(agent.writes)
        lines.sort(key=_by_time)
        return [(agent_id, {"format": FORMAT, "team": agent.team, "environment": agent.environment,
                            "lines": lines[start:start + self.max_lines],
                            "writes_summed": agent.writes_summed if start == 0 else 0})
                for start in range(0, len(lines), self.max_lines)]


def _write_line(r: SpanRecord, t: float) -> dict[str, Any]:
    return {"t": t, "n": 1, "call": call_kind(r), "model": r.model, "tool": r.tool_name,
            "resource": r.resource, "error": error_of(r), "usd": r.cost_usd, "rows": r.rows, "trace": r.trace_id,
            "span": r.span_id, "effect": r.effect, "op": r.effect_summary, "approval": r.approval}


def lines_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The journal lines of one activity message (ValueError for one of another format or shape)."""
    if message.get("format") != FORMAT or not isinstance(message.get("lines"), list):
        raise ValueError(f"activity message of format {message.get('format')!r}, expected {FORMAT}")
    out = []
    for line in message["lines"]:
        if not isinstance(line, dict) or not isinstance(line.get("t"), (int, float)):
            raise ValueError("an activity line without its time")
        out.append(line)
    return out
