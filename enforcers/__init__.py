"""Policy, the per-agent action ladder, on-call commands and the tamper-evident audit log."""
