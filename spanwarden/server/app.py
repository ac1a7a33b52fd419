"""The HTTP app of both runtimes: `build(runtime)` registers every route of `routes.TABLE` (and nothing else)
with the same handlers, behind the same middlewares, outermost first:

1. request counting for `/metrics` (`spanwarden_http_requests` by route and status);
2. the unknown-path warnings (`http_hints`);
3. durability (`durability.py`): mutating routes wait while nothing could be audited;
4. auth (`auth.py`): each route's role;
5. `NotOffered` → 501 and `Unavailable` → 503, what a runtime cannot do (yet).

Routes of another package (the web console) join with `extra`: they are routes of the table too, each with
its access level, and go through the same middlewares."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from spanwarden.collector import control_channel, receiver
from spanwarden.collector.ingest_auth import IngestRefused
from spanwarden.enforcers.audit_log import AgentRef, AuditChainBroken
from spanwarden.server import commands, http_hints, leases, refusals, routes, service_routes
from spanwarden.server.auth import Auth, Resolver
from spanwarden.server.routes import Handler, Route
from spanwarden.server.runtime import Figures, NotOffered, Runtime, Unavailable
from spanwarden.server.self_metrics import SelfMetrics

log = logging.getLogger("spanwarden.server")


@web.middleware
async def _not_offered(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except NotOffered as exc:
        return web.json_response({"code": 501, "message": str(exc)}, status=501)
    except Unavailable as exc:
        return web.json_response({"code": 503, "message": str(exc)}, status=503)


def traces(runtime: Runtime, app: web.Application) -> Handler:
    """`POST /v1/traces`: the runtime takes the decoded request; a forged report (a token speaking for another
    agent, 403) is audited, once per token and agent every ten minutes; a 401 only counted."""

    async def deliver(message: ExportTraceServiceRequest, authorization: str) -> None:
        try:
            await runtime.take_spans(message, authorization)
        except IngestRefused as exc:
            limiter = app[refusals.KEY]
            if exc.status == 403 and limiter.should_audit(exc.principal, f"ingest:{exc.agent}", 403, None):
                _audit_forgery(runtime, exc)
            raise

    # a runtime that decodes in processes of its own (the embedded service's decode pool) hands bodies there
    return receiver.traces_handler(deliver, runtime.settings.max_body_bytes,
                                   getattr(runtime, "body_decoder", None))


def _audit_forgery(runtime: Runtime, exc: IngestRefused) -> None:
    try:
        runtime.sink.append("command", runtime.agents.get(exc.agent, AgentRef(exc.agent)), exc.principal,
                            f"refused spans: {exc}", runtime.clock(), (), runtime.policy.version,
                            {"command": "ingest", "outcome": "refused", "status": exc.status})
    except AuditChainBroken as broken:
        log.warning("refused spans from %s for %s; not audited: %s", exc.principal, exc.agent, broken)


def figures(runtime: Runtime) -> Figures:
    """The runtime's own figures, and what every runtime reports alike (audit chain, background tasks)."""
    out = runtime.figures()
    out["spanwarden_audit_chain_ok"] = ("gauge", "1 while the audit chain is intact",
                                        0.0 if runtime.durability.broken else 1.0, ())
    dead = runtime.supervisor.problems()
    out["spanwarden_task_up"] = ("gauge", "1 while the background task runs, 0 once it died",
                                 {(name,): 0.0 if name in dead else 1.0 for name in runtime.supervisor.view()},
                                 ("task",))
    return out


def handlers(runtime: Runtime, app: web.Application, metrics: SelfMetrics) -> dict[str, Handler]:
    one, every = control_channel.handlers(runtime.board, runtime.settings.long_poll_s)
    approvals, access = runtime.approvals, runtime.access
    return {
        "traces": traces(runtime, app), "decision": one, "decisions": every, "lease": leases.handler(runtime),
        "approval_rules": approvals.rules, "approval_open": approvals.open, "approvals_pending": approvals.pending,
        "approval_wait": approvals.wait, "approval_answer": approvals.answer, "access_pending": access.pending,
        "access_wait": access.wait, "access_answer": access.answer, "command": commands.handler(runtime),
        **service_routes.handlers(runtime, metrics),
    }


def build(runtime: Runtime, extra: Sequence[tuple[Route, Handler]] = (),
          resolvers: Sequence[Resolver] | None = None, console: bool = False) -> web.Application:
    """The app for `runtime`; `resolvers` replace the default bearer-token principal resolution (see
    `auth.py`); `extra` adds routes (each with its access level) of another package; `console` serves the
    web console at `/`."""
    page_resolvers: dict[tuple[str, str], Sequence[Resolver]] = {}
    if console:  # the web console at / (spanwarden/console/): its pages, and its session-cookie resolver
        from spanwarden import console as web_console  # its templates load only when served

        pages, session_resolvers = web_console.for_app(runtime.tokens, runtime.settings)
        extra = (*extra, *pages)
        page_resolvers = {(r.method, r.path): session_resolvers for r, _ in pages}  # pages only, never the API
    metrics = SelfMetrics(lambda: figures(runtime))
    authenticator = Auth(runtime, resolvers, page_resolvers)
    app = web.Application(client_max_size=runtime.settings.max_body_bytes + 1)
    warnings = http_hints.UnknownPathWarnings()
    app.middlewares.extend([metrics.count_requests, warnings.middleware, runtime.durability.middleware,
                            authenticator.middleware, _not_offered])
    http_hints.install(app, warnings, middleware=False)
    table = {**handlers(runtime, app, metrics), **{f"extra:{r.method} {r.path}": h for r, h in extra}}
    extra_routes = [Route(r.method, r.path, r.access, f"extra:{r.method} {r.path}", r.action, r.mutates,
                          r.action_of) for r, _ in extra]
    routes.register(app, (*routes.TABLE, *extra_routes), table)
    if missing := routes.unlisted(app):
        raise RuntimeError(f"routes registered outside the route table: {missing}")
    app[SELF_METRICS] = metrics
    app[AUTH] = authenticator
    return app


SELF_METRICS: web.AppKey[SelfMetrics] = web.AppKey("spanwarden_self_metrics", SelfMetrics)
AUTH: web.AppKey[Auth] = web.AppKey("spanwarden_auth", Auth)
