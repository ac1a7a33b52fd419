"""Moved to `spanwarden.activity_journal` (both runtimes keep one: `serve` for its agents, the Kafka gateway
for what the workers report); kept so existing imports go on working."""

from spanwarden.activity_journal import ActivityJournal, entry, file_name, read_activity, read_who, who_name

__all__ = ["ActivityJournal", "entry", "file_name", "read_activity", "read_who", "who_name"]
