"""The read side of `serve --kafka`: profiles answered by the agent's worker (also after a restart), and the
workers' activity rollups followed into the gateway's journal and per-agent metrics — `/metrics/agents`, the
console's fleet and the incident report, as on `serve`. The rollups themselves are checked against the
per-span figures `serve` keeps."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from spanwarden.activity_journal import entry, file_name
from spanwarden.collector.span_record import SpanRecord, make_record
from spanwarden.console import history
from spanwarden.dashboards.prometheus import AgentMetrics
from spanwarden.embedded import incident_report
from spanwarden.enforcers.roles import Role, add_token
from spanwarden.streaming.activity_feed import ActivityFeed
from spanwarden.streaming.activity_rollup import ActivityRollup
from spanwarden.streaming.local_stack import LocalBroker, WorkerProcess
from tests.console.conftest import sign_in
from tests.detectors.traffic import T0, error_storm, merged, normal, runaway
from tests.streaming.conftest import PARTITIONS
from tests.streaming.test_gateway_end_to_end import _export, running_gateway


def _figures(metrics: AgentMetrics) -> dict[str, dict[tuple[str, ...], float]]:
    return {name: {k: round(v, 6) for k, v in values.items()}
            for name, (_, _, values, _) in metrics.figures([], {}, {}).items() if isinstance(values, dict)}


def test_rollups_add_up_to_what_serve_counts_span_by_span(tmp_path: Path) -> None:
    writes = [make_record(agent_id="agent-a", span_id=f"w{i:015x}", trace_id="cd" * 16,
                          end_ns=int((T0 + 3600 + i) * 1e9), tool_name="sql_query", resource="db:pg:crm.tickets",
                          effect="destructive", effect_summary="DELETE FROM crm.tickets", rows=3)
              for i in range(8)]
    many = [make_record(agent_id="agent-a", span_id=f"m{i:015x}", end_ns=int((T0 + 2000 + i * 0.1) * 1e9),
                        tool_name=f"tool_{i}", model="gpt-4o", cost_usd=0.01) for i in range(10)]  # 10 in a bucket
    records = merged(normal(5, 1), error_storm(T0 + 1800, 60), writes, many, normal(6, 1, agent="agent-b"))
    per_span, rolled = AgentMetrics(max_agents=10), AgentMetrics(max_agents=10)
    per_span.records(records)
    rollup = ActivityRollup(max_groups=3, max_writes=5, max_lines=40)  # small bounds: what overflows adds up
    feed = ActivityFeed(tmp_path, rolled)
    lines: dict[str, list[dict[str, Any]]] = {}
    for chunk in (records[: len(records) // 2], records[len(records) // 2:]):  # two flushes
        rollup.add(chunk)
        for agent_id, message in rollup.drain():
            decoded = feed.decode(agent_id.encode(), orjson.dumps(message))
            assert decoded is not None
            feed.count(*decoded)
            lines.setdefault(agent_id, []).extend(decoded[2])
            assert len(decoded[2]) <= 40
    assert _figures(rolled) == _figures(per_span)
    mine = [r for r in records if r.agent_id == "agent-a"]
    spans = [entry(r) for r in mine]
    end = max(r.time_s for r in mine)
    dense = ActivityRollup()
    dense.add(error_storm(T0, 60))
    ((_, message),) = dense.drain()
    storm = message["lines"]  # 120 calls in a minute: one line per bucket and outcome
    assert sum(line["n"] for line in storm) == 120 and len(storm) <= 2 * 7
    by_line, by_span = history.window(lines["agent-a"], end), history.window(spans, end)
    assert (by_line.calls, round(by_line.usd, 6)) == (by_span.calls, round(by_span.usd, 6))
    assert by_line.errors == sum(r.is_error for r in mine)  # an error without a type counts too
    assert any(not line["tool"] and line["n"] > 1 for line in lines["agent-a"])  # a bucket's overflow line
    kept = [line for line in lines["agent-a"] if line.get("effect")]
    assert len(kept) == 5 and all(line["span"] and line["op"] == "DELETE FROM crm.tickets" for line in kept)


def _agent_metric(url: str, token: str, name: str, agent: str) -> float:
    text = requests.get(f"{url}/metrics/agents", headers={"Authorization": f"Bearer {token}"}, timeout=10).text
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == f"{name}_total" and s.labels.get("agent") == agent)


def _profile(url: str, token: str, agent: str) -> requests.Response:
    return requests.get(f"{url}/v1/profile/{agent}", headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _until(check: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (found := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.5)
    return found


@pytest.mark.slow
def test_profiles_metrics_console_and_incidents_on_kafka(broker: LocalBroker, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANWARDEN_TRUST_SPAN_TIME", "1")  # the traffic carries simulated times
    viewer = add_token(tmp_path / "gw" / "tokens.yaml", "kafka-viewer", Role.VIEWER)
    records: list[SpanRecord] = merged(normal(3, 2), runaway(T0 + 2 * 3600, 60))
    spend = sum(r.cost_usd for r in records)
    gateway = running_gateway(broker, tmp_path)
    url, _ = next(gateway)
    assert _profile(url, viewer, "agent-a").status_code == 404  # never heard of
    worker = WorkerProcess(broker.bootstrap, tmp_path / "worker.log", PARTITIONS).start()
    try:
        _export(url, "agent-a", records)
        # /metrics/agents: the agent's spend and calls, from the worker's rollups (exported costs, summed)
        _until(lambda: abs(_agent_metric(url, viewer, "spanwarden_agent_spend_usd", "agent-a") - spend) < 1e-6,
               60, "/metrics/agents never showed agent-a's whole spend")
        assert _agent_metric(url, viewer, "spanwarden_agent_calls", "agent-a") == len(records)
        assert _agent_metric(url, viewer, "spanwarden_agent_errors", "agent-a") == sum(r.is_error for r in records)
        _until(lambda: _agent_metric(url, viewer, "spanwarden_agent_findings", "agent-a") > 0, 30,
               "no finding counted for agent-a")

        runaway_calls = sum(r.model == "gpt-4o" for r in records)
        profile = _until(lambda: (p := _profile(url, viewer, "agent-a").json()).get("models", {}).get(
            "gpt-4o", {}).get("calls") == runaway_calls and p, 30, "the journal never had the runaway's calls")
        touched = {r.resource for r in records if r.resource}
        assert set(profile["resources"]) == touched and profile["team"] == "search"
        assert profile["models"]["gpt-4o-mini"]["calls"] == sum(r.model == "gpt-4o-mini" for r in records)
        assert profile["tools"]["sql_query"]["calls"] == sum(r.tool_name == "sql_query" for r in records)
        assert profile["spend_usd_last_hour"] > 40  # the runaway's hour ($45 a minute for a minute)

        worker.stop()  # the next worker answers from the agent's saved state
        worker = WorkerProcess(broker.bootstrap, tmp_path / "worker.log", PARTITIONS).start()
        again = _until(lambda: (r := _profile(url, viewer, "agent-a")).status_code == 200 and r, 60,
                       "no profile from the restarted worker")
        assert again.json()["resources"] == profile["resources"]

        session = sign_in(f"{url}/", viewer)
        fleet = session.get(f"{url}/", timeout=10).text
        row = re.search(r'data-agent="agent-a".*?</tr>', fleet, re.S)
        assert row is not None, fleet[-2000:]
        cells = re.findall(r"<td class=\"num\">\$([\d,]+\.\d+)</td>", row.group(0))
        shown = [float(v.replace(",", "")) for v in cells]
        hour = [r.cost_usd for r in records if r.time_s >= records[-1].time_s - 3600]
        assert shown and abs(shown[0] - sum(hour)) < 0.5, row.group(0)  # the last hour, from the journal
        assert 'class="spark"' in row.group(0)  # its sparkline, drawn from the journal

        next(gateway, None)  # a restarted gateway goes on from its saved offsets: nothing appended twice
        journal = tmp_path / "gw" / "activity" / file_name("agent-a")
        lines_before = journal.read_bytes().count(b"\n")
        gateway = running_gateway(broker, tmp_path)
        url, _ = next(gateway)
        later = normal(4, 0.2, start=T0 + 3 * 3600, agent="agent-b")
        _export(url, "agent-b", later)
        _until(lambda: _agent_metric(url, viewer, "spanwarden_agent_calls", "agent-b") == len(later), 60,
               "agent-b's calls never reached the restarted gateway")
        assert journal.read_bytes().count(b"\n") == lines_before
        assert _agent_metric(url, viewer, "spanwarden_agent_calls", "agent-a") == 0  # counters start again
        assert 'spanwarden_activity_rollups_total{outcome="applied"}' in requests.get(f"{url}/metrics",
                                                                                       timeout=10).text
    finally:
        worker.stop()
        next(gateway, None)
    report = incident_report.build(tmp_path / "gw", "agent-a")
    after = [r for r in records if r.time_s >= report["onset_s"]]
    # lines are 10-second rollups: the one straddling the onset counts before it
    assert sum(r.cost_usd for r in after) - 8 <= report["spend_usd"] <= sum(r.cost_usd for r in after) + 1e-6
    assert report["models"]["gpt-4o"]["calls"] > 200
