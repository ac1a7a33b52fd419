"""`spanwarden.instrument(...)`: the one-line set-up inside an agent — the OpenTelemetry SDK with an OTLP/HTTP
exporter to spanwarden, and the guard in front of every LLM and tool span.

Configuration resolves argument → environment variable → default, as the OTel SDK does: the standard
`OTEL_*` variables for the exporter, and `SPANWARDEN_*` ones for what is spanwarden's own.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from spanwarden.collector import agent_credentials
from spanwarden.collector import instrumentations as genai
from spanwarden.collector.agent_stamp import AgentStampProcessor
from spanwarden.collector.decision_watcher import DecisionWatcher
from spanwarden.collector.guard import Guard, GuardSpanProcessor
from spanwarden.collector.spend_lease import SpendLease
from spanwarden.tls import agent_session

# Environment variables read by the agent-side plugin (the service's own are in spanwarden.settings).
ENV_CONTROL_URL = "SPANWARDEN_CONTROL_URL"  # the service's control channel; default: the OTLP endpoint's host
ENV_FAIL_MODE = "SPANWARDEN_FAIL_MODE"  # open | closed when the control channel is lost
ENV_OUT_OF_TOUCH_S = "SPANWARDEN_OUT_OF_TOUCH_S"
ENV_AGENT_ID = "SPANWARDEN_AGENT_ID"
ENV_OWNER = "SPANWARDEN_OWNER"
ENV_TEAM = "SPANWARDEN_TEAM"
ENV_SPEND_LEASE = "SPANWARDEN_SPEND_LEASE"  # "1": reserve each LLM call's estimated cost from a lease
# How long instrument() waits for the agent's decisions, and calls before the first answer are held (s).
ENV_READY_TIMEOUT_S = "SPANWARDEN_READY_TIMEOUT_S"
DEFAULT_READY_TIMEOUT_S = 1.0
# Spans leave every second (the SDK's default is 5 s), so they reach the service within its lateness bound and
# a decision is not held back by batching; OTEL_BSP_SCHEDULE_DELAY still decides when it is set.
EXPORT_DELAY_MS = 1000
DEFAULT_ENDPOINT = "http://127.0.0.1:4318"


@dataclass
class Instrumented:
    provider: TracerProvider
    guard: Guard
    instrumentations: list[genai.Activated] = field(default_factory=list)  # what instrument() turned on

    def shutdown(self) -> None:
        genai.deactivate(self.instrumentations)
        self.provider.shutdown()


def control_url(explicit: str | None = None) -> str:
    """The control channel: argument, SPANWARDEN_CONTROL_URL, else the OTLP endpoint (spanwarden serves both)."""
    if explicit:
        return explicit.rstrip("/")
    if os.environ.get(ENV_CONTROL_URL):
        return os.environ[ENV_CONTROL_URL].rstrip("/")
    otlp = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if otlp:
        return otlp.rstrip("/").removesuffix("/v1/traces")
    return DEFAULT_ENDPOINT


def ready_timeout(explicit: float | None = None) -> float:
    """Argument, SPANWARDEN_READY_TIMEOUT_S, else 1 s; a bad value fails naming the variable."""
    if explicit is not None:
        return max(0.0, float(explicit))
    raw = os.environ.get(ENV_READY_TIMEOUT_S)
    try:
        return DEFAULT_READY_TIMEOUT_S if raw is None else max(0.0, float(raw))
    except ValueError:
        raise ValueError(f"{ENV_READY_TIMEOUT_S} must be a number of seconds, not {raw!r}") from None


def guard_processor(agent_id: str, url: str | None = None, fail_mode: str | None = None,
                    environment: str = "", spend_lease: bool | None = None,
                    ready_timeout_s: float | None = None) -> GuardSpanProcessor:
    """A started guard for `agent_id`, as a span processor to add to any TracerProvider. Calls made before
    the service first answers are held up to `ready_timeout_s` from now."""
    session = agent_session()
    token = agent_credentials.authorization()
    if token:  # leases and approval requests are bound to the agents this token speaks for
        session.headers["Authorization"] = token
    watcher = DecisionWatcher(control_url(url), agent_id, environment=environment, session=session).start()
    guard = Guard(agent_id, watcher, fail_mode=fail_mode or os.environ.get(ENV_FAIL_MODE, "open"),
                  out_of_touch_s=float(os.environ.get(ENV_OUT_OF_TOUCH_S, "30")),
                  first_contact_s=ready_timeout(ready_timeout_s))
    leased = spend_lease if spend_lease is not None else os.environ.get(ENV_SPEND_LEASE) == "1"
    return GuardSpanProcessor(guard, SpendLease(control_url(url), agent_id, session=session) if leased else None)


def instrument(agent_id: str | None = None, owner: str | None = None, team: str | None = None,
               environment: str | None = None, endpoint: str | None = None, fail_mode: str | None = None,
               spend_lease: bool | None = None, set_global: bool = True,
               ready_timeout_s: float | None = None,
               instrumentations: str | Sequence[str] | None = None) -> Instrumented:
    """Set up tracing for an agent with spanwarden's guard; returns the provider and the guard, once the
    guard has the agent's decisions (or `ready_timeout_s`, default SPANWARDEN_READY_TIMEOUT_S or 1 s, has
    passed: then its first calls go by the fail mode). The installed LLM and agent instrumentations are turned
    on, one per library (`instrumentations`: "auto", "none" or the names to turn on, default
    SPANWARDEN_INSTRUMENTATIONS; see spanwarden.collector.instrumentations)."""
    attributes = {
        "service.name": agent_id or os.environ.get(ENV_AGENT_ID) or os.environ.get("OTEL_SERVICE_NAME"),
        "spanwarden.owner": owner or os.environ.get(ENV_OWNER),
        "spanwarden.team": team or os.environ.get(ENV_TEAM),
        "deployment.environment.name": environment,
        "spanwarden.agent_id_from": "instrument" if agent_id else None,  # what `audit explain` says
    }
    resource = Resource.create({k: v for k, v in attributes.items() if v})  # OTEL_RESOURCE_ATTRIBUTES merge in
    agent = str(resource.attributes.get("service.name") or "unknown")
    provider = TracerProvider(resource=resource)
    processor = guard_processor(agent, endpoint, fail_mode,
                                str(resource.attributes.get("deployment.environment.name", "")), spend_lease,
                                ready_timeout_s)
    provider.add_span_processor(AgentStampProcessor())  # children carry their agent span's name
    provider.add_span_processor(processor)
    exporter = OTLPSpanExporter(endpoint=f"{control_url(endpoint)}/v1/traces") if endpoint else OTLPSpanExporter()
    delay = None if os.environ.get("OTEL_BSP_SCHEDULE_DELAY") else EXPORT_DELAY_MS
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=delay))
    if set_global:
        trace.set_tracer_provider(provider)
    activated = genai.activate(provider, instrumentations if instrumentations is None
                               or isinstance(instrumentations, str) else ",".join(instrumentations) or "none")
    watcher = processor.guard.watcher
    if watcher is not None:
        watcher.wait_heard(processor.guard.first_contact_by - processor.guard.monotonic())
    return Instrumented(provider, processor.guard, activated)
