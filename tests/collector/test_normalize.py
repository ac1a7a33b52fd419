"""Span normalisation from real SDK spans, through both OTLP/HTTP encodings."""

from __future__ import annotations

import gzip
import json

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from spanwarden.collector.normalize import MAX_TEXT, Normalizer
from spanwarden.collector.otlp_decode import JSON, PROTOBUF, decode_request
from spanwarden.collector.pricing import PriceTable

AGENT = {"service.name": "billing-bot", "service.version": "2.1.0", "deployment.environment.name": "prod",
         "spanwarden.owner": "alice@example.com", "spanwarden.team": "finance"}


@pytest.fixture
def normalizer() -> Normalizer:
    return Normalizer(PriceTable.load())


def records(normalizer, body, content_type=PROTOBUF, encoding=""):
    return normalizer.records(decode_request(body, content_type, encoding))


def to_otlp_json(body: bytes) -> bytes:
    """The OTLP JSON encoding of a protobuf body: lowerCamelCase keys and hex (not base64) ids."""
    doc = json_format.MessageToDict(ExportTraceServiceRequest.FromString(body))
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        import base64
                        span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(doc).encode()


def test_chat_span_gets_identity_usage_and_cost(span_factory, normalizer):
    f = span_factory(**AGENT)
    f.span("chat gpt-4o", {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                           "gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024-08-06",
                           "gen_ai.usage.input_tokens": 1_000_000, "gen_ai.usage.output_tokens": 100_000,
                           "gen_ai.usage.cache_read.input_tokens": 200_000})
    (r,) = records(normalizer, f.body())
    assert (r.agent_id, r.owner, r.team, r.environment, r.agent_version) == (
        "billing-bot", "alice@example.com", "finance", "prod", "2.1.0")
    assert (r.operation, r.provider, r.model) == ("chat", "openai", "gpt-4o-2024-08-06")
    assert (r.input_tokens, r.output_tokens, r.cached_tokens) == (1_000_000, 100_000, 200_000)
    # gpt-4o: $2.50/M input, $1.25/M cached input, $10/M output (dated variant priced by prefix)
    assert r.cost_usd == pytest.approx(0.8 * 2.5 + 0.2 * 1.25 + 0.1 * 10.0)
    assert r.cost_source == "price_table"
    assert len(r.trace_id) == 32 and len(r.span_id) == 16
    assert r.flags == ()


def test_json_and_gzip_encodings_give_the_same_records(span_factory, normalizer):
    f = span_factory(**AGENT)
    f.span("execute_tool sql", {"gen_ai.tool.name": "sql", "db.system.name": "postgresql",
                                "db.namespace": "crm", "db.collection.name": "tickets",
                                "db.response.returned_rows": 42}, error=True)
    body = f.body()
    from_proto = records(normalizer, body)
    from_json = records(normalizer, to_otlp_json(body), JSON)
    from_gzip = records(normalizer, gzip.compress(to_otlp_json(body)), "application/json; charset=utf-8", "gzip")
    assert from_proto == from_json == from_gzip
    (r,) = from_proto
    assert r.resource == "db:postgresql:crm.tickets" and r.rows == 42 and r.is_error and r.error_type == "error"


def test_deprecated_names_are_read_and_current_names_win(span_factory, normalizer):
    f = span_factory(**{"service.name": "a", "deployment.environment": "staging"})
    f.span("chat", {"gen_ai.system": "anthropic", "gen_ai.request.model": "claude-sonnet-4-5",
                    "gen_ai.usage.prompt_tokens": 10, "gen_ai.usage.completion_tokens": 5})
    f.span("chat", {"gen_ai.usage.prompt_tokens": 999, "gen_ai.usage.input_tokens": 7,
                    "gen_ai.system": "old", "gen_ai.provider.name": "new"})
    old, both = records(normalizer, f.body())
    assert (old.provider, old.input_tokens, old.output_tokens, old.environment) == ("anthropic", 10, 5, "staging")
    assert (both.provider, both.input_tokens) == ("new", 7)


