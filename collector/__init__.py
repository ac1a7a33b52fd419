"""Agent side (instrumentation, guard, control channel) and service side (OTLP receiver, normalisation, pricing)."""
