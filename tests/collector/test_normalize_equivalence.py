"""The normaliser makes exactly the records it made before it was made faster, with either span reader, for
every request of the saved corpus (tests/collector/normalize_corpus.py: the tests' real-instrumentation
spans, the soak's traffic, the bench's mix, seeded random spans with malformed values)."""

from __future__ import annotations

import logging

import pytest

from spanwarden.collector.normalize import Normalizer
from spanwarden.collector.otlp_decode import JSON, PROTOBUF, decode_request
from tests.collector import normalize_corpus as corpus
from tests.collector.test_normalize import to_otlp_json


@pytest.fixture(scope="module")
def cases() -> list[tuple[str, bytes, list[str]]]:
    return corpus.cases()


def test_the_corpus_covers_every_source(cases):
    sources = {source.split(":")[0] for source, _, _ in cases}
    assert sources == {"tests", "soak", "bench", "generated"}
    assert sum(len(digests) for _, _, digests in cases) > 4000


@pytest.mark.parametrize("wire_bytes", [True, False], ids=["wire-reader", "object-reader"])
def test_every_request_gives_the_saved_records(cases, caplog, wire_bytes):
    """Both span readers: the wire bytes' (the compiled build's) and protobuf objects' (the source's)."""
    caplog.set_level(logging.ERROR)  # unpriced models are logged once each
    normalizer = Normalizer(corpus.prices(), wire_bytes=wire_bytes)
    changed = []
    for k, (source, body, digests) in enumerate(cases):
        records = normalizer.records(decode_request(body, PROTOBUF))
        got = [corpus.digest(record) for record in records]
        if got != digests:
            changed.append(f"request {k} ({source}): {len(records)} records, {len(digests)} saved; now "
                           f"{[corpus.as_json(r) for r in records][:3]}")
    assert not changed, f"{len(changed)} of {len(cases)} requests changed:\n" + "\n".join(changed[:5])


@pytest.mark.parametrize("wire_bytes", [True, False], ids=["wire-reader", "object-reader"])
def test_the_json_encoding_gives_the_same_records(cases, caplog, wire_bytes):
    caplog.set_level(logging.ERROR)
    normalizer = Normalizer(corpus.prices(), wire_bytes=wire_bytes)
    for source, body, digests in cases[::25]:
        if source == "generated":  # random ids of other lengths do not survive the hex mapping's round trip
            continue
        records = normalizer.records(decode_request(to_otlp_json(body), JSON))
        assert [corpus.digest(record) for record in records] == digests, source
