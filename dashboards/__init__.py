"""Datadog export (metrics, events, audit logs), dashboards and monitors as code, and the terminal view."""
