"""`spanwarden serve --kafka`: what agents and on-call people talk to when workers do the detecting.

It takes OTLP spans in and publishes them to the spans topic, serves the control channel from the
decisions topic, turns on-call commands into messages for the worker that owns the agent (answering with
the decision once that worker has made it), and is the audit chain's single writer. Tool approvals
are held here; spend leases are granted by the agent's worker (`leases_route.py`); policy reload needs
state the workers hold and is not offered here (501)."""

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
from spanwarden.collector import control_channel, receiver
from spanwarden.collector.ingest_auth import IngestGate
from spanwarden.collector.normalize import Normalizer
from spanwarden.collector.pricing import PriceTable
from spanwarden.dashboards import reporting
from spanwarden.dashboards.reporting import DatadogReporting
from spanwarden.embedded import commands_api
from spanwarden.embedded.access_api import AccessApi
from spanwarden.embedded.approvals_api import ApprovalsApi
from spanwarden.enforcers.access_requests import AccessBook, AccessRequest
from spanwarden.enforcers.audit_log import AgentRef, AuditEntry, AuditLog, read_entries
from spanwarden.enforcers.decision import Action, Decision
from spanwarden.enforcers.policy import Policy
from spanwarden.enforcers.redact import Redactor
from spanwarden.enforcers.roles import TokenBook
from spanwarden.notify import sink as notify_sink
from spanwarden.notify.notice import Notice
from spanwarden.notify.targets import Target
from spanwarden.server import http_hints
from spanwarden.server.claim import claim
from spanwarden.settings import Settings, admin_token
from spanwarden.streaming import leases_route
from spanwarden.streaming.audit_writer import AuditWriter, keys_in_log
from spanwarden.streaming.decisions_feed import DecisionsFeed
from spanwarden.streaming.spans_publisher import SpansPublisher
from spanwarden.streaming.topic_admin import ensure_topics
from spanwarden.streaming.topic_follower import follow
from spanwarden.streaming.topics import AGENTS, COMMANDS
from spanwarden.tls import server_context

log = logging.getLogger(__name__)
SHUTDOWN_S = 5.0
# Policy reload is a worker restart (see the README).
NOT_HERE = ("/v1/policy/reload",)


