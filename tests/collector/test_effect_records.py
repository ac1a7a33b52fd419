"""What an operation does, on the record (through the real OTLP encoding and the receiver's normaliser), and
how the policy's effect rules match it: destructive on `prod.*`, any write to `*payment*`, next to tools."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanwarden.collector import effects
from spanwarden.collector.normalize import Normalizer
from spanwarden.collector.pricing import PriceTable
from spanwarden.enforcers.approvals import effect_needs_approval, required
from spanwarden.enforcers.policy import Policy


def record_of(name: str, attributes: dict[str, object]):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span(name, attributes=attributes):
        pass
    [record] = Normalizer(PriceTable.load()).records(encode_spans(exporter.get_finished_spans()))
    return record


@pytest.mark.parametrize(("name", "attributes", "effect", "summary"), [
    ("DELETE", {"db.system.name": "postgresql", "db.query.text": "DELETE FROM crm.customers WHERE id = $1"},
     "destructive", "DELETE FROM crm.customers"),
    ("UPDATE", {"db.system": "mysql", "db.statement": "UPDATE orders SET paid = 1"}, "destructive",
     "UPDATE orders without WHERE"),
    ("POST", {"http.request.method": "POST", "url.full": "https://files.example.org/up?key=s3cret"}, "write",
     "POST files.example.org/up"),
    ("GET", {"http.method": "GET", "http.url": "https://api.example.com/v1/items"}, "read",
     "GET api.example.com/v1/items"),
    ("send payouts", {"messaging.operation.type": "send", "messaging.destination.name": "payouts"}, "write",
     "send to payouts"),
    ("execute_tool delete_file", {"gen_ai.tool.name": "delete_file", "file.path": "/srv/reports/q4.csv"},
     "destructive", "delete file /srv/reports/q4.csv"),
    ("execute_tool write_file", {"gen_ai.tool.name": "write_file", "file.path": "/tmp/out.txt"}, "write",
     "write file /tmp/out.txt"),
    ("execute_tool run", {"gen_ai.tool.name": "run", "spanwarden.effect": "destructive"}, "destructive",
     "declared destructive"),
    ("chat gpt-4o", {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"}, "", ""),
    # Without the statement (opt-in in the current conventions): the summary's or the operation's verb.
    ("DELETE customers", {"db.system.name": "postgresql", "db.query.summary": "DELETE customers"},
     "destructive", "DELETE customers"),
    ("UPDATE orders", {"db.system.name": "postgresql", "db.query.summary": "UPDATE orders"}, "write",
     "UPDATE orders"),
    ("deleteMany", {"db.system.name": "mongodb", "db.operation.name": "deleteMany",
                    "db.collection.name": "carts"}, "destructive", "deleteMany"),
    ("FLUSHALL", {"db.system.name": "redis", "db.operation.name": "FLUSHALL"}, "destructive", "FLUSHALL"),
    ("find", {"db.system.name": "mongodb", "db.operation.name": "find"}, "read", "find"),
])
def test_the_record_says_what_the_operation_did(name, attributes, effect, summary):
    record = record_of(name, attributes)
    assert (record.effect, record.effect_summary, record.approval) == (effect, summary, "")
    assert record.is_write == (effect in ("write", "destructive"))
    assert "s3cret" not in record.effect_summary and "$1" not in record.effect_summary


def test_the_approval_the_guard_stamped_is_on_the_record():
    stamped = record_of("DELETE", {"db.statement": "DELETE FROM t", "spanwarden.approval": "req-0a1b2c3d"})
    refused = record_of("DELETE", {"db.statement": "DELETE FROM t", "spanwarden.approval": "denied:req-0a1b2c3d"})
    assert stamped.approval == "req-0a1b2c3d" and stamped.is_write
    assert refused.approval == "denied:req-0a1b2c3d" and not refused.is_write  # it never ran


def test_targets_name_the_tables_without_cte_names():
    found = effects.of_sql("WITH old AS (SELECT id FROM s) DELETE FROM sessions WHERE id IN (SELECT id FROM old)")
    assert found.kind == "destructive" and "old" not in found.targets and "sessions" in found.targets


RULES = [("destructive", ("prod.*",)), ("write", ("*payment*",))]


@pytest.mark.parametrize(("effect", "resource", "targets", "held"), [
    ("destructive", "db:postgresql:prod.orders", (), True),  # by the resource's name
    ("destructive", "db:postgresql:staging.orders", (), False),
    ("destructive", "db:postgresql:app", ("prod.orders",), True),  # by a table the statement names
    ("write", "db:postgresql:shop.payments", (), True),
    ("destructive", "db:postgresql:shop.payments", (), True),  # a write rule covers destructive too
    ("write", "db:postgresql:prod.orders", (), False),  # the prod.* rule is for destructive only
    ("write", "http:payments.example.com", (), True),
    ("read", "db:postgresql:prod.payments", (), False),
])
def test_effect_rules(effect, resource, targets, held):
    assert effect_needs_approval(RULES, effect, resource, targets) is held


def test_the_policy_lists_effects_next_to_tools():
    policy = Policy.from_yaml("""
version: t
approvals:
  environments: [prod]
  tools: ["delete_*"]
  effects: [{effect: destructive, resources: ["prod.*"]}, {effect: write, resources: ["*payment*"]}]
""")
    rules = policy.approvals
    assert required(rules, "prod", "delete_rows")  # by name, as before
    assert required(rules, "prod", "run_sql", "destructive", "db:pg:prod.customers")  # by effect
    assert not required(rules, "dev", "run_sql", "destructive", "db:pg:prod.customers")
    assert not required(rules, "prod", "run_sql", "write", "db:pg:prod.customers")
    assert required(rules, None, "run_sql", "write", "db:pg:billing.payment_methods")  # unheard-of agent
    with pytest.raises(ValueError, match="effect"):
        Policy.from_yaml("version: t\napprovals: {effects: [{effect: delete}]}")
