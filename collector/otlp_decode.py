"""OTLP/HTTP request bodies to `ExportTraceServiceRequest`, with clear errors for bad input.

Both OTLP/HTTP encodings are accepted: binary protobuf and the OTLP JSON mapping (hex trace and span ids,
integer enums), each optionally gzip-compressed. Size is limited before and after decompression so that a
small gzip bomb cannot exhaust memory.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


class OtlpError(ValueError):
    """A request the receiver refuses; `status` is the HTTP status to answer with."""

    status = 400


class MalformedPayload(OtlpError):
    status = 400


class UnsupportedMediaType(OtlpError):
    status = 415


class PayloadTooLarge(OtlpError):
    status = 413


def decode_request(
    body: bytes, content_type: str, content_encoding: str = "", max_bytes: int = 16 << 20
) -> ExportTraceServiceRequest:
    """Decode one OTLP/HTTP traces body; raises an `OtlpError` subclass saying what was wrong."""
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"body of {len(body)} bytes exceeds the limit of {max_bytes}")
    encoding = content_encoding.strip().lower()
    if encoding == "gzip":
        body = _gunzip(body, max_bytes)
    elif encoding not in ("", "identity"):
        raise UnsupportedMediaType(f"unsupported Content-Encoding {content_encoding!r}; use gzip or none")
    media = content_type.split(";", 1)[0].strip().lower()
    if media == PROTOBUF:
        return _parse_protobuf(body)
    if media == JSON:
        return _parse_json(body)
    raise UnsupportedMediaType(f"unsupported Content-Type {content_type!r}; use {PROTOBUF} or {JSON}")


def _gunzip(body: bytes, max_bytes: int) -> bytes:
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise MalformedPayload(f"body is not valid gzip: {exc}") from exc
    if len(out) > max_bytes:
        raise PayloadTooLarge(f"body exceeds the limit of {max_bytes} bytes after decompression")
    if not inflater.eof:
        raise MalformedPayload("gzip body is truncated")
    return out


def _parse_protobuf(body: bytes) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise MalformedPayload(f"body is not a valid OTLP ExportTraceServiceRequest protobuf: {exc}") from exc
    return request


def _parse_json(body: bytes) -> ExportTraceServiceRequest:
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise MalformedPayload(f"body is not valid JSON: {str(exc)[:200]}") from exc
    if not isinstance(doc, dict):
        raise MalformedPayload("OTLP JSON body must be an object with 'resourceSpans'")
    try:
        for resource_spans in doc.get("resourceSpans") or ():
            for scope_spans in resource_spans.get("scopeSpans") or ():
                for span in scope_spans.get("spans") or ():
                    _hex_ids_to_base64(span)
                    for link in span.get("links") or ():
                        _hex_ids_to_base64(link)
        return json_format.ParseDict(doc, ExportTraceServiceRequest(), ignore_unknown_fields=True)
    except AttributeError as exc:  # a list or a string where OTLP JSON has an object
        raise MalformedPayload("body is not a valid OTLP JSON ExportTraceServiceRequest: resourceSpans, "
                               "scopeSpans and spans must be lists of objects") from exc
    except (TypeError, ValueError, RecursionError, json_format.ParseError) as exc:
        raise MalformedPayload(f"body is not a valid OTLP JSON ExportTraceServiceRequest: {exc}") from exc


def _hex_ids_to_base64(obj: dict[str, Any]) -> None:
    """OTLP JSON encodes ids as hex, where protobuf's JSON mapping expects base64 for bytes fields."""
    for key in ("traceId", "spanId", "parentSpanId"):
        value = obj.get(key)
        if value:
            try:
                obj[key] = base64.b64encode(bytes.fromhex(value)).decode()
            except (TypeError, ValueError, binascii.Error) as exc:
                raise MalformedPayload(f"{key} {value!r} is not a hex string") from exc
