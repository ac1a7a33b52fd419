"""The decisions topic into the control channel's board: newest version wins, commands get their answer."""

from __future__ import annotations

import asyncio

import orjson

from spanwarden.collector.control_channel import DecisionBoard
from spanwarden.enforcers.decision import Action, Decision
from spanwarden.streaming.decisions_feed import DecisionsFeed


def _message(decision: Decision, scoped: tuple[Decision, ...] = (), command_id: str | None = None) -> bytes:
    return orjson.dumps({"decision": decision.to_dict(), "current": decision.to_dict() if not decision.scope
                         else Decision("a", Action.ALLOW, "", "", 0, 0).to_dict(),
                         "scoped": [d.to_dict() for d in scoped], "command_id": command_id})


def test_newest_version_wins_and_replays_change_nothing() -> None:
    board = DecisionBoard()
    feed = DecisionsFeed(board)
    halt = Decision("a", Action.HALT, "runaway", "policy:cost-runaway", 10.0, 3)
    warn = Decision("a", Action.WARN, "spike", "policy:cost-spike", 5.0, 2)
    feed.apply(_message(halt))
    feed.apply(_message(warn))  # an older message read late
    assert board.get("a").action is Action.HALT
    scoped = Decision("a", Action.HALT, "no deletes", "human:omar", 11.0, 4, scope="tool:delete_*")
    feed.apply(_message(scoped, (scoped,)))
    assert board.view("a")["scoped"][0]["scope"] == "tool:delete_*"
    feed.apply(b"not json")
    assert feed.malformed == 1 and feed.applied == 3


def test_a_command_waiter_gets_the_decision_its_command_made() -> None:
    async def scenario() -> Decision:
        feed = DecisionsFeed(DecisionBoard())
        waiting = feed.expect("c1")
        feed.apply(_message(Decision("a", Action.HALT, "x", "human:omar", 1.0, 1), command_id="c0"))
        assert not waiting.done()
        feed.apply(_message(Decision("a", Action.HALT, "y", "human:omar", 2.0, 2), command_id="c1"))
        return await asyncio.wait_for(waiting, 1)

    assert asyncio.run(scenario()).reason == "y"
