"""The OTLP/HTTP traces receiver (`POST /v1/traces`): decode, then hand the request on — to the
normaliser and pipeline (embedded) or to the spans topic (Kafka runtime).

Bad requests get the status the OTLP/HTTP spec asks for (400 malformed, 413 too large, 415 wrong media
type) with a message saying what was wrong; nothing else in the service is affected. When the request
cannot be passed on (the broker is away) the answer is 503, which OTLP exporters retry.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from spanwarden.collector.ingest_auth import IngestRefused
from spanwarden.collector.otlp_decode import PROTOBUF, OtlpError, PayloadTooLarge, decode_request

log = logging.getLogger(__name__)
TRACES_PATH = "/v1/traces"


class DeliveryFailed(RuntimeError):
    """The request was valid but could not be passed on; the client should retry (503, with Retry-After when
    `retry_after_s` is set)."""

    retry_after_s: int | None = None


class Overloaded(RuntimeError):
    """The pipeline's queue is full: 429 with Retry-After, which OTLP exporters honour."""

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def traces_handler(
    deliver: Callable[[Any, str], Awaitable[None]], max_body_bytes: int,
    decode: Callable[[bytes, str, str, int], Awaitable[Any]] | None = None,
) -> Callable[[web.Request], object]:
    """An aiohttp handler that passes each decoded request, with its Authorization header, to `deliver`
    before answering; `deliver` raises IngestRefused (401/403), Overloaded (429) or DeliveryFailed (503).
    `decode` (body, content type, encoding, limit), when given, decodes instead of `decode_request` (the
    embedded service's decode processes: what it returns is what `deliver` gets) and raises the same errors."""

    async def handle(request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > max_body_bytes:
            return _error(413, f"body of {request.content_length} bytes exceeds the limit of {max_body_bytes}")
        try:
            body = await _read_body(request, max_body_bytes)
            content_type = request.headers.get("Content-Type", "")
            encoding = request.headers.get("Content-Encoding", "")
            message = (decode_request(body, content_type, encoding, max_body_bytes) if decode is None
                       else await decode(body, content_type, encoding, max_body_bytes))
        except OtlpError as exc:
            log.info("rejected OTLP request from %s: %s", request.remote, exc)
            return _error(exc.status, str(exc))
        except DeliveryFailed as exc:
            return _unavailable(request, exc)
        try:
            await deliver(message, request.headers.get("Authorization", ""))
        except IngestRefused as exc:
            log.warning("refused spans from %s: %s", request.remote, exc)
            return _error(exc.status, str(exc))
        except Overloaded as exc:
            response = _error(429, str(exc))
            response.headers["Retry-After"] = str(exc.retry_after_s)
            return response
        except DeliveryFailed as exc:
            return _unavailable(request, exc)
        if request.headers.get("Content-Type", "").startswith(PROTOBUF):
            return web.Response(body=ExportTraceServiceResponse().SerializeToString(), content_type=PROTOBUF)
        return web.json_response({})

    return handle


async def _read_body(request: web.Request, max_body_bytes: int) -> bytes:
    """The whole body, or PayloadTooLarge past the limit (a chunked body has no Content-Length to check
    first). `content.read(n)` alone returns what has arrived so far, not n bytes."""
    chunks, size = [], 0
    while chunk := await request.content.read(1 << 16):
        size += len(chunk)
        if size > max_body_bytes:
            raise PayloadTooLarge(f"body exceeds the limit of {max_body_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _unavailable(request: web.Request, exc: DeliveryFailed) -> web.Response:
    log.warning("could not pass on an OTLP request from %s: %s", request.remote, exc)
    response = _error(503, str(exc))
    if exc.retry_after_s is not None:
        response.headers["Retry-After"] = str(exc.retry_after_s)
    return response


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"code": status, "message": message}, status=status)
