"""Who acted, as the audit log records it (`AuditEntry.actor`, `Decision.decided_by`) and as people read it.

A human's command is recorded under the token that authenticated it and, when the person giving it named
someone else (`--actor`, by default their login name), as `"<token> for <person>"`: `human:admin for root`
is one person, root, acting with the admin token — not admin acting for a second person. `readable` says so,
wherever the CLI prints an actor; the log keeps the recorded form (its hashes cover it).
"""

from __future__ import annotations

HUMAN = "human:"
ON_BEHALF = " for "


def recorded(token: str, stated: str) -> str:
    """The actor of a command authenticated by `token`, given by the person who says they are `stated`."""
    return token if not stated or stated == token else f"{token}{ON_BEHALF}{stated}"


def readable(actor: str) -> str:
    """`human:admin for root` -> `human:root (using token 'admin')`; any other actor as recorded.

    >>> readable("human:admin for root"), readable("human:omar"), readable("policy:cost-runaway@v3")
    ("human:root (using token 'admin')", 'human:omar', 'policy:cost-runaway@v3')
    """
    token, on_behalf, person = actor.removeprefix(HUMAN).partition(ON_BEHALF)
    if not actor.startswith(HUMAN) or not on_behalf or not token or not person:
        return actor
    return f"{HUMAN}{person} (using token '{token}')"
