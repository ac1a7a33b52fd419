"""The Faust app, alone in its module: settings in, app out. Topics, tables and agents attach to it in
their own modules (`worker.build`)."""

from __future__ import annotations

import faust

from spanwarden.settings import Settings
from spanwarden.streaming.fetch_wait import use_fetch_wait


def broker_urls(bootstrap: str) -> list[str]:
    """`host:port,host:port` (Kafka's bootstrap form) → Faust broker URLs."""
    hosts = [h.strip() for h in bootstrap.split(",") if h.strip()]
    if not hosts:
        raise ValueError("kafka_bootstrap is empty: give host:port (SPANWARDEN_KAFKA_BOOTSTRAP or --bootstrap)")
    return [h if "://" in h else f"kafka://{h}" for h in hosts]


def create_app(settings: Settings) -> faust.App:
    settings.state_dir.mkdir(parents=True, exist_ok=True)  # Faust makes its data dir, not the parents
    app = faust.App(
        settings.kafka_app_id,
        broker=broker_urls(settings.kafka_bootstrap),
        # rocksdb: the table on disk with the changelog offset it holds, so a restart reads only the tail.
        store=f"{settings.worker_store}://",
        topic_partitions=settings.kafka_partitions,
        topic_replication_factor=settings.kafka_replication_factor,
        key_serializer="raw",
        value_serializer="raw",
        # Faust binds its web server even when it is not used: keep it on loopback, one port per worker.
        web_bind="127.0.0.1",
        web_port=settings.worker_web_port,
        # Shorter group timeouts than Faust's defaults: a rebalance after a worker dies takes seconds, not 30.
        broker_session_timeout=6.0,
        broker_heartbeat_interval=1.0,
        autodiscover=False,
        datadir=str(settings.state_dir / f"faust-{settings.kafka_app_id}"),  # not `<app id>-data` in the cwd
    )
    use_fetch_wait(app, settings.kafka_fetch_max_wait_ms)
    return app
