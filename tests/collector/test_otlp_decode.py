"""Bad OTLP input gets a specific error and the status the OTLP/HTTP spec asks for."""

from __future__ import annotations

import gzip

import pytest

from spanwarden.collector.otlp_decode import (
    JSON,
    PROTOBUF,
    MalformedPayload,
    PayloadTooLarge,
    UnsupportedMediaType,
    decode_request,
)


@pytest.mark.parametrize("body, content_type, message", [
    (b"\xff\xff\xff\xff", PROTOBUF, "not a valid OTLP ExportTraceServiceRequest protobuf"),
    (b"{not json", JSON, "not valid JSON"),
    (b"[1, 2]", JSON, "must be an object"),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}', JSON, "traceId 'zz' is not a hex"),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}', JSON,
     "not a valid OTLP JSON"),
    (b'{"resourceSpans": 5}', JSON, "not a valid OTLP JSON"),
    (b'{"resourceSpans": ["a"]}', JSON, "must be lists of objects"),
])
def test_malformed_bodies(body, content_type, message):
    with pytest.raises(MalformedPayload, match=message) as info:
        decode_request(body, content_type)
    assert info.value.status == 400


def test_wrong_media_type_and_encoding_are_415():
    with pytest.raises(UnsupportedMediaType, match="text/plain") as info:
        decode_request(b"x", "text/plain")
    assert info.value.status == 415
    with pytest.raises(UnsupportedMediaType, match="br"):
        decode_request(b"x", PROTOBUF, "br")


def test_size_limits_before_and_after_decompression():
    with pytest.raises(PayloadTooLarge, match="exceeds the limit of 10") as info:
        decode_request(b"x" * 11, PROTOBUF, max_bytes=10)
    assert info.value.status == 413
    bomb = gzip.compress(b"\0" * 5_000_000)  # ~5 KB that inflates to 5 MB
    assert len(bomb) < 10_000
    with pytest.raises(PayloadTooLarge, match="after decompression"):
        decode_request(bomb, PROTOBUF, "gzip", max_bytes=1_000_000)


def test_broken_gzip():
    with pytest.raises(MalformedPayload, match="not valid gzip"):
        decode_request(b"not gzip at all", PROTOBUF, "gzip")
    with pytest.raises(MalformedPayload, match="truncated"):
        decode_request(gzip.compress(b"{}" * 1000)[:20], JSON, "gzip")


def test_empty_bodies_are_valid_empty_requests():
    assert len(decode_request(b"", PROTOBUF).resource_spans) == 0
    assert len(decode_request(b"{}", JSON).resource_spans) == 0
