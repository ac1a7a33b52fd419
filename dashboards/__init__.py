"""Datadog export, dashboards and monitors as code: see issue #8 (not built yet)."""
