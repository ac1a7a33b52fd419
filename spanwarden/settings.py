"""Service settings: argument → `SPANWARDEN_*` environment variable → default, validated at start-up with
a message that names the key."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Hosts that are never external (egress): loopback and the usual private suffixes.
INTERNAL_DOMAINS = ("localhost", "127.0.0.1", "::1", "*.local", "*.internal", "*.svc", "*.svc.cluster.local")


class Settings(BaseSettings):
    """Every setting of the embedded service; each is also `SPANWARDEN_<NAME>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="SPANWARDEN_", extra="forbid")

    host: str = Field("127.0.0.1", description="address the receiver and control channel listen on")
    port: int = Field(4318, ge=0, le=65535, description="port (OTLP/HTTP's standard 4318); 0 picks a free one")
    state_dir: Path = Field(Path(".spanwarden"), description="baselines, decisions and the audit log")
    policy_file: Path | None = Field(None, description="policy YAML; the shipped default when unset")
    price_file: Path | None = Field(None, description="model prices overriding/adding to the shipped table")
    default_input_price: float = Field(10.0, ge=0, description="USD per million input tokens, unpriced models")
    default_output_price: float = Field(30.0, ge=0, description="USD per million output tokens, unpriced models")
    max_body_bytes: int = Field(16 << 20, gt=0, description="largest OTLP body, compressed or not")
    audit_hmac_key: str | None = Field(None, description="signs the audit chain (HMAC-SHA256) when set")
    audit_fsync: Literal["always", "never"] = Field("always", description="fsync each audit entry")
    audit_rotate_bytes: int = Field(64 << 20, gt=4096, description="start a new audit segment past this size")
    redact_patterns: list[str] = Field(default_factory=list,
                                       description="extra regexes whose matches are redacted from the audit log")
    ingest_auth: Literal["auto", "required", "untrusted", "off"] = Field(
        "auto", description="bearer tokens on spans: required (401/403), untrusted (spans without a token are "
        "kept apart and never enforced on), off; auto: required unless the service listens on loopback only")
    tls_cert_file: Path | None = Field(None, description="serve the receiver and control channel over TLS with "
                                       "this certificate (PEM, with its chain)")
    tls_key_file: Path | None = Field(None, description="the certificate's private key (PEM)")
    tls_client_ca_file: Path | None = Field(None, description="require client certificates signed by this CA")
    admin_token: str | None = Field(None, description="an admin bearer token; generated when unset")
    tokens_file: Path | None = Field(None, description="named tokens with roles; default STATE_DIR/tokens.yaml")
    activity_max_bytes: int = Field(16 << 20, ge=4096, description="per-agent span journal kept for incident "
                                    "reports: past this size a file is rotated (one previous kept)")
    min_free_disk_bytes: int = Field(16 << 20, ge=0, description="below this much free space under the state dir, "
                                     "spans and commands are refused (503) rather than taken in unaudited")
    snapshot_interval_s: float = Field(5.0, gt=0, description="how often baselines are saved to disk")
    max_lateness_s: float = Field(3.0, ge=0, le=3600, description="a span's end time is held to no earlier than "
                                  "this before the service received it (clamped and flagged beyond); records wait "
                                  "this long to be judged in event-time order")
    max_skew_s: float = Field(5.0, ge=0, le=3600, description="a span's end time is held to no later than this "
                              "after the service received it (clamped and flagged beyond)")
    trust_span_time: bool = Field(False, description="take each span's end time as it comes, unclamped: only for "
                                  "replaying recorded spans, never in production (an agent could move its own "
                                  "clock)")
    long_poll_s: float = Field(25.0, gt=0, le=300, description="longest a control-channel poll is held")
    new_agents_per_minute: int = Field(6000, ge=1, description="new agent names each ingest token (or the "
                                       "anonymous sender) may bring a minute; spans of names past it are dropped "
                                       "(counted, audited once)")
    max_agents_in_memory: int = Field(20_000, ge=10, description="agents whose baselines stay in memory; past "
                                      "it the least recently seen are paged out to state.db and back on their "
                                      "next span")
    decode_processes: int | None = Field(None, ge=0, le=64, description="processes that decode and "
                                         "normalise OTLP bodies beside the event loop; 0: on the loop itself; "
                                         "unset: one per core but the loop's, at most 4 (none on one core)")
    max_untrusted_agents: int = Field(1000, ge=0, description="untrusted: agents (spans without a token) kept at "
                                      "most; spans of further ones are dropped (counted, audited once)")
    datadog_export: Literal["auto", "on", "off"] = Field("auto", description="send metrics, events and audit "
                                                         "logs to Datadog (auto: when DD_API_KEY is set)")
    datadog_host: str | None = Field(None, description="Datadog API base URL; default from DD_SITE")
    datadog_flush_s: float = Field(10.0, gt=0, description="how often metrics are rolled up and sent")
    datadog_max_agents: int = Field(1000, ge=1, description="distinct agent tags sent; the rest as agent:other")
    datadog_queue_batches: int = Field(100, ge=1, description="batches held while Datadog is slow or down")
    kafka_bootstrap: str = Field("", description="Kafka bootstrap servers (host:port,...): `serve` publishes "
                                 "spans to Kafka and reads decisions from it instead of detecting in-process")
    kafka_app_id: str = Field("spanwarden", min_length=1, description="Faust app id (consumer group, changelogs)")
    kafka_partitions: int = Field(8, ge=1, le=1024, description="partitions of every spanwarden topic")
    kafka_replication_factor: int = Field(1, ge=1, description="replicas of every spanwarden topic (3 in "
                                          "production clusters)")
    worker_web_port: int = Field(6066, ge=1, le=65535, description="a worker's Faust web port (loopback)")
    worker_max_agents_in_memory: int = Field(20_000, ge=1, description="agents a worker keeps loaded; others "
                                             "are read back from the state table on their next span")
    worker_store: Literal["rocksdb", "memory"] = Field("rocksdb", description="where a worker keeps its state "
                                                       "table: rocksdb (on disk: a restart reads only the "
                                                       "changelog's tail) or memory (the whole changelog)")
    worker_priors_publish_s: float = Field(60.0, gt=0, le=3600, description="how often a worker publishes its "
                                           "agents' pooled spend for the fleet's peer priors")
    kafka_fetch_max_wait_ms: int = Field(100, ge=1, le=10_000, description="longest a worker's fetch waits "
                                         "for data (Faust fixes 1500 ms; brokers that hold fetches add that "
                                         "per hop)")
    kafka_command_timeout_s: float = Field(10.0, gt=0, description="how long `serve --kafka` waits for a "
                                           "worker to apply a command")
    slack_webhook_url: str | None = Field(None, description="a Slack incoming webhook: approval and access "
                                          "requests, halts and budget warnings are posted there")
    pagerduty_routing_key: str | None = Field(None, description="a PagerDuty Events API v2 integration key: "
                                              "requests and halts trigger incidents, resolved when answered")
    pagerduty_url: str = Field("https://events.pagerduty.com/v2/enqueue", description="PagerDuty's events "
                               "endpoint (a proxy, or a test receiver)")
    webhook_url: str | None = Field(None, description="a URL that gets every notice as JSON")
    webhook_secret: str | None = Field(None, description="signs the webhook's JSON (HMAC-SHA256 headers)")
    notify: dict[str, str] = Field(default_factory=dict, description="which notices each destination takes, "
                                   'e.g. {"slack": "halt,budget_warning"} (default: slack and webhook all; '
                                   "pagerduty approval_request,access_request,halt)")
    metrics_max_agents: int = Field(1000, ge=1, description="agents with their own label on /metrics; the rest "
                                    'share agent="other"')
    console_url: str | None = Field(None, description="the URL people reach this service's console at, for "
                                    "the links in notifications")
    internal_domains: list[str] = Field(
        default_factory=lambda: list(INTERNAL_DOMAINS), description="the agents' own services (host patterns, "
        "JSON list): a write to any other host outside an agent's profile is held as an access request in the "
        "environments of the policy's access_requests (egress)")

    @field_validator("notify")
    @classmethod
    def _notices_known(cls, notify: dict[str, str]) -> dict[str, str]:
        from spanwarden.notify.targets import parse_notices

        for target, kinds in notify.items():
            if target not in ("slack", "pagerduty", "webhook"):
                raise ValueError(f"unknown destination {target!r}; one of slack, pagerduty, webhook")
            parse_notices(kinds)
        return notify

    @field_validator("redact_patterns")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from exc
        return patterns

    @property
    def ingest_mode(self) -> str:
        if self.ingest_auth != "auto":
            return self.ingest_auth
        return "off" if self.host in ("127.0.0.1", "localhost", "::1") else "required"

    @property
    def audit_path(self) -> Path:
        return self.state_dir / "audit.jsonl"

    @property
    def snapshot_path(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def tokens_path(self) -> Path:
        return self.tokens_file or self.state_dir / "tokens.yaml"

    @property
    def token_path(self) -> Path:
        return self.state_dir / "admin.token"


def admin_token(settings: Settings) -> str:
    """The admin bearer token: the configured one, else the one in STATE_DIR/admin.token (made on first use,
    readable by its owner only)."""
    if settings.admin_token:
        return settings.admin_token
    path = settings.token_path
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    path.touch(mode=0o600)
    path.write_text(token)
    return token
