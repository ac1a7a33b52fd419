"""A human's answers to access requests outlive the service's state: after a crash (answers newer than the
snapshot) and after an unreadable state.db is set aside (the learned baselines start again), an approval in
force is not asked for again and a denial still holds — both recovered from the audit log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

from spanwarden.collector.pricing import PriceTable
from spanwarden.collector.span_record import make_record
from spanwarden.embedded.service import EmbeddedService
from spanwarden.settings import Settings

ADMIN = {"Authorization": "Bearer t"}
PRICES = PriceTable.load()
DEAR, OTHER = "claude-opus-4-1", "o1"


def serve(state: Path) -> tuple[EmbeddedService, str]:
    service = EmbeddedService(Settings(port=0, state_dir=state, admin_token="t", audit_fsync="never",
                                       max_lateness_s=0))
    return service, f"http://127.0.0.1:{service.start_in_thread()}"


def warm(service: EmbeddedService, agent: str, n: int = 80, start: float = 1_800_000_000.0) -> None:
    """`n` priced calls of a cheap model, straight into the pipeline (on the loop's thread, as ingest does)."""
    cost = PRICES.cost("gpt-4o-mini", 1200, 300, 0)[0]
    records = [make_record(agent_id=agent, environment="prod", model="gpt-4o-mini", operation="chat",
                           input_tokens=1200, output_tokens=300, cost_usd=cost, span_id=f"{i:016x}",
                           trace_id=f"{i:032x}", end_ns=int((start + 20 * i) * 1e9)) for i in range(n)]
    service.call(lambda: service.pipeline.process(records))


def ask_model(url: str, agent: str, model: str) -> dict[str, Any]:
    answer = requests.post(f"{url}/v1/approvals", timeout=5, json={"agent": agent, "tool": "", "model": model})
    answer.raise_for_status()
    return dict(answer.json())


def answer(url: str, request_id: str, approve: bool) -> None:
    body = {"approve": approve, "reason": "checked", **({"for_s": 3600} if approve else {})}
    requests.post(f"{url}/v1/access-requests/{request_id}/answer", json=body, headers=ADMIN,
                  timeout=5).raise_for_status()


def test_answers_survive_a_crash_and_a_lost_state_db(tmp_path):
    service, url = serve(tmp_path)
    try:
        for agent in ("upgrader", "switcher"):
            warm(service, agent)
        let, refused = ask_model(url, "upgrader", DEAR), ask_model(url, "switcher", DEAR)
        assert let["required"] and refused["required"]
        answer(url, let["id"], True)
        answer(url, refused["id"], False)
    finally:
        service.stop()
    (tmp_path / "state.db").write_bytes(b"not a database at all" * 100)  # lost: the snapshot is unreadable

    service, url = serve(tmp_path)
    try:
        assert list(tmp_path.glob("state.db.corrupt-*")), "the unreadable state.db is set aside"
        for agent in ("upgrader", "switcher"):
            warm(service, agent, start=1_800_010_000.0)  # learning its prices again, from nothing
        assert ask_model(url, "upgrader", DEAR) == {"required": False}  # approved for an hour: not asked again
        still = ask_model(url, "switcher", DEAR)
        assert still["required"] and still["status"] == "denied" and still["id"] == refused["id"]
        assert service.call(lambda: [d.scope for d in service.pipeline.scoped("switcher")]) == [f"model:{DEAR}"]
        other = ask_model(url, "upgrader", OTHER)  # another dear model is still asked about
        assert other["required"] and other["status"] == "pending"
    finally:
        service.stop()
