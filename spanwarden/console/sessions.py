"""Console sign-in: a named token (viewer, oncall or admin, from the tokens file) is exchanged once for a
session whose id travels only in an HttpOnly, SameSite=Strict cookie (Secure over TLS). The token stays in
the service's memory, never in a cookie, a URL or a log; each session has its own CSRF token that every POST
must carry. `SessionResolver.resolve` is the principal resolver for the server layer's auth middleware."""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from spanwarden.enforcers.roles import Principal, Role, TokenBook

COOKIE = "spanwarden_session"
SIGN_IN_COOKIE = "spanwarden_sign_in"  # the CSRF token of the sign-in form itself (before any session)
SESSION_S = 8 * 3600.0  # a session lasts a working shift, then sign in again
MAX_SESSIONS = 10_000  # the oldest are signed out past this


@dataclass(frozen=True)
class Session:
    id: str
    principal: Principal
    token: str  # kept server-side only: the console calls the API with it, as the person who signed in
    csrf: str
    expires_s: float


class SignInRefused(ValueError):
    """The token is unknown, or an agent's (agents cannot sign in to the console)."""


class Sessions:
    def __init__(self, tokens: TokenBook, clock: Callable[[], float] = time.monotonic,
                 lifetime_s: float = SESSION_S, max_sessions: int = MAX_SESSIONS) -> None:
        self.tokens = tokens
        self.clock = clock
        self.lifetime_s = lifetime_s
        self.max_sessions = max_sessions
        self._by_id: OrderedDict[str, Session] = OrderedDict()

    def sign_in(self, token: str) -> Session:
        principal = self.tokens.authenticate(f"Bearer {token.strip()}")
        if principal is None:
            raise SignInRefused("that token is not known to this service")
        if principal.role is Role.AGENT:
            raise SignInRefused("an agent's token cannot sign in to the console")
        session = Session(secrets.token_urlsafe(32), principal, token.strip(), secrets.token_urlsafe(32),
                          self.clock() + self.lifetime_s)
        self._by_id[session.id] = session
        while len(self._by_id) > self.max_sessions:
            self._by_id.popitem(last=False)
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session with this id (an expired one is forgotten)."""
        if not session_id:
            return None
        session = self._by_id.get(session_id)
        if session is None:
            return None
        if session.expires_s <= self.clock():
            del self._by_id[session_id]
            return None
        return session

    def sign_out(self, session_id: str) -> None:
        self._by_id.pop(session_id, None)

    def of(self, request: web.Request) -> Session | None:
        return self.get(request.cookies.get(COOKIE))


def csrf_ok(expected: str, given: object) -> bool:
    return isinstance(given, str) and bool(given) and hmac.compare_digest(expected.encode(), given.encode())


def set_cookie(response: web.StreamResponse, request: web.Request, name: str, value: str,
               max_age_s: float | None = None) -> None:
    response.set_cookie(name, value, path="/", httponly=True, samesite="Strict", secure=request.secure,
                        max_age=None if max_age_s is None else int(max_age_s))


CSRF_HEADER = "X-Spanwarden-CSRF"


class SessionResolver:
    """The principal behind a request's console session cookie, or None: the server layer's auth middleware
    (`spanwarden.server.auth`) uses it for the console's own routes only, whose forms carry the CSRF token the
    console checks itself. Should it ever be given an API route (`/v1/...`), a POST there must also carry the
    session's CSRF token in `X-Spanwarden-CSRF`."""

    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions

    def __call__(self, request: web.Request) -> Principal | None:
        session = self.sessions.of(request)
        if session is None:
            return None
        if request.method not in ("GET", "HEAD") and request.path.startswith("/v1/") \
                and not csrf_ok(session.csrf, request.headers.get(CSRF_HEADER)):
            return None
        return session.principal
