"""The embedded service: OTLP receiver, detectors, enforcers, control channel and audit log in one process,
keeping its state on local disk so that a restart loses nothing."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from spanwarden import process_tuning
from spanwarden.activity_journal import WHO, ActivityJournal, read_who
from spanwarden.audit_sink import AuditSink, TeeAuditSink
from spanwarden.collector import control_channel
from spanwarden.collector.ingest_auth import IngestGate, is_untrusted
from spanwarden.collector.normalize import Normalizer
from spanwarden.collector.pricing import PriceTable
from spanwarden.collector.span_record import SpanRecord
from spanwarden.collector.trace_stage import TraceStage
from spanwarden.dashboards import reporting
from spanwarden.dashboards.prometheus import AgentMetrics
from spanwarden.dashboards.reporting import DatadogReporting
from spanwarden.detectors.agent_detectors import AgentDetectors
from spanwarden.detectors.finding import Finding
from spanwarden.embedded import audit_recovery, decode_pool, health, state_store
from spanwarden.embedded.agent_cap import NewAgentCap
from spanwarden.embedded.agent_pager import AgentPager
from spanwarden.embedded.ingest_worker import IngestWorker
from spanwarden.embedded.loop_probe import LoopProbe
from spanwarden.embedded.profile_api import ProfileApi, load_pinned
from spanwarden.embedded.untracked import untrack
from spanwarden.enforcers.access_requests import AccessRequest
from spanwarden.enforcers.audit_log import AgentRef, AuditChainBroken, AuditLog, AuditUnwritable
from spanwarden.enforcers.decision import Action, Decision
from spanwarden.enforcers.leases import LeaseBook, LeaseBookFull
from spanwarden.enforcers.policy import Policy, PolicyError
from spanwarden.enforcers.redact import Redactor
from spanwarden.enforcers.roles import TokenBook
from spanwarden.event_time import TimeBounds
from spanwarden.model_refit import ThreadRefitter
from spanwarden.notify import sink as notify_sink
from spanwarden.notify.notice import Notice
from spanwarden.notify.targets import Target
from spanwarden.pipeline import Pipeline
from spanwarden.server import app as server_app
from spanwarden.server.access import AccessApi
from spanwarden.server.announce import Announcer
from spanwarden.server.approvals import ApprovalsApi
from spanwarden.server.claim import claim
from spanwarden.server.durability import BrokenAudit, Durability, set_aside
from spanwarden.server.leases import LeaseRefused
from spanwarden.server.runtime import Figures
from spanwarden.server.supervisor import Supervisor
from spanwarden.settings import Settings, admin_token
from spanwarden.tls import server_context

_T = TypeVar("_T")
log = logging.getLogger(__name__)
_RECEIVED = SpanRecord._fields.index("received_s")
# A new agent's detectors are ~150 objects that the young GC passes walk until frozen: 200 agents' worth made
# each generation-1 pass 25-65 ms during a soak's warm-up (every request a new agent); 20 keep a pass short.
NEW_AGENTS_PER_FREEZE = 20


def _stamped(records: list[SpanRecord], received: float) -> list[SpanRecord]:
    """The records with `received_s` set: `_replace` of one field without its keyword machinery (that was
    a tenth of the loop's time at 5,000 agents)."""
    new, cut = tuple.__new__, _RECEIVED
    stamp = (received,)
    return [new(SpanRecord, r[:cut] + stamp + r[cut + 1:]) for r in records]  # type: ignore[misc]


class EmbeddedService:
    """Build with settings, then `run()` (blocking) or `start_in_thread()` (returns the bound port). It is the
    server layer's `Runtime` for `serve` (spanwarden/server/runtime.py): the app comes from
    `spanwarden.server.app.build`, like the Kafka gateway's."""

    kind = "embedded"

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
        policy = Policy.load(settings.policy_file)
        self.prices = PriceTable.load(settings.price_file,
                                      (settings.default_input_price, settings.default_output_price))
        self.audit_key = settings.audit_hmac_key.encode() if settings.audit_hmac_key else None
        self.supervisor = Supervisor()
        self.durability = Durability(settings, self.supervisor)
        self.audit: AuditLog | BrokenAudit
        try:
            self.audit = AuditLog(settings.audit_path, self.audit_key, settings.audit_fsync, self._redactor(),
                                  settings.audit_rotate_bytes)
        except AuditChainBroken as exc:
            # Keep serving decisions (a halted agent stays halted) but take in nothing that would need an
            # audit entry until an admin acknowledges the break.
            self.durability.broken = str(exc)
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
        self.pipeline = Pipeline(policy, self._sink(self.audit), on_decision=self._on_decision,
                                 on_finding=self._remember_finding, refitter=self.refitter,
                                 time_bounds=None if settings.trust_span_time else
                                 TimeBounds(settings.max_lateness_s, settings.max_skew_s), prices=self.prices)
        self.state = state_store.StateStore(settings.state_dir / "state.db")
        self.snapshots = state_store.Snapshotter(self.state, self.pipeline)
        self.ingest_worker = IngestWorker(lambda r: self.deliver(r, judge_all=False), lambda: self.audit,
                                          self.pipeline)  # spans through the pipeline, a bounded step at a time
        self.snapshots.calm = self.ingest_worker.calm
        self._frozen_agents = 0
        self.pipeline.judge_limit = 128  # each step judges at most this many due records (the loop stays free)
        self.pager = AgentPager(self.state, self.pipeline, settings.max_agents_in_memory)  # before the restore:
        self._restore()  # agents' detectors stay in state.db until each is needed (paged in, as after eviction)
        self.agent_cap = NewAgentCap(settings.new_agents_per_minute, settings.max_untrusted_agents,
                                     sum(map(is_untrusted, self.pipeline.agents)))
        self.token = admin_token(settings)
        self.tokens = TokenBook.load(settings.tokens_path, self.token)
        self.ingest = IngestGate(self.tokens, settings.ingest_mode)
        self.pipeline.pinned = load_pinned(settings.state_dir / "profiles")
        self.access = AccessApi(self.pipeline.access, self.answer_access, clock, settings.long_poll_s)
        self.profiles = ProfileApi(self.pipeline, settings.state_dir, clock)
        self.approvals = ApprovalsApi(self, self.ingest, clock, settings.long_poll_s,
                                      egress=self.egress_request, internal_domains=settings.internal_domains,
                                      models=self.model_request)
        self.leases = LeaseBook()
        self.trace_stage = TraceStage()  # one cost per LLM call; agents inherited within a bounded wait
        self._normalizer = Normalizer(self.prices)
        processes = (decode_pool.default_processes() if settings.decode_processes is None
                     else settings.decode_processes)
        self.decode_pool = (decode_pool.DecodePool(processes, settings.price_file, self._default_price())
                            if processes else None)  # decode and normalise on the other cores (decode_pool.py)
        self.port: int | None = None
        self.journal = ActivityJournal(settings.state_dir / "activity", settings.activity_max_bytes,
                                       bounds=self.pipeline.arrivals.bounds)  # lines at the clamped time
        self.last_span_wall: float | None = None
        self.loop_probe = LoopProbe()  # how long anything held the event loop (/metrics)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    def _remember_finding(self, finding: Finding) -> None:
        self.latest_findings[finding.agent_id] = finding
        self.agent_metrics.finding(finding, self.pipeline.agents.get(finding.agent_id, AgentRef(finding.agent_id)))
        if self.reporting is not None:
            self.reporting.finding(finding, self.pipeline.agents.get(finding.agent_id, AgentRef(finding.agent_id)))

    def _on_decision(self, decision: Decision) -> None:
        audit = self.audit
        if isinstance(audit, AuditLog) and audit.deferring:  # from an ingest chunk: published once durable
            audit.durable().add_done_callback(
                lambda done: None if done.cancelled() or done.exception() else self._publish(decision))
            return
        self._publish(decision)

    def _publish(self, decision: Decision) -> None:
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
        state_store.restore(self.state, self.settings.snapshot_path, self.pipeline, lazy=True)
        recovered = audit_recovery.recover(self.settings.audit_path)
        for decision in recovered.decisions:
            self.pipeline.restore_decision(decision)
        for answer in recovered.answers:
            self.pipeline.access_stage.restore_answer(answer)
        for agent_id in set(self.pipeline.ladders) - set(self.pipeline.agents):  # not in the snapshot (lost)
            said = read_who(self.settings.state_dir / "activity", agent_id)
            if said:  # who its spans last said it is (status, --team/--env), until they say it again
                self.pipeline.agents[agent_id] = AgentRef(agent_id, *(said.get(k, "") for k in WHO[:4]))
        for agent_id in self.pipeline.ladders:
            for decision in sorted([self.pipeline.decision(agent_id), *self.pipeline.scoped(agent_id)],
                                   key=lambda d: d.version):
                self.board.publish(decision)
        self.announcer.seen.update(self.pipeline.agents)  # restored agents are not new
        if self.durability.broken is None:
            self._started()

    def _started(self) -> None:
        torn = getattr(self.audit, "torn_tail", None)
        if torn is not None:
            log.warning("the audit log ended in a torn write (a crash mid-append); its bytes are in %s", torn)
        self.pipeline.audit.append("service", AgentRef(), "service", "service started", self.clock(),
                                   policy_version=self.policy.version,
                                   data={"agents_restored": len(self.pipeline.detectors)
                                         + len(self.pipeline.paged_out),
                                         "torn_write_set_aside": torn.name if torn else None,
                                         "unreadable_state_set_aside": (self.state.set_aside_as.name
                                                                        if self.state.set_aside_as else None)})

    def _redactor(self) -> Redactor:
        return Redactor(self.settings.redact_patterns)

    # --- the server layer's Runtime (spanwarden/server/runtime.py) ---
    @property
    def sink(self) -> AuditSink:
        return self.pipeline.audit

    @property
    def agents(self) -> dict[str, AgentRef]:
        return self.pipeline.agents

    @property
    def policy(self) -> Policy:
        return self.pipeline.policy

    @property
    def audit_broken(self) -> str | None:
        return self.durability.broken

    @property
    def body_decoder(self) -> Callable[[bytes, str, str, int], Awaitable[list[SpanRecord]]] | None:
        """Where the receiver decodes bodies: the decode pool's processes, or None (here, on the loop)."""
        return self.decode_pool.records if self.decode_pool is not None else None

    def _default_price(self) -> tuple[float, float]:
        return (self.settings.default_input_price, self.settings.default_output_price)

    async def reload_prices(self) -> None:
        """Load the price file again for normalising spans, here and in every decode process (a bad file
        raises PriceTableError and the old table stays)."""
        prices = PriceTable.load(self.settings.price_file, self._default_price())
        if self.decode_pool is not None:
            await self.decode_pool.set_prices(self.settings.price_file, self._default_price())
        self._normalizer = Normalizer(prices)

    async def take_spans(self, message: ExportTraceServiceRequest | list[SpanRecord], authorization: str) -> None:
        """A decoded request, or its records already normalised by the decode pool."""
        records = self.ingest.admit(authorization, message if isinstance(message, list)
                                    else self._normalizer.records(message))
        ready = self.trace_stage.process(records, self.clock())
        if ready:
            ready = self._capped(authorization, ready)
        if ready:
            await self.ingest_worker.take(ready)  # queued for the pipeline worker; 429 when it is full

    def _capped(self, authorization: str, records: list[SpanRecord]) -> list[SpanRecord]:
        """Without the spans of new agent names past the caps (spanwarden/embedded/agent_cap.py)."""
        principal = self.tokens.authenticate(authorization) if authorization else None
        name = principal.actor if principal is not None else "anonymous"
        agents, ladders = self.pipeline.agents, self.pipeline.ladders
        kept, refusals = self.agent_cap.admit(name, records, lambda a: a in agents or a in ladders, self.clock())
        for refusal in refusals:
            log.warning("spans of new agent %r refused: %s", refusal.agent, refusal.why)
            self.pipeline.audit.append("service", AgentRef(refusal.agent), "service", f"spans of new agents from "
                                       f"{refusal.principal} refused: {refusal.why}", self.clock(), (),
                                       self.policy.version, {"principal": refusal.principal,
                                                             "agent": refusal.agent, "cap": refusal.why})
        return kept

    async def answer_access(self, request_id: str, approve: bool, actor: str, reason: str, now_s: float,
                            for_s: float | None) -> Decision:
        return await self._audited(lambda: self.pipeline.answer_access(request_id, approve, actor, reason, now_s,
                                                                      for_s))

    async def apply_command(self, agent_id: str, action: Action, reason: str, actor: str, now_s: float,
                            expires_s: float | None, throttle_per_s: float | None, selected_by: dict[str, str],
                            calls: str) -> Decision:
        return await self._audited(lambda: self.pipeline.command(agent_id, action, reason, actor, now_s, expires_s,
                                                                throttle_per_s, selected_by, calls))

    async def egress_request(self, agent_id: str, resource: str, summary: str,
                             now_s: float) -> AccessRequest | None:
        """A guard's egress question (its request audited off the loop, answered once durable)."""
        return await self._audited(lambda: self.pipeline.egress_request(agent_id, resource, summary, now_s))

    async def model_request(self, agent_id: str, model: str, now_s: float) -> AccessRequest | None:
        """A guard's question before a first call to a model (audited off the loop, answered once durable)."""
        return await self._audited(lambda: self.pipeline.model_request(agent_id, model, now_s))

    async def _audited(self, change: Callable[[], _T]) -> _T:
        """Make the change with its audit entries queued for the writer thread, and answer once they are
        durable (the decision reaches the board then too): the loop is not held while the disk syncs."""
        audit = self.audit
        if not isinstance(audit, AuditLog):
            return change()
        with self.ingest_worker.urgent():  # the pipeline's chunks wait meanwhile (a kill goes first)
            with audit.deferred():
                decision = change()
            await audit.durable()
            await asyncio.sleep(0)  # the long-polls the decision woke are answered before the chunks go on
        return decision

    def knows(self, agent_id: str) -> bool:
        return agent_id in self.pipeline.agents or self.board.version(agent_id) > 0

    def health_body(self) -> dict[str, Any]:
        return health.body(self)

    def figures(self) -> Figures:
        return health.figures(self)

    def agent_figures(self) -> Figures:
        return health.agent_figures(self)

    async def grant_lease(self, agent_id: str, returning: str, unused_usd: float,
                          reservation: str) -> dict[str, Any]:
        bank = self.pipeline.bank(agent_id)  # paged back in if it was paged out
        spent = bank.cost.hour.sum if bank is not None else 0.0
        try:
            lease = self.leases.grant(agent_id, self.clock(), self.pipeline.policy.budgets.agent_usd_per_hour,
                                      spent, returning, unused_usd)
        except LeaseBookFull as exc:
            raise LeaseRefused(f"no lease granted: {exc}", self.leases.lease_s) from exc
        p99 = self.leases.sizes.p99(agent_id)
        return {**lease.to_dict(), "ttl_s": self.leases.lease_s, "p99_input_tokens": p99[0] if p99 else None,
                "p99_output_tokens": p99[1] if p99 else None}

    def profile(self, agent_id: str) -> dict[str, Any] | None:
        return self.profiles.profile(agent_id)

    def pin_profile(self, agent_id: str, actor: str, reason: str, given: dict[str, Any] | None) -> dict[str, Any]:
        return self.profiles.pin(agent_id, actor, reason, given)

    def deliver(self, records: list[SpanRecord], judge_all: bool = True) -> None:
        """Take records in and judge those due: all of them (a direct caller), or up to the pipeline's
        judge limit (the pipeline worker, which judges the rest in further steps)."""
        self.last_span_wall = time.time()
        if not self.settings.trust_span_time:
            received = self.clock()  # the service's time, which event times are held to
            records = _stamped(records, received)
        try:
            self.journal.append(records)  # first: a refused request leaves the pipeline untouched
        except OSError as exc:
            raise AuditUnwritable(f"cannot write the activity journal: {exc}") from exc
        untrack(records)  # they live a second or more: out of every young GC pass's walk (untracked.py)
        if self.reporting is not None:
            self.reporting.records(records)
        self.agent_metrics.records(records)
        self.pipeline.process(records)
        while judge_all and self.pipeline.backlog():
            self.pipeline.judge_due()
        if len(self.pipeline.detectors) - self._frozen_agents >= NEW_AGENTS_PER_FREEZE:  # frozen right away
            self._collect_garbage()
        self.leases.observe(records)  # each agent's call sizes, for its guard's estimates
        agents, seen = self.pipeline.agents, self.announcer.seen
        self.announcer.agents(agents[r.agent_id] for r in records
                              if r.agent_id not in seen and r.agent_id in agents)

    def acknowledge_broken_audit(self, actor: str, reason: str) -> str:
        """Set the broken log aside (kept for forensics) and start a new chain whose first entry records the
        break, who acknowledged it and why."""
        aside, digest = set_aside(self.settings.audit_path, self.clock())
        new = AuditLog(self.settings.audit_path, self.audit_key, self.settings.audit_fsync, self._redactor(),
                       self.settings.audit_rotate_bytes)
        new.append("command", AgentRef(), actor, reason, self.clock(), (), self.policy.version,
                   {"command": "audit_acknowledge", "break": self.durability.broken, "set_aside": aside,
                    "sha256_of_set_aside": digest})
        self.audit = new
        self.pipeline.audit = self._sink(new)
        self.durability.broken = None
        self._started()
        return aside

    def build_app(self) -> web.Application:
        """The server layer's app (one route table, auth, durability) on this runtime."""
        return server_app.build(self, console=True)  # and the web console at / (spanwarden/console/)

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
        log.info("policy %s in force", policy.version)
        return None

    def status(self) -> list[dict[str, Any]]:
        return [self._status_row(a, ref, self._bank_for_status(a)) for a, ref in self._known()]

    async def status_rows(self) -> list[dict[str, Any]]:
        """`status()` 100 agents at a time, the loop free in between (thousands of agents); the figures of
        agents paged out to disk are read there on a thread (they stay paged out)."""
        out: list[dict[str, Any]] = []
        known = self._known()
        for start in range(0, len(known), 100):
            chunk = known[start:start + 100]
            banks = self.pipeline.detectors
            paged = [a for a, _ in chunk if a not in banks and a in self.pipeline.paged_out]
            on_disk = await asyncio.to_thread(self._banks_on_disk, paged) if paged else {}
            out.extend(self._status_row(a, ref, banks.get(a) or on_disk.get(a)) for a, ref in chunk)
            await asyncio.sleep(0)
        return out

    def _bank_for_status(self, agent_id: str) -> AgentDetectors | None:
        bank = self.pipeline.detectors.get(agent_id)
        if bank is None and agent_id in self.pipeline.paged_out:
            return self._bank_on_disk(agent_id)
        return bank

    def _banks_on_disk(self, agents: list[str]) -> dict[str, AgentDetectors | None]:
        return {a: self._bank_on_disk(a) for a in agents}

    def _bank_on_disk(self, agent_id: str) -> AgentDetectors | None:
        """A paged-out agent's detectors as saved, read for its figures only (any thread: nothing shared)."""
        state = self.pager.read(agent_id)
        return None if state is None else AgentDetectors.from_state(state, self.pipeline.settings)

    def _known(self) -> list[tuple[str, AgentRef]]:
        known = {**{a: AgentRef(a) for a in self.pipeline.ladders}, **self.pipeline.agents}  # decided-for too
        return sorted(known.items())

    def _status_row(self, agent_id: str, ref: AgentRef, bank: AgentDetectors | None) -> dict[str, Any]:
        finding = self.latest_findings.get(agent_id)
        hour = bank.cost.hour if bank is not None else None
        return {
            "agent": agent_id, "owner": ref.owner, "team": ref.team, "environment": ref.environment,
            "decision": self.pipeline.decision(agent_id).to_dict(),
            "scoped": [d.to_dict() for d in self.pipeline.scoped(agent_id)],  # some calls: tool/model/resource
            "last_finding": finding.to_dict() if finding else None,
            "spend_usd_last_hour": round(hour.sum, 6) if hour is not None else 0.0,
            "spend_usd_per_min": round(hour.recent(5) / 5, 6) if hour is not None and hour.index is not None
            else 0.0,  # over the agent's last 5 minutes
            "last_seen_s": bank.cost.last_time if bank is not None else None,
            "llm_spans_without_usage": self.trace_stage.without_usage.get(agent_id, 0),
            "unheld_writes": bank.write_volume.unheld if bank is not None else 0,  # ran without approval
            "agent_identity_from": self.trace_stage.identity.get(agent_id)
            or self.journal.who(agent_id).get("source", ""),  # after a restart: as its spans last said
        }

    def _judge_backlog(self) -> None:
        """What the judge limit left due, judged before the last snapshot (the service is stopping)."""
        if self.durability.broken is None:
            try:
                while self.pipeline.backlog():
                    self.pipeline.judge_due()
            except AuditUnwritable as exc:
                log.error("records left unjudged at the stop: %s", exc)

    def snapshot(self) -> None:
        """Save the baselines of the agents changed since the last snapshot, at once (at shutdown, in tests);
        when the disk refuses, keep the previous snapshot and try again next time (decisions are recovered
        from the audit log whatever the snapshot's age)."""
        try:
            self.snapshots.now()
        except (OSError, sqlite3.Error) as exc:
            log.error("could not save the baselines snapshot (%s); the previous one stays", exc)

    async def _serve(self, ready: threading.Event | None = None) -> None:
        process_tuning.enter(process_tuning.YOUNG_THRESHOLDS)  # no full GC passes, short young ones, a 1 ms
        # GIL switch interval (process_tuning.py)
        try:
            await self._serve_tuned(ready)
        finally:
            process_tuning.leave()

    async def _serve_tuned(self, ready: threading.Event | None) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        # The receiver inflates gzip itself, with a size limit, so aiohttp must hand it the raw body.
        if self.decode_pool is not None:
            try:
                await self.decode_pool.start()  # before the port takes spans
            except decode_pool.DecodePoolUnavailable as exc:
                log.error("%s; OTLP bodies are decoded on the event loop", exc)
                self.decode_pool = None
        runner = web.AppRunner(self.build_app(), access_log=None, auto_decompress=False, shutdown_timeout=2.0)
        await runner.setup()
        site = web.SockSite(runner, self.claim.socket, ssl_context=server_context(self.settings))
        await site.start()
        self.port = self.claim.port
        log.info("spanwarden listening on http://%s:%s", self.settings.host, self.port)
        if ready is not None:
            ready.set()
        self._supervise()
        try:
            await self._stopping.wait()
        finally:
            await self.supervisor.stop(grace_s=0)  # these tasks loop until cancelled
            self.board.close()
            await runner.cleanup()
            if self.decode_pool is not None:
                await self.decode_pool.close()  # no process left behind
            self._judge_backlog()
            self.snapshot()
            if self.durability.broken is None:
                try:
                    self.pipeline.audit.append("service", AgentRef(), "service", "service stopped", self.clock(),
                                               policy_version=self.policy.version)
                except AuditUnwritable as exc:  # a full disk at shutdown: say so, and still close cleanly
                    log.error("the stop could not be audited: %s", exc)
            self.audit.close()
            self.state.close()
            self.journal.close()
            self.refitter.close()
            if self.reporting is not None:
                self.reporting.close()  # sends what is left, within a bounded time
            if self.notify is not None:
                self.notify.close()
            self.claim.release()

    def _supervise(self) -> None:
        """Start the background tasks under the supervisor: one that dies turns /healthz 503, and the clock
        (which judges records and lapses decisions) stops intake with it."""
        self.supervisor.start("clock", self._advance_clock, stops_intake=True)
        self.supervisor.start("snapshot", self._snapshots, stops_intake=False)
        self.supervisor.start("pipeline", self.ingest_worker.run, stops_intake=True)
        self.supervisor.start("loop_probe", self.loop_probe.run, stops_intake=False)
        if self.reporting is not None:
            self.supervisor.start("datadog_flush", self._flush_datadog, stops_intake=False)
        if self.notify is not None:
            self.supervisor.watch("notify", self.notify.notifier.health, stops_intake=False)

    async def _snapshots(self) -> None:
        """Every interval, the changed agents a chunk at a time, written on a thread (state_store.py); a slow
        snapshot waits four times its own length before the next, so it never takes over a fifth of a core."""
        pause = self.settings.snapshot_interval_s
        while True:
            await asyncio.sleep(pause)
            started = time.monotonic()
            try:
                await self.snapshots.run()
                await self.pager.evict()  # past the agents kept in memory, the idlest go to disk
            except (OSError, sqlite3.Error) as exc:
                log.error("could not save the baselines snapshot (%s); the previous one stays", exc)
            self._collect_garbage()
            pause = max(self.settings.snapshot_interval_s, 4 * (time.monotonic() - started))

    def _collect_garbage(self) -> None:
        """What lives on (baselines, decisions) is frozen out of the collector's full passes, which at
        thousands of agents would each hold the loop for hundreds of ms; objects are still freed as they go
        (a freeze keeps only cyclic garbage, and a test finds none: tests/embedded/test_loop_stall.py).
        The young generations are collected first, so what is frozen is what lives: a small pass, since
        it comes every NEW_AGENTS_PER_FREEZE new agents."""
        gc.collect(1)
        gc.freeze()
        self._frozen_agents = len(self.pipeline.detectors)

    async def _advance_clock(self) -> None:
        """Judge records whose time has come and lapse expired decisions, on the service clock, even while no
        spans arrive."""
        while True:
            await asyncio.sleep(1.0)
            if self.durability.broken is None:
                try:
                    await self._in_steps(lambda: self.pipeline.advance(self.clock()))
                    while self.pipeline.backlog():  # what the judge limit held back, a step at a time
                        await self._in_steps(self.pipeline.judge_due)
                except AuditUnwritable as exc:
                    log.error("%s; the clock moves on when it can be written", exc)

    async def _in_steps(self, step: Callable[[], object]) -> None:
        """One bounded step of the pipeline, its audit entries grouped and awaited, the loop free between."""
        await self.ingest_worker.calm()  # after any urgent command
        audit = self.audit
        if not isinstance(audit, AuditLog):
            step()
        else:
            with audit.deferred():
                step()
            await audit.durable()
        await asyncio.sleep(0)  # a step that audited nothing has a durable future already done: yield anyway

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
