"""Spans in, decisions out: agent-side guard and control channel; OTLP receiver, normalisation, pricing."""
