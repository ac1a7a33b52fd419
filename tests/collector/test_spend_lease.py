"""Reserve before the call, settle after: 50 concurrent calls under a lease overspend the hourly budget by at
most one call's estimate, with the real service granting leases over HTTP."""

from __future__ import annotations

import threading

import pytest
import yaml
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from spanwarden import AgentHalted
from spanwarden.collector.decision_watcher import DecisionWatcher
from spanwarden.collector.guard import Guard, GuardSpanProcessor
from spanwarden.collector.spend_lease import SpendLease
from spanwarden.embedded.service import EmbeddedService
from spanwarden.enforcers.leases import LeaseBook
from spanwarden.enforcers.policy import Policy
from spanwarden.settings import Settings

CALL = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "gen_ai.request.max_tokens": 10_000}


@pytest.fixture
def service(tmp_path):
    shipped = Policy.load().model_dump(mode="json")
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump({**shipped, "budgets": {**shipped["budgets"], "agent_usd_per_hour": 1.0}}))
    svc = EmbeddedService(Settings(port=0, state_dir=tmp_path, audit_fsync="never", policy_file=policy))
    url = f"http://127.0.0.1:{svc.start_in_thread()}"
    yield url
    svc.stop()


def test_fifty_concurrent_calls_overspend_by_at_most_one_estimate(service):
    watcher = DecisionWatcher(service, "spender", wait_s=5)
    watcher.failing_since = None
    lease = SpendLease(service, "spender")
    provider = TracerProvider(resource=Resource.create({"service.name": "spender"}))
    provider.add_span_processor(GuardSpanProcessor(Guard("spender", watcher), lease))
    tracer = provider.get_tracer("t")
    estimate = lease.estimate(CALL)  # 1,000 prompt + 10,000 max tokens of gpt-4o: about $0.10
    spent, refused, lock = [], [], threading.Lock()

    def call():
        try:
            with tracer.start_as_current_span("chat gpt-4o", attributes=CALL) as span:
                span.set_attribute("gen_ai.usage.input_tokens", 1_000)  # it used all it could
                span.set_attribute("gen_ai.usage.output_tokens", 10_000)
            with lock:
                spent.append(estimate)
        except AgentHalted:
            with lock:
                refused.append(1)

    threads = [threading.Thread(target=call) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    provider.shutdown()
    assert len(spent) + len(refused) == 50 and refused  # the budget ran out before the fiftieth call
    assert sum(spent) <= 1.0 + estimate
    assert sum(spent) >= 1.0 - 2 * estimate  # and the budget was used, not refused from the start


def test_lease_book_holds_used_spend_until_expiry_and_never_grants_past_the_budget():
    book = LeaseBook(lease_s=60, max_usd=5.0)
    first = book.grant("a", 0.0, budget_usd=3.0, spent_usd=1.0)
    assert first.usd == 2.0
    assert book.grant("a", 1.0, 3.0, 1.0).usd == 0.0  # the first lease holds the rest
    second = book.grant("a", 2.0, 3.0, 1.0, returning=first.id, unused_usd=1.5)
    assert second.usd == 1.5  # only the unused part came back; the used 0.5 stays held until expiry
    assert book.grant("b", 2.0, None, 0.0).usd == 5.0  # no budget: the lease size is the only bound
    assert book.held("a", 61.0) == pytest.approx(1.5)  # the first lease's used part has expired
