"""The agent's credential for the control channel: the same `Authorization` header its OTLP exporter sends.

One rule, so an agent has one token to configure: the guard reads `OTEL_EXPORTER_OTLP_TRACES_HEADERS`, else
`OTEL_EXPORTER_OTLP_HEADERS` (parsed as the OTel SDK parses them, e.g.
`Authorization=Bearer%20<token>`), and sends that header with its lease and approval requests, which the
service binds to the agents the token speaks for (as it does spans).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from opentelemetry.util.re import parse_env_headers

HEADER_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")


def authorization(environ: Mapping[str, str] | None = None) -> str | None:
    """The `Authorization` header the agent's trace exporter sends, or None."""
    env = os.environ if environ is None else environ
    for variable in HEADER_VARIABLES:
        if env.get(variable):
            return parse_env_headers(env[variable], liberal=True).get("authorization")
    return None
