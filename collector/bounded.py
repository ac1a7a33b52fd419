"""A dict that forgets its oldest entries past a size: the cross-span stages' state, bounded whatever the
traffic, and deterministic (eviction follows first insertion, never a clock)."""

from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedDict(dict[K, V]):
    """A dict of at most `limit` entries; past it the entry inserted first goes (a plain dict keeps insertion
    order, and is cheaper than an OrderedDict on the ingest path)."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        super().__init__()
        self.limit = limit
        self.evicted = 0

    def __setitem__(self, key: K, value: V) -> None:
        super().__setitem__(key, value)
        if len(self) > self.limit:
            del self[next(iter(self))]
            self.evicted += 1
