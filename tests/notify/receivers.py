"""Loopback stand-ins for Slack's incoming webhooks, PagerDuty's Events API v2 and a generic webhook
receiver. Each checks what it is sent as the real service documents it, answers as the real service does
(Slack: 200 "ok" or 400 "invalid_payload"; PagerDuty: 202 with the dedup key, or 400 "invalid event"), and
can be told to fail the next requests (a status, with Retry-After for 429)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SLACK_BLOCKS = {"header", "section", "context", "actions", "divider"}
PD_SEVERITIES = {"critical", "error", "warning", "info"}


def slack_problems(body: Any) -> list[str]:
    if not isinstance(body, dict) or not isinstance(body.get("text", ""), str):
        return ["not an object with text"]
    if not body.get("text") and not body.get("blocks"):
        return ["no text and no blocks"]
    problems = []
    blocks = body.get("blocks", [])
    if len(blocks) > 50:
        problems.append("more than 50 blocks")
    for block in blocks:
        kind = block.get("type")
        if kind not in SLACK_BLOCKS:
            problems.append(f"unknown block {kind}")
        if kind == "header" and (block["text"]["type"] != "plain_text" or len(block["text"]["text"]) > 150):
            problems.append("header must be plain_text of at most 150 characters")
        if kind == "section" and len(block["text"]["text"]) > 3000:
            problems.append("section text over 3000 characters")
        if kind == "context" and not 1 <= len(block["elements"]) <= 10:
            problems.append("context needs 1-10 elements")
        if kind == "actions":
            for element in block["elements"]:
                if element["type"] == "button" and (len(element["text"]["text"]) > 75
                                                    or len(element.get("url", "")) > 3000
                                                    or element.get("style") not in (None, "primary", "danger")):
                    problems.append("bad button")
    return problems


def pagerduty_problems(body: Any) -> list[str]:
    if not isinstance(body, dict):
        return ["not an object"]
    problems = []
    if not isinstance(body.get("routing_key"), str) or len(body["routing_key"]) != 32:
        problems.append("routing_key must be the integration's 32-character key")
    action = body.get("event_action")
    if action not in ("trigger", "acknowledge", "resolve"):
        problems.append("event_action must be trigger, acknowledge or resolve")
    if len(str(body.get("dedup_key", ""))) > 255:
        problems.append("dedup_key over 255 characters")
    if action in ("acknowledge", "resolve") and not body.get("dedup_key"):
        problems.append(f"{action} needs a dedup_key")
    if action == "trigger":
        payload = body.get("payload") or {}
        if not payload.get("summary") or len(payload["summary"]) > 1024:
            problems.append("payload.summary required, at most 1024 characters")
        if not payload.get("source"):
            problems.append("payload.source required")
        if payload.get("severity") not in PD_SEVERITIES:
            problems.append("payload.severity must be critical, error, warning or info")
        if "timestamp" in payload:
            try:
                datetime.fromisoformat(payload["timestamp"])
            except ValueError:
                problems.append("payload.timestamp must be ISO 8601")
        for link in body.get("links", []):
            if "href" not in link:
                problems.append("a link needs href")
    return problems


class Receiver(BaseHTTPRequestHandler):
    kind = "webhook"
    received: list[dict[str, Any]]
    fail_next: list[int]

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        server: Any = self.server
        if server.fail_next:
            status = server.fail_next.pop(0)
            self._answer(status, b'{"message": "try later"}', {"Retry-After": "1"} if status == 429 else {})
            return
        body = json.loads(raw)
        server.received.append({"body": body, "raw": raw, "headers": dict(self.headers)})
        if server.kind == "slack":
            problems = slack_problems(body)
            self._answer(400 if problems else 200, b"invalid_payload" if problems else b"ok")
        elif server.kind == "pagerduty":
            problems = pagerduty_problems(body)
            answer = ({"status": "invalid event", "message": "Event object is invalid", "errors": problems}
                      if problems else {"status": "success", "message": "Event processed",
                                        "dedup_key": body.get("dedup_key")})
            self._answer(400 if problems else 202, json.dumps(answer).encode())
        else:
            self._answer(200, b"{}")
        server.problems.extend(problems if server.kind != "webhook" else [])

    def _answer(self, status: int, raw: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: object) -> None:
        return None


@contextmanager
def receiver(kind: str) -> Iterator[Any]:
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.kind, server.received, server.fail_next, server.problems = kind, [], [], []
    server.url = f"http://127.0.0.1:{server.server_address[1]}/" + {"pagerduty": "v2/enqueue"}.get(kind, "hook")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
