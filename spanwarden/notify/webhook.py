"""A notice as generic JSON, signed so the receiver can check it came from this service: the headers
`X-Spanwarden-Timestamp` (seconds) and `X-Spanwarden-Signature: sha256=<hex>`, the HMAC-SHA256 of
`"<timestamp>.<body>"` with the shared secret (the timestamp in the signed text stops a replay later)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import asdict
from typing import Any

import orjson

from spanwarden.notify.notice import Notice

SIGNATURE, TIMESTAMP = "X-Spanwarden-Signature", "X-Spanwarden-Timestamp"


def body(notice: Notice, link: str | None = None) -> bytes:
    data: dict[str, Any] = asdict(notice)
    data["link"] = link
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


def signature(secret: str, timestamp: int, raw: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + raw, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def headers(secret: str | None, timestamp: int, raw: bytes) -> dict[str, str]:
    out = {"Content-Type": "application/json"}
    if secret:
        out[TIMESTAMP] = str(timestamp)
        out[SIGNATURE] = signature(secret, timestamp, raw)
    return out


def verify(secret: str, raw: bytes, given_headers: dict[str, str], now_s: float, tolerance_s: float = 300) -> bool:
    """What a receiver does: the signature matches and the timestamp is recent."""
    try:
        timestamp = int(given_headers[TIMESTAMP])
    except (KeyError, ValueError):
        return False
    if abs(now_s - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(signature(secret, timestamp, raw), given_headers.get(SIGNATURE, ""))
