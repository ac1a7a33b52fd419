"""A notice as a Slack incoming-webhook message: Block Kit (a header, the text, the agent's context, a
button to the console page) with a plain `text` fallback, within Slack's documented limits (header 150
characters, section text 3,000, button text 75, URL 3,000)."""

from __future__ import annotations

from typing import Any

from spanwarden.notify.notice import Notice

EMOJI = {"critical": ":rotating_light:", "warning": ":warning:", "info": ":white_check_mark:"}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def payload(notice: Notice, link: str | None = None) -> dict[str, Any]:
    """The JSON body to POST to the incoming webhook's URL."""
    agent = notice.agent
    context = " · ".join(f"*{k}:* {v}" for k, v in (("agent", agent.id), ("owner", agent.owner),
                                                     ("team", agent.team), ("env", agent.environment)) if v)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(notice.title, 150), "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn",
                                     "text": _cut(f"{EMOJI.get(notice.severity, '')} {notice.text}", 3000)}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(context or agent.id or "-", 3000)}]},
    ]
    if link and not notice.resolved:
        blocks.append({"type": "actions", "elements": [{
            "type": "button", "text": {"type": "plain_text", "text": _cut("Open in spanwarden", 75)},
            "url": link[:3000], "action_id": f"open-{notice.key}"[:255],
            **({"style": "danger"} if notice.severity == "critical" else {})}]})
    return {"text": _cut(f"{notice.title}: {notice.text}", 3000), "blocks": blocks}
