"""Zero-code set-up: `opentelemetry-instrument python agent.py` with spanwarden installed.

`SpanwardenDistro` defaults the exporter to OTLP over HTTP; `SpanwardenConfigurator` runs the OTel SDK's own
configuration from the standard `OTEL_*` variables, then adds the guard to the tracer provider it made. Both
are registered as entry points (`opentelemetry_distro`, `opentelemetry_configurator`, named "spanwarden");
community instrumentations (e.g. opentelemetry-instrumentation-openai-v2) load as usual beside them.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]
from opentelemetry.sdk._configuration import _OTelSDKConfigurator
from opentelemetry.sdk.trace import TracerProvider

from spanwarden.collector.agent_stamp import AgentStampProcessor
from spanwarden.collector.instrument import ENV_AGENT_ID, guard_processor

log = logging.getLogger(__name__)


class SpanwardenDistro(BaseDistro):  # type: ignore[misc]
    def _configure(self, **kwargs: Any) -> None:
        os.environ.setdefault("OTEL_TRACES_EXPORTER", "otlp")
        os.environ.setdefault("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")


class SpanwardenConfigurator(_OTelSDKConfigurator):  # type: ignore[misc]
    def _configure(self, **kwargs: Any) -> None:
        super()._configure(**kwargs)
        provider = trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            log.error("spanwarden: no SDK tracer provider was configured; the guard is not installed")
            return
        agent = os.environ.get(ENV_AGENT_ID) or str(provider.resource.attributes.get("service.name", "unknown"))
        environment = str(provider.resource.attributes.get("deployment.environment.name", ""))
        provider.add_span_processor(AgentStampProcessor())  # children carry their agent span's name
        provider.add_span_processor(guard_processor(agent, environment=environment))
