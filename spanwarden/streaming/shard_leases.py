"""Spend leases on the worker that holds the agent: the embedded lease book (`enforcers/leases.py`), with
each agent's part of it saved in the agent's changelogged state, so a worker killed or rebalanced away
hands the live leases, the unreported spend and the learned call sizes to the next owner.

One reservation is granted once: the lease id is derived from the command id (itself derived from the
guard's reservation id when it gives one), and the answer to each of the agent's last commands is kept, so
a command applied again — a replay after a crash, or the guard asking again — gets the same lease back
rather than a second one. Pure: time and the hour's spend come in with the command."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from spanwarden.collector.span_record import SpanRecord
from spanwarden.enforcers.leases import LeaseBook, LeaseBookFull

ANSWERS_REMEMBERED = 32  # per agent: a retry comes within seconds, long before 32 more renewals


def lease_id_for(command_id: str) -> str:
    """The lease a command grants, the same each time it is applied (command ids are random, unguessable)."""
    return "lease-" + hashlib.sha256(f"spanwarden-lease/{command_id}".encode()).hexdigest()[:32]


class ShardLeases:
    def __init__(self, lease_s: float = 60.0, max_usd: float = 5.0, max_leases: int = 100_000) -> None:
        self.book = LeaseBook(lease_s, max_usd, max_leases)
        self.answers: dict[str, OrderedDict[str, dict[str, Any]]] = {}
        self.answered_again = 0  # commands answered from memory (replays and retries)

    def observe(self, records: Iterable[SpanRecord]) -> None:
        self.book.observe(records)

    def grant(self, agent_id: str, command: dict[str, Any], budget_usd: float | None,
              spent_usd: float) -> dict[str, Any]:
        """The answer to a lease command: the lease (with `ttl_s` and the agent's p99 call size) or, when the
        book is full, `{"refused": message, "retry_after_s": s}`."""
        command_id = str(command["id"])
        answers = self.answers.setdefault(agent_id, OrderedDict())
        known = answers.get(command_id)
        if known is not None:
            self.answered_again += 1
            return known
        self.book.new_id = lambda: lease_id_for(command_id)
        try:
            lease = self.book.grant(agent_id, float(command["now_s"]), budget_usd, spent_usd,
                                    str(command.get("returning", "")), float(command.get("unused_usd", 0.0)))
            p99 = self.book.sizes.p99(agent_id)
            answer: dict[str, Any] = {**lease.to_dict(), "ttl_s": self.book.lease_s,
                                      "p99_input_tokens": p99[0] if p99 else None,
                                      "p99_output_tokens": p99[1] if p99 else None}
        except LeaseBookFull as exc:
            answer = {"refused": f"no lease granted: {exc}", "retry_after_s": max(1, int(self.book.lease_s))}
        answers[command_id] = answer
        while len(answers) > ANSWERS_REMEMBERED:
            answers.popitem(last=False)
        return answer

    def agent_state(self, agent_id: str) -> dict[str, Any]:
        return {**self.book.agent_state(agent_id), "answers": list(self.answers.get(agent_id, {}).items())}

    def load_agent(self, agent_id: str, state: dict[str, Any]) -> None:
        self.book.load_agent(agent_id, state)
        self.answers[agent_id] = OrderedDict((str(k), dict(v)) for k, v in state.get("answers", []))

    def forget_agent(self, agent_id: str) -> None:
        self.book.forget_agent(agent_id)
        self.answers.pop(agent_id, None)
