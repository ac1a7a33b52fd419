"""The embedded service: OTLP receiver, detectors, enforcers, control channel and audit log in one process,
keeping its state on local disk so that a restart loses nothing."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from spanwarden.audit_sink import AuditSink, TeeAuditSink
from spanwarden.collector import control_channel, receiver
from spanwarden.collector.ingest_auth import IngestGate, IngestRefused
from spanwarden.collector.normalize import Normalizer
from spanwarden.collector.pricing import PriceTable
from spanwarden.collector.span_record import SpanRecord
from spanwarden.collector.trace_stage import TraceStage
from spanwarden.dashboards import reporting
from spanwarden.dashboards.prometheus import AgentMetrics
from spanwarden.dashboards.reporting import DatadogReporting
from spanwarden.detectors.finding import Finding
from spanwarden.embedded import commands_api, health, leases_api, self_metrics, state_store
from spanwarden.embedded.access_api import AccessApi
from spanwarden.embedded.activity_journal import ActivityJournal
from spanwarden.embedded.approvals_api import ApprovalsApi
from spanwarden.embedded.loop_probe import LoopProbe
from spanwarden.embedded.profile_api import ProfileApi, load_pinned
from spanwarden.embedded.self_metrics import SelfMetrics
from spanwarden.enforcers.audit_log import (
    AgentRef,
    AuditChainBroken,
    AuditLog,
    AuditUnwritable,
    head_path,
    segments,
)
from spanwarden.enforcers.decision import Decision
from spanwarden.enforcers.leases import LeaseBook
from spanwarden.enforcers.policy import Policy, PolicyError
from spanwarden.enforcers.redact import Redactor
from spanwarden.enforcers.roles import TokenBook
from spanwarden.event_time import TimeBounds
from spanwarden.model_refit import ThreadRefitter
from spanwarden.notify import sink as notify_sink
from spanwarden.notify.notice import Notice
from spanwarden.notify.targets import Target
from spanwarden.pipeline import Pipeline
from spanwarden.server import http_hints
from spanwarden.server.announce import Announcer
from spanwarden.server.claim import claim
from spanwarden.settings import Settings, admin_token
from spanwarden.tls import server_context

log = logging.getLogger(__name__)
ACKNOWLEDGE_PATH = "/v1/audit/acknowledge"


class BrokenAudit:
    """Stands in for the audit log while its chain is broken: every append is refused."""

    def __init__(self, message: str) -> None:
        self.message = message

    def append(self, *args: Any, **kwargs: Any) -> Any:
        raise AuditChainBroken(self.message)

    def close(self) -> None:
        return None


class EmbeddedService:
    """Build with settings, then `run()` (blocking) or `start_in_thread()` (returns the bound port)."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        # Before anything is written: the state dir's lock (one process per audit chain), then the port (a
        # Before anything is written: the state dir's lock, then the port (spanwarden/server/claim.py).
        self.claim = claim(settings.state_dir, settings.host, settings.port, "serve")
        try:
            self._open(settings, clock)
        except BaseException:
            self.claim.release()
            raise

    def _open(self, settings: Settings, clock: Callable[[], float]) -> None:
        self.policy = Policy.load(settings.policy_file)
        self.prices = PriceTable.load(settings.price_file,
                                      (settings.default_input_price, settings.default_output_price))
        self.audit_key = settings.audit_hmac_key.encode() if settings.audit_hmac_key else None
        self.audit_broken: str | None = None
        self.audit: AuditLog | BrokenAudit
        try:
            self.audit = AuditLog(settings.audit_path, self.audit_key, settings.audit_fsync, self._redactor(),
                                  settings.audit_rotate_bytes)
        except AuditChainBroken as exc:
            # Keep serving decisions (a halted agent stays halted) but take in nothing that would need an
            # audit entry until an admin acknowledges the break.
            self.audit_broken = str(exc)
            self.audit = BrokenAudit(str(exc))
            log.error("%s; spans and commands are refused until `spanwarden audit acknowledge`", exc)
        self.board = control_channel.DecisionBoard()
        self.announcer = Announcer()
        self.latest_findings: dict[str, Finding] = {}
        self.refitter = ThreadRefitter()  # the behaviour model is refitted off the event loop
        self.reporting = (DatadogReporting(self.prices.canonical_name, settings.datadog_host,
                                           settings.datadog_max_agents, settings.datadog_queue_batches)
                          if reporting.enabled(settings.datadog_export) else None)
        self.notify = notify_sink.build(settings, self._notify_failed)
        self.agent_metrics = AgentMetrics(self.prices.canonical_name, settings.metrics_max_agents)
        self.pipeline = Pipeline(self.policy, self._sink(self.audit), on_decision=self._on_decision,
                                 on_finding=self._remember_finding, refitter=self.refitter,
                                 time_bounds=None if settings.trust_span_time else
                                 TimeBounds(settings.max_lateness_s, settings.max_skew_s))
        self._restore()
        self.token = admin_token(settings)
        self.tokens = TokenBook.load(settings.tokens_path, self.token)
        self.ingest = IngestGate(self.tokens, settings.ingest_mode)
        self._refusals_audited: set[tuple[str, str]] = set()
        self.pipeline.pinned = load_pinned(settings.state_dir / "profiles")
        self.access = AccessApi(self.pipeline, self.tokens, self.pipeline.access, self._answer_access, clock,
                                settings.long_poll_s)
        self.profiles = ProfileApi(self.pipeline, self.tokens, settings.state_dir, clock)
        self.approvals = ApprovalsApi(self.pipeline, self.tokens, self.ingest, clock, settings.long_poll_s)
        self.leases = LeaseBook()
        self.trace_stage = TraceStage()  # one cost per LLM call; agents inherited within a bounded wait
        self.port: int | None = None
        self.self_metrics = SelfMetrics(lambda: health.figures(self))
        self.agent_registry = self_metrics.registry_of(lambda: health.agent_figures(self))
        self.journal = ActivityJournal(settings.state_dir / "activity", settings.activity_max_bytes)
        self.last_span_wall: float | None = None
        self.loop_probe = LoopProbe()  # how long anything held the event loop (/metrics)
        self._snapshotted_at = -1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    def _remember_finding(self, finding: Finding) -> None:
        self.latest_findings[finding.agent_id] = finding
        self.agent_metrics.finding(finding, self.pipeline.agents.get(finding.agent_id, AgentRef(finding.agent_id)))
        if self.reporting is not None:
            self.reporting.finding(finding, self.pipeline.agents.get(finding.agent_id, AgentRef(finding.agent_id)))

    def _on_decision(self, decision: Decision) -> None:
        self.board.publish(decision)
        self.announcer.decision(decision)
        if self.reporting is not None:
            self.reporting.decision(decision, self.pipeline.agents.get(decision.agent_id,
                                                                        AgentRef(decision.agent_id)))

    def _sink(self, audit: AuditSink) -> AuditSink:
        sink = audit if self.reporting is None else TeeAuditSink(audit, self.reporting.audit)
        return sink if self.notify is None else TeeAuditSink(sink, self.notify)

    def _notify_failed(self, target: Target, notice: Notice, why: str) -> None:
        """A destination that keeps failing is audited once (from the notifier's thread: onto the loop)."""
        def audit() -> None:
            try:
                self.pipeline.audit.append("service", AgentRef(), "service", f"notifications to {target.kind} "
                                           f"are failing ({why}); they are retried and counted", self.clock(), (),
                                           self.policy.version, {"notify": target.kind, "notice": notice.key,
                                                                 "error": why})
            except (AuditChainBroken, AuditUnwritable) as exc:
                log.error("notifications to %s are failing (%s); not audited: %s", target.kind, why, exc)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(audit)

    def _restore(self) -> None:
        snapshot = state_store.load_snapshot(self.settings.snapshot_path)
        if snapshot is not None:
            self.pipeline.load_state(snapshot)
        for decision in state_store.decisions_from_audit(self.settings.audit_path):
            self.pipeline.restore_decision(decision)
        for agent_id in self.pipeline.ladders:
            for decision in sorted([self.pipeline.decision(agent_id), *self.pipeline.scoped(agent_id)],
                                   key=lambda d: d.version):
                self.board.publish(decision)
        self.announcer.seen.update(self.pipeline.agents)  # restored agents are not new
        if self.audit_broken is None:
            self._started()

    def _started(self) -> None:
        torn = getattr(self.audit, "torn_tail", None)
        if torn is not None:
            log.warning("the audit log ended in a torn write (a crash mid-append); its bytes are in %s", torn)
        self.pipeline.audit.append("service", AgentRef(), "service", "service started", self.clock(),
                                   policy_version=self.policy.version,
                                   data={"agents_restored": len(self.pipeline.detectors),
                                         "torn_write_set_aside": torn.name if torn else None})

    def _redactor(self) -> Redactor:
        return Redactor(self.settings.redact_patterns)

    def _audit_refused_ingest(self, exc: IngestRefused) -> None:
        """A forged report (a token speaking for another agent) is audited, once per token and agent."""
        key = (exc.principal, exc.agent)
        if exc.status != 403 or key in self._refusals_audited or len(self._refusals_audited) > 10_000:
            return
        self._refusals_audited.add(key)
        self.pipeline.audit.append("command", self.pipeline.agents.get(exc.agent, AgentRef(exc.agent)),
                                   exc.principal, f"refused spans: {exc}", self.clock(), (),
                                   self.pipeline.policy.version, {"command": "ingest", "outcome": "refused",
                                                                  "status": exc.status})

    async def _answer_access(self, *args: Any) -> Decision:
        return self.pipeline.answer_access(*args)

    async def _apply_command(self, *args: Any) -> Decision:
        return self.pipeline.command(*args)

    def deliver(self, records: list[SpanRecord]) -> None:
        self.last_span_wall = time.time()
        if not self.settings.trust_span_time:
            received = self.clock()  # the service's time, which event times are held to
            records = [r._replace(received_s=received) for r in records]
        try:
            self.journal.append(records)  # first: a refused request leaves the pipeline untouched
        except OSError as exc:
            raise AuditUnwritable(f"cannot write the activity journal: {exc}") from exc
        if self.reporting is not None:
            self.reporting.records(records)
        self.agent_metrics.records(records)
        self.pipeline.process(records)
        self.leases.observe(records)  # each agent's call sizes, for its guard's estimates
        agents, seen = self.pipeline.agents, self.announcer.seen
        self.announcer.agents(agents[r.agent_id] for r in records
                              if r.agent_id not in seen and r.agent_id in agents)

    @web.middleware
    async def _refuse_while_audit_broken(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """What changes state (spans, commands) waits while nothing can be audited: a broken chain (until an
        admin acknowledges it) or a nearly full disk (until there is room; OTLP exporters retry 503s).
        Decisions in force are still served."""
        if request.method != "POST":
            return await handler(request)
        if self.audit_broken is not None and request.path != ACKNOWLEDGE_PATH:
            return web.json_response({"code": 503, "message": f"{self.audit_broken}; an admin must run "
                                      "`spanwarden audit acknowledge` first"}, status=503)
        if (short := health.disk_short(self.settings)) is not None:
            return web.json_response({"code": 503, "message": short}, status=503)
        try:
            return await handler(request)
        except AuditUnwritable as exc:
            log.error("%s; spans and commands wait until it can be written", exc)
            return web.json_response({"code": 503, "message": f"{exc}; retry later"}, status=503)

    async def _acknowledge(self, request: web.Request) -> web.Response:
        allowed = commands_api.authorize(request, self.tokens, "audit_acknowledge", self.pipeline, self.clock())
        if isinstance(allowed, web.Response):
            return allowed
        try:
            reason = str((await request.json())["reason"]).strip()
        except (ValueError, KeyError, TypeError):
            reason = ""
        if not reason:
            return web.json_response({"code": 400, "message": "acknowledge needs a reason"}, status=400)
        if self.audit_broken is None:
            return web.json_response({"code": 409, "message": "the audit log is intact"}, status=409)
        moved = self.acknowledge_broken_audit(allowed.actor, reason)
        return web.json_response({"moved_to": moved})

    def acknowledge_broken_audit(self, actor: str, reason: str) -> str:
        """Set the broken log aside (kept for forensics) and start a new chain whose first entry records the
        break, who acknowledged it and why."""
        path = self.settings.audit_path
        aside = path.with_name(f"{path.name}.broken-{int(self.clock())}")
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else ""
        rotated = [p for p in segments(path) if p != path]
        for segment in rotated:  # audit.jsonl.000001 -> audit.jsonl.broken-T.000001
            os.replace(segment, segment.with_name(f"{aside.name}.{segment.name.rsplit('.', 1)[1]}"))
        if path.exists():
            os.replace(path, aside)
        if head_path(path).exists():
            os.replace(head_path(path), head_path(aside))
        new = AuditLog(path, self.audit_key, self.settings.audit_fsync, self._redactor(),
                       self.settings.audit_rotate_bytes)
        new.append("command", AgentRef(), actor, reason, self.clock(), (), self.policy.version,
                   {"command": "audit_acknowledge", "break": self.audit_broken, "set_aside": aside.name,
                    "sha256_of_set_aside": digest})
        self.audit = new
        self.pipeline.audit = self._sink(new)
        self.audit_broken = None
        self._started()
        return aside.name

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.max_body_bytes + 1,
                              middlewares=[self.self_metrics.count_requests, self._refuse_while_audit_broken])
        normalizer = Normalizer(self.prices)

        async def deliver(message: ExportTraceServiceRequest, authorization: str) -> None:
            try:
                records = self.ingest.admit(authorization, normalizer.records(message))
            except IngestRefused as exc:
                self._audit_refused_ingest(exc)
                raise
            ready = self.trace_stage.process(records, self.clock())
            if ready:
                self.deliver(ready)

        app.router.add_post(receiver.TRACES_PATH, receiver.traces_handler(deliver, self.settings.max_body_bytes))
        control_channel.add_routes(app, self.board, self.settings.long_poll_s)
        commands_api.add_routes(app, self.pipeline, self.tokens, self._apply_command, self.clock,
                                lambda agent: agent in self.pipeline.agents or self.board.version(agent) > 0)
        self.approvals.add_routes(app)
        self.profiles.add_routes(app)
        self.access.add_routes(app)
        leases_api.add_routes(app, self.pipeline, self.leases, self.ingest, self.clock)
        app.router.add_get("/v1/status", self._status)
        app.router.add_post("/v1/policy/reload", self._reload)
        app.router.add_post(ACKNOWLEDGE_PATH, self._acknowledge)
        app.router.add_get("/healthz", self._health)
        app.router.add_get("/metrics", self.self_metrics.endpoint)
        app.router.add_get("/metrics/agents", self._agent_metrics)
        http_hints.install(app)
        return app

    async def _agent_metrics(self, request: web.Request) -> web.Response:
        allowed = commands_api.authorize(request, self.tokens, "status", self.pipeline, self.clock())
        if isinstance(allowed, web.Response):
            return allowed
        return self_metrics.exposition(self.agent_registry)

    async def _health(self, request: web.Request) -> web.Response:
        return health.health(self)

    async def _status(self, request: web.Request) -> web.Response:
        allowed = commands_api.authorize(request, self.tokens, "status", self.pipeline, self.clock())
        if isinstance(allowed, web.Response):
            return allowed
        return web.json_response({"agents": self.status()})

    async def _reload(self, request: web.Request) -> web.Response:
        allowed = commands_api.authorize(request, self.tokens, "policy_reload", self.pipeline, self.clock())
        if isinstance(allowed, web.Response):
            return allowed
        error = self.reload_policy(allowed.actor)
        if error:
            return web.json_response({"code": 400, "message": error}, status=400)
        return web.json_response({"policy_version": self.pipeline.policy.version})

    def reload_policy(self, actor: str) -> str | None:
        """Load the policy file again; an invalid one is refused (and audited) and the old one stays."""
        try:
            policy = Policy.load(self.settings.policy_file)
        except PolicyError as exc:
            self.pipeline.audit.append("config_change", AgentRef(), actor, f"policy reload refused: {exc}",
                                       self.clock(), (), self.pipeline.policy.version,
                                       {"outcome": "refused", "error": str(exc)})
            log.error("policy reload refused, %s stays in force: %s", self.pipeline.policy.version, exc)
            return str(exc)
        self.pipeline.set_policy(policy, actor, self.clock())
        self.policy = policy
        log.info("policy %s in force", policy.version)
        return None

    def status(self) -> list[dict[str, Any]]:
        out = []
        known = {**{a: AgentRef(a) for a in self.pipeline.ladders}, **self.pipeline.agents}  # decided-for too
        for agent_id, ref in sorted(known.items()):
            finding = self.latest_findings.get(agent_id)
            bank = self.pipeline.detectors.get(agent_id)
            hour = bank.cost.hour if bank is not None else None
            out.append({
                "agent": agent_id, "owner": ref.owner, "team": ref.team, "environment": ref.environment,
                "decision": self.pipeline.decision(agent_id).to_dict(),
                "scoped": [d.to_dict() for d in self.pipeline.scoped(agent_id)],  # some calls: tool/model/resource
                "last_finding": finding.to_dict() if finding else None,
                "spend_usd_last_hour": round(hour.sum, 6) if hour is not None else 0.0,
                "spend_usd_per_min": round(hour.recent(5) / 5, 6) if hour is not None and hour.index is not None
                else 0.0,  # over the agent's last 5 minutes
                "last_seen_s": bank.cost.last_time if bank is not None else None,
                "llm_spans_without_usage": self.trace_stage.without_usage.get(agent_id, 0),
                "agent_identity_from": self.trace_stage.identity.get(agent_id, ""),
            })
        return out

    def snapshot(self) -> None:
        """Save the baselines; when the disk refuses, keep the previous snapshot and try again next time
        (decisions are recovered from the audit log whatever the snapshot's age)."""
        if self.pipeline.records_seen != self._snapshotted_at:
            try:
                state_store.save_snapshot(self.settings.snapshot_path, self.pipeline.to_state())
            except OSError as exc:
                log.error("could not save the baselines snapshot (%s); the previous one stays", exc)
                return
            self._snapshotted_at = self.pipeline.records_seen

    async def _serve(self, ready: threading.Event | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        # The receiver inflates gzip itself, with a size limit, so aiohttp must hand it the raw body.
        runner = web.AppRunner(self.build_app(), access_log=None, auto_decompress=False, shutdown_timeout=2.0)
        await runner.setup()
        site = web.SockSite(runner, self.claim.socket, ssl_context=server_context(self.settings))
        await site.start()
        self.port = self.claim.port
        log.info("spanwarden listening on http://%s:%s", self.settings.host, self.port)
        if ready is not None:
            ready.set()
        flusher = asyncio.create_task(self._flush_datadog()) if self.reporting is not None else None
        clock = asyncio.create_task(self._advance_clock())
        probe = asyncio.create_task(self.loop_probe.run())
        try:
            while not self._stopping.is_set():
                try:
                    await asyncio.wait_for(self._stopping.wait(), self.settings.snapshot_interval_s)
                except TimeoutError:
                    self.snapshot()
        finally:
            if flusher is not None:
                flusher.cancel()
            clock.cancel()
            probe.cancel()
            self.board.close()
            await runner.cleanup()
            self.snapshot()
            if self.audit_broken is None:
                try:
                    self.pipeline.audit.append("service", AgentRef(), "service", "service stopped", self.clock(),
                                               policy_version=self.policy.version)
                except AuditUnwritable as exc:  # a full disk at shutdown: say so, and still close cleanly
                    log.error("the stop could not be audited: %s", exc)
            self.audit.close()
            self.journal.close()
            self.refitter.close()
            if self.reporting is not None:
                self.reporting.close()  # sends what is left, within a bounded time
            if self.notify is not None:
                self.notify.close()
            self.claim.release()

    async def _advance_clock(self) -> None:
        """Judge records whose time has come and lapse expired decisions, on the service clock, even while no
        spans arrive."""
        while True:
            await asyncio.sleep(1.0)
            if self.audit_broken is None:
                try:
                    self.pipeline.advance(self.clock())
                except AuditUnwritable as exc:
                    log.error("%s; the clock moves on when it can be written", exc)

    async def _flush_datadog(self) -> None:
        assert self.reporting is not None
        while True:
            await asyncio.sleep(self.settings.datadog_flush_s)
            self.reporting.flush()

    def run(self) -> None:
        """Serve until SIGINT or SIGTERM, then save state and close the audit log cleanly; SIGHUP reloads the
        policy."""

        async def main() -> None:
            task = asyncio.ensure_future(self._serve())
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.request_stop)
            loop.add_signal_handler(signal.SIGHUP, lambda: self.reload_policy("signal:SIGHUP"))
            await task

        asyncio.run(main())

    def start_in_thread(self) -> int:
        ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve(ready)), name="spanwarden",
                                        daemon=True)
        self._thread.start()
        if not ready.wait(15):
            raise RuntimeError("spanwarden service did not start within 15 s")
        assert self.port is not None
        return self.port

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` on the service's event loop and return its result (for in-process callers)."""
        assert self._loop is not None
        async def run() -> Any:
            return fn()
        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    def stop(self) -> None:
        """Stop a service started with `start_in_thread` (again is a no-op)."""
        if self._thread is not None and not self._thread.is_alive():
            return
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(15)

    def request_stop(self) -> None:
        """Ask a running `run()` to stop (from a signal handler on the loop's thread)."""
        if self._stopping is not None:
            self._stopping.set()
