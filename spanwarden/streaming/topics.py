"""Topic names and their declaration: one place, shared by the worker, the gateway, the bench, the compose
file and the OpenTelemetry Collector config (a test checks that the last two agree with these)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SPANS = "spanwarden.spans"  # OTLP protobuf ExportTraceServiceRequest, as the Collector's Kafka exporter writes
RECORDS = "spanwarden.records"  # normalised record batches keyed by agent id
COMMANDS = "spanwarden.commands"  # on-call commands keyed by agent id
FINDINGS = "spanwarden.findings"  # every finding, keyed by agent id
DECISIONS = "spanwarden.decisions"  # compacted: each agent's newest decision and current view
AUDIT = "spanwarden.audit"  # audit entries with idempotence keys, written to the chained log by the gateway
AGENTS = "spanwarden.agents"  # compacted: each agent's identity (owner, team, environment), the fleet directory
TEAM_SPEND = "spanwarden.team-spend"  # priced records re-keyed by team, for the team stage (`team_stage.py`)
PEER_PRIORS = "spanwarden.peer-priors"  # compacted: pooled spend histories by partition and group
POLICY = "spanwarden.policy"  # compacted, one partition: the policy in force (`policy_topic.py`)
ACTIVITY = "spanwarden.activity"  # each agent's activity rollups, for the gateway's journal (`activity_rollup.py`)
BEHAVIOUR_VECTORS = "spanwarden.behaviour-vectors"  # the workers' normal minute vectors, for the refitter
BEHAVIOUR_MODEL = "spanwarden.behaviour-model"  # compacted, one partition: the fleet's behaviour model in force
COMPACTED = (DECISIONS, AGENTS, POLICY, PEER_PRIORS, BEHAVIOUR_MODEL)
SINGLE_PARTITION = (POLICY, BEHAVIOUR_VECTORS, BEHAVIOUR_MODEL)  # one order for everyone who reads it
RETENTION_MS = {BEHAVIOUR_VECTORS: 24 * 3600 * 1000}  # what the refitter re-reads after a restart
ALL = (SPANS, RECORDS, COMMANDS, FINDINGS, DECISIONS, AUDIT, AGENTS, POLICY, TEAM_SPEND, PEER_PRIORS, ACTIVITY,
       BEHAVIOUR_VECTORS, BEHAVIOUR_MODEL)
AGENT_STATE_TABLE = "agent-state"  # Faust table (changelog `<app id>-agent-state-changelog`)
TEAM_STATE_TABLE = "team-state"  # Faust table keyed by team (the team stage's spend windows)
SPANS_ENCODING = "otlp_proto"  # the Collector Kafka exporter's `encoding` for what SPANS carries


@dataclass(frozen=True)
class Topics:
    spans: Any
    records: Any
    commands: Any
    findings: Any
    decisions: Any
    audit: Any
    agents: Any
    team_spend: Any
    peer_priors: Any
    activity: Any = None
    behaviour_vectors: Any = None


def declare(app: Any, partitions: int) -> Topics:
    """Declare every topic on a Faust app. Records, commands and the state table share the partition count
    so Faust assigns an agent's records, commands and state to the same worker."""

    def topic(name: str, **kwargs: Any) -> Any:
        return app.topic(name, partitions=partitions, key_type=bytes, value_type=bytes,
                         key_serializer="raw", value_serializer="raw", **kwargs)

    return Topics(spans=topic(SPANS), records=topic(RECORDS), commands=topic(COMMANDS),
                  findings=topic(FINDINGS), decisions=topic(DECISIONS, compacting=True), audit=topic(AUDIT),
                  agents=topic(AGENTS, compacting=True), team_spend=topic(TEAM_SPEND),
                  peer_priors=topic(PEER_PRIORS, compacting=True), activity=topic(ACTIVITY),
                  behaviour_vectors=app.topic(BEHAVIOUR_VECTORS, partitions=1, key_type=bytes, value_type=bytes,
                                              key_serializer="raw", value_serializer="raw"))