def test_agent_identity_precedence_and_unknown(span_factory, normalizer):
    f = span_factory(**{"service.name": "svc", "gen_ai.agent.id": "agent-7"})
    f.span("invoke_agent", {"gen_ai.agent.name": "planner"})
    f.span("chat", {"spanwarden.agent": "explicit-bot"})
    service = span_factory(**{"service.name": "svc"})
    service.span("chat", {"gen_ai.agent.id": "agent"})
    anonymous = span_factory(**{"service.name": "unknown_service:python"})
    anonymous.span("chat", {})
    resource_level, explicit = records(normalizer, f.body())
    (by_service,) = records(normalizer, service.body())
    (unknown,) = records(normalizer, anonymous.body())
    # The resource's agent comes before a span's agent name, which is kept as the span's agent name.
    assert (resource_level.agent_id, resource_level.agent_source, resource_level.agent_name) == (
        "agent-7", "resource", "planner")
    assert (explicit.agent_id, explicit.agent_source) == ("explicit-bot", "explicit")
    assert (by_service.agent_id, by_service.agent_source) == ("svc", "service")  # "agent" is a placeholder
    assert unknown.agent_id == "unknown" and "no_agent_identity" in unknown.flags


def test_resources_from_each_convention(span_factory, normalizer):
    f = span_factory(**AGENT)
    f.span("a", {"spanwarden.resource": "s3:bucket/x", "db.collection.name": "ignored"})
    f.span("b", {"messaging.destination.name": "orders"})
    f.span("c", {"file.path": "/etc/passwd"})
    f.span("d", {"url.full": "https://api.stripe.com/v1/charges?x=1"})
    f.span("e", {"server.address": "db.internal", "url.full": "https://other"})
    f.span("f", {"db.system.name": "mongodb", "db.namespace": "users"})
    f.span("g", {"db.system.name": "postgresql", "db.namespace": "shop",
                 "db.query.text": "WITH recent AS (SELECT * FROM public.orders WHERE ts > $1) "
                                  "SELECT c.email FROM recent JOIN customers c ON c.id = recent.customer_id"})
    f.span("h", {"db.system": "sqlite", "db.statement": "UPDATE invoices SET paid = 1 WHERE id = ?"})
    f.span("i", {"db.system.name": "mysql", "db.query.summary": "SELECT accounts"})
    f.span("j", {"db.system.name": "postgresql", "db.query.text": "this is not sql ((("})
    f.span("k", {"mcp.method.name": "resources/read", "mcp.resource.uri": "file:///srv/notes.md"})
    f.span("l", {"gen_ai.tool.name": "fetch", "server.address": "api.openai.com"})
    f.span("m", {"gen_ai.request.model": "gpt-4o", "server.address": "llm-gateway.internal",
                 "url.full": "https://llm-gateway.internal/v1/chat/completions"})
    assert [r.resource for r in records(normalizer, f.body())] == [
        "s3:bucket/x", "queue:orders", "file:/etc/passwd", "http:api.stripe.com", "http:db.internal",
        "db:mongodb:users", "db:postgresql:shop.public.orders", "db:sqlite:invoices", "db:mysql:accounts",
        "", "mcp:file:///srv/notes.md", "", ""]


def test_bad_values_are_kept_and_flagged(span_factory, normalizer):
    f = span_factory(**AGENT)
    f.span("chat", {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": "lots",
                    "gen_ai.usage.output_tokens": -5, "spanwarden.cost_usd": float("nan")})
    f.span("chat", {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 10**15,
                    "gen_ai.usage.output_tokens": "12"})
    f.span("x" * 10_000, {"gen_ai.tool.name": "t" * 100_000, "gen_ai.tool.call.arguments": "a" * 1_000_000})
    f.span("backwards", {}, start_ns=2_000_000_000_000_000_000, duration_ns=-5)
    words, absurd, huge, backwards = records(normalizer, f.body())
    assert words.input_tokens == 0 and words.output_tokens == 0
    assert {"bad_gen_ai.usage.input_tokens", "bad_gen_ai.usage.output_tokens", "bad_reported_cost"} <= set(
        words.flags)
    assert absurd.input_tokens == 0 and "absurd_gen_ai.usage.input_tokens" in absurd.flags
    assert absurd.output_tokens == 12  # a numeric string is read as a number
    assert len(huge.name) == MAX_TEXT and len(huge.tool_name) == MAX_TEXT
    assert huge.fingerprint.startswith("tool:" + "t" * 10)  # the arguments were hashed whole
    assert "truncated_name" in huge.flags and "truncated:gen_ai.tool.name" in huge.flags
    assert "negative_duration" in backwards.flags and backwards.duration_s == 0


