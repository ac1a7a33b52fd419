"""In-process agent inheritance: a span processor that stamps, on each span as it starts, the stable name
of the nearest agent span above it (`spanwarden.agent_name`), read from the parent span it sees. The
service then knows a chat or tool span's agent on arrival, without waiting for the agent span (which ends,
and is exported, after its children). Never raises and never blocks: an unreadable parent stamps nothing."""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from spanwarden.collector import agent_identity, span_kind
from spanwarden.collector import attributes as A

log = logging.getLogger(__name__)
_NAMES = (*A.SPAN_AGENT_NAME, A.AGENT_ID)


def agent_name_of(name: str, attributes: Any) -> str:
    """The stable agent name a span with these attributes carries for its children: one stamped on it, or
    its own when it is an agent span."""
    inherited = agent_identity.stable(attributes.get(A.INHERITED_AGENT))
    if inherited:
        return inherited
    operation = next((str(attributes[k]) for k in A.OPERATION if attributes.get(k)), "")
    kind = span_kind.kind_of(operation, next((attributes[k] for k in A.SPAN_KIND if attributes.get(k)), ""))
    named = next((str(attributes[k]) for k in _NAMES if agent_identity.stable(attributes.get(k))), "")
    return agent_identity.agent_span_name(name, span_kind.operation_of(operation, kind), kind, named)


class AgentStampProcessor(SpanProcessor):
    """Add to a TracerProvider before the exporting processor."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            parent = trace.get_current_span(parent_context)
            if not isinstance(parent, ReadableSpan) or parent.attributes is None:
                return
            if parent.get_span_context().trace_id != span.get_span_context().trace_id:
                return
            name = agent_name_of(parent.name, parent.attributes)
            if name:
                span.set_attribute(A.INHERITED_AGENT, name)
        except Exception:  # noqa: BLE001 - telemetry must never break the agent
            log.debug("could not stamp the inherited agent on a span", exc_info=True)

    def on_end(self, span: ReadableSpan) -> None:
        return None

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
