"""Per-agent detectors against learned baselines: pure, one record at a time, state as JSON."""
