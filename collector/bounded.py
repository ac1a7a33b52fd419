"""A dict that forgets its oldest entries past a size: the cross-span stages' state, bounded whatever the
traffic, and deterministic (eviction follows first insertion, never a clock)."""

from __future__ import annotations

from collections import OrderedDict
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedDict(OrderedDict[K, V]):
    """A dict of at most `limit` entries; past it the entry inserted first goes.

    An OrderedDict, not a plain dict: evicting a plain dict's first entry (`del d[next(iter(d))]`) makes its
    iterator skip every slot deleted before, until the next resize, so once full each insert cost O(limit)
    (measured: 81 us per insert at 100,000 entries, against 1.3 us with `popitem(last=False)`)."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        super().__init__()
        self.limit = limit
        self.evicted = 0

    def __setitem__(self, key: K, value: V) -> None:
        OrderedDict.__setitem__(self, key, value)
        if len(self) > self.limit:
            self.popitem(last=False)
            self.evicted += 1
