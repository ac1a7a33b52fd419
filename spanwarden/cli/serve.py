"""`spanwarden serve`: the embedded service (or, with --kafka, the gateway of the Kafka runtime)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from spanwarden.cli.errors import CliError

if TYPE_CHECKING:
    from spanwarden.settings import Settings


def load_settings(**overrides: object) -> Settings:
    """Settings from arguments over SPANWARDEN_* variables; a bad value exits naming the key."""
    from pydantic import ValidationError

    from spanwarden.settings import Settings

    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"])
            problems.append(f"setting {key} (SPANWARDEN_{key.upper()}): {err['msg']}")
        raise CliError("; ".join(problems)) from None


def endpoint_hint(settings: Settings, port: int) -> str:
    """What to tell agents: the base URL for OTEL_EXPORTER_OTLP_ENDPOINT (the exporter adds /v1/traces)."""
    scheme = "https" if settings.tls_cert_file else "http"
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"{scheme}://{host}:{port}"


def serve(
    host: str = typer.Option(None, help="listen address [SPANWARDEN_HOST, default 127.0.0.1]"),
    port: int = typer.Option(None, help="listen port [SPANWARDEN_PORT, default 4318]"),
    state_dir: Path = typer.Option(None, help="state directory [SPANWARDEN_STATE_DIR, default .spanwarden]"),
    policy_file: Path = typer.Option(None, "--policy", help="policy YAML [SPANWARDEN_POLICY_FILE]"),
    kafka: str = typer.Option(None, "--kafka", help="Kafka bootstrap host:port: publish spans to Kafka and serve "
                              "decisions made by `spanwarden worker`s [SPANWARDEN_KAFKA_BOOTSTRAP]"),
) -> None:
    """Run the OTLP receiver, detectors, enforcers, control channel and audit log in one process — or, with
    --kafka, the receiver, control channel and audit log in front of Faust workers."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings(host=host, port=port, state_dir=state_dir, policy_file=policy_file,
                             kafka_bootstrap=kafka)
    if settings.kafka_bootstrap:
        from spanwarden.streaming.broker_check import check_now
        from spanwarden.streaming.gateway import KafkaGateway

        check_now(settings.kafka_bootstrap)
        service: object = KafkaGateway(settings)
    else:
        from spanwarden.embedded.service import EmbeddedService

        service = EmbeddedService(settings)
    bound = service.claim.port  # type: ignore[attr-defined]
    typer.echo(f"spanwarden: listening on {settings.host}:{bound}; point agents at it with\n"
               f"  OTEL_EXPORTER_OTLP_ENDPOINT={endpoint_hint(settings, bound)}\n"
               f"commands (spanwarden status, kill, ...) use the token in {settings.token_path}\n"
               f"web console: {endpoint_hint(settings, bound)}/ (sign in with a named token: spanwarden token add "
               "NAME --role oncall)", err=True)
    service.run()  # type: ignore[attr-defined]
