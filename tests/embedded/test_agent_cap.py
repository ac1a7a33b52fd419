"""New agent names are capped per sender and untrusted agents in all: past the cap their spans are not
taken in, known agents are never affected, the bucket refills with time, and the first refusal of each
sender is reported once; end to end, the service keeps to the cap and audits the refusal once."""

from __future__ import annotations

from pathlib import Path

import requests

from spanwarden.collector.otlp_encode import to_request
from spanwarden.collector.span_record import SpanRecord, make_record
from spanwarden.embedded.agent_cap import NewAgentCap
from spanwarden.embedded.service import EmbeddedService
from spanwarden.enforcers.audit_log import read_entries
from spanwarden.settings import Settings


def _spans(*agents: str) -> list[SpanRecord]:
    return [make_record(agent_id=a, span_id=f"{i:016x}", trace_id=f"{i:032x}", end_ns=int(1e18) + i)
            for i, a in enumerate(agents)]


def test_a_sender_brings_at_most_its_share_of_new_names_a_minute() -> None:
    cap, known = NewAgentCap(per_minute=3, max_untrusted=10), {"old"}
    kept, refusals = cap.admit("tok", _spans("old", "a", "b", "c", "d", "d", "e"), known.__contains__, 0.0)
    assert [r.agent_id for r in kept] == ["old", "a", "b", "c"]
    assert len(refusals) == 1 and refusals[0].agent == "d" and "3 new agent names a minute" in refusals[0].why
    assert cap.refused_records == 3 and cap.refused_agents == 2
    kept, refusals = cap.admit("tok", _spans("f"), known.__contains__, 10.0)
    assert kept == [] and refusals == []  # refused again, not reported again
    kept, _ = cap.admit("tok", _spans("f"), known.__contains__, 30.0)  # 20 s later: one name's worth back
    assert [r.agent_id for r in kept] == ["f"]
    kept, _ = cap.admit("other-token", _spans("g"), known.__contains__, 30.0)  # each sender its own bucket
    assert [r.agent_id for r in kept] == ["g"]


def test_untrusted_agents_are_capped_in_all() -> None:
    cap = NewAgentCap(per_minute=100, max_untrusted=2, untrusted_known=1)
    kept, refusals = cap.admit("anonymous", _spans("untrusted:x", "untrusted:y", "trusted"), lambda a: False, 0.0)
    assert [r.agent_id for r in kept] == ["untrusted:x", "trusted"]
    assert "untrusted agents" in refusals[0].why


def test_the_service_keeps_to_the_cap_and_audits_it_once(tmp_path: Path) -> None:
    service = EmbeddedService(Settings(port=0, state_dir=tmp_path, admin_token="t", audit_fsync="never",
                                       new_agents_per_minute=5))
    url = f"http://127.0.0.1:{service.start_in_thread()}"
    try:
        for batch in range(3):
            body = to_request(_spans(*(f"churn-{batch}-{i}" for i in range(4)))).SerializeToString()
            assert requests.post(f"{url}/v1/traces", data=body, timeout=10,
                                 headers={"Content-Type": "application/x-protobuf"}).status_code == 200
        assert service.call(lambda: len(service.pipeline.agents)) == 5
        metrics = requests.get(f"{url}/metrics", timeout=10).text
        assert "spanwarden_new_agents_refused_total 7.0" in metrics
    finally:
        service.stop()
    refused = [e for _, e in read_entries(tmp_path / "audit.jsonl")
               if not isinstance(e, Exception) and "refused" in e.reason and e.kind == "service"]
    assert len(refused) == 1 and "anonymous" in refused[0].reason
