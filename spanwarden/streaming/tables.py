"""The per-agent state table: baselines, ladder and input positions of each agent, with a changelog so a
restarted or rebalanced worker resumes where the previous owner stopped."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any, Protocol

from spanwarden.streaming.topics import AGENT_STATE_TABLE, TEAM_STATE_TABLE


def declare(app: Any, partitions: int) -> Any:
    return app.Table(AGENT_STATE_TABLE, partitions=partitions, key_type=bytes, value_type=bytes)


def declare_teams(app: Any, partitions: int) -> Any:
    return app.Table(TEAM_STATE_TABLE, partitions=partitions, key_type=bytes, value_type=bytes)


class StateStore(Protocol):
    """Where the agents wire the shard's states: the table in a worker, memory in tests."""

    def get(self, agent_id: str, default: Any = None) -> Any: ...

    def put(self, agent_id: str, partition: int, state: bytes) -> None: ...


class MemoryStates(dict[str, bytes]):
    """A `StateStore` in memory (for the agents' in-process tests); remembers the partition of each put."""

    def __init__(self) -> None:
        super().__init__()
        self.partitions: dict[str, int] = {}

    def put(self, agent_id: str, partition: int, state: bytes) -> None:
        self[agent_id] = state
        self.partitions[agent_id] = partition


class AgentStates(MutableMapping[str, bytes]):
    """The table seen with agent ids as keys (Kafka keys are bytes).

    With Faust's RocksDB store (one database per partition) reads and writes name the partition themselves:
    the store would take it from the current event, and a round of `take_events` spans partitions. That
    uses the store's per-partition calls (faust-streaming is pinned below 0.16 for `fetch_wait.py` too)."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def __getitem__(self, agent_id: str) -> bytes:
        value = self.get(agent_id)
        if value is None:
            raise KeyError(agent_id)
        return bytes(value)

    def get(self, agent_id: str, default: Any = None) -> Any:
        key = agent_id.encode()
        data = self.table.data
        if hasattr(data, "_get_bucket_for_key"):  # RocksDB: look in every partition's database it holds
            found = data._get_bucket_for_key(key)
            value = None if found is None else found[1]
        else:
            value = self.table.get(key)
        return default if value is None else bytes(value)

    def __setitem__(self, agent_id: str, state: bytes) -> None:
        self.table[agent_id.encode()] = state

    def put(self, agent_id: str, partition: int, state: bytes) -> None:
        """Write an agent's state to the changelog partition its records come from, so the worker that
        receives them recovers it. (Faust picks the partition of the current event, but a round of
        `take_events` spans partitions, and its key partitioner needs metadata the producer may not have.)"""
        key = agent_id.encode()
        data = self.table.data
        if hasattr(data, "_db_for_partition"):  # RocksDB
            data._db_for_partition(partition).put(key, state)
            data._key_index[key] = partition
        else:
            data[key] = state
        self.table.send_changelog(partition, key, state)

    def __delitem__(self, agent_id: str) -> None:
        del self.table[agent_id.encode()]

    def __iter__(self) -> Iterator[str]:
        return (k.decode() if isinstance(k, bytes) else str(k) for k in self.table.keys())

    def __len__(self) -> int:
        return len(self.table)
