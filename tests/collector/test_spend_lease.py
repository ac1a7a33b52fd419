"""Reserve before the call, settle after: concurrent calls under a lease overspend the hourly budget by at
most one call's actual cost, with the real service granting leases over HTTP; the lease book carries debts,
counts spend once, hands out ids nobody can guess and refuses new leases when full."""

from __future__ import annotations

import threading

import pytest
import requests
import yaml
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from spanwarden import AgentHalted
from spanwarden.collector.decision_watcher import DecisionWatcher
from spanwarden.collector.guard import Guard, GuardSpanProcessor
from spanwarden.collector.spend_lease import SpendLease
from spanwarden.embedded.service import EmbeddedService
from spanwarden.enforcers.leases import LeaseBook, LeaseBookFull
from spanwarden.enforcers.policy import Policy
from spanwarden.settings import Settings

CALL = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "gen_ai.request.max_tokens": 10_000}


def budget_policy(tmp_path, usd_per_hour):
    shipped = Policy.load().model_dump(mode="json")
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump({**shipped, "budgets": {**shipped["budgets"],
                                                              "agent_usd_per_hour": usd_per_hour}}))
    return policy


@pytest.fixture
def service(tmp_path):
    svc = EmbeddedService(Settings(port=0, state_dir=tmp_path, audit_fsync="never",
                                   policy_file=budget_policy(tmp_path, 1.0)))
    url = f"http://127.0.0.1:{svc.start_in_thread()}"
    yield url
    svc.stop()


def heard_watcher(url, agent):
    watcher = DecisionWatcher(url, agent, wait_s=5)
    watcher.failing_since, watcher.ever_connected = None, True
    return watcher


def test_fifty_concurrent_calls_overspend_by_at_most_one_call(service):
    lease = SpendLease(service, "spender")
    provider = TracerProvider(resource=Resource.create({"service.name": "spender"}))
    provider.add_span_processor(GuardSpanProcessor(Guard("spender", heard_watcher(service, "spender")), lease))
    tracer = provider.get_tracer("t")
    cost = lease.prices.cost("gpt-4o", 1_000, 10_000, 0)[0]  # what each call really costs: about $0.10
    spent, refused, lock = [], [], threading.Lock()

    def call():
        try:
            with tracer.start_as_current_span("chat gpt-4o", attributes=CALL) as span:
                span.set_attribute("gen_ai.usage.input_tokens", 1_000)  # it used all it could
                span.set_attribute("gen_ai.usage.output_tokens", 10_000)
            with lock:
                spent.append(cost)
        except AgentHalted:
            with lock:
                refused.append(1)

    threads = [threading.Thread(target=call) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    provider.shutdown()
    assert len(spent) + len(refused) == 50 and refused  # the budget ran out before the fiftieth call
    assert sum(spent) <= 1.0 + cost
    assert len(spent) >= int(1.0 / cost)  # every call the budget could afford went out


def test_a_debt_is_carried_into_the_next_grant_not_forgiven():
    book = LeaseBook(lease_s=60, max_usd=5.0)
    first = book.grant("a", 0.0, budget_usd=3.0, spent_usd=1.0)
    assert first.usd == 2.0
    assert book.grant("a", 1.0, 3.0, 1.0).usd == 0.0  # the first lease holds the rest
    # Calls under it cost $3 where $2 was granted: the balance comes back as a debt of $1.
    assert book.grant("a", 2.0, 3.0, 1.0, returning=first.id, unused_usd=-1.0).usd == 0.0
    assert book.held("a", 2.0) == pytest.approx(3.0)
    assert book.grant("a", 3.0, 3.0, spent_usd=4.0).usd == 0.0  # its spans counted: the hour's spend shows it
    assert book.held("a", 3.0) == pytest.approx(0.0)  # counted once, not also held
    assert book.grant("a", 3601.0, 3.0, spent_usd=0.0).usd == 3.0  # a new hour


def test_spend_is_counted_once_when_its_spans_arrive():
    book = LeaseBook(lease_s=60, max_usd=10.0)
    first = book.grant("a", 0.0, budget_usd=10.0, spent_usd=0.0)
    second = book.grant("a", 1.0, 10.0, 0.0, returning=first.id, unused_usd=6.0)  # $4 spent, not reported
    assert second.usd == 6.0
    third = book.grant("a", 2.0, 10.0, 4.0, returning=second.id, unused_usd=6.0)  # the $4 counted; no more
    assert third.usd == 6.0  # 10 - 4 reported; the $4 is not also held as the first lease's use
    assert book.grant("b", 2.0, None, 0.0).usd == 10.0  # no budget: the lease size is the only bound
    assert book.held("a", 2.0 + 61) == 0.0  # live leases lapse
    fourth = book.grant("a", 70.0, 10.0, 4.0)
    book.grant("a", 71.0, 10.0, 4.0, returning=fourth.id, unused_usd=0.0)  # $6 declared, its spans never come
    assert book.held("a", 71.0) == pytest.approx(6.0)
    assert book.grant("a", 71.0 + book.hold_s, 10.0, 4.0).usd == 6.0  # past hold_s it is no longer held


def test_lease_ids_are_secret_and_bound_to_their_agent():
    book = LeaseBook(max_usd=5.0)
    mine, other = book.grant("victim", 0.0, 10.0, 0.0), book.grant("victim", 0.0, 10.0, 0.0)
    assert mine.id != other.id and len(mine.id) > 24 and not mine.id.removeprefix("lease-").isdigit()
    book.grant("attacker", 1.0, 10.0, 0.0, returning=mine.id, unused_usd=5.0)  # not its lease: ignored
    assert mine.id in book.outstanding and book.held("victim", 1.0) == pytest.approx(10.0)


def test_a_full_lease_book_refuses_new_leases_and_keeps_live_ones():
    book = LeaseBook(max_leases=2)
    live = [book.grant("a", 0.0, None, 0.0), book.grant("b", 0.0, None, 0.0)]
    with pytest.raises(LeaseBookFull, match="2 live leases"):
        book.grant("c", 1.0, None, 0.0)
    assert set(book.outstanding) == {lease.id for lease in live} and book.refused_full == 1
    assert book.grant("c", 61.0, None, 0.0).usd == 5.0  # once leases lapse there is room again


def test_a_full_lease_book_answers_429(tmp_path):
    svc = EmbeddedService(Settings(port=0, state_dir=tmp_path, audit_fsync="never"))
    svc.leases.max_leases = 1
    url = f"http://127.0.0.1:{svc.start_in_thread()}"
    try:
        assert requests.post(f"{url}/v1/leases", json={"agent": "a"}, timeout=5).status_code == 200
        full = requests.post(f"{url}/v1/leases", json={"agent": "b"}, timeout=5)
        assert full.status_code == 429 and "live leases" in full.json()["message"]
        with pytest.raises(AgentHalted, match="429"):
            SpendLease(url, "c").reserve(SpendLease(url, "c").call(CALL))
    finally:
        svc.stop()
