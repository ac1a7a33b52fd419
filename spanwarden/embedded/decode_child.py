"""One decode process of `serve`'s decode pool (decode_pool.py): OTLP bodies in, normalised records out.

It runs `python -m spanwarden.embedded.decode_child FD`, FD being its end of a socket pair with the
service. It is stateless apart from the price table (set by the first frame, and again when the service
reloads it), and answers frames in the order they came:

- request: `!II` (meta length, body length), meta (JSON), body. Meta `{"k": "d", "t": content type,
  "e": content encoding, "m": max bytes}` decodes and normalises a body; `{"k": "p", "f": price file or
  null, "d": [input, output]}` loads a price table.
- answer: `!BI` (status, length), payload. OK: the records in the records topic's columnar format
  (spanwarden/streaming/record_batch.py); OTLP: `{"s": status, "c": class, "m": message}`, the receiver's
  own error (400/413/415) to raise again in the service; FAILED: `{"c": class, "m": message}`.

The process ends when the service closes its end (or dies: the socket's end of file), never by itself."""

from __future__ import annotations

import gc
import signal
import socket
import struct
import sys
from pathlib import Path
from typing import Any, BinaryIO

import orjson

REQUEST = struct.Struct("!II")
ANSWER = struct.Struct("!BI")
OK, OTLP, FAILED = 0, 1, 2


def serve(sock: socket.socket) -> None:
    from spanwarden.collector.normalize import Normalizer
    from spanwarden.collector.otlp_decode import OtlpError, decode_request
    from spanwarden.collector.pricing import PriceTable
    from spanwarden.streaming import record_batch

    gc.freeze()  # the modules just imported: out of every collection's walk
    normalizer: Normalizer | None = None
    stream = sock.makefile("rb")
    while (frame := _read(stream)) is not None:
        meta, body = frame
        try:
            if meta["k"] == "p":
                file = meta.get("f")
                normalizer = Normalizer(PriceTable.load(Path(file) if file else None, tuple(meta["d"])))
                payload = b""
            else:
                if normalizer is None:
                    raise RuntimeError("no price table was set before the first body")
                records = normalizer.records(decode_request(body, meta["t"], meta["e"], meta["m"]))
                payload = record_batch.encode([record_batch.SourceRecords(0, 0, 0, records)])
            sock.sendall(ANSWER.pack(OK, len(payload)) + payload)
        except OtlpError as exc:
            _answer(sock, OTLP, {"s": exc.status, "c": type(exc).__name__, "m": str(exc)})
        except Exception as exc:  # noqa: BLE001 - said to the service, which answers the request with it
            _answer(sock, FAILED, {"c": type(exc).__name__, "m": str(exc)})


def _answer(sock: socket.socket, status: int, what: dict[str, Any]) -> None:
    payload = orjson.dumps(what)
    sock.sendall(ANSWER.pack(status, len(payload)) + payload)


def _read(stream: BinaryIO) -> tuple[dict[str, Any], bytes] | None:
    head = stream.read(REQUEST.size)
    if len(head) < REQUEST.size:
        return None  # the service closed its end
    meta_len, body_len = REQUEST.unpack(head)
    meta = stream.read(meta_len)
    body = stream.read(body_len)
    if len(meta) < meta_len or len(body) < body_len:
        return None
    return orjson.loads(meta), body


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].isdigit():
        print("usage: python -m spanwarden.embedded.decode_child FD", file=sys.stderr)
        return 2
    sock = socket.socket(fileno=int(argv[0]))
    try:
        serve(sock)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the service went away mid-answer
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is the service's to handle: it closes us
    sys.exit(main(sys.argv[1:]))
