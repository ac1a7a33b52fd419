"""TLS on the receiver and control channel, with the standard OTLP TLS variables on the agent's side: the
real exporter and the guard both verify the service's certificate; plain HTTP is not answered."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import requests
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from spanwarden import AgentHalted
from spanwarden.collector.instrument import guard_processor
from spanwarden.embedded.service import EmbeddedService
from spanwarden.settings import Settings
from tests.conftest import SpanFactory


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out",
                    str(cert)], check=True, capture_output=True)
    return cert, key


def test_spans_and_decisions_over_tls(tmp_path: Path, certificate: tuple[Path, Path],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = certificate
    # requests lets these override the exporter's own CA file (the guard's session does not let them)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    service = EmbeddedService(Settings(port=0, state_dir=tmp_path / "state", audit_fsync="never",
                                       admin_token="t", tls_cert_file=cert, tls_key_file=key))
    port = service.start_in_thread()
    url = f"https://127.0.0.1:{port}"
    try:
        spans = SpanFactory({"service.name": "billing-bot"})
        spans.span("chat", {"gen_ai.request.model": "gpt-4o"})
        exporter = OTLPSpanExporter(endpoint=f"{url}/v1/traces", certificate_file=str(cert))
        assert exporter.export(spans.exporter.get_finished_spans()) is SpanExportResult.SUCCESS
        assert service.pipeline.records_seen == 1
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"{url}/healthz", timeout=5)  # an unknown certificate is not trusted by default

        monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", str(cert))
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")  # must not win here
        processor = guard_processor("billing-bot", url=url)
        killed = requests.post(f"{url}/v1/commands", verify=str(cert), timeout=5,
                               headers={"Authorization": "Bearer t"},
                               json={"command": "kill", "agent": "billing-bot", "reason": "tls test"})
        assert killed.status_code == 200
        assert processor.guard.watcher is not None
        assert processor.guard.watcher.wait_for_version(killed.json()["version"], 10)
        with pytest.raises(AgentHalted):
            processor.guard.check()
        processor.guard.watcher.stop()
    finally:
        service.stop()
