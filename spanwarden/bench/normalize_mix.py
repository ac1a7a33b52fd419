"""The normalise bench's traffic: a fixed, seeded mix of OTLP request bodies, as the real OTLP exporter's
encoder writes them, in the attribute sets the instrumentations spanwarden reads emit (openai-v2 and the
OTel GenAI handler, OpenInference, Traceloop/OpenLLMetry, Anthropic's SDK, Pydantic AI agents, the MCP SDK),
beside the soak's own traffic, many small resources, huge attributes and malformed values."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue, KeyValueList
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from spanwarden.bench.soak_traffic import AgentTraffic

T0 = 1_800_000_000_000_000_000
Attrs = dict[str, Any]
SpanMaker = Callable[[random.Random, int], tuple[str, Attrs]]


def _messages(rng: random.Random, size: int) -> str:
    words = " ".join(rng.choice(("invoice", "refund", "customer", "order", "status", "late")) for _ in range(size))
    return f'[{{"role": "user", "parts": [{{"type": "text", "content": "{words}"}}]}}]'


def openai_v2(rng: random.Random, i: int) -> tuple[str, Attrs]:
    """opentelemetry-instrumentation-openai-v2 (and util-genai's handler): chat and embeddings."""
    if i % 5 == 4:
        return "embeddings text-embedding-3-small", {
            "gen_ai.operation.name": "embeddings", "gen_ai.request.model": "text-embedding-3-small",
            "gen_ai.provider.name": "openai", "server.address": "api.openai.com", "server.port": 443,
            "gen_ai.response.model": "text-embedding-3-small", "gen_ai.embeddings.dimension.count": 1536,
            "gen_ai.usage.input_tokens": rng.randrange(10, 900)}
    return "chat gpt-4o-mini", {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.is_streaming": False, "gen_ai.openai.api_base": "https://api.openai.com/v1/",
        "server.address": "api.openai.com", "server.port": 443, "gen_ai.request.max_tokens": 4000,
        "gen_ai.input.messages": _messages(rng, 40), "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.response.id": f"chatcmpl-{rng.getrandbits(64):x}", "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": rng.randrange(100, 5000), "gen_ai.usage.output_tokens": rng.randrange(5, 900),
        "gen_ai.usage.cache_read.input_tokens": rng.choice((0, 0, 256, 1024)),
        "gen_ai.output.messages": '[{"role": "assistant", "parts": [{"type": "text", "content": "done"}]}]'}


def openinference(rng: random.Random, i: int) -> tuple[str, Attrs]:
    """Arize OpenInference (openai/anthropic/langchain instrumentors): LLM, TOOL, CHAIN and AGENT spans."""
    if i % 4 == 1:
        return "lookup_invoice", {
            "openinference.span.kind": "TOOL", "tool.name": "lookup_invoice",
            "input.value": f'{{"invoice": "INV-{rng.randrange(10_000)}"}}', "input.mime_type": "application/json",
            "output.value": '{"status": "paid"}', "url.full": "https://erp.example.com/invoices/INV-7",
            "session.id": f"sess-{i % 9}"}
    if i % 4 == 2:
        return "AgentExecutor", {"openinference.span.kind": "CHAIN", "input.value": _messages(rng, 20),
                                 "output.value": "ok", "session.id": f"sess-{i % 9}"}
    prompt, completion = rng.randrange(100, 6000), rng.randrange(5, 700)
    return "ChatCompletion", {
        "openinference.span.kind": "LLM", "llm.system": "openai", "llm.provider": "openai",
        "input.value": _messages(rng, 60), "input.mime_type": "application/json",
        "output.value": '{"id": "chatcmpl-1", "choices": [{"finish_reason": "stop"}]}',
        "output.mime_type": "application/json", "llm.invocation_parameters": '{"model": "gpt-4o"}',
        "llm.input_messages.0.message.role": "user", "llm.input_messages.0.message.content": "use the tool",
        "llm.model_name": "gpt-4o-2024-08-06", "llm.token_count.total": prompt + completion,
        "llm.token_count.prompt": prompt, "llm.token_count.completion": completion,
        "llm.token_count.prompt_details.cache_read": rng.choice((0, 128)),
        "llm.output_messages.0.message.role": "assistant", "llm.output_messages.0.message.content": "done",
        "llm.finish_reason": "stop", "session.id": f"sess-{i % 9}"}


def traceloop(rng: random.Random, i: int) -> tuple[str, Attrs]:
    """Traceloop/OpenLLMetry: workflow and task spans around LLM calls with the older usage names."""
    association = {"traceloop.association.properties.session_id": f"s-{i % 11}",
                   "traceloop.workflow.name": "billing_flow"}
    if i % 3 == 0:
        return "billing_flow.workflow", {"traceloop.span.kind": "workflow",
                                         "traceloop.entity.name": "billing_flow",
                                         "traceloop.entity.input": _messages(rng, 10), **association}
    if i % 3 == 1:
        return "fetch_rows.tool", {"traceloop.span.kind": "tool", "traceloop.entity.name": "fetch_rows",
                                   "traceloop.entity.input": f'{{"customer": {rng.randrange(500)}}}',
                                   "db.system": "postgresql",
                                   "db.statement": "SELECT * FROM invoices WHERE id = $1",
                                   **association}
    prompt, completion = rng.randrange(50, 3000), rng.randrange(5, 500)
    return "openai.chat", {
        "gen_ai.system": "OpenAI", "llm.request.type": "chat", "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06", "gen_ai.usage.prompt_tokens": prompt,
        "gen_ai.usage.completion_tokens": completion, "llm.usage.total_tokens": prompt + completion,
        "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "hello", "llm.is_streaming": False,
        "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.content": "hi", **association}


def agents(rng: random.Random, i: int) -> tuple[str, Attrs]:
    """Pydantic AI / OpenAI Agents style: invoke_agent spans, chat with operation.cost, tool calls, MCP."""
    if i % 4 == 0:
        name = rng.choice(("billing", "triage", "refunds"))
        return f"invoke_agent {name}", {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": name,
                                        "gen_ai.agent.id": f"run-{rng.getrandbits(128):032x}",
                                        "gen_ai.conversation.id": f"c-{i % 13}"}
    if i % 4 == 1:
        return "execute_tool lookup_invoice", {
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_invoice",
            "gen_ai.tool.call.id": f"toolu_{i}", "gen_ai.tool.call.arguments": f'{{"invoice": "INV-{i % 50}"}}',
            "spanwarden.agent_name": "billing", "http.request.method": "GET", "server.address": "erp.example.com",
            "url.path": "/invoices"}
    if i % 4 == 2:
        return "tools/call read_file", {"mcp.method.name": "tools/call", "mcp.protocol.version": "2025-06-18",
                                        "jsonrpc.request.id": str(i), "mcp.session.id": f"m-{i % 5}",
                                        "file.path": f"/data/report-{i % 20}.csv"}
    inp, out = rng.randrange(500, 4000), rng.randrange(20, 400)
    return "chat claude-sonnet-4-5", {
        "gen_ai.operation.name": "chat", "gen_ai.agent.name": "billing", "spanwarden.agent_name": "billing",
        "gen_ai.provider.name": "anthropic", "gen_ai.system": "anthropic", "server.address": "api.anthropic.com",
        "server.port": 443, "gen_ai.request.model": "claude-sonnet-4-5",
        "gen_ai.input.messages": _messages(rng, 30),
        "logfire.json_schema": '{"type": "object"}', "gen_ai.usage.input_tokens": inp,
        "gen_ai.usage.output_tokens": out, "gen_ai.usage.cache_creation.input_tokens": rng.choice((0, 100)),
        "gen_ai.usage.cache_read.input_tokens": rng.choice((0, 400)), "gen_ai.response.model": "claude-sonnet-4-5",
        "operation.cost": round(inp * 3e-6 + out * 15e-6, 6), "gen_ai.response.id": f"msg_{i:04d}",
        "gen_ai.response.finish_reasons": ("tool_call",)}


def huge(rng: random.Random, i: int) -> tuple[str, Attrs]:
    """Huge attributes: whole prompts and outputs in the span, long names, dozens of unread attributes."""
    extra = {f"app.field.{k}": f"value {k} {rng.random()}" for k in range(30)}
    return "chat " + "x" * (600 if i % 2 else 10), {
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o",
        "gen_ai.input.messages": _messages(rng, 8000), "gen_ai.output.messages": "y" * 20_000,
        "input.value": "z" * 30_000, "gen_ai.usage.input_tokens": 50_000, "gen_ai.usage.output_tokens": 900,
        "gen_ai.conversation.id": "c" * 400, **extra}


def malformed(rng: random.Random, i: int) -> tuple[str, Attrs]:
    """Values that make no sense: counts as text, negative or absurd, a cost that is NaN, a model as a list."""
    bad: list[Attrs] = [
        {"gen_ai.usage.input_tokens": "1200", "gen_ai.usage.output_tokens": "many"},
        {"gen_ai.usage.input_tokens": -5, "gen_ai.usage.output_tokens": 10**12},
        {"gen_ai.usage.input_tokens": 12.5, "spanwarden.cost_usd": float("nan")},
        {"gen_ai.request.model": ("gpt-4o", "gpt-4o-mini"), "gen_ai.usage.input_tokens": True},
        {"gen_ai.usage.total_tokens": 900, "operation.cost": "0.01", "gen_ai.agent.name": ""},
        {"acme.tokens_used": 99, "gen_ai.request.model": "claude-sonnet-4-5"},
    ]
    return "chat", {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", **bad[i % len(bad)]}


def _body(resource: Attrs, maker: SpanMaker, spans: int, rng: random.Random, errors: bool = True) -> bytes:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create(resource))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("bench")
    parent: trace.Span | None = None
    for i in range(spans):
        name, attrs = maker(rng, i)
        start = T0 + i * 1_000_000
        context = trace.set_span_in_context(parent) if parent is not None and i % 4 else None
        span = tracer.start_span(name, context=context, attributes=attrs, start_time=start)
        if errors and rng.random() < 0.03:
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=start + rng.randrange(1, 2_000_000_000))
        if i % 4 == 0:
            parent = span
    body = encode_spans(list(exporter.get_finished_spans())).SerializeToString()
    provider.shutdown()
    return body