def test_reported_cost_wins_and_unpriced_models_are_never_free(span_factory, normalizer, caplog):
    f = span_factory(**AGENT)
    f.span("chat", {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 1000,
                    "spanwarden.cost_usd": 0.5})
    f.span("chat", {"gen_ai.request.model": "acme-llm-9", "gen_ai.usage.input_tokens": 1_000_000})
    f.span("chat", {"gen_ai.request.model": "acme-llm-9", "gen_ai.usage.input_tokens": 1_000_000})
    reported, unpriced, again = records(normalizer, f.body())
    assert (reported.cost_usd, reported.cost_source) == (0.5, "reported")
    assert unpriced.cost_source == "default_price" and unpriced.cost_usd == pytest.approx(10.0)
    assert "unpriced_model" in unpriced.flags and again.cost_usd == pytest.approx(10.0)
    assert sum("acme-llm-9" in m for m in caplog.messages) == 1  # reported once


def test_fingerprints_identify_repeated_calls_without_keeping_content(span_factory, normalizer):
    f = span_factory(**AGENT)
    prompt = '[{"role": "user", "content": "' + "x" * 5000 + '"}]'
    for _ in range(2):
        f.span("chat", {"gen_ai.request.model": "gpt-4o", "gen_ai.input.messages": prompt})
    f.span("chat", {"gen_ai.request.model": "gpt-4o", "gen_ai.input.messages": prompt + " "})
    f.span("chat", {"gen_ai.request.model": "gpt-4o"})
    f.span("t", {"gen_ai.tool.name": "search", "gen_ai.tool.call.arguments": '{"q": 1}'})
    f.span("t", {"gen_ai.tool.name": "search", "spanwarden.fingerprint": "step-7"})
    same, again, other, plain, tool, explicit = (r.fingerprint for r in records(normalizer, f.body()))
    assert same == again != other and same.startswith("prompt:gpt-4o:") and len(same) < 64
    assert plain == "llm:gpt-4o" and tool.startswith("tool:search:") and explicit == "step-7"


def test_openinference_llm_span(span_factory, normalizer):
    f = span_factory(**AGENT)
    f.span("ChatCompletion", {"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini",
                              "llm.system": "openai", "llm.token_count.prompt": 1200,
                              "llm.token_count.completion": 300,
                              "llm.token_count.prompt_details.cache_read": 200, "llm.token_count.total": 1500})
    (r,) = records(normalizer, f.body())
    assert (r.model, r.provider, r.operation, r.span_kind) == ("gpt-4o-mini", "openai", "chat", "llm")
    assert (r.input_tokens, r.output_tokens, r.cached_tokens) == (1200, 300, 200)
    assert r.cost_usd == pytest.approx((1000 * 0.15 + 200 * 0.075 + 300 * 0.6) / 1e6)


def test_tools_from_each_convention(span_factory, normalizer):
    f = span_factory(**AGENT)
    f.span("search.tool", {"traceloop.span.kind": "tool", "traceloop.entity.name": "search",
                           "traceloop.entity.input": '{"q": "x"}'})
    f.span("MCP send tools/call read_file", {"mcp.method.name": "tools/call", "mcp.session.id": "s-1"})
    f.span("t", {"openinference.span.kind": "TOOL", "tool_call.function.name": "calc",
                 "tool_call.function.arguments": "{}"})
    f.span("workflow", {"traceloop.span.kind": "workflow", "traceloop.entity.name": "not-a-tool"})
    traceloop, mcp, oi, workflow = records(normalizer, f.body())
    assert (traceloop.tool_name, traceloop.operation) == ("search", "execute_tool")
    assert traceloop.fingerprint.startswith("tool:search:")
    assert (mcp.tool_name, mcp.conversation_id) == ("read_file", "s-1")
    assert oi.tool_name == "calc" and workflow.tool_name == "" and workflow.span_kind == "chain"


