"""Where notices go, and what each destination is sent: Slack (incoming webhook), PagerDuty (Events API v2)
or a generic signed JSON webhook. Configured from settings (`SPANWARDEN_SLACK_WEBHOOK_URL`,
`SPANWARDEN_PAGERDUTY_ROUTING_KEY`, `SPANWARDEN_WEBHOOK_URL` + `_SECRET`, and which notices each takes)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson

from spanwarden.notify import pagerduty, slack, webhook
from spanwarden.notify.notice import KINDS, Notice


@dataclass(frozen=True)
class Target:
    kind: str  # slack | pagerduty | webhook
    url: str
    secret: str = ""  # PagerDuty's routing key; the webhook's HMAC secret
    notices: frozenset[str] = frozenset(KINDS)
    resolves: bool = True  # Slack and webhooks hear "it is over" too; PagerDuty resolves its incident

    @property
    def name(self) -> str:
        return self.kind

    def wants(self, notice: Notice) -> bool:
        return notice.kind in self.notices and (self.resolves or not notice.resolved)

    def request(self, notice: Notice, link: str | None, now_s: float | None = None
                ) -> tuple[bytes, dict[str, str]]:
        """The body and headers to POST to `url`."""
        if self.kind == "slack":
            return orjson.dumps(slack.payload(notice, link)), {"Content-Type": "application/json"}
        if self.kind == "pagerduty":
            return (orjson.dumps(pagerduty.payload(notice, self.secret, link=link)),
                    {"Content-Type": "application/json"})
        raw = webhook.body(notice, link)
        return raw, webhook.headers(self.secret or None, int(now_s if now_s is not None else time.time()), raw)


def parse_notices(text: str) -> frozenset[str]:
    """"approval_request,halt" (or "all") -> the notice kinds; an unknown one is refused naming the known."""
    names = {n.strip() for n in text.split(",") if n.strip()}
    if not names or names == {"all"}:
        return frozenset(KINDS)
    unknown = names - set(KINDS)
    if unknown:
        raise ValueError(f"unknown notice kinds {sorted(unknown)}; known: {', '.join(KINDS)} or all")
    return frozenset(names)


def from_settings(slack_url: str | None, pagerduty_key: str | None, pagerduty_url: str, webhook_url: str | None,
                  webhook_secret: str | None, notices: dict[str, str]) -> list[Target]:
    out = []
    if slack_url:
        out.append(Target("slack", slack_url, notices=parse_notices(notices.get("slack", "all"))))
    if pagerduty_key:
        out.append(Target("pagerduty", pagerduty_url, pagerduty_key,
                          parse_notices(notices.get("pagerduty", "approval_request,access_request,halt"))))
    if webhook_url:
        out.append(Target("webhook", webhook_url, webhook_secret or "",
                          parse_notices(notices.get("webhook", "all"))))
    return out


def describe(targets: list[Target]) -> list[dict[str, Any]]:
    """For /healthz and logs: where notices go, never the secrets."""
    return [{"kind": t.kind, "notices": sorted(t.notices)} for t in targets]
