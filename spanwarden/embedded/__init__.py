"""The embedded runtime: one process, no broker, state on local disk."""
