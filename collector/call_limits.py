"""What an LLM call can cost at most, read from the client call itself before it goes out.

Instrumentations set `gen_ai.request.max_tokens` when it suits them — openai-v2 only at span end — so a
guard reading span attributes at span start cannot rely on it. This thin hook sits on the `openai` and
`anthropic` clients' request building (`BaseClient._build_request`, which runs inside whichever
instrumentation's span wraps the call, whatever order the wrappers were installed in, and before any byte is
sent): it reads the body's `max_tokens`/`max_completion_tokens` and the size of its messages, and hands them
to the guard processors that reserved for the current span, which refine the reservation. It is also the
guard's backstop: a client call that no LLM span the guard checked at its start wraps (its instrumentation
failed to load, is disabled, or makes its spans only later) is checked here, so a halted agent is refused
whether or not it is instrumented. Nothing else is touched.
"""

from __future__ import annotations

import json
import logging
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from opentelemetry import trace

log = logging.getLogger(__name__)
BYTES_PER_TOKEN = 3  # prompts: English runs ~4 bytes a token, other scripts fewer; err towards more tokens


@dataclass(frozen=True)
class CallLimits:
    max_output_tokens: int | None  # the reply's bound, when the call states one
    prompt_tokens: int | None  # an estimate from the size of the messages


class Refines(Protocol):
    def refine(self, span_id: int, limits: CallLimits) -> None: ...

    def client_call(self, span_id: int, body: Mapping[str, Any]) -> None:
        """Every client call, inside span `span_id` (0: none): may raise AgentHalted before it is sent."""


_listeners: weakref.WeakSet[Any] = weakref.WeakSet()
_installed = False
_install_lock = threading.Lock()


def limits_of(body: Mapping[str, Any]) -> CallLimits:
    """The limits a request body states (OpenAI chat completions, completions, responses; Anthropic messages)."""
    bound = next((body[k] for k in ("max_completion_tokens", "max_tokens", "max_output_tokens")
                  if isinstance(body.get(k), int) and not isinstance(body.get(k), bool)), None)
    choices = body.get("n") if isinstance(body.get("n"), int) and body.get("n", 1) > 1 else 1
    prompt = None
    source = body.get("messages", body.get("input", body.get("prompt")))
    if source is not None and body.get("system"):
        source = [body["system"], source]
    if source is not None:
        try:
            size = len(json.dumps(source, ensure_ascii=False, default=str).encode())
        except (TypeError, ValueError):
            size = 0
        prompt = size // BYTES_PER_TOKEN + 1
    return CallLimits(bound * choices if bound is not None else None, prompt)


def listen(listener: Refines) -> None:
    """Tell `listener` of each openai/anthropic client call and the limits of those made inside a span
    (installs the hook once)."""
    _listeners.add(listener)
    install()


def unlisten(listener: Refines) -> None:
    """Stop telling `listener` (a guard's span processor shut down: it must not refuse calls any more, even
    while it waits to be garbage collected)."""
    _listeners.discard(listener)


CLIENTS = ("openai", "anthropic")  # Stainless-generated SDKs: the same request-building method


def install() -> None:
    """Hook the clients' request building, once, as each is imported (now, if it already is)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        import wrapt

        for client in CLIENTS:
            wrapt.register_post_import_hook(_hook, f"{client}._base_client")
        _installed = True


def _hook(module: Any) -> None:
    import wrapt

    if hasattr(getattr(module, "BaseClient", None), "_build_request"):
        wrapt.wrap_function_wrapper(module, "BaseClient._build_request", _on_build_request)
    else:
        log.warning("spanwarden: %s has no BaseClient._build_request; leases estimate its calls without "
                    "their max_tokens", module.__name__)


def _on_build_request(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    options = args[0] if args else kwargs.get("options")
    body = getattr(options, "json_data", None)
    span = trace.get_current_span().get_span_context()
    if isinstance(body, Mapping) and _listeners:
        span_id = span.span_id if span.is_valid else 0
        limits = limits_of(body) if span_id else None
        for listener in list(_listeners):
            listener.client_call(span_id, body)  # may raise AgentHalted: the request is not sent
            if limits is not None:
                listener.refine(span_id, limits)
    return wrapped(*args, **kwargs)
