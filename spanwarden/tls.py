"""TLS for the receiver and control channel: the service's side from settings, the agent's side from the
standard OTLP variables, so one set of certificates serves the exporter and the guard."""

from __future__ import annotations

import os
import ssl
from typing import TYPE_CHECKING, Any

import requests

if TYPE_CHECKING:  # the agent side imports this module without the service's settings
    from spanwarden.settings import Settings


def server_context(settings: Settings) -> ssl.SSLContext | None:
    """None without a certificate; with `tls_client_ca_file`, clients must present a certificate it signed."""
    if not settings.tls_cert_file:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    if settings.tls_client_ca_file:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(settings.tls_client_ca_file)
    return context


def agent_session() -> requests.Session:
    """The guard's HTTP session, trusting and presenting what the OTLP exporter does:
    OTEL_EXPORTER_OTLP_CERTIFICATE (CA to verify the service), OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and
    _CLIENT_KEY (mutual TLS); the traces-specific variants win."""
    session = _OwnVerifySession()
    ca = _otlp_env("CERTIFICATE")
    if ca:
        session.verify = ca
    cert, key = _otlp_env("CLIENT_CERTIFICATE"), _otlp_env("CLIENT_KEY")
    if cert:
        session.cert = (cert, key) if key else cert
    return session


class _OwnVerifySession(requests.Session):
    """requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a session's own CA file; the guard must
    trust the CA it was given for the service."""

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> Any:
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if verify is None and isinstance(self.verify, str):
            settings["verify"] = self.verify
        return settings


def _otlp_env(name: str) -> str | None:
    return os.environ.get(f"OTEL_EXPORTER_OTLP_TRACES_{name}") or os.environ.get(f"OTEL_EXPORTER_OTLP_{name}")
