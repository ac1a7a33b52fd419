"""spanwarden: watch every AI agent through OpenTelemetry, learn what normal looks like per agent, and
warn, throttle or halt the abnormal within seconds, with an audit trail that names who was responsible."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["AccessPending", "AgentHalted", "instrument", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `import spanwarden` stays cheap inside an agent's process.
    if name == "AgentHalted":
        from spanwarden.collector.halted import AgentHalted

        return AgentHalted
    if name == "AccessPending":
        from spanwarden.collector.halted import AccessPending

        return AccessPending
    if name == "instrument":
        from spanwarden.collector.instrument import instrument

        return instrument
    raise AttributeError(f"module 'spanwarden' has no attribute {name!r}")
