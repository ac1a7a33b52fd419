"""docker-compose.yml and the Collector config agree with what the worker expects: the spans topic and its
encoding, one bootstrap for everyone, the same partitions and app id for every worker, valid settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from spanwarden.settings import Settings
from spanwarden.streaming.topics import SPANS, SPANS_ENCODING

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / name).read_text())


def _env(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in service.get("environment", {}).items() if k != "<<"}


def test_the_collector_writes_otlp_protobuf_to_the_spans_topic_of_the_compose_broker() -> None:
    collector, compose = _load("deploy/otel-collector.yaml"), _load("docker-compose.yml")
    kafka = collector["exporters"]["kafka"]
    assert (kafka["topic"], kafka["encoding"]) == (SPANS, SPANS_ENCODING)
    traces = collector["service"]["pipelines"]["traces"]
    assert "otlp" in traces["receivers"] and traces["exporters"] == ["kafka"] and "batch" in traces["processors"]
    advertised = compose["services"]["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert advertised.removeprefix("PLAINTEXT://") in kafka["brokers"]
    service = compose["services"]["otel-collector"]
    mount = next(v for v in service["volumes"] if v.startswith("./deploy/otel-collector.yaml:"))
    assert f"--config={mount.split(':')[1]}" in service["command"]


def test_every_spanwarden_service_shares_bootstrap_partitions_and_app_id_with_valid_settings() -> None:
    compose = _load("docker-compose.yml")
    services = {name: s for name, s in compose["services"].items() if s.get("build")}
    assert {"spanwarden", "worker-1", "worker-2"} <= set(services)
    envs = {name: _env(s) for name, s in services.items()}
    bootstrap = compose["services"]["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"].removeprefix("PLAINTEXT://")
    for name, env in envs.items():
        settings = Settings(**{k.removeprefix("SPANWARDEN_").lower(): v for k, v in env.items()})  # validates
        assert settings.kafka_bootstrap == bootstrap, name
    shared = {(e["SPANWARDEN_KAFKA_PARTITIONS"], e["SPANWARDEN_KAFKA_APP_ID"]) for e in envs.values()}
    assert len(shared) == 1
    workers = [n for n, s in services.items() if s["command"] == ["worker"]]
    assert len({envs[w]["SPANWARDEN_WORKER_WEB_PORT"] for w in workers}) == len(workers) == 2
    gateway = services["spanwarden"]
    port = gateway["command"][gateway["command"].index("--port") + 1]
    assert any(p.endswith(f":{port}") for p in gateway["ports"])
