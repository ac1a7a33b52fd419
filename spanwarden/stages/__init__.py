"""The pipeline's stages, one concept each, composed by `spanwarden.pipeline.Pipeline` (which both runtimes
run): detect (per-agent detectors and pinned-profile drift) → decide (per-agent ladders, humans' commands) →
access (requests a human answers for one resource or model); fleet learning (peer priors, team budgets, the
behaviour model) beside them. Each stage keeps its own state; what they all read is `Shared`."""
