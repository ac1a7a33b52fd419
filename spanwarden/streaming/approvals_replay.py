"""Tool approvals through a gateway restart: the gateway holds them (they need only the policy and the
audit log), and every change to one — opened, answered, expired — is an audit entry carrying the whole
request, so at start the gateway reads its own log back into the book: a request pending when it stopped
is pending again (and a guard waiting on it by id gets its answer), answered ones stay answered."""

from __future__ import annotations

import dataclasses

from spanwarden.enforcers.approvals import ApprovalBook, ApprovalRequest
from spanwarden.enforcers.audit_log import AuditEntry

_FIELDS = {f.name for f in dataclasses.fields(ApprovalRequest)}


def request_of(entry: AuditEntry) -> ApprovalRequest | None:
    """The tool approval an audit entry records, or None (another kind, an access request, a malformed one)."""
    data = entry.data
    if entry.kind != "approval" or data.get("kind") == "access" or "tool" not in data or "id" not in data:
        return None
    try:
        return ApprovalRequest(**{k: v for k, v in data.items() if k in _FIELDS})
    except TypeError:
        return None


def note(book: ApprovalBook, entry: AuditEntry) -> bool:
    """Read one entry of the log, oldest first: a request takes the state its newest entry records (the
    book stays bounded: the oldest go first). Whether it recorded a tool approval."""
    request = request_of(entry)
    if request is None:
        return False
    book.requests.pop(request.id, None)
    book.requests[request.id] = request
    if len(book.requests) > book.max_requests:
        del book.requests[next(iter(book.requests))]
    return True
