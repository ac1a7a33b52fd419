"""`spanwarden serve`: the embedded service."""

from __future__ import annotations

import logging
from pathlib import Path

import typer
from pydantic import ValidationError

from spanwarden.collector.pricing import PriceTableError
from spanwarden.enforcers.audit_log import AuditError
from spanwarden.enforcers.policy import PolicyError
from spanwarden.enforcers.roles import TokenFileError
from spanwarden.settings import Settings


def load_settings(**overrides: object) -> Settings:
    """Settings from arguments over SPANWARDEN_* variables; a bad value exits naming the key."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)  # type: ignore[arg-type]
    except ValidationError as exc:
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"])
            typer.echo(f"spanwarden: setting {key} (SPANWARDEN_{key.upper()}): {err['msg']}", err=True)
        raise typer.Exit(2) from None


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
    from spanwarden.embedded.service import EmbeddedService
    from spanwarden.streaming.gateway import KafkaGateway

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings(host=host, port=port, state_dir=state_dir, policy_file=policy_file,
                             kafka_bootstrap=kafka)
    try:
        service: EmbeddedService | KafkaGateway = (
            KafkaGateway(settings) if settings.kafka_bootstrap else EmbeddedService(settings))
    except (PolicyError, PriceTableError, AuditError, TokenFileError, OSError) as exc:
        typer.echo(f"spanwarden: cannot start: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"spanwarden: OTLP/HTTP on http://{settings.host}:{settings.port}/v1/traces; commands need the "
               f"token in {settings.token_path}", err=True)
    service.run()
