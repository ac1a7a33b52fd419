"""Every metric a dashboard or monitor queries is one the exporter emits, filtered and grouped only by tags
it carries; template variables and monitor message variables name real tags; and the telemetry really
emits each metric with exactly its catalogue tags."""

from __future__ import annotations

import re
from typing import Any

import pytest

from spanwarden.collector.normalize import NO_USAGE
from spanwarden.collector.pricing import PriceTable
from spanwarden.collector.span_record import make_record
from spanwarden.dashboards.metrics_catalog import METRICS
from spanwarden.dashboards.push import dashboards, monitors
from spanwarden.dashboards.telemetry import EVENT_TAG_KEYS, LOG_TAG_KEYS, Point, Telemetry
from spanwarden.detectors.finding import Finding, Severity
from spanwarden.enforcers.audit_log import AgentRef
from spanwarden.enforcers.decision import Action, Decision

METRIC_QUERY = re.compile(r"(?:sum|avg|max|min|count):(?P<metric>[a-z0-9_.]+)\{(?P<filter>[^}]*)\}"
                          r"(?:\s*by\s*\{(?P<by>[^}]*)\})?")


def _queries(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "q" and isinstance(v, str)] + [
            q for v in node.values() for q in _queries(v)]
    if isinstance(node, list):
        return [q for v in node for q in _queries(v)]
    return []


def _stream_queries(node: Any) -> list[tuple[str, str]]:
    if isinstance(node, dict):
        found = [(node["type"], node["query"]) for _ in [0] if node.get("type") in ("event_stream", "log_stream")]
        return found + [q for v in node.values() for q in _stream_queries(v)]
    if isinstance(node, list):
        return [q for v in node for q in _stream_queries(v)]
    return []


def _check_metric_query(query: str, variables: dict[str, str]) -> set[str]:
    """The tag keys the query relies on; fails on an unknown metric or tag."""
    uses = list(METRIC_QUERY.finditer(query))
    assert uses, f"no metric in {query!r}"
    used: set[str] = set()
    for use in uses:
        spec = METRICS.get(use["metric"])
        assert spec is not None, f"{use['metric']} is not a metric the exporter sends"
        keys = set()
        for item in (i.strip() for i in use["filter"].split(",")):
            if item in ("*", ""):
                continue
            keys.add(variables[item[1:]] if item.startswith("$") else item.lstrip("!").split(":", 1)[0])
        keys |= {k.strip() for k in (use["by"] or "").split(",") if k.strip()}
        assert keys <= set(spec.tags), f"{use['metric']} has no tag(s) {keys - set(spec.tags)} in {query!r}"
        used |= keys
    return used


@pytest.mark.parametrize("board", dashboards(), ids=lambda b: b["title"])
def test_dashboard_queries_use_emitted_metrics_and_tags(board: dict[str, Any]) -> None:
    variables = {v["name"]: v["prefix"] for v in board.get("template_variables", [])}
    for query in _queries(board["widgets"]):
        _check_metric_query(query, variables)
    for kind, query in _stream_queries(board["widgets"]):
        allowed = EVENT_TAG_KEYS if kind == "event_stream" else LOG_TAG_KEYS
        for var in re.findall(r"\$(\w+)", query):
            assert variables[var] in allowed, f"{kind} {query!r}: {variables[var]} is not a tag it carries"


@pytest.mark.parametrize("monitor", monitors(), ids=lambda m: m["name"])
def test_monitor_queries_use_emitted_metrics_and_message_variables_are_grouped(monitor: dict[str, Any]) -> None:
    _check_metric_query(monitor["query"], {})
    grouped = set(re.findall(r"by \{([^}]*)\}", monitor["query"])[0].split(",")) if " by {" in monitor["query"] \
        else set()
    for var in re.findall(r"\{\{(\w+)\.name\}\}", monitor["name"] + monitor["message"]):
        assert var in grouped, f"{{{{{var}.name}}}} needs `by {{{var}}}` in {monitor['query']!r}"
    assert "managed-by:spanwarden" in monitor["tags"]


def test_the_telemetry_emits_every_catalogued_metric_with_exactly_its_tags() -> None:
    ref = AgentRef("a", "o@x", "t", "prod")
    telemetry = Telemetry(PriceTable.load().canonical_name)
    telemetry.records([make_record(agent_id="a", team="t", environment="prod", model="gpt-4o", cost_usd=1.0,
                                   is_error=True, end_ns=1),
                       make_record(agent_id="a", team="t", environment="prod", model="mystery-llm",
                                   flags=(NO_USAGE,), end_ns=1)], 10.0)
    telemetry.finding(Finding("a", "error_burst", "burst", 2.0, Severity.WARNING, 5, 1, "errors", "x", 9.0), ref)
    telemetry.decision(Decision("a", Action.WARN, "x", "human:omar", 9.0, 1), ref)
    extra = [Point("spanwarden.exporter.dropped", 1.0, ("signal:logs",)),
             Point("spanwarden.exporter.queue_depth", 0.0, ())]
    points = telemetry.flush(10.0, extra).points
    assert {p.metric for p in points} == set(METRICS)
    for point in points:
        assert tuple(t.split(":", 1)[0] for t in point.tags) == METRICS[point.metric].tags, point