def _exotic() -> bytes:
    """AnyValues the SDK never writes (bytes, maps, empty values, keys that are not UTF-8-clean text) and
    an end before the start, made at the protobuf level."""
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add(resource={"attributes": [KeyValue(key="service.name", value=AnyValue(
        string_value="odd-agent"))]}).scope_spans.add().spans
    for i in range(50):
        span = spans.add(trace_id=bytes(16), span_id=i.to_bytes(8, "big"), name="chat",
                         start_time_unix_nano=T0 + 10, end_time_unix_nano=T0 + (i % 3))
        span.attributes.extend([
            KeyValue(key="gen_ai.request.model", value=AnyValue(bytes_value=b"\xff\xfe")),
            KeyValue(key="gen_ai.usage.input_tokens", value=AnyValue(kvlist_value=KeyValueList())),
            KeyValue(key="gen_ai.usage.output_tokens", value=AnyValue()),
            KeyValue(key="gen_ai.response.model", value=AnyValue(string_value="gpt-4o")),
            KeyValue(key="gen_ai.usage.input_tokens", value=AnyValue(double_value=float(i))),
            KeyValue(key="", value=AnyValue(string_value="no key")),
        ])
    return request.SerializeToString()


MIXES: dict[str, tuple[Attrs, SpanMaker]] = {
    "openai_v2": ({"service.name": "support-bot", "deployment.environment.name": "prod",
                   "spanwarden.team": "support"}, openai_v2),
    "openinference": ({"service.name": "billing-bot", "service.version": "2.1.0",
                       "spanwarden.owner": "alice@example.com"}, openinference),
    "traceloop": ({"service.name": "flows", "deployment.environment": "staging"}, traceloop),
    "agents": ({"service.name": "support", "spanwarden.multi_agent": True}, agents),
    "huge": ({"service.name": "verbose-bot"}, huge),
    "malformed": ({"service.name": "unknown_service:python"}, malformed),
}


def mix(seed: int = 7) -> dict[str, list[bytes]]:
    """Request bodies by family: the soak's traffic (10 agents x 100 spans), each instrumentation's spans in
    250-span requests under one resource, 40 resources of 5 spans in one request, and the exotic values."""
    rng = random.Random(seed)
    out: dict[str, list[bytes]] = {"soak": [AgentTraffic(f"agent-{k}", seed).body(100) for k in range(10)]}
    for family, (resource, maker) in MIXES.items():
        count = 40 if family == "huge" else 250
        out[family] = [_body(resource, maker, count, rng) for _ in range(2 if family == "huge" else 1)]
    small = ExportTraceServiceRequest()
    makers = [maker for _, maker in MIXES.values()]
    for k in range(40):
        one = ExportTraceServiceRequest.FromString(_body(
            {"service.name": f"small-{k}", "gen_ai.agent.name": f"agent {k}"}, makers[k % 4], 5, rng))
        small.resource_spans.extend(one.resource_spans)
    out["small_resources"] = [small.SerializeToString()]
    out["exotic"] = [_exotic()]
    return out
