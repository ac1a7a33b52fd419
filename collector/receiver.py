"""The OTLP/HTTP traces receiver (`POST /v1/traces`): decode, normalise, hand the records on.

Bad requests get the status the OTLP/HTTP spec asks for (400 malformed, 413 too large, 415 wrong media
type) with a message saying what was wrong; nothing else in the service is affected.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from spanwarden.collector.normalize import Normalizer
from spanwarden.collector.otlp_decode import PROTOBUF, OtlpError, decode_request
from spanwarden.collector.span_record import SpanRecord

log = logging.getLogger(__name__)
TRACES_PATH = "/v1/traces"


def traces_handler(
    normalizer: Normalizer, deliver: Callable[[list[SpanRecord]], None], max_body_bytes: int
) -> Callable[[web.Request], object]:
    """An aiohttp handler that delivers each request's records to `deliver` before answering."""

    async def handle(request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > max_body_bytes:
            return _error(413, f"body of {request.content_length} bytes exceeds the limit of {max_body_bytes}")
        try:
            body = await request.content.read(max_body_bytes + 1)
            message = decode_request(
                body, request.headers.get("Content-Type", ""), request.headers.get("Content-Encoding", ""),
                max_body_bytes,
            )
        except OtlpError as exc:
            log.info("rejected OTLP request from %s: %s", request.remote, exc)
            return _error(exc.status, str(exc))
        deliver(normalizer.records(message))
        if request.headers.get("Content-Type", "").startswith(PROTOBUF):
            return web.Response(body=ExportTraceServiceResponse().SerializeToString(), content_type=PROTOBUF)
        return web.json_response({})

    return handle


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"code": status, "message": message}, status=status)
