"""The fleet model's pieces without a broker: the workers' outbox, the gateway's refit (the same models from
the same messages, replayed fits not sent again) and the workers' follower."""

from __future__ import annotations

import random

import orjson

from spanwarden.detectors.isolation_model import IsolationModel
from spanwarden.model_refit import SyncRefitter
from spanwarden.pipeline import REFIT_EVERY_S, REFIT_MIN_VECTORS
from spanwarden.streaming.fleet_model import (
    FEATURES,
    FleetRefit,
    ModelFollower,
    QueuedRefitter,
    VectorOutbox,
    decode_model,
    fit_number,
)


def _messages(seed: int, count: int, per: int = 100, start: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    return [orjson.dumps({"vectors": [[rng.gauss(0, 1) for _ in range(FEATURES)] for _ in range(per)],
                          "time_s": (start + i) * REFIT_EVERY_S / 2}) for i in range(count)]


def _published(refit: FleetRefit, messages: list[bytes]) -> list[str]:
    out = []
    for message in messages:
        refit(b"", message)
        while (model := refit.ready()) is not None:
            out.append(decode_model(model)[0])
    return out


def test_the_same_messages_make_the_same_models_and_a_restart_sends_only_newer_ones() -> None:
    messages = _messages(1, 8)
    first = _published(FleetRefit(SyncRefitter()), messages)
    assert len(first) >= 2 and [fit_number(v) for v in first] == list(range(1, len(first) + 1))
    assert _published(FleetRefit(SyncRefitter()), messages) == first  # deterministic: seeded, in topic order
    restarted = FleetRefit(SyncRefitter())
    restarted.published = fit_number(first[-1])
    more = _messages(2, 4, start=8)
    assert _published(restarted, messages) == []  # replayed fits are on the topic already
    newer = _published(restarted, more)
    assert newer and fit_number(newer[0]) == len(first) + 1


def test_the_queued_refitter_fits_every_request_in_turn() -> None:
    refit = FleetRefit(QueuedRefitter())
    try:
        for message in _messages(3, 8):  # faster than it fits: nothing is dropped
            refit(b"", message)
        fits = []
        while len(fits) < 3:
            model = refit.ready()
            if model is not None:
                fits.append(decode_model(model)[0])
        assert [fit_number(v) for v in fits] == [1, 2, 3]
    finally:
        assert isinstance(refit.refitter, QueuedRefitter)
        refit.refitter.close()


def test_a_malformed_vectors_message_is_skipped_with_a_count() -> None:
    refit = FleetRefit(SyncRefitter())
    refit(b"", b"not json")
    refit(b"", orjson.dumps({"vectors": [[1.0, 2.0]], "time_s": 0}))
    assert refit.malformed == 2 and refit.reservoir.offered == 0


def test_the_outbox_sends_every_vector_once_and_stays_bounded() -> None:
    outbox = VectorOutbox(limit=5000)
    for i in range(4500):
        outbox([[float(i)] * FEATURES], float(i))
    messages = outbox.drain()
    assert len(messages) == 3 and sum(len(orjson.loads(m)["vectors"]) for m in messages) == 4500
    assert outbox.drain() == []
    outbox([[0.0] * FEATURES] * 6000, 1.0)
    assert outbox.dropped == 1000 and len(outbox.vectors) == 5000


def test_the_follower_puts_each_new_version_in_force_once() -> None:
    used: list[IsolationModel] = []
    follower = ModelFollower(used.append, "worker 1")
    refit = FleetRefit(SyncRefitter())
    models = []
    for message in _messages(4, 8):
        refit(b"", message)
        if (model := refit.ready()) is not None:
            models.append(model)
    follower(b"model", models[0])
    follower(b"model", models[0])
    follower(b"model", b"{}")
    follower(b"model", models[1])
    assert len(used) == 2 and follower.malformed == 1 and follower.version == decode_model(models[1])[0]


def test_no_model_before_the_fleet_has_enough_normal_minutes() -> None:
    refit = FleetRefit(SyncRefitter())
    refit(b"", _messages(5, 1, per=REFIT_MIN_VECTORS - 1)[0])
    assert refit.ready() is None
    refit(b"", _messages(6, 1, per=1)[0])
    assert refit.ready() is not None
