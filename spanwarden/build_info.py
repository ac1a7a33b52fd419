"""Whether this installation runs the compiled hot path (the mypyc extensions a wheel carries, see setup.py)
or its Python source: the same decisions either way, about twice the records per second compiled."""

from __future__ import annotations

from importlib.machinery import EXTENSION_SUFFIXES
from importlib.util import find_spec

# One module of each compiled group of setup.py's COMPILED: detection, the pipeline, span normalising.
HOT_MODULES = ("spanwarden.detectors.agent_detectors", "spanwarden.pipeline", "spanwarden.collector.normalize")


def compiled_modules() -> dict[str, bool]:
    """Each hot module: found as a compiled extension (True) or as its source (False); found, not imported
    (the agent's light install has no numpy for the pipeline to import)."""
    return {name: str(getattr(find_spec(name), "origin", "")).endswith(tuple(EXTENSION_SUFFIXES))
            for name in HOT_MODULES}


def compiled() -> bool:
    return all(compiled_modules().values())
