"""The control channel holds a bounded number of long-polls: polls for names nobody publishes for leave
nothing behind once they end, and past the bound a poll is refused (429) instead of held."""

from __future__ import annotations

import asyncio

import pytest

from spanwarden.collector.control_channel import DecisionBoard, TooManyPolls
from spanwarden.enforcers.decision import Action, Decision


def test_polls_for_invented_names_leave_nothing_behind() -> None:
    async def main() -> DecisionBoard:
        board = DecisionBoard()
        await asyncio.gather(*(board.wait_newer(f"made-up-{i}", 0, 0.05) for i in range(500)))
        return board

    board = asyncio.run(main())
    assert board.held == 0 and not board._changed and not board._held  # noqa: SLF001


def test_past_the_bound_a_poll_is_refused_and_a_held_one_still_wakes() -> None:
    async def main() -> tuple[int, Decision]:
        board = DecisionBoard(max_held=3, max_held_per_agent=2)
        held = [asyncio.ensure_future(board.wait_newer(name, 0, 5)) for name in ("a", "a", "b")]
        await asyncio.sleep(0.01)
        with pytest.raises(TooManyPolls):
            await board.wait_newer("c", 0, 5)
        board.publish(Decision("a", Action.HALT, "test", "human:t", 1.0, version=1))
        woken = await asyncio.wait_for(held[0], 1)
        for task in held[1:]:
            task.cancel()
        await asyncio.gather(*held[1:], return_exceptions=True)
        return board.held, woken

    held, woken = asyncio.run(main())
    assert woken.action is Action.HALT and held == 0


def test_one_name_cannot_take_every_slot() -> None:
    async def main() -> None:
        board = DecisionBoard(max_held=100, max_held_per_agent=2)
        tasks = [asyncio.ensure_future(board.wait_newer("a", 0, 5)) for _ in range(2)]
        await asyncio.sleep(0.01)
        with pytest.raises(TooManyPolls):
            await board.wait_newer("a", 0, 5)
        assert await asyncio.wait_for(board.wait_newer("b", 0, 0.01), 1) is not None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert board.held == 0

    asyncio.run(main())