class KafkaGateway:
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
        key = settings.audit_hmac_key.encode() if settings.audit_hmac_key else None
        self.audit_log = AuditLog(settings.audit_path, key, settings.audit_fsync,
                                  Redactor(settings.redact_patterns), settings.audit_rotate_bytes)
        # What the gateway appends itself (tool approvals, start and stop) and what workers send both pass the
        # notifications sink, as in `serve`.
        self.notify = notify_sink.build(settings, self._notify_failed)
        self.audit: AuditSink = (self.audit_log if self.notify is None
                                 else TeeAuditSink(self.audit_log, self.notify))
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
        self.board = control_channel.DecisionBoard()
        # Tool approvals need only the policy and the audit log, both here: the gateway holds them.
        self.approvals = ApprovalsApi(self, self.tokens, self.ingest, clock, settings.long_poll_s)
        self.feed = DecisionsFeed(self.board)
        # The gateway writes the audit chain, so it sends the audit logs to Datadog; workers send the rest.
        self.reporting = (DatadogReporting(lambda model: None, settings.datadog_host, settings.datadog_max_agents,
                                           settings.datadog_queue_batches)
                          if reporting.enabled(settings.datadog_export) else None)
        sink: AuditSink = TeeAuditSink(self.audit_log, self._note_access)
        if self.notify is not None:
            sink = TeeAuditSink(sink, self.notify)
        if self.reporting is not None:
            sink = TeeAuditSink(sink, self.reporting.audit)
        self.writer = AuditWriter(sink, keys_in_log(settings.audit_path))
        # Access requests are opened and answered by the agents' workers; the gateway keeps a view of them
        # from the audit trail it writes (rebuilt from the log at start) and sends answers as commands.
        self.access_book = AccessBook()
        self.access = AccessApi(self, self.tokens, self.access_book, self._answer_access, clock,
                                settings.long_poll_s)
        for _, entry in read_entries(settings.audit_path):
            if isinstance(entry, AuditEntry):
                self._note_access(entry)
        self.producer: AIOKafkaProducer | None = None
        self.publisher: SpansPublisher | None = None
        self.port: int | None = None
        self._stopping: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _notify_failed(self, target: Target, notice: Notice, why: str) -> None:
        """A destination that keeps failing is audited once (from the notifier's thread: onto the loop)."""
        loop = getattr(self, "_loop", None)
        data = {"notify": target.kind, "notice": notice.key, "error": why}
        if loop is not None:
            loop.call_soon_threadsafe(lambda: self.audit.append(
                "service", AgentRef(), "service", f"notifications to {target.kind} are failing ({why})",
                self.clock(), (), self.policy.version, data))

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

    async def _answer_access(self, request_id: str, approve: bool, actor: str, reason: str, now_s: float,
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

    async def _through_worker(self, agent_id: str, body: dict[str, Any]) -> Decision:
        assert self.producer is not None
        command_id = uuid.uuid4().hex
        waiting = self.feed.expect(command_id)
        try:
            message = orjson.dumps({"id": command_id, "agent": agent_id, **body})
            await self.producer.send_and_wait(COMMANDS, message, key=agent_id.encode())
            return await asyncio.wait_for(waiting, self.settings.kafka_command_timeout_s)
        except TimeoutError:
            raise commands_api.CommandNotApplied(
                f"command {command_id} is on the commands topic but no worker applied it within "
                f"{self.settings.kafka_command_timeout_s:g} s; it will take effect when a worker picks it up"
            ) from None
        finally:
            self.feed.forget(command_id)

    def build_app(self) -> web.Application:
        assert self.publisher is not None
        app = web.Application(client_max_size=self.settings.max_body_bytes + 1)
        app.router.add_post(receiver.TRACES_PATH, receiver.traces_handler(self._deliver,
                                                                          self.settings.max_body_bytes))
        control_channel.add_routes(app, self.board, self.settings.long_poll_s)
        commands_api.add_routes(app, self, self.tokens, self.apply_command, self.clock,
                                lambda agent: agent in self.agents or self.board.version(agent) > 0)
        self.approvals.add_routes(app)
        self.access.add_routes(app)
        leases_route.add_routes(app, self, self.settings.kafka_command_timeout_s)
        app.router.add_get("/v1/status", self._status)
        app.router.add_get("/healthz", self._health)
        for path in NOT_HERE:
            app.router.add_route("*", path, self._not_here)
        http_hints.install(app)
        return app

    async def _deliver(self, message: ExportTraceServiceRequest, authorization: str) -> None:
        if self.ingest.mode != "off":
            self.ingest.admit(authorization, self.normalizer.records(message))  # raises IngestRefused
        assert self.publisher is not None
        await self.publisher(message)

    def _learn_agent(self, key: bytes, value: bytes) -> None:
        try:
            owner, team, environment, version = (str(v) for v in orjson.loads(value))
        except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
            log.error("skipped an agents-topic message for %r: %s", key, exc)
            return
        agent_id = key.decode(errors="replace")
        self.agents[agent_id] = AgentRef(agent_id, owner, team, environment, version)

    async def _not_here(self, request: web.Request) -> web.Response:
        return web.json_response({"code": 501, "message": f"{request.path} is not available with "
                                  "`serve --kafka` yet; it needs the embedded service"}, status=501)

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "runtime": "kafka",
                                  "spans_requests_published": self.publisher.published if self.publisher else 0,
                                  "decisions_applied": self.feed.applied, "audit_appended": self.writer.appended,
                                  "audit_duplicates_skipped": self.writer.duplicates})

    async def _status(self, request: web.Request) -> web.Response:
        allowed = commands_api.authorize(request, self.tokens, "status", self, self.clock())
        if isinstance(allowed, web.Response):
            return allowed
        return web.json_response({"agents": [{"agent": d.agent_id, "decision": d.to_dict()}
                                             for d in self.board.all()]})

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
        wait_ms = settings.kafka_fetch_max_wait_ms
        tasks = [asyncio.create_task(self.feed.run(bootstrap, self._stopping, wait_ms)),
                 asyncio.create_task(follow(bootstrap, AGENTS, self._learn_agent, self._stopping, wait_ms)),
                 asyncio.create_task(self.writer.run(bootstrap, f"{settings.kafka_app_id}-audit-writer",
                                                     self._stopping, wait_ms))]
        if self.reporting is not None:
            tasks.append(asyncio.create_task(self._flush_datadog()))
        runner = web.AppRunner(self.build_app(), access_log=None, auto_decompress=False, shutdown_timeout=2.0)
        await runner.setup()
        site = web.SockSite(runner, self.claim.socket, ssl_context=server_context(settings))
        await site.start()
        self.port = self.claim.port
        self.audit.append("service", AgentRef(), "service", "gateway started", self.clock(),
                          policy_version=self.policy.version, data={"runtime": "kafka", "bootstrap": bootstrap})
        log.info("spanwarden gateway on http://%s:%s, Kafka at %s", settings.host, self.port, bootstrap)
        if ready is not None:
            ready(self.port)
        try:
            await self._stopping.wait()
        finally:
            self.board.close()
            await runner.cleanup()
            # Bounded: with the broker gone, the clients' goodbyes would otherwise wait on it.
            try:
                await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), SHUTDOWN_S)
                await asyncio.wait_for(self.producer.stop(), SHUTDOWN_S)
            except TimeoutError:
                log.warning("the Kafka clients did not stop within %g s (broker away?); stopping anyway",
                            SHUTDOWN_S)
            self.audit.append("service", AgentRef(), "service", "gateway stopped", self.clock(),
                              policy_version=self.policy.version)
            self.audit_log.close()
            if self.reporting is not None:
                self.reporting.close()
            if self.notify is not None:
                self.notify.close()
            self.claim.release()

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

    def run(self) -> None:
        """Serve until SIGINT or SIGTERM."""

        async def main() -> None:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.request_stop)
            await self.serve()

        asyncio.run(main())
