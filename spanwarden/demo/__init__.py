"""The demo fleet: simulated agents, instrumented with the real OpenTelemetry SDK, with injected incidents."""
