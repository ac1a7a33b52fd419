"""The audit sink that notifies: every audit entry a runtime writes passes here (a `TeeAuditSink` beside the
log), so both runtimes tell people about the same things. A destination that keeps failing is reported
once through `report_failure` (the runtime audits it)."""

from __future__ import annotations

from collections.abc import Callable

from spanwarden.enforcers.audit_log import AuditEntry
from spanwarden.notify import notice as notices
from spanwarden.notify.dispatcher import Notifier
from spanwarden.notify.targets import Target, from_settings
from spanwarden.settings import Settings


class NotifySink:
    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier
        self.tracker = notices.Tracker()

    def __call__(self, entry: AuditEntry) -> None:
        made = self.tracker.admit(notices.from_entry(entry))
        if made is not None:
            self.notifier.notify(made)

    def close(self) -> None:
        self.notifier.close()


def targets(settings: Settings) -> list[Target]:
    return from_settings(settings.slack_webhook_url, settings.pagerduty_routing_key, settings.pagerduty_url,
                         settings.webhook_url, settings.webhook_secret, settings.notify)


def build(settings: Settings, report_failure: Callable[[Target, notices.Notice, str], None]) -> NotifySink | None:
    """The sink for the configured destinations, or None when there are none."""
    chosen = targets(settings)
    if not chosen:
        return None
    return NotifySink(Notifier(chosen, settings.console_url, on_failure=report_failure))
