"""The fleet's behaviour model on Kafka: fitted on every worker's normal minutes, used by every worker.

`serve` fits its `IsolationModel` on a reservoir of the whole fleet's normal minute vectors (`Pipeline._collect`,
`model_refit.py`). A worker sees only its partitions' agents, so here the same reservoir is filled across
workers: each worker sends every normal minute vector its agents close (`VectorOutbox`, a message every few
seconds) to `spanwarden.behaviour-vectors` (one partition: one order for whoever reads it); the gateway, the
one refitter, reads that topic from its start into a seeded reservoir and refits on the pipeline's schedule
(`REFIT_MIN_VECTORS`, `REFIT_EVERY_S` of span time) on a thread (`FleetRefit`); each fitted model goes on the
compacted `spanwarden.behaviour-model` topic under a version (`m<fit number>@<hash of the model>`), and every
worker follows that topic and puts the newest model in force for all its agents (`ModelFollower`).

What differs from `serve`: the reservoir sees the workers' vectors in the order their messages reached the
topic, not in span order; a worker killed with `kill -9` loses (or, replayed, repeats) up to a few seconds of
vectors; the gateway re-reads the vectors topic after a restart (it keeps a day of it), so it fits again the
same models from the same messages."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from spanwarden.detectors.isolation_model import IsolationModel
from spanwarden.model_refit import Refitter, Reservoir
from spanwarden.pipeline import REFIT_EVERY_S, REFIT_MIN_VECTORS
from spanwarden.streaming.policy_topic import newest
from spanwarden.streaming.topics import BEHAVIOUR_MODEL, BEHAVIOUR_VECTORS

log = logging.getLogger(__name__)
KEY = b"model"
VECTORS_PER_MESSAGE = 2000
FEATURES = 6


class VectorOutbox:
    """A worker's normal minute vectors since its last send (the pipeline's `on_normal_vectors`)."""

    def __init__(self, limit: int = 100_000) -> None:
        self.vectors: list[list[float]] = []
        self.latest_s = 0.0
        self.limit = limit  # bounded while the broker is away: the oldest are dropped
        self.dropped = 0

    def __call__(self, vectors: list[list[float]], time_s: float) -> None:
        self.vectors.extend(list(v) for v in vectors)
        self.latest_s = max(self.latest_s, time_s)
        if len(self.vectors) > self.limit:
            self.dropped += len(self.vectors) - self.limit
            del self.vectors[:len(self.vectors) - self.limit]

    def drain(self) -> list[bytes]:
        """The messages to send (none when nothing was closed since the last call)."""
        vectors, self.vectors = self.vectors, []
        return [orjson.dumps({"vectors": vectors[i:i + VECTORS_PER_MESSAGE], "time_s": self.latest_s})
                for i in range(0, len(vectors), VECTORS_PER_MESSAGE)]


class QueuedRefitter:
    """Fits on one thread, every request in turn (none dropped, unlike `ThreadRefitter`): the gateway replays
    the vectors topic after a restart faster than it fits, and must make the same models again."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spanwarden-fleet-refit")
        self._queue: deque[Future[IsolationModel]] = deque()

    def submit(self, data: np.ndarray, seed: int) -> None:
        self._queue.append(self._pool.submit(IsolationModel.fit, data, seed))

    def ready(self) -> IsolationModel | None:
        if not self._queue or not self._queue[0].done():
            return None
        return self._queue.popleft().result()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def fit_number(version: str) -> int:
    return int(version.removeprefix("m").split("@", 1)[0])


def version_of(model: IsolationModel, fit: int) -> str:
    digest = hashlib.sha256(orjson.dumps(model.to_state())).hexdigest()[:12]
    return f"m{fit}@{digest}"


def encode_model(model: IsolationModel, version: str, vectors: int) -> bytes:
    return orjson.dumps({"version": version, "vectors": vectors, "model": model.to_state()})


