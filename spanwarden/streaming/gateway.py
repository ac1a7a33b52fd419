"""`spanwarden serve --kafka`: what agents and on-call people talk to when workers do the detecting.

It takes OTLP spans in and publishes them to the spans topic, serves the control channel from the
decisions topic, turns on-call commands into messages for the worker that owns the agent (answering with
the decision once that worker has made it), and is the audit chain's single writer. Tool approvals
are held here; spend leases are granted by the agent's worker (`leases_route.py`); a policy reload is
validated here and published on the policy topic, where every worker puts it in force (`policy_topic.py`).
A profile is read from the agent's worker (`profile_route.py`); the workers' activity rollups fill the
gateway's activity journal and per-agent metrics (`activity_feed.py`), as `serve` keeps them.

It is the server layer's `Runtime` for `serve --kafka` (spanwarden/server/runtime.py): the same route table,
auth, durability rules, `/metrics` and supervised background tasks as `serve`. On a broken audit chain it
starts and serves decisions; the audit writer waits (workers' entries stay on the audit topic) until an
admin acknowledges the break, then writes them to the new chain."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web
from aiokafka import AIOKafkaProducer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from spanwarden.audit_sink import AuditSink, TeeAuditSink
from spanwarden.collector import control_channel
from spanwarden.collector.ingest_auth import IngestGate
from spanwarden.collector.normalize import Normalizer
from spanwarden.collector.pricing import PriceTable
from spanwarden.collector.receiver import DeliveryFailed
from spanwarden.dashboards import reporting
from spanwarden.dashboards.prometheus import AgentMetrics
from spanwarden.dashboards.reporting import DatadogReporting
from spanwarden.enforcers.access_requests import AccessBook, AccessRequest
from spanwarden.enforcers.audit_log import (
    AgentRef,
    AuditChainBroken,
    AuditEntry,
    AuditLog,
    AuditUnwritable,
    read_entries,
)
from spanwarden.enforcers.decision import Action, Decision
from spanwarden.enforcers.policy import Policy, PolicyError
from spanwarden.enforcers.redact import Redactor
from spanwarden.enforcers.roles import TokenBook
from spanwarden.notify import sink as notify_sink
from spanwarden.notify.notice import Notice
from spanwarden.notify.targets import Target
from spanwarden.server import app as server_app
from spanwarden.server.access import AccessApi
from spanwarden.server.approvals import ApprovalsApi
from spanwarden.server.claim import claim
from spanwarden.server.commands import CommandNotApplied
from spanwarden.server.durability import BrokenAudit, Durability, set_aside
from spanwarden.server.leases import LeaseRefused
from spanwarden.server.runtime import Figures, Unavailable
from spanwarden.server.supervisor import Supervisor
from spanwarden.settings import Settings, admin_token
from spanwarden.streaming import (
    approvals_replay,
    egress_route,
    fleet_model,
    leases_route,
    policy_topic,
    profile_pin,
    profile_route,
)
from spanwarden.streaming.activity_feed import ActivityFeed
from spanwarden.streaming.audit_writer import AuditWriter, keys_in_log
from spanwarden.streaming.broker_watch import BrokerWatch
from spanwarden.streaming.decisions_feed import DecisionsFeed
from spanwarden.streaming.spans_publisher import SpansPublisher
from spanwarden.streaming.topic_admin import ensure_topics
from spanwarden.streaming.topic_follower import follow
from spanwarden.streaming.topics import AGENTS, COMMANDS
from spanwarden.tls import server_context

log = logging.getLogger(__name__)
SHUTDOWN_S = 5.0


class KafkaGateway:
    kind = "kafka"

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        # Before anything is written: the state dir's lock, then the port (spanwarden/server/claim.py).
        self.claim = claim(settings.state_dir, settings.host, settings.port, "serve --kafka")
        try:
            self._open(settings, clock)
        except BaseException:
            self.claim.release()
            raise

    def _open(self, settings: Settings, clock: Callable[[], float]) -> None:
        self.policy = Policy.load(settings.policy_file)
        self.supervisor = Supervisor()
        self.durability = Durability(settings, self.supervisor)
        self.audit_key = settings.audit_hmac_key.encode() if settings.audit_hmac_key else None
        self.audit_log: AuditLog | BrokenAudit
        try:
            self.audit_log = self._open_log()
        except AuditChainBroken as exc:
            # As `serve`: decisions are still served; nothing that needs an audit entry is taken in (and the
            # workers' entries wait on the audit topic) until an admin acknowledges the break.
            self.durability.broken = str(exc)
            self.audit_log = BrokenAudit(str(exc))
            log.error("%s; spans and commands are refused until `spanwarden audit acknowledge`", exc)
        # What the gateway appends itself (tool approvals, start and stop) and what workers send both pass the
        # notifications sink, as in `serve`.
        self.notify = notify_sink.build(settings, self._notify_failed)
        self.audit: AuditSink = self._own_sink()
        # The fleet directory, from the workers' compacted agents topic: team and environment commands expand
        # to the agents in it (as with `serve`, to the agents known when the command is given).
        self.agents: dict[str, AgentRef] = {}
        self.tokens = TokenBook.load(settings.tokens_path, admin_token(settings))
        mode = settings.ingest_mode
        if mode == "untrusted":  # workers cannot tell kept-apart spans from others: refuse them instead
            log.warning("ingest_auth=untrusted is not offered with --kafka; spans without a token are refused")
            mode = "required"
        self.ingest = IngestGate(self.tokens, mode)
        self.normalizer = Normalizer(PriceTable.load(settings.price_file))
        # The workers' activity rollups: the journal the console and incident reports read, /metrics/agents.
        self.activity = ActivityFeed(settings.state_dir, AgentMetrics(self.normalizer.prices.canonical_name,
                                                                      settings.metrics_max_agents),
                                     settings.activity_max_bytes)
        self.board = control_channel.DecisionBoard()
        # Tool approvals need only the policy and the audit log, both here: the gateway holds them.
        self.approvals = ApprovalsApi(self, self.ingest, clock, settings.long_poll_s, egress=self.egress_request,
                                      internal_domains=settings.internal_domains, models=self.model_request)
        self.feed = DecisionsFeed(self.board)
        # The gateway writes the audit chain, so it sends the audit logs to Datadog; workers send the rest.
        self.reporting = (DatadogReporting(lambda model: None, settings.datadog_host, settings.datadog_max_agents,
                                           settings.datadog_queue_batches)
                          if reporting.enabled(settings.datadog_export) else None)
        self.writer = AuditWriter(self._writer_sink(), keys_in_log(settings.audit_path))
        # Access requests are opened and answered by the agents' workers; the gateway keeps a view of them
        # from the audit trail it writes (rebuilt from the log at start) and sends answers as commands.
        self.access_book = AccessBook()
        self.access = AccessApi(self.access_book, self.answer_access, clock, settings.long_poll_s)
        for _, entry in read_entries(settings.audit_path):
            if isinstance(entry, AuditEntry):
                self._note_access(entry)
                approvals_replay.note(self.approvals.book, entry)  # pending tool approvals survive a restart
        self.producer: AIOKafkaProducer | None = None
        self.publisher: SpansPublisher | None = None
        self.port: int | None = None
        self._stopping: asyncio.Event | None = None
        self._broker_watch: asyncio.Task[None] | None = None
        self._fits = fleet_model.QueuedRefitter()
        self.behaviour_refit = fleet_model.FleetRefit(self._fits)
        self._loop: asyncio.AbstractEventLoop | None = None

    def _open_log(self) -> AuditLog:
        settings = self.settings
        return AuditLog(settings.audit_path, self.audit_key, settings.audit_fsync,
                        Redactor(settings.redact_patterns), settings.audit_rotate_bytes)

    def _own_sink(self) -> AuditSink:
        """Where the gateway appends its own entries: the log, then the notifications."""
        return self.audit_log if self.notify is None else TeeAuditSink(self.audit_log, self.notify)

    def _writer_sink(self) -> AuditSink:
        """Where the workers' entries go: the log, the access-request view, notifications, Datadog."""
        sink: AuditSink = TeeAuditSink(TeeAuditSink(self.audit_log, self._note_access), self.activity.note_finding)
        if self.notify is not None:
            sink = TeeAuditSink(sink, self.notify)
        if getattr(self, "reporting", None) is not None:
            assert self.reporting is not None
            sink = TeeAuditSink(sink, self.reporting.audit)
        return sink

    def _notify_failed(self, target: Target, notice: Notice, why: str) -> None:
        """A destination that keeps failing is audited once (from the notifier's thread: onto the loop)."""
        loop = getattr(self, "_loop", None)
        data = {"notify": target.kind, "notice": notice.key, "error": why}
        def audit() -> None:
            try:
                self.audit.append("service", AgentRef(), "service", f"notifications to {target.kind} are "
                                  f"failing ({why})", self.clock(), (), self.policy.version, data)
            except (AuditChainBroken, AuditUnwritable) as exc:
                log.error("notifications to %s are failing (%s); not audited: %s", target.kind, why, exc)
        if loop is not None:
            loop.call_soon_threadsafe(audit)

    def _note_access(self, entry: AuditEntry) -> None:
        data = entry.data
        if entry.kind != "approval" or data.get("kind") != "access":
            return
        request_id = str(data["request_id"])
        found = self.access_book.requests.get(request_id)
        if data.get("status") == "pending":
            if found is None:
                self.access_book.requests[request_id] = AccessRequest(
                    request_id, entry.agent.id, str(data["resource"]), entry.time_s, entry.reason)
            return
        if found is not None:
            found.status, found.answered_by, found.answered_s = str(data["status"]), entry.actor, entry.time_s
            found.until_s = data.get("until_s")
            self.access.notify(request_id)

    async def answer_access(self, request_id: str, approve: bool, actor: str, reason: str, now_s: float,
                            for_s: float | None) -> Decision:
        found = self.access_book.requests[request_id]
        return await self._through_worker(found.agent_id, {
            "type": "access_answer", "request_id": request_id, "approve": approve, "actor": actor,
            "reason": reason, "now_s": now_s, "for_s": for_s})

    async def apply_command(self, agent_id: str, action: Action, reason: str, actor: str, now_s: float,
                            expires_s: float | None, throttle_per_s: float | None, selected_by: dict[str, str],
                            calls: str) -> Decision:
        """Send the command to the agent's worker and wait for the decision it makes."""
        return await self._through_worker(agent_id, {
            "action": action.value, "reason": reason, "actor": actor, "now_s": now_s, "expires_s": expires_s,
            "throttle_per_s": throttle_per_s, "selected_by": selected_by, "calls": calls})

    def _connected(self) -> AIOKafkaProducer:
        if self.producer is None:
            raise Unavailable("the gateway is not connected to Kafka yet; retry in a moment")
        return self.producer

    async def _through_worker(self, agent_id: str, body: dict[str, Any]) -> Decision:
        producer = self._connected()
        command_id = uuid.uuid4().hex
        waiting = self.feed.expect(command_id)
        try:
            message = orjson.dumps({"id": command_id, "agent": agent_id, **body})
            await producer.send_and_wait(COMMANDS, message, key=agent_id.encode())
            return await asyncio.wait_for(waiting, self.settings.kafka_command_timeout_s)
        except TimeoutError:
            raise CommandNotApplied(
                f"command {command_id} is on the commands topic but no worker applied it within "
                f"{self.settings.kafka_command_timeout_s:g} s; it will take effect when a worker picks it up"
            ) from None
        finally:
            self.feed.forget(command_id)

    # --- the server layer's Runtime (spanwarden/server/runtime.py) ---
    @property
    def sink(self) -> AuditSink:
        return self.audit

    async def take_spans(self, message: ExportTraceServiceRequest, authorization: str) -> None:
        if self.ingest.mode != "off":
            self.ingest.admit(authorization, self.normalizer.records(message))  # raises IngestRefused
        if self.publisher is None:
            raise DeliveryFailed("the gateway is not connected to Kafka yet")
        await self.publisher(message)

    def knows(self, agent_id: str) -> bool:
        return agent_id in self.agents or self.board.version(agent_id) > 0

    def status(self) -> list[dict[str, Any]]:
        """Every agent decided for, with who it belongs to (the workers' directory) and its scoped decisions
        (as `serve` gives them)."""
        out = []
        for d in self.board.all():
            ref = self.agents.get(d.agent_id, AgentRef(d.agent_id))
            out.append({"agent": d.agent_id, "owner": ref.owner, "team": ref.team, "environment": ref.environment,
                        "decision": d.to_dict(), "scoped": self.board.view(d.agent_id)["scoped"],
                        "last_seen_s": self.activity.last_seen.get(d.agent_id)})
        return out

    def health_body(self) -> dict[str, Any]:
        return {"spans_requests_published": self.publisher.published if self.publisher else 0,
                "decisions_applied": self.feed.applied, "audit_appended": self.writer.appended,
                "audit_duplicates_skipped": self.writer.duplicates, "agents": len(self.agents),
                "activity_rollups_applied": self.activity.applied,
                "policy_version": self.policy.version}

    def figures(self) -> Figures:
        return {
            "spanwarden_spans_requests_published": ("counter", "OTLP requests published to the spans topic",
                                                    float(self.publisher.published if self.publisher else 0), ()),
            "spanwarden_decisions_applied": ("counter", "decisions read from the decisions topic",
                                             float(self.feed.applied), ()),
            "spanwarden_agents": ("gauge", "agents in the workers' directory", len(self.agents), ()),
            "spanwarden_audit_entries": ("counter", "audit entries in the chain",
                                         float(getattr(self.audit_log, "seq", 0)), ()),
            "spanwarden_audit_duplicates_skipped": ("counter", "audit messages already in the chain",
                                                    float(self.writer.duplicates), ()),
            "spanwarden_activity_rollups": ("counter", "workers' activity rollups read, by outcome",
                                            {("applied",): float(self.activity.applied),
                                             ("malformed",): float(self.activity.malformed)}, ("outcome",)),
        }

    def agent_figures(self) -> Figures:
        """Per-agent figures from the workers' activity rollups and audited findings, and the decisions,
        scoped decisions and pending requests the gateway serves (as `serve` gives them)."""
        now = self.clock()
        decisions = [d for d in self.board.all()]
        scoped = {d.agent_id: len(self.board.view(d.agent_id)["scoped"]) for d in decisions}
        pending: dict[str, int] = {}
        for agent_id in [r.agent_id for r in self.approvals.book.pending(now)] + [
                r.agent_id for r in self.access_book.pending()]:
            pending[agent_id] = pending.get(agent_id, 0) + 1
        return self.activity.metrics.figures(decisions, {a: n for a, n in scoped.items() if n}, pending)

    async def grant_lease(self, agent_id: str, returning: str, unused_usd: float,
                          reservation: str) -> dict[str, Any]:
        self._connected()
        timeout_s = self.settings.kafka_command_timeout_s
        answer = await leases_route.ask_for_lease(self, agent_id, returning, unused_usd, reservation, timeout_s)
        if answer is None:
            raise CommandNotApplied(leases_route.no_answer(timeout_s))
        if "refused" in answer:
            raise LeaseRefused(str(answer["refused"]), float(answer.get("retry_after_s", 60)))
        return answer

    async def profile(self, agent_id: str) -> dict[str, Any] | None:
        """The agent's profile: its baseline's part from its worker, the rest from the gateway's journal and
        audit log (`profile_route.py`); None for an agent never heard of."""
        if not self.knows(agent_id):
            return None
        self._connected()
        timeout_s = self.settings.kafka_command_timeout_s
        part = await profile_route.ask_for_profile(self, agent_id, timeout_s)
        if part is None:
            raise Unavailable(f"no worker answered for {agent_id!r} within {timeout_s:g} s (is a worker running "
                              "for this agent's partition?); retry in a moment")
        return await asyncio.to_thread(profile_route.assemble, part, self.settings.state_dir, agent_id)

    async def egress_request(self, agent_id: str, resource: str, summary: str,
                             now_s: float) -> AccessRequest | None:
        """A write to an external host, judged by the agent's worker on its profile (`egress_route.py`)."""
        self._connected()
        timeout_s = self.settings.kafka_command_timeout_s
        reply = await egress_route.ask(self, agent_id, resource, summary, now_s, timeout_s)
        if reply is None:
            raise Unavailable(f"no worker answered for {agent_id!r} within {timeout_s:g} s (is a worker running "
                              "for this agent's partition?); retry in a moment")
        return self._followed(egress_route.request_of(reply))

    async def model_request(self, agent_id: str, model: str, now_s: float) -> AccessRequest | None:
        """A first call to a model, judged by the agent's worker on its prices (`egress_route.py`)."""
        self._connected()
        timeout_s = self.settings.kafka_command_timeout_s
        reply = await egress_route.ask_model(self, agent_id, model, now_s, timeout_s)
        if reply is None:
            raise Unavailable(f"no worker answered for {agent_id!r} within {timeout_s:g} s (is a worker running "
                              "for this agent's partition?); retry in a moment")
        return self._followed(egress_route.request_of(reply))

    def _followed(self, found: AccessRequest | None) -> AccessRequest | None:
        """Followed by the guard at once: known here before its audit entry comes back from the worker."""
        return self.access_book.requests.setdefault(found.id, found) if found is not None else None

    async def pin_profile(self, agent_id: str, actor: str, reason: str,
                          given: dict[str, Any] | None) -> dict[str, Any]:
        """Pin `given` (the learned profile when None) on the agent's worker, which audits it and keeps it
        with the agent's state (`profile_pin.py`); KeyError/TypeError for one that cannot be pinned."""
        source = given if given is not None else await self.profile(agent_id)
        if source is None:
            raise KeyError(f"no learned profile for {agent_id!r}; pin one from a file")
        pin = profile_pin.command(source, actor, reason, self.clock())
        self._connected()
        timeout_s = self.settings.kafka_command_timeout_s
        answer = await profile_pin.ask_to_pin(self, agent_id, pin, timeout_s)
        if answer is None or answer.get("pinned") is None:
            raise CommandNotApplied(f"no worker pinned the profile within {timeout_s:g} s (is a worker running "
                                    "for this agent's partition?); retry")
        return dict(answer["pinned"])

    async def reload_policy(self, actor: str) -> str | None:
        """Validate the policy file and publish it on the policy topic, where every worker puts it in force (as
        `serve` reloads its file); an invalid one is refused, audited, never published, and the old one stays."""
        producer = self._connected()
        try:
            text, policy = policy_topic.read_file(self.settings.policy_file)
        except PolicyError as exc:
            self.audit.append("config_change", AgentRef(), actor, f"policy reload refused: {exc}", self.clock(),
                              (), self.policy.version, {"outcome": "refused", "error": str(exc)})
            log.error("policy reload refused, %s stays in force: %s", self.policy.version, exc)
            return str(exc)
        await policy_topic.publish(producer, text, actor)
        old, self.policy = self.policy, policy
        self.audit.append("config_change", AgentRef(), actor, f"policy {old.version} replaced by {policy.version} "
                          "(published for the workers)", self.clock(), (), policy.version,
                          {"outcome": "published", "from": old.version, "to": policy.version})
        log.info("policy %s published for the workers", policy.version)
        return None

    def acknowledge_broken_audit(self, actor: str, reason: str) -> str:
        """As `serve`: set the broken chain aside, start a new one recording the break, and start the audit
        writer on it (the workers' entries that waited on the topic are written then)."""
        aside, digest = set_aside(self.settings.audit_path, self.clock())
        new = self._open_log()
        new.append("command", AgentRef(), actor, reason, self.clock(), (), self.policy.version,
                   {"command": "audit_acknowledge", "break": self.durability.broken, "set_aside": aside,
                    "sha256_of_set_aside": digest})
        self.audit_log = new
        self.audit = self._own_sink()
        self.writer.audit = self._writer_sink()
        self.durability.broken = None
        if self._stopping is not None and self.producer is not None:
            self._start_writer()
        return aside

    def build_app(self) -> web.Application:
        """The server layer's app (one route table, auth, durability) on this runtime."""
        return server_app.build(self, console=True)  # and the web console at / (spanwarden/console/)

    def _learn_agent(self, key: bytes, value: bytes) -> None:
        try:
            owner, team, environment, version = (str(v) for v in orjson.loads(value))
        except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
            log.error("skipped an agents-topic message for %r: %s", key, exc)
            return
        agent_id = key.decode(errors="replace")
        self.agents[agent_id] = AgentRef(agent_id, owner, team, environment, version)

    def _start_writer(self) -> None:
        stopping, settings = self._stopping, self.settings
        assert stopping is not None
        self.supervisor.start("audit_writer", lambda: self.writer.run(
            settings.kafka_bootstrap, f"{settings.kafka_app_id}-audit-writer", stopping,
            settings.kafka_fetch_max_wait_ms), stops_intake=True)

    def _supervise(self) -> None:
        """The Kafka followers, the audit writer and the Datadog flush, supervised: one that dies turns
        /healthz 503; the audit writer and the decisions feed stop intake with them (decisions must not flow
        unaudited, and commands could not be confirmed)."""
        assert self._stopping is not None
        stopping, bootstrap = self._stopping, self.settings.kafka_bootstrap
        wait_ms = self.settings.kafka_fetch_max_wait_ms
        self.supervisor.start("decisions_feed", lambda: self.feed.run(bootstrap, stopping, wait_ms),
                              stops_intake=True)
        self.supervisor.start("agents_follower", lambda: follow(bootstrap, AGENTS, self._learn_agent, stopping,
                                                                wait_ms), stops_intake=False)
        self.supervisor.start("activity_feed", lambda: self.activity.run(bootstrap, stopping, wait_ms),
                              stops_intake=False)
        assert self.producer is not None
        producer, refit = self.producer, self.behaviour_refit  # the one refitter of the fleet's behaviour model
        self.supervisor.start("behaviour_refit", lambda: fleet_model.run_refit(
            bootstrap, producer, refit, stopping, wait_ms), stops_intake=False)
        # Not a supervised task: it only speaks (one line when the broker goes, one when it is back).
        watch = BrokerWatch(bootstrap, "gateway")
        self._broker_watch = asyncio.get_running_loop().create_task(watch.run(stopping))
        if self.durability.broken is None:
            self._start_writer()
        if self.reporting is not None:
            self.supervisor.start("datadog_flush", self._flush_datadog, stops_intake=False)
        if self.notify is not None:
            self.supervisor.watch("notify", self.notify.notifier.health, stops_intake=False)

    async def serve(self, ready: Callable[[int], None] | None = None) -> None:
        settings = self.settings
        bootstrap = settings.kafka_bootstrap
        self._stopping = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        await ensure_topics(bootstrap, settings.kafka_partitions, settings.kafka_replication_factor)
        # A broker that is away fails a publish within 5 s (a 503 the agent's exporter retries) instead of
        # holding the agent's export for aiokafka's default 40 s.
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", request_timeout_ms=5000,
                                         max_request_size=settings.max_body_bytes + 1024)
        await self.producer.start()
        self.publisher = SpansPublisher(self.producer)
        # As `serve` takes its policy file at start: the workers take the gateway's (unless it is in force).
        await policy_topic.publish_if_changed(self.producer, bootstrap, policy_topic.read_file(
            settings.policy_file)[0], "service")
        self._supervise()
        runner = web.AppRunner(self.build_app(), access_log=None, auto_decompress=False, shutdown_timeout=2.0)
        await runner.setup()
        site = web.SockSite(runner, self.claim.socket, ssl_context=server_context(settings))
        await site.start()
        self.port = self.claim.port
        self._append_own("gateway started", {"runtime": "kafka", "bootstrap": bootstrap})
        log.info("spanwarden gateway on http://%s:%s, Kafka at %s", settings.host, self.port, bootstrap)
        if ready is not None:
            ready(self.port)
        try:
            await self._stopping.wait()
        finally:
            self.board.close()
            await runner.cleanup()
            # Bounded: with the broker gone, the clients' goodbyes would otherwise wait on it.
            await self.supervisor.stop(SHUTDOWN_S)
            try:
                await asyncio.wait_for(self.producer.stop(), SHUTDOWN_S)
            except TimeoutError:
                log.warning("the Kafka producer did not stop within %g s (broker away?); stopping anyway",
                            SHUTDOWN_S)
            self._fits.close()
            self._append_own("gateway stopped")
            self.audit_log.close()
            if self.reporting is not None:
                self.reporting.close()
            if self.notify is not None:
                self.notify.close()
            self.claim.release()

    def _append_own(self, reason: str, data: dict[str, Any] | None = None) -> None:
        """A service entry of the gateway's own (start, stop), unless the chain is broken (nothing can be)."""
        if self.durability.broken is not None:
            return
        try:
            self.audit.append("service", AgentRef(), "service", reason, self.clock(),
                              policy_version=self.policy.version, data=data)
        except AuditUnwritable as exc:  # a full disk: say so, and go on
            log.error("%r could not be audited: %s", reason, exc)

    async def _flush_datadog(self) -> None:
        assert self.reporting is not None
        assert self._stopping is not None
        while not self._stopping.is_set():
            try:
                await asyncio.wait_for(self._stopping.wait(), self.settings.datadog_flush_s)
            except TimeoutError:
                self.reporting.flush()

    def request_stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()

    def _reload_on_signal(self, loop: asyncio.AbstractEventLoop) -> None:
        async def reload() -> None:
            try:
                await self.reload_policy("signal:SIGHUP")
            except Unavailable as exc:
                log.error("SIGHUP: policy not reloaded: %s", exc)

        self._reloading = loop.create_task(reload())  # kept: a task nobody holds may be collected

    def run(self) -> None:
        """Serve until SIGINT or SIGTERM; SIGHUP reloads the policy (publishes it for the workers)."""

        async def main() -> None:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.request_stop)
            loop.add_signal_handler(signal.SIGHUP, lambda: self._reload_on_signal(loop))
            await self.serve()

        asyncio.run(main())
