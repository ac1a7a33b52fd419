"""Which refused requests reach the audit log. A 401 (no valid token) is anyone who can reach the port: it is
counted (`spanwarden_http_requests_total` by route and status) and logged at most once a minute, never
appended to the audit log — unauthenticated noise must not cost an fsync each, nor grow the log. A 403 is a
known principal reaching past its role: audited, once per principal and action every ten minutes."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from aiohttp import web

log = logging.getLogger("spanwarden.auth")
AUDIT_EVERY_S = 600.0
LOG_EVERY_S = 60.0
MAX_REMEMBERED = 4096


class RefusalAudit:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._last: OrderedDict[tuple[str, str, int], float] = OrderedDict()
        self.unaudited = 0

    def should_audit(self, actor: str, action: str, status: int, remote: str | None) -> bool:
        """Whether this refusal is to be audited now (else it is only counted, and logged now and then)."""
        key = (actor if status != 401 else remote or "?", action, status)
        now, last = self.clock(), self._last.get(key)
        every = AUDIT_EVERY_S if status == 403 else LOG_EVERY_S
        due = last is None or now - last >= every
        if due:
            self._last[key] = now
            self._last.move_to_end(key)
            while len(self._last) > MAX_REMEMBERED:
                self._last.popitem(last=False)
        if status == 401:
            if due:
                log.warning("refused %s from %s: no valid bearer token (401; counted, not audited)", action,
                            remote or "?")
            self.unaudited += 1
            return False
        if not due:
            self.unaudited += 1
        return due


KEY: web.AppKey[RefusalAudit] = web.AppKey("spanwarden_refusals", RefusalAudit)


def of(request: web.Request) -> RefusalAudit | None:
    return request.app.get(KEY)
