"""Whether this installation runs the compiled hot path (the mypyc extensions a wheel carries, see setup.py)
or its Python source: the same decisions either way, about twice the records per second compiled."""

from __future__ import annotations

import importlib
from importlib.machinery import EXTENSION_SUFFIXES

# One module of each compiled group of setup.py's COMPILED: detection, the pipeline, span normalising.
HOT_MODULES = ("spanwarden.detectors.agent_detectors", "spanwarden.pipeline", "spanwarden.collector.normalize")


def compiled_modules() -> dict[str, bool]:
    """Each hot module: imported from a compiled extension (True) or from its source (False)."""
    return {name: str(getattr(importlib.import_module(name), "__file__", "")).endswith(tuple(EXTENSION_SUFFIXES))
            for name in HOT_MODULES}


def compiled() -> bool:
    return all(compiled_modules().values())
