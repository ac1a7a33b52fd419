"""The one agent-identity rule: which name on a span is a stable agent identity, and which is a placeholder
or a per-run id (kept as the run's conversation id instead).

Precedence, first found wins (`Normalizer` applies it; `TraceStage` finishes what needs the trace):
1. `spanwarden.agent`, on the span or on the resource: the agent, whatever else the span says.
2. The resource's own agent attributes (`gen_ai.agent.id`, then `gen_ai.agent.name`) when stable.
3. `service.name` (not the SDK's `unknown_service` placeholder).
4. The nearest `invoke_agent`/AGENT span's stable name in the same trace (the span's own when it is one)
   — used when the resource declares `spanwarden.multi_agent=true` (one service hosting several agents:
   the agent is `<service>/<name>`) or names no agent at all (the agent is `<name>`).
5. `unknown`.
Placeholders ("agent", "OpenAI Agent", "assistant", ...) and per-run ids (UUIDs, long hex or numeric ids)
are never an identity.
"""

from __future__ import annotations

import re
from functools import lru_cache

from spanwarden.collector.span_record import UNKNOWN_AGENT

PLACEHOLDERS = frozenset({
    "agent", "agents", "openai agent", "openai-agent", "openai_agent", "assistant", "ai assistant", "default",
    "default agent", "main", "root", "unknown", "none", "null", "undefined", "langgraph", "langchain", "crewai",
    "crew", "graph", "workflow", "runnablesequence", "agentexecutor", "agent executor", "chain", "llm", "bot",
})
_UUID = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", re.IGNORECASE)
_RUN_ID = re.compile(r"(?:[0-9a-f]{16,}|\d{6,}|[0-9A-HJKMNP-TV-Z]{26})", re.IGNORECASE)  # hex, numeric, ULID
_SEPARATED_ID = re.compile(r"^[A-Za-z][\w.-]*?[-_:](?P<id>.+)$")  # "run-3f2a...", "agent_01J...", "call:123"


@lru_cache(maxsize=8192)  # names repeat span after span; bounded, and a pure function
def is_per_run_id(value: str) -> bool:
    """A UUID, ULID, long hex or numeric id, alone or after a short prefix ("run-<uuid>")."""
    v = value.strip()
    if _UUID.search(v) is not None or _RUN_ID.fullmatch(v) is not None:
        return True
    m = _SEPARATED_ID.match(v)
    return m is not None and _RUN_ID.fullmatch(m.group("id")) is not None


def is_placeholder(value: str) -> bool:
    return value.strip().lower() in PLACEHOLDERS


def stable(value: object) -> str:
    """`value` when it can name an agent across runs, else ""."""
    if not isinstance(value, str) or not value:
        return ""
    return _stable(value)


@lru_cache(maxsize=8192)
def _stable(value: str) -> str:
    v = value.strip()
    if not v or is_placeholder(v) or is_per_run_id(v):
        return ""
    return v


def agent_span_name(span_name: str, operation: str, kind: str, named: str) -> str:
    """The stable agent name an agent span carries: its agent-name attribute, else its span name without
    the `invoke_agent ` prefix. Empty for spans that are not agent spans or name none stably."""
    if operation not in ("invoke_agent", "create_agent") and kind != "agent":
        return ""
    if stable(named):
        return named.strip()
    for prefix in ("invoke_agent ", "create_agent ", "agent run: ", "agent "):
        if span_name.startswith(prefix):
            return stable(span_name[len(prefix):])
    return ""


def qualify(base: str, name: str) -> str:
    """The agent id of sub-agent `name` inside the identity `base`: `base/name`, or `name` alone when
    `base` is unknown (an untrusted prefix is kept)."""
    if base == UNKNOWN_AGENT:
        return name
    if base.endswith(":" + UNKNOWN_AGENT):
        return base[: -len(UNKNOWN_AGENT)] + name
    if base == name or base.endswith("/" + name):
        return base
    return f"{base}/{name}"


SOURCES = {  # a record's `agent_source`: where its agent id came from, as `audit explain` says it
    "explicit": "the spanwarden.agent attribute",
    "resource": "the resource's gen_ai.agent.id / gen_ai.agent.name",
    "service": "the resource's service.name",
    "instrument": "instrument(agent_id=) in the agent's code, as the resource's service.name",
    "agent_span": "the span's own invoke_agent/AGENT name",
    "inherited": "the nearest invoke_agent/AGENT span above it in its trace",
    "ancestor_missing": "the service (its agent span never arrived within the wait)",
    "unknown": "nothing: the spans name no agent",
}


def audited(source: str) -> dict[str, str]:
    """What a finding's audit entry records of its agent's identity (nothing when the source is unknown)."""
    return {"identity": source} if source else {}


def describe(source: str) -> str:
    return SOURCES.get(source, source)