def decode_model(value: bytes) -> tuple[str, int, IsolationModel]:
    doc: dict[str, Any] = orjson.loads(value)
    return str(doc["version"]), int(doc["vectors"]), IsolationModel.from_state(doc["model"])


class FleetRefit:
    """The gateway's side: every vectors message in, a fitted model out now and then (`ready`)."""

    def __init__(self, refitter: Refitter, seed: int = 0) -> None:
        self.refitter = refitter
        self.seed = seed
        self.reservoir = Reservoir(seed=seed)
        self.next_fit_s = 0.0
        self.fits = 0
        self.published = 0  # the fit number on the model topic already: replayed fits up to it are not sent
        self.malformed = 0
        self._fitting_on: deque[int] = deque()

    def __call__(self, key: bytes, value: bytes) -> None:
        try:
            doc = orjson.loads(value)
            vectors = [[float(x) for x in v] for v in doc["vectors"]]
            time_s = float(doc["time_s"])
            if any(len(v) != FEATURES for v in vectors):
                raise ValueError(f"a vector without {FEATURES} features")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            self.malformed += 1
            log.error("skipped a behaviour-vectors message: %s", exc)
            return
        for vector in vectors:
            self.reservoir.offer(vector)
        if time_s >= self.next_fit_s and len(self.reservoir.items) >= REFIT_MIN_VECTORS:
            self.next_fit_s = time_s + REFIT_EVERY_S
            self._fitting_on.append(len(self.reservoir.items))
            self.refitter.submit(np.array(self.reservoir.items), self.seed)

    def ready(self) -> bytes | None:
        """A model message to publish when a fit has finished since the last call."""
        model = self.refitter.ready()
        if model is None:
            return None
        self.fits += 1
        vectors = self._fitting_on.popleft()
        if self.fits <= self.published:
            return None  # made again from the same messages after a restart: the workers have it
        version = version_of(model, self.fits)
        log.info("behaviour model %s fitted on %d of the fleet's normal minutes", version, vectors)
        return encode_model(model, version, vectors)


async def run_refit(bootstrap: str, producer: AIOKafkaProducer, refit: FleetRefit, stopping: asyncio.Event,
                    fetch_max_wait_ms: int = 100) -> None:
    """The gateway's task: the vectors topic from its start into `refit`, each new model onto the model topic."""
    found = await newest(bootstrap, topic=BEHAVIOUR_MODEL, key=KEY)
    if found is not None:
        try:
            refit.published = fit_number(decode_model(found)[0])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            log.error("the behaviour-model topic's newest message is unreadable (%s); fits are numbered anew", exc)
    consumer = AIOKafkaConsumer(BEHAVIOUR_VECTORS, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False, metadata_max_age_ms=5000,
                                fetch_max_wait_ms=fetch_max_wait_ms)
    await consumer.start()
    try:
        while not stopping.is_set():
            for messages in (await consumer.getmany(timeout_ms=200)).values():
                for message in messages:
                    refit(message.key or b"", message.value or b"")
            while (model := refit.ready()) is not None:
                await producer.send_and_wait(BEHAVIOUR_MODEL, model, key=KEY)
    finally:
        await consumer.stop()


class ModelFollower:
    """A worker's side: the model topic's messages in; the newest model put in force through `use`."""

    def __init__(self, use: Callable[[IsolationModel], None], who: str) -> None:
        self.use = use
        self.who = who
        self.version: str | None = None
        self.malformed = 0

    def __call__(self, key: bytes, value: bytes) -> None:
        if not value:
            return
        try:
            version, vectors, model = decode_model(value)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            self.malformed += 1
            log.error("skipped a behaviour-model message: %s", exc)
            return
        if version == self.version:
            return  # the same model again (the gateway refitted after a restart)
        self.use(model)
        self.version = version
        log.info("%s: behaviour model %s in force (fitted on %d of the fleet's normal minutes)", self.who,
                 version, vectors)
