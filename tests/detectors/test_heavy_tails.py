"""Real traffic is heavy-tailed and its errors come in retries: a log-normal token count is not a price jump
and legitimate retries are not a burst, while a switch to a model ~100x the price, an unbounded retry loop and
new tables met by a settled profile still are."""

from __future__ import annotations

import random

from spanwarden.collector.pricing import PriceTable
from spanwarden.collector.span_record import make_record
from spanwarden.detectors.cost_velocity import CostVelocity
from spanwarden.detectors.data_access import DataAccess
from spanwarden.detectors.error_burst import ErrorBurst
from spanwarden.detectors.finding import Severity
from spanwarden.detectors.window_totals import WindowTotals, WindowTotalsConfig

from .traffic import T0

PRICES = PriceTable.load()


def llm_calls(start: float, count: int, model: str, seed: int, every_s: float = 60.0, sigma: float = 1.0,
              median_tokens: int = 2000):
    """LLM calls with log-normal token counts (sigma 1: the 99.9th percentile is ~20x the median)."""
    rng, out = random.Random(seed), []
    for i in range(count):
        tokens_in = max(1, int(median_tokens * rng.lognormvariate(0, sigma)))
        tokens_out = max(1, int(tokens_in * rng.uniform(0.05, 0.5)))
        cost, _ = PRICES.cost(model, tokens_in, tokens_out, 0)
        end_ns = int((start + i * every_s) * 1e9)
        out.append(make_record(agent_id="a", span_id=f"{seed:04x}{i:012x}", end_ns=end_ns, model=model,
                               input_tokens=tokens_in, output_tokens=tokens_out, cost_usd=cost))
    return out


def findings(detector, records):
    return [f for r in records if (f := detector.observe(r)) is not None]


def test_heavy_tailed_tokens_are_not_a_price_jump_but_a_model_100x_the_price_is_caught_on_its_second_call():
    detector = CostVelocity("a")
    normal = llm_calls(T0, 5000, "gpt-4o-mini", seed=1)
    assert not [f for f in findings(detector, normal) if f.kind == "price_jump"]
    switched = llm_calls(T0 + 5000 * 60, 3, "claude-opus-4-1", seed=2, sigma=0.0, median_tokens=10_000)
    first, second, _ = (detector.observe(r) for r in switched)
    assert first is not None and first.kind == "price_jump"
    assert second is not None and second.kind == "price_jump" and second.severity is Severity.CRITICAL
    assert "claude-opus-4-1" in second.reason


def test_a_price_jump_on_pennies_only_warns():
    detector = CostVelocity("a")
    findings(detector, llm_calls(T0, 200, "mistral-small", seed=3, sigma=0.3))
    tiny = llm_calls(T0 + 200 * 60, 3, "gpt-4o", seed=4, sigma=0.0)
    tiny = [r._replace(input_tokens=100, output_tokens=10, cost_usd=PRICES.cost("gpt-4o", 100, 10, 0)[0])
            for r in tiny]
    jumps = [f for f in findings(detector, tiny) if f.kind == "price_jump"]
    assert jumps and all(f.severity is Severity.WARNING for f in jumps)


def test_a_window_is_not_judged_on_a_handful_of_its_own():
    config = WindowTotalsConfig(windows_s=(600,), min_history=144, min_events=1, floor_total=0.01)
    totals = WindowTotals(config)
    for i in range(6 * 600):  # an hour of a steady cent a second ...
        totals.add(T0 + i, 0.01)
    totals.add(T0 + 6 * 600 + 1, 50.0)  # ... then a spike: seven windows learned are not a baseline
    assert totals.worst() is None
    for i in range(6 * 600, 200 * 600):
        totals.add(T0 + i, 0.01)
    totals.add(T0 + 200 * 600 + 1, 5000.0)  # (the first spike was learned: unjudged windows are)
    assert totals.worst() is not None


def calls(start: float, count: int, error_at, seed: int, every_s: float = 20.0, args: bool = True):
    rng, out = random.Random(seed), []
    for i in range(count):
        key = "same" if error_at(i) == "loop" else str(rng.randrange(10**6))
        end_ns = int((start + i * every_s) * 1e9)
        out.append(make_record(agent_id="a", span_id=f"{seed:04x}{i:012x}", end_ns=end_ns, tool_name="http_get",
                               is_error=bool(error_at(i)), error_type="TimeoutError",
                               fingerprint=f"tool:http_get:{key}" if args else ""))
    return out


def retried(records, every: int, retries: int, seed: int):
    """Every `every`-th call fails and is retried `retries` times with backoff (1, 2, 4 s), all failing."""
    out = []
    for i, r in enumerate(records):
        out.append(r)
        if i % every == every - 1:
            out[-1] = r._replace(is_error=True)
            for k in range(retries):
                out.append(r._replace(span_id=f"{r.span_id[:-2]}r{k}", is_error=True,
                                      end_ns=r.end_ns + int((2 ** (k + 1) - 1) * 1e9)))
    return out


def test_legitimate_retries_of_a_failing_call_are_one_failure_but_endless_retries_are_a_storm():
    detector = ErrorBurst("a")
    normal = calls(T0, 3000, lambda i: False, seed=5)
    # one call in 25 fails and is retried three times, all failing: four errors in a row, a 14% error rate
    assert not findings(detector, retried(normal, 25, 3, seed=5))
    storm = calls(T0 + 3000 * 20, 120, lambda i: "loop", seed=6, every_s=1.0)
    found = findings(detector, storm)
    assert found and found[0].time_s - storm[0].time_s < 30


def test_new_tables_while_the_profile_still_fills_are_not_a_warning_but_later_they_are():
    detector = DataAccess("a")
    rng = random.Random(7)
    tables = [f"db:pg:kb.t{k}" for k in range(150)]
    t, early = T0, []
    for i in range(200):  # a wide schema met a little at a time: most tables are new for a while
        t += 15
        early.append(make_record(agent_id="a", span_id=f"{i:016x}", end_ns=int(t * 1e9), tool_name="sql_query",
                                 resource=rng.choice(tables)))
    assert not [f for f in findings(detector, early) if f.severity >= Severity.WARNING]
    for i in range(4000):
        t += 15
        detector.observe(make_record(agent_id="a", span_id=f"b{i:015x}", end_ns=int(t * 1e9),
                                     tool_name="sql_query", resource=rng.choice(tables)))
    new = [make_record(agent_id="a", span_id=f"c{i:015x}", end_ns=int((t + 30 * (i + 1)) * 1e9),
                       tool_name="sql_query", resource=f"db:pg:hr.new{i}") for i in range(4)]
    assert any(f.kind == "novel_resources" for f in findings(detector, new))
