"""Loops are loops: only identical calls repeat; a tool without recorded arguments called often is volume,
judged against the agent's own rate and tolerant of a x3 autoscale; a post to a never-seen host right after a
sensitive read is the shape of exfiltration."""

from __future__ import annotations

import random

from spanwarden.collector.span_record import make_record
from spanwarden.detectors.call_volume import CallVolume
from spanwarden.detectors.data_access import DataAccess
from spanwarden.detectors.finding import Severity
from spanwarden.detectors.runaway_loop import RunawayLoop

from .traffic import T0


def run(detector, records):
    return [f for r in records if (f := detector.observe(r)) is not None]


def tool_calls(start: float, hours: float, per_min, tool: str, args=None, seed: int = 0):
    """Poisson calls of one tool; `per_min(t)` the rate; `args(rng)` the recorded arguments (None: none)."""
    rng, out, t = random.Random(seed), [], start
    while t < start + hours * 3600:
        t += rng.expovariate(per_min(t) / 60)
        fingerprint = f"tool:{tool}:{args(rng)}" if args else f"tool:{tool}"
        out.append(make_record(agent_id="a", span_id=f"{len(out):016x}", end_ns=int(t * 1e9), tool_name=tool,
                               fingerprint=fingerprint))
    return out


def test_a_busy_tool_without_arguments_is_never_a_loop():
    """169 calls of sql_query in two minutes by a one-tool agent is work, not a loop."""
    records = tool_calls(T0, 3, lambda t: 85.0, "sql_query")
    assert run(RunawayLoop("a"), records) == []


def test_the_same_arguments_twenty_times_in_two_minutes_is_caught_even_for_a_busy_tool_user():
    detector = RunawayLoop("a")
    busy = tool_calls(T0, 3, lambda t: 60.0, "search_code", args=lambda rng: rng.randrange(10**6))
    assert run(detector, busy) == []
    start = T0 + 3 * 3600
    loop = [make_record(agent_id="a", span_id=f"l{i:015x}", end_ns=int((start + 6 * i) * 1e9),
                        tool_name="search_code", fingerprint="tool:search_code:stuck") for i in range(25)]
    more = tool_calls(start, 0.05, lambda t: 60.0, "search_code", args=lambda rng: rng.randrange(10**6), seed=3)
    found = run(detector, sorted(loop + more, key=lambda r: r.end_ns))
    assert found and found[0].kind == "repeated_call" and found[0].subject == "tool:search_code:stuck"
    assert found[0].time_s - start <= 120


def test_call_volume_tolerates_a_x3_autoscale_and_flags_a_flood():
    def autoscaled(t: float) -> float:  # 2 calls/min, ramping to 6 over 30 min on day two, for 6 hours
        ramp = min(max((t - (T0 + 30 * 3600)) / 1800, 0.0), 1.0)
        return 2.0 * (1 + 2 * ramp) if t < T0 + 36 * 3600 else 2.0

    detector = CallVolume("a")
    normal = tool_calls(T0, 40, autoscaled, "sql_query")
    assert [f for f in run(detector, normal) if f.severity >= Severity.WARNING] == []
    start = normal[-1].time_s + 60
    flood = [make_record(agent_id="a", span_id=f"v{i:015x}", end_ns=int((start + 0.5 * i) * 1e9),
                         tool_name="sql_query", fingerprint="tool:sql_query") for i in range(240)]
    found = run(detector, flood)
    assert found and found[0].kind == "call_volume" and found[0].subject == "sql_query"
    assert "called sql_query" in found[0].reason


def test_a_post_to_a_never_seen_host_after_a_sensitive_read_is_critical():
    detector = DataAccess("a")
    pii = "db:pg:crm.customers_pii"
    detector.allow(pii, T0)  # a reviewed profile includes it
    reads = [make_record(agent_id="a", span_id=f"{i:016x}", end_ns=int((T0 + 30 * i) * 1e9), tool_name="sql_query",
                         resource=pii if i % 10 == 0 else "db:pg:crm.tickets") for i in range(200)]
    assert [f for f in run(detector, reads) if f.severity >= Severity.WARNING] == []
    post = make_record(agent_id="a", span_id="p" * 16, end_ns=int((T0 + 30 * 200) * 1e9), tool_name="http_post",
                       resource="http:drop.example.net")
    finding = detector.observe(post)
    assert finding is not None and finding.kind == "exfil_after_sensitive"
    assert finding.severity is Severity.CRITICAL and "after reading a sensitive resource" in finding.reason
