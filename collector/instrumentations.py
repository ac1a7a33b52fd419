"""The LLM and agent instrumentations `instrument()` turns on: those installed, found through their
`opentelemetry_instrumentor` entry points as `opentelemetry-instrument` finds them, one per instrumented
library, so that the one-liner makes the spans the guard stands in front of.

Several packages often instrument the same library (openai-v2, OpenLLMetry and OpenInference all register
"openai"); turning on two would report each call twice, so one is chosen per library: the OpenTelemetry
project's own GenAI instrumentation first, then OpenLLMetry, then OpenInference, and none when the library is
already instrumented (the agent set one up itself) or makes its own spans (the Anthropic SDK).
`SPANWARDEN_INSTRUMENTATIONS` (or the argument) is `auto` (the default), `none`, or a comma-separated list of
libraries or distributions to turn on; the standard `OTEL_PYTHON_DISABLED_INSTRUMENTATIONS` is honoured too.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

log = logging.getLogger("spanwarden")
ENV_INSTRUMENTATIONS = "SPANWARDEN_INSTRUMENTATIONS"
GROUP = "opentelemetry_instrumentor"

# Libraries whose instrumentation makes LLM, tool or agent spans (entry point names, as each package
# registers them). Others (HTTP clients, databases, web frameworks) are the agent's business: instrumenting
# an HTTP client here would report every LLM call a second time as a plain HTTP span.
GENAI_LIBRARIES = frozenset({
    "openai", "openai_v2", "openai_agents", "openai-agents", "openai_agents_v2", "anthropic", "google_genai",
    "google-genai", "vertexai", "vertex_ai", "bedrock", "mistralai", "cohere", "groq", "ollama", "together",
    "replicate", "litellm", "langchain", "langgraph", "llama_index", "llamaindex", "crewai", "dspy", "haystack",
    "mcp", "pydantic_ai", "agno", "autogen", "smolagents", "beeai", "instructor", "guardrails", "watsonx",
    "alephalpha", "transformers", "sagemaker", "gemini",
})
_once: set[str] = set()
# Libraries that make their own OpenTelemetry spans in current releases (the Anthropic SDK does whenever a
# tracer provider exists): an instrumentation beside them would report each call a second time. The file
# that says so, looked for without importing the library.
SELF_TRACING = {"anthropic": "_tracing.py"}


@dataclass(frozen=True)
class Activated:
    library: str  # the entry point's name, e.g. "openai"
    distribution: str  # e.g. "opentelemetry-instrumentation-openai-v2"
    version: str
    instrumentor: Any

    def __str__(self) -> str:
        return f"{self.library} ({self.distribution} {self.version})"


def _rank(distribution: str, module: str) -> int:
    """Lower first: the OpenTelemetry project's GenAI instrumentations, OpenLLMetry, OpenInference, others."""
    if distribution.endswith("-v2") or module.endswith("_v2") or distribution in (
            "opentelemetry-instrumentation-google-genai", "opentelemetry-instrumentation-vertexai"):
        return 0
    if distribution.startswith("opentelemetry-instrumentation-"):
        return 1
    if distribution.startswith("openinference-instrumentation-"):
        return 2
    return 3


def _chosen(setting: str) -> set[str] | None:
    """None for automatic choice, else the names (libraries or distributions) asked for."""
    value = setting.strip().lower()
    if value in ("", "auto"):
        return None
    if value in ("none", "off", "0", "false"):
        return set()
    return {v.strip() for v in value.split(",") if v.strip()}


def _candidates(points: Iterable[EntryPoint], wanted: set[str] | None) -> dict[str, list[EntryPoint]]:
    disabled = {x.strip() for x in os.environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "").split(",")}
    by_library: dict[str, list[EntryPoint]] = {}
    for point in points:
        dist = point.dist.name.lower() if point.dist is not None else ""
        if point.name in disabled or "*" in disabled:
            continue
        if wanted is None and point.name not in GENAI_LIBRARIES and not dist.startswith("openinference-"):
            continue
        if wanted is not None and point.name not in wanted and dist not in wanted:
            continue
        by_library.setdefault(point.name, []).append(point)
    for options in by_library.values():
        options.sort(key=lambda p: (_rank(p.dist.name.lower() if p.dist else "", p.module), p.value))
    return by_library


def traces_itself(library: str) -> bool:
    """Whether the installed `library` makes its own spans (found from its files, without importing it)."""
    marker = SELF_TRACING.get(library)
    if marker is None:
        return False
    try:
        spec = importlib.util.find_spec(library)
    except (ImportError, ValueError):
        return False
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    return any(os.path.exists(os.path.join(location, marker)) for location in locations)


def activate(tracer_provider: Any, setting: str | None = None,
             points: Iterable[EntryPoint] | None = None) -> list[Activated]:
    """Turn on one installed instrumentation per LLM/agent library, with `tracer_provider`; returns what was
    turned on (logged), and warns once when nothing could be."""
    from opentelemetry.instrumentation.dependencies import get_dist_dependency_conflicts

    wanted = _chosen(setting if setting is not None else os.environ.get(ENV_INSTRUMENTATIONS, "auto"))
    if wanted == set():
        return []
    found = _candidates(points if points is not None else entry_points(group=GROUP), wanted)
    activated: list[Activated] = []
    failed = 0
    for library, options in sorted(found.items()):
        if wanted is None and traces_itself(library):
            log.info("spanwarden: %s makes its own OpenTelemetry spans: no instrumentation turned on for it",
                     library)
            continue
        usable = []
        for point in options:
            if point.dist is not None and get_dist_dependency_conflicts(point.dist) is not None:
                continue  # the library it instruments is not installed (or not a version it supports)
            try:
                usable.append((point, point.load()()))  # instrumentors are singletons: this is the one in use
            except Exception as exc:  # a broken instrumentation must never stop the agent
                failed += 1
                log.warning("spanwarden: could not load the %s instrumentation from %s: %s", library,
                            point.dist.name if point.dist else point.value, exc)
        if any(instrumentor.is_instrumented_by_opentelemetry for _, instrumentor in usable):
            continue  # the agent instrumented this library itself: leave it as it is
        for point, instrumentor in usable:
            try:
                instrumentor.instrument(tracer_provider=tracer_provider, skip_dep_check=True)
            except Exception as exc:
                failed += 1
                log.warning("spanwarden: could not turn on the %s instrumentation from %s: %s", library,
                            point.dist.name if point.dist else point.value, exc)
                continue
            dist = point.dist
            activated.append(Activated(library, dist.name if dist else point.value,
                                       dist.version if dist else "", instrumentor))
            break
    if activated:
        log.info("spanwarden: turned on the instrumentations %s", ", ".join(map(str, activated)))
    elif wanted is None and not failed and "none-installed" not in _once:
        _once.add("none-installed")
        log.warning("spanwarden: no LLM instrumentation is installed, so LLM calls make no spans and the guard "
                    "cannot stand in front of them: pip install 'spanwarden[openai]' (or [anthropic]), or your "
                    "framework's OpenTelemetry instrumentation; %s=none silences this", ENV_INSTRUMENTATIONS)
    return activated


def deactivate(activated: Iterable[Activated]) -> None:
    for item in activated:
        try:
            item.instrumentor.uninstrument()
        except Exception as exc:  # shutting down must not raise in the agent
            log.warning("spanwarden: could not turn off the %s instrumentation: %s", item.library, exc)
