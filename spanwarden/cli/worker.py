"""`spanwarden worker`: one Faust worker of the Kafka runtime."""

from __future__ import annotations

from pathlib import Path

import typer

from spanwarden.cli.errors import CliError
from spanwarden.cli.serve import load_settings


def worker(
    bootstrap: str = typer.Option(None, help="Kafka bootstrap host:port[,...] [SPANWARDEN_KAFKA_BOOTSTRAP]"),
    web_port: int = typer.Option(None, help="this worker's Faust web port on loopback "
                                 "[SPANWARDEN_WORKER_WEB_PORT, default 6066]; one per worker on a machine"),
    partitions: int = typer.Option(None, help="partitions of every topic "
                                   "[SPANWARDEN_KAFKA_PARTITIONS, default 8]"),
    app_id: str = typer.Option(None, help="Faust app id: workers with the same id share the work "
                               "[SPANWARDEN_KAFKA_APP_ID]"),
    state_dir: Path = typer.Option(None, help="this worker's own state directory (one worker each) "
                                   "[SPANWARDEN_STATE_DIR, default .spanwarden]"),
    policy_file: Path = typer.Option(None, "--policy", help="policy YAML [SPANWARDEN_POLICY_FILE]"),
    loglevel: str = typer.Option("info", help="Faust log level"),
) -> None:
    """Run the detectors and enforcers as a Faust worker on Kafka: spans in, decisions and audit out."""
    from spanwarden.streaming import worker as runtime
    from spanwarden.streaming.broker_check import check_now

    settings = load_settings(kafka_bootstrap=bootstrap, worker_web_port=web_port, kafka_partitions=partitions,
                             kafka_app_id=app_id, state_dir=state_dir, policy_file=policy_file)
    if not settings.kafka_bootstrap:
        raise CliError("worker needs Kafka: give --bootstrap HOST:PORT or SPANWARDEN_KAFKA_BOOTSTRAP")
    check_now(settings.kafka_bootstrap)
    runtime.run(settings, loglevel)
