"""Per-agent metrics on `/metrics`: what the service exposes after real spans, within the cardinality bound,
and every query of the Grafana dashboard names a metric (and labels) the service actually exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import requests
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from spanwarden.dashboards.prometheus import CATALOGUE, AgentMetrics
from spanwarden.embedded.service import EmbeddedService
from spanwarden.settings import Settings

GRAFANA = Path(__file__).resolve().parents[2] / "dashboards" / "grafana" / "spanwarden_agents.json"


def send(url: str, agent: str, calls: int, error: bool = False) -> None:
    resource = Resource.create({"service.name": agent, "deployment.environment.name": "prod",
                                "spanwarden.team": "finance"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{url}/v1/traces")))
    tracer = provider.get_tracer("t")
    for _ in range(calls):
        with tracer.start_as_current_span("chat gpt-4o-mini", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 100,
                **({"error.type": "timeout"} if error else {})}):
            pass
    provider.shutdown()


def scrape(url: str) -> dict[str, list]:
    assert requests.get(f"{url}/metrics/agents", timeout=5).status_code == 401  # agent names and spend: viewer
    assert "spanwarden_agent_" not in requests.get(f"{url}/metrics", timeout=5).text
    text = requests.get(f"{url}/metrics/agents", headers={"Authorization": "Bearer t"}, timeout=5).text
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_per_agent_metrics_after_real_spans_within_the_bound(tmp_path):
    service = EmbeddedService(Settings(port=0, state_dir=tmp_path, admin_token="t", audit_fsync="never",
                                       metrics_max_agents=2))
    url = f"http://127.0.0.1:{service.start_in_thread()}"
    try:
        send(url, "billing-bot", 3)
        send(url, "search-bot", 2, error=True)
        send(url, "third-bot", 1)  # past the bound: counted as agent="other"
        requests.post(f"{url}/v1/commands", headers={"Authorization": "Bearer t"}, timeout=5, json={
            "command": "kill", "agent": "billing-bot", "reason": "test"}).raise_for_status()
        families = scrape(url)
    finally:
        service.stop()
    calls = {s.labels["agent"]: s.value for s in families["spanwarden_agent_calls"] if s.name.endswith("_total")}
    assert calls == {"billing-bot": 3, "search-bot": 2, "other": 1}
    spend = {(s.labels["agent"], s.labels["model"]): s.value for s in families["spanwarden_agent_spend_usd"]
             if s.name.endswith("_total")}
    assert spend[("billing-bot", "gpt-4o-mini")] > 0
    errors = {s.labels["agent"]: s.value for s in families["spanwarden_agent_errors"] if s.name.endswith("_total")}
    assert errors == {"search-bot": 2}
    halted = {s.labels["agent"] for s in families["spanwarden_agent_decision"] if s.labels["action"] == "halt"}
    assert halted == {"billing-bot"}
    assert all(s.labels["agent"] in {"billing-bot", "search-bot", "other"}
               for f in families.values() for s in f if "agent" in s.labels)


def test_the_bound_holds_for_any_number_of_agents():
    metrics = AgentMetrics(max_agents=10)
    assert {metrics.label(f"a{i}") for i in range(1000)} == {f"a{i}" for i in range(10)} | {"other"}


def test_every_grafana_query_names_exposed_metrics_and_labels():
    dashboard = json.loads(GRAFANA.read_text())
    exposed = {f"{n}_total" if kind == "counter" else n: set(labels) for n, (kind, _, labels) in CATALOGUE.items()}
    exposed |= {"spanwarden_records_total": set(), "spanwarden_audit_chain_ok": set(),
                "spanwarden_llm_spans_without_usage_total": {"agent"}}
    queries = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    queries += [v["query"] for v in dashboard["templating"]["list"]]
    assert queries
    for query in queries:
        names = set(re.findall(r"\b(spanwarden_[a-z_]+)\b", query))
        assert names and names <= set(exposed), (query, names - set(exposed))
        for name in names:
            for label in re.findall(rf"{name}\{{([^}}]*)\}}", query):
                used = {part.split("=")[0].split("!")[0].strip() for part in label.split(",") if part.strip()}
                assert used <= exposed[name], (query, used - exposed[name])
        for grouping in re.findall(r"by \(([^)]*)\)", query):
            grouped = {g.strip() for g in grouping.split(",")}
            assert any(grouped <= exposed[n] for n in names), (query, grouped)
