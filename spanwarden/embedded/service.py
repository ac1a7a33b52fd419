"""The embedded service: OTLP receiver, detectors, enforcers, control channel and audit log in one process,
keeping its state on local disk so that a restart loses nothing."""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from spanwarden.collector import control_channel, receiver
from spanwarden.collector.normalize import Normalizer
from spanwarden.collector.pricing import PriceTable
from spanwarden.collector.span_record import SpanRecord
from spanwarden.detectors.finding import Finding
from spanwarden.embedded import commands_api, state_store
from spanwarden.enforcers.audit_log import AgentRef, AuditLog
from spanwarden.enforcers.policy import Policy, PolicyError
from spanwarden.enforcers.roles import TokenBook
from spanwarden.model_refit import ThreadRefitter
from spanwarden.pipeline import Pipeline
from spanwarden.settings import Settings

log = logging.getLogger(__name__)


class EmbeddedService:
    """Build with settings, then `run()` (blocking) or `start_in_thread()` (returns the bound port)."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        self.policy = Policy.load(settings.policy_file)
        self.prices = PriceTable.load(settings.price_file,
                                      (settings.default_input_price, settings.default_output_price))
        key = settings.audit_hmac_key.encode() if settings.audit_hmac_key else None
        self.audit = AuditLog(settings.audit_path, key, settings.audit_fsync)
        self.board = control_channel.DecisionBoard()
        self.latest_findings: dict[str, Finding] = {}
        self.refitter = ThreadRefitter()  # the behaviour model is refitted off the event loop
        self.pipeline = Pipeline(self.policy, self.audit, on_decision=self.board.publish,
                                 on_finding=self._remember_finding, refitter=self.refitter)
        self._restore()
        self.token = self._admin_token()
        self.tokens = TokenBook.load(settings.tokens_path, self.token)
        self.port: int | None = None
        self._snapshotted_at = -1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    def _remember_finding(self, finding: Finding) -> None:
        self.latest_findings[finding.agent_id] = finding

    def _restore(self) -> None:
        snapshot = state_store.load_snapshot(self.settings.snapshot_path)
        if snapshot is not None:
            self.pipeline.load_state(snapshot)
        for decision in state_store.decisions_from_audit(self.settings.audit_path).values():
            self.pipeline.restore_decision(decision)
        for agent_id in self.pipeline.ladders:
            self.board.publish(self.pipeline.decision(agent_id))
        self.audit.append("service", AgentRef(), "service", "service started", self.clock(),
                          policy_version=self.policy.version,
                          data={"agents_restored": len(self.pipeline.detectors), "snapshot": snapshot is not None})

    def _admin_token(self) -> str:
        if self.settings.admin_token:
            return self.settings.admin_token
        path = self.settings.token_path
        if path.exists():
            return path.read_text().strip()
        token = secrets.token_urlsafe(32)
        path.touch(mode=0o600)
        path.write_text(token)
        return token

    def deliver(self, records: list[SpanRecord]) -> None:
        self.pipeline.process(records)

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.max_body_bytes + 1)
        app.router.add_post(receiver.TRACES_PATH, receiver.traces_handler(
            Normalizer(self.prices), self.deliver, self.settings.max_body_bytes))
        control_channel.add_routes(app, self.board, self.settings.long_poll_s)
        commands_api.add_routes(app, self.pipeline, self.tokens, self.clock)
        app.router.add_get("/v1/status", self._status)
        app.router.add_post("/v1/policy/reload", self._reload)
        app.router.add_get("/healthz", self._health)
        return app

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "records": self.pipeline.records_seen})

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
            self.audit.append("config_change", AgentRef(), actor, f"policy reload refused: {exc}", self.clock(),
                              (), self.pipeline.policy.version, {"outcome": "refused", "error": str(exc)})
            log.error("policy reload refused, %s stays in force: %s", self.pipeline.policy.version, exc)
            return str(exc)
        self.pipeline.set_policy(policy, actor, self.clock())
        self.policy = policy
        log.info("policy %s in force", policy.version)
        return None

    def status(self) -> list[dict[str, Any]]:
        out = []
        for agent_id, ref in sorted(self.pipeline.agents.items()):
            finding = self.latest_findings.get(agent_id)
            out.append({
                "agent": agent_id, "owner": ref.owner, "team": ref.team, "environment": ref.environment,
                "decision": self.pipeline.decision(agent_id).to_dict(),
                "last_finding": finding.to_dict() if finding else None,
            })
        return out

    def snapshot(self) -> None:
        if self.pipeline.records_seen != self._snapshotted_at:
            state_store.save_snapshot(self.settings.snapshot_path, self.pipeline.to_state())
            self._snapshotted_at = self.pipeline.records_seen

    async def _serve(self, ready: threading.Event | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        # The receiver inflates gzip itself, with a size limit, so aiohttp must hand it the raw body.
        runner = web.AppRunner(self.build_app(), access_log=None, auto_decompress=False)
        await runner.setup()
        site = web.TCPSite(runner, self.settings.host, self.settings.port)
        await site.start()
        self.port = runner.addresses[0][1]
        log.info("spanwarden listening on http://%s:%s", self.settings.host, self.port)
        if ready is not None:
            ready.set()
        try:
            while not self._stopping.is_set():
                try:
                    await asyncio.wait_for(self._stopping.wait(), self.settings.snapshot_interval_s)
                except TimeoutError:
                    self.snapshot()
        finally:
            await runner.cleanup()
            self.snapshot()
            self.audit.append("service", AgentRef(), "service", "service stopped", self.clock(),
                              policy_version=self.policy.version)
            self.audit.close()
            self.refitter.close()

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
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(15)

    def request_stop(self) -> None:
        """Ask a running `run()` to stop (from a signal handler on the loop's thread)."""
        if self._stopping is not None:
            self._stopping.set()
