"""A loopback LLM server for the instrumentation tests: OpenAI chat completions and embeddings, and the
Anthropic messages API, each answering with fixed usage (cache reads and writes included) so that a test
can check what an instrumentation reports against what the server billed.

A request whose last message says "use the tool" is answered with a tool call of `TOOL`; the next one
(carrying the tool's result) with text. Everything it received is kept in `FakeLLM.received`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOOL = "lookup_invoice"

# What the server bills per call (the instrumentations must report these).
OPENAI_USAGE = {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
                "prompt_tokens_details": {"cached_tokens": 200}}
EMBEDDING_USAGE = {"prompt_tokens": 50, "total_tokens": 50}
ANTHROPIC_USAGE = {"input_tokens": 1000, "output_tokens": 250, "cache_read_input_tokens": 400,
                   "cache_creation_input_tokens": 100}


def _wants_tool(messages: list[Any]) -> bool:
    last = messages[-1] if messages else {}
    content = last.get("content") if isinstance(last, dict) else None
    if isinstance(content, list):
        content = " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return isinstance(content, str) and "use the tool" in content


class FakeLLM(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []
    counter = 0
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with FakeLLM.lock:
            FakeLLM.received.append({"path": self.path, **body})
            FakeLLM.counter += 1
            n = FakeLLM.counter
        if self.path.endswith("/chat/completions"):
            answer = _openai_chat(body, n)
        elif self.path.endswith("/embeddings"):
            answer = {"object": "list", "model": body["model"], "usage": EMBEDDING_USAGE,
                      "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}]}
        elif self.path.endswith("/messages"):
            answer = _anthropic_message(body, n)
            if body.get("stream"):
                self._stream(_anthropic_events(answer))
                return
        else:
            self.send_error(404)
            return
        raw = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _stream(self, events: list[dict[str, Any]]) -> None:
        raw = b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: object) -> None:
        return None


def _openai_chat(body: dict[str, Any], n: int) -> dict[str, Any]:
    if _wants_tool(body.get("messages", [])) and body.get("tools"):
        message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [{
            "id": f"call_{n}", "type": "function",
            "function": {"name": TOOL, "arguments": json.dumps({"invoice": "INV-7"})}}]}
        finish = "tool_calls"
    else:
        message, finish = {"role": "assistant", "content": "ok"}, "stop"
    return {"id": f"chatcmpl-{n}", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": OPENAI_USAGE}


def _anthropic_message(body: dict[str, Any], n: int) -> dict[str, Any]:
    if _wants_tool(body.get("messages", [])) and body.get("tools"):
        content: list[dict[str, Any]] = [{"type": "tool_use", "id": f"toolu_{n}", "name": TOOL,
                                          "input": {"invoice": "INV-7"}}]
        stop = "tool_use"
    else:
        content, stop = [{"type": "text", "text": "ok"}], "end_turn"
    return {"id": f"msg_{n:04d}", "type": "message", "role": "assistant", "model": body["model"],
            "content": content, "stop_reason": stop, "stop_sequence": None, "usage": ANTHROPIC_USAGE}


def _anthropic_events(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The message as the SSE events of a streamed answer: usage in `message_start`, output in the delta."""
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    for i, block in enumerate(message["content"]):
        if block["type"] == "text":
            events += [{"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}},
                       {"type": "content_block_delta", "index": i,
                        "delta": {"type": "text_delta", "text": block["text"]}}]
        else:
            events += [{"type": "content_block_start", "index": i, "content_block": {**block, "input": {}}},
                       {"type": "content_block_delta", "index": i,
                        "delta": {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}}]
        events.append({"type": "content_block_stop", "index": i})
    events += [{"type": "message_delta", "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": usage["output_tokens"]}},
               {"type": "message_stop"}]
    return events


@contextmanager
def fake_llm() -> Iterator[str]:
    """A running server on loopback; yields its base URL (no trailing slash)."""
    FakeLLM.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeLLM)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