def test_reasoning_tokens_count_once(span_factory, normalizer):
    f = span_factory(**AGENT)
    base = {"gen_ai.request.model": "o3", "gen_ai.usage.input_tokens": 100}
    f.span("inside", {**base, "gen_ai.usage.output_tokens": 500, "gen_ai.usage.reasoning.output_tokens": 400})
    f.span("apart", {**base, "gen_ai.usage.output_tokens": 100, "gen_ai.usage.reasoning.output_tokens": 400,
                     "gen_ai.usage.total_tokens": 600})
    inside, apart = records(normalizer, f.body())
    assert inside.output_tokens == 500 and apart.output_tokens == 500


def test_reported_costs_win_when_plausible(span_factory, normalizer):
    f = span_factory(**AGENT)
    usage = {"gen_ai.request.model": "claude-sonnet-4-5", "gen_ai.usage.input_tokens": 1500,
             "gen_ai.usage.output_tokens": 250, "gen_ai.usage.cache_read.input_tokens": 400,
             "gen_ai.usage.cache_creation.input_tokens": 100}
    f.span("chat", {**usage, "operation.cost": 0.0070})
    f.span("chat", {**usage, "llm.cost.total": 7.245})  # dollars where cents were meant: not believed
    f.span("chat", {"gen_ai.request.model": "acme-9", "gen_ai.usage.input_tokens": 10, "gen_ai.usage.cost": 0.02})
    f.span("chat", usage)
    plausible, implausible, unpriced, table = records(normalizer, f.body())
    assert (plausible.cost_usd, plausible.cost_source) == (0.0070, "reported")
    assert implausible.cost_source == "price_table" and "implausible_reported_cost" in implausible.flags
    assert (unpriced.cost_usd, unpriced.cost_source) == (0.02, "reported")
    assert table.cost_usd == pytest.approx(0.007245) and table.cache_write_tokens == 100


def test_llm_looking_spans_without_usage_are_flagged(span_factory, normalizer):
    f = span_factory(**AGENT)
    f.span("chat", {"gen_ai.request.model": "gpt-4o"})
    f.span("LLM", {"openinference.span.kind": "LLM"})
    f.span("invoke_agent", {"gen_ai.operation.name": "invoke_agent", "gen_ai.request.model": "gpt-4o"})
    f.span("chat", {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 3})
    f.span("acme.generate", {"acme.llm.tokens_in": 10})
    f.span("http GET", {"url.full": "https://example.com"})
    f.span("execute_tool", {"gen_ai.tool.name": "summarise", "gen_ai.request.model": "gpt-4o"})
    f.span("chat", {"gen_ai.usage.input_tokens": 3})
    out = records(normalizer, f.body())
    assert ["llm_without_usage" in r.flags for r in out] == [True, True, False, False, True, False, False, False]
    assert "usage_without_model" in out[-1].flags


@pytest.mark.parametrize("attributes", [
    {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "server.address": "127.0.0.1"},
    {"gen_ai.tool.name": "fetch", "url.full": "https://erp.example.com/x"},
    {"db.system.name": "postgresql", "db.query.text": "SELECT * FROM orders"},
    {"openinference.span.kind": "TOOL", "tool.name": "read", "file.path": "/srv/a.txt"},
    {"http.request.method": "POST", "server.address": "api.anthropic.com"},
])
def test_the_guard_sees_the_resource_the_record_will_name(span_factory, normalizer, attributes):
    from spanwarden.collector.normalize import resource_of

    f = span_factory(**AGENT)
    f.span("s", attributes)
    (record,) = records(normalizer, f.body())
    assert resource_of(attributes) == record.resource
