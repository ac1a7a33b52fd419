"""The service's answer to a guard asking before a first call to a model (`Pipeline.model_request`): priced
against the agent's own calls, held as an access request for the model when it is at least 10x dearer, and
answered by a human once; the models an agent calls and the ones it was let use survive a restart."""

from __future__ import annotations

from spanwarden.audit_sink import MemoryAuditSink
from spanwarden.collector.pricing import PriceTable
from spanwarden.collector.span_record import make_record
from spanwarden.enforcers.decision import Action
from spanwarden.enforcers.policy import Policy
from spanwarden.model_gate import cheapest_rate
from spanwarden.pipeline import Pipeline

PRICES = PriceTable.load()
T0 = 1_800_000_000.0
DEAR = "claude-opus-4-1"


def calls(agent: str, model: str, n: int, start: float, environment: str = "prod") -> list:
    out = []
    for i in range(n):
        cost = PRICES.cost(model, 1200, 300, 0)[0]
        out.append(make_record(agent_id=agent, environment=environment, model=model, operation="chat",
                               input_tokens=1200, output_tokens=300, cost_usd=cost, span_id=f"{model[:4]}{i:012x}",
                               trace_id=f"{agent[:8]}{i:024x}", end_ns=int((start + 20 * i) * 1e9)))
    return out


def warmed(environment: str = "prod", policy: Policy | None = None) -> tuple[Pipeline, list]:
    found: list = []
    pipeline = Pipeline(policy or Policy.load(), MemoryAuditSink(), on_finding=found.append, prices=PRICES)
    pipeline.process(calls("a", "gpt-4o-mini", 80, T0, environment))
    return pipeline, found


def test_a_first_call_to_a_model_100x_the_agents_price_is_an_access_request_for_the_model():
    pipeline, found = warmed()
    now = T0 + 2000
    request = pipeline.model_request("a", DEAR, now)
    assert request is not None and request.resource == f"model:{DEAR}" and request.status == "pending"
    [finding] = [f for f in found if f.kind == "new_model_price"]
    assert finding.detector == "cost_velocity" and finding.subject == f"model:{DEAR}"
    [held] = pipeline.scoped("a")
    assert held.scope == f"model:{DEAR}" and held.action is Action.REQUIRE_APPROVAL
    assert held.covers("", DEAR) and not held.covers("", "gpt-4o-mini")
    assert pipeline.model_request("a", DEAR, now + 1) == request  # asked again: the same request, no new finding
    assert len([f for f in found if f.kind == "new_model_price"]) == 1


def test_what_is_not_asked_about():
    pipeline, _ = warmed()
    assert pipeline.model_request("a", "gpt-4o-mini", T0 + 2000) is None  # its own model
    assert pipeline.model_request("a", "gpt-4.1-mini", T0 + 2000) is None  # 2.7x: the detector judges it
    assert pipeline.model_request("a", "a-model-nobody-prices", T0 + 2000) is None
    assert pipeline.model_request("nobody", DEAR, T0 + 2000) is None  # unknown agent: nothing learned
    young = Pipeline(Policy.load(), MemoryAuditSink(), prices=PRICES)
    young.process(calls("a", "gpt-4o-mini", 10, T0))
    assert young.model_request("a", DEAR, T0 + 300) is None  # still learning its price
    dev, _ = warmed("dev")
    assert dev.model_request("a", DEAR, T0 + 2000) is None  # access requests are not held in dev
    off = Policy.load().model_copy(update={"access_requests": Policy.load().access_requests.model_copy(
        update={"models": False})})
    assert warmed(policy=off)[0].model_request("a", DEAR, T0 + 2000) is None
    assert pipeline.scoped("a") == []


def test_denied_the_model_stays_refused_approved_its_calls_are_its_normal_price():
    pipeline, found = warmed()
    now = T0 + 2000
    request = pipeline.model_request("a", DEAR, now)
    assert request is not None
    denied = pipeline.answer_access(request.id, False, "carol", "nobody deployed that", now + 60)
    assert denied.action is Action.HALT and denied.scope == f"model:{DEAR}"
    again = pipeline.model_request("a", DEAR, now + 120)
    assert again is not None and again.status == "denied"
    assert len([f for f in found if f.kind == "new_model_price"]) == 1

    pipeline, found = warmed()
    request = pipeline.model_request("a", DEAR, now)
    assert request is not None
    lifted = pipeline.answer_access(request.id, True, "carol", "the upgrade", now + 60)
    assert lifted.action is Action.ALLOW and pipeline.scoped("a") == []
    decisions = pipeline.process(calls("a", DEAR, 20, now + 120))
    assert [f for f in found if f.kind == "price_jump"] == [] and decisions == []
    assert pipeline.model_request("a", DEAR, now + 1000) is None


def test_what_was_learned_of_models_survives_a_restart():
    pipeline, _ = warmed()
    request = pipeline.model_request("a", DEAR, T0 + 2000)
    assert request is not None
    pipeline.answer_access(request.id, True, "carol", "for an hour", T0 + 2060, for_s=3600)
    restored = Pipeline(Policy.load(), MemoryAuditSink(), prices=PRICES)
    restored.load_state(pipeline.to_state())
    price = restored.detectors["a"].cost.price
    assert price.models == {"gpt-4o-mini": 80} and price.accepted == {DEAR: T0 + 2060 + 3600}


def test_the_cheapest_rate_is_a_lower_bound_whatever_the_mix():
    rate = cheapest_rate(PRICES, DEAR)
    assert rate is not None
    for inp, out in ((1000, 0), (0, 1000), (4000, 1000), (100, 10_000)):
        paid = PRICES.cost(DEAR, inp, out, 0)[0] / (inp + 4 * out)
        assert paid >= rate * (1 - 1e-9)
    assert cheapest_rate(PRICES, "a-model-nobody-prices") is None
