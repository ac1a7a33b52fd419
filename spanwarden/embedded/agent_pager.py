"""An LRU of agents in memory, backed by `state.db`: past `capacity` agents with detectors in memory, the
least recently seen (by their last span's time) are written to disk and their detectors dropped, down to
nine tenths of the capacity; the pipeline pages an agent back in, exactly as it was, when its next span
comes (or an access answer, a profile read). Identities and ladders stay in memory (small, and what status
and the board need), so a paged-out agent's decision holds; new names are bounded by the new-agent cap."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from spanwarden.embedded.state_store import CHUNK_AGENTS, StateStore
from spanwarden.pipeline_snapshot import agent_part

if TYPE_CHECKING:
    from spanwarden.pipeline import Pipeline


class AgentPager:
    def __init__(self, store: StateStore, pipeline: Pipeline, capacity: int) -> None:
        self.store = store
        self.pipeline = pipeline
        self.capacity = capacity
        self.paged_out_total = 0
        pipeline.pager = self.read

    def read(self, agent_id: str) -> dict[str, Any] | None:
        part = self.store.agent(agent_id)
        return None if part is None else part.get("detectors")

    def _victims(self) -> list[str]:
        banks = self.pipeline.detectors
        over = len(banks) - self.capacity * 9 // 10
        if len(banks) <= self.capacity or over <= 0:
            return []
        pending = self.pipeline.arrivals.pending  # records still to judge: kept in memory
        idle = sorted((bank.cost.last_time or float("-inf"), agent_id) for agent_id, bank in banks.items()
                      if agent_id not in pending)
        return [agent_id for _, agent_id in idle[:over]]

    def _rows(self, chunk: list[str]) -> dict[str, bytes | None]:
        self.pipeline.dirty.difference_update(chunk)  # written now; changed again from here on: dirty again
        return {a: orjson.dumps(part) for a in chunk if (part := agent_part(self.pipeline, a)) is not None}

    def _drop(self, chunk: list[str]) -> None:
        for agent_id in chunk:
            if agent_id not in self.pipeline.dirty:  # changed while being written: stays in memory
                self.pipeline.page_out(agent_id)
                self.paged_out_total += 1

    async def evict(self) -> None:
        """On the loop, a chunk at a time, each chunk written on a thread before it leaves memory."""
        victims = self._victims()
        for start in range(0, len(victims), CHUNK_AGENTS):
            chunk = victims[start:start + CHUNK_AGENTS]
            try:
                await self.store.write_off_loop(self._rows(chunk))
            except BaseException:
                self.pipeline.dirty.update(chunk)  # not written: the next snapshot writes them
                raise
            self._drop(chunk)

    def evict_now(self) -> None:
        victims = self._victims()
        try:
            self.store.write(self._rows(victims))
        except BaseException:
            self.pipeline.dirty.update(victims)
            raise
        self._drop(victims)
