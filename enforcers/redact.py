"""Secrets are redacted before anything is written to the audit log (LiteLLM's audit log once wrote raw
API keys): bearer tokens, provider API keys, and any pattern a deployment adds."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

DEFAULT_PATTERNS = (
    r"(?i)bearer\s+[A-Za-z0-9._~+/=-]{8,}",
    r"\bsk-[A-Za-z0-9_-]{16,}",  # OpenAI / Anthropic style keys
    r"\bAKIA[0-9A-Z]{16}\b",  # AWS access key ids
    r"\bgh[pousr]_[A-Za-z0-9]{30,}",  # GitHub tokens
    r"\bxox[baprs]-[A-Za-z0-9-]{10,}",  # Slack tokens
    r"(?i)(api[_-]?key|token|secret|password)([\"']?\s*[:=]\s*[\"']?)[^\s\"',;&]{6,}",
)
REDACTED = "[REDACTED]"


class Redactor:
    def __init__(self, extra_patterns: Iterable[str] = ()) -> None:
        self._patterns = [re.compile(p) for p in (*DEFAULT_PATTERNS, *extra_patterns)]

    def text(self, value: str) -> str:
        for pattern in self._patterns:
            if pattern.groups >= 2:
                value = pattern.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", value)
            else:
                value = pattern.sub(REDACTED, value)
        return value

    def value(self, value: Any) -> Any:
        """Redact every string inside a JSON-like value."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value
