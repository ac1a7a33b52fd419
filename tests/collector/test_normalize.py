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
    f.span("chat", {})
    anonymous = span_factory(**{"service.name": "unknown_service:python"})
    anonymous.span("chat", {})
    span_level, resource_level = records(normalizer, f.body())
    (unknown,) = records(normalizer, anonymous.body())
    assert span_level.agent_id == "planner" and resource_level.agent_id == "agent-7"
    assert unknown.agent_id == "unknown" and "no_agent_identity" in unknown.flags


def test_resources_from_each_convention(span_factory, normalizer):
    f = span_factory(**AGENT)
    f.span("a", {"spanwarden.resource": "s3:bucket/x", "db.collection.name": "ignored"})
    f.span("b", {"messaging.destination.name": "orders"})
    f.span("c", {"file.path": "/etc/passwd"})
    f.span("d", {"url.full": "https://api.stripe.com/v1/charges?x=1"})
    f.span("e", {"server.address": "db.internal", "url.full": "https://other"})
    f.span("f", {"db.system.name": "mongodb", "db.namespace": "users"})
    assert [r.resource for r in records(normalizer, f.body())] == [
        "s3:bucket/x", "queue:orders", "file:/etc/passwd", "http:api.stripe.com", "http:db.internal",
        "db:mongodb:users"]


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
