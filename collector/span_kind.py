"""What a span is — an LLM call, an embedding, a tool call, an agent, a chain — and which tool it ran, from
whichever convention says so: `gen_ai.operation.name`, Traceloop's `llm.request.type` and
`traceloop.span.kind`, OpenInference's `openinference.span.kind`, LangSmith's `langsmith.span.kind`, and
the MCP SDK's `mcp.method.name` (whose tool is only in the span name: `MCP send tools/call read_file`)."""

from __future__ import annotations

from typing import Any

LLM, EMBEDDING, TOOL, AGENT, CHAIN = "llm", "embedding", "tool", "agent", "chain"

_KIND = {  # the three span-kind attributes' values, lower-cased
    "llm": LLM, "chat_model": LLM, "embedding": EMBEDDING, "tool": TOOL, "agent": AGENT, "chain": CHAIN,
    "workflow": CHAIN, "task": CHAIN, "retriever": "retriever", "reranker": "reranker", "guardrail": "guardrail",
    "evaluator": "evaluator", "prompt": "prompt", "parser": "parser",
}
_OPERATION_KIND = {
    "chat": LLM, "text_completion": LLM, "generate_content": LLM, "embeddings": EMBEDDING,
    "execute_tool": TOOL, "invoke_agent": AGENT, "create_agent": AGENT,
}
_OPERATION = {  # Traceloop's llm.request.type values and other spellings -> gen_ai.operation.name
    "completion": "text_completion", "embedding": "embeddings", "chat_completion": "chat",
    "chat.completions": "chat",
}
_KIND_OPERATION = {LLM: "chat", EMBEDDING: "embeddings", TOOL: "execute_tool", AGENT: "invoke_agent"}
AGGREGATE_KINDS = frozenset({AGENT, CHAIN})  # usage on these spans sums their LLM calls


def kind_of(operation: str, kind_attribute: Any) -> str:
    """The span's kind: the span-kind attribute when one is set, else what the operation implies."""
    if isinstance(kind_attribute, str) and kind_attribute:
        return _KIND.get(kind_attribute.lower(), kind_attribute.lower())
    return _OPERATION_KIND.get(operation, "")


def operation_of(operation: Any, kind: str) -> str:
    """`gen_ai.operation.name`'s value for the span, from the operation attribute or else its kind."""
    if isinstance(operation, str) and operation:
        op = operation.lower()
        return _OPERATION.get(op, op)
    return _KIND_OPERATION.get(kind, "")


def tool_of(a: dict[str, Any], kind: str, span_name: str, tool_key: str, entity_key: str,
            mcp_key: str) -> str:
    """The tool's name: the tool attributes, Traceloop's entity name on tool spans, or an MCP tools/call's
    span name."""
    name = a.get(tool_key)
    if name:
        return str(name)
    if kind == TOOL and a.get(entity_key):
        return str(a[entity_key])
    if a.get(mcp_key) == "tools/call":
        head, sep, tail = span_name.partition("tools/call ")
        if sep and tail.strip():
            return tail.strip().split()[0]
    return ""
