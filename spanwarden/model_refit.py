"""Fitting the shared behaviour model outside the stream: a bounded, seeded reservoir of normal minute
vectors from the whole fleet, and refitters that turn it into an `IsolationModel` either at once (replays,
tests: deterministic) or on a worker thread (the service: the stream never waits for a fit)."""

from __future__ import annotations

import random
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

import numpy as np

from spanwarden.detectors.isolation_model import IsolationModel


class Reservoir:
    """A uniform sample (Algorithm R) of at most `capacity` vectors from everything offered, seeded."""

    def __init__(self, capacity: int = 4096, seed: int = 0) -> None:
        self.capacity = capacity
        self.rng = random.Random(seed)
        self.items: list[list[float]] = []
        self.offered = 0

    def offer(self, vector: list[float]) -> None:
        self.offered += 1
        if len(self.items) < self.capacity:
            self.items.append(vector)
            return
        slot = self.rng.randrange(self.offered)
        if slot < self.capacity:
            self.items[slot] = vector

    def to_state(self) -> dict[str, Any]:
        return {"items": self.items, "offered": self.offered}

    def load_state(self, state: dict[str, Any]) -> None:
        self.items = [list(map(float, v)) for v in state["items"]][: self.capacity]
        self.offered = int(state["offered"])


class Refitter(Protocol):
    def submit(self, data: np.ndarray, seed: int) -> None: ...

    def ready(self) -> IsolationModel | None:
        """A model fitted since the last call, if any."""
        ...


class SyncRefitter:
    def __init__(self) -> None:
        self._model: IsolationModel | None = None

    def submit(self, data: np.ndarray, seed: int) -> None:
        self._model = IsolationModel.fit(data, seed)

    def ready(self) -> IsolationModel | None:
        model, self._model = self._model, None
        return model


class ThreadRefitter:
    """One fit at a time on a worker thread; a request made while one runs replaces any waiting one."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spanwarden-refit")
        self._running: Future[IsolationModel] | None = None

    def submit(self, data: np.ndarray, seed: int) -> None:
        if self._running is not None and not self._running.done():
            return  # the fit under way is recent enough; the next scheduled refit will take newer data
        self._running = self._pool.submit(IsolationModel.fit, data, seed)

    def ready(self) -> IsolationModel | None:
        if self._running is None or not self._running.done():
            return None
        future, self._running = self._running, None
        return future.result()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
