"""A notice as a PagerDuty Events API v2 event (`POST /v2/enqueue`): `trigger` with a summary (at most 1,024
characters), source, severity and custom details, or `resolve` for the same `dedup_key` (at most 255) when a
human answered or resumed."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from spanwarden.notify.notice import Notice

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"


def payload(notice: Notice, routing_key: str, source: str = "spanwarden", link: str | None = None
            ) -> dict[str, Any]:
    dedup_key = f"spanwarden:{notice.key}"[:255]
    if notice.resolved:
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": dedup_key}
    agent = notice.agent
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": {
            "summary": notice.title[:1024],
            "source": source,
            "severity": notice.severity if notice.severity in ("critical", "error", "warning", "info") else "info",
            "timestamp": datetime.fromtimestamp(notice.time_s or time.time(), UTC).isoformat(),
            "component": agent.id or "unknown",
            "group": agent.team or agent.environment or "spanwarden",
            "class": notice.kind,
            "custom_details": {"text": notice.text, **{k: v for k, v in notice.details.items() if v is not None}},
        },
        "client": "spanwarden",
    }
    if link:
        event["links"] = [{"href": link, "text": "Open in spanwarden"}]
        event["client_url"] = link
    return event
