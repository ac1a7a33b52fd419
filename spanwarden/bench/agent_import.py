"""What `import spanwarden` and `spanwarden.instrument` cost inside an agent's process: measured in fresh
interpreters (the median of a few), with the modules they load and any heavy server-side one among them."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from typing import Any

# Modules an agent process must never load on spanwarden's account (they are the server's).
HEAVY = ("faust", "sklearn", "scipy", "aiohttp.web", "datadog_api_client", "numpy", "aiokafka", "pydantic",
         "yaml", "orjson")

PROBE = f"""
import json, sys, time
before = set(sys.modules)
start = time.perf_counter()
import spanwarden
from spanwarden import instrument, AgentHalted
elapsed = time.perf_counter() - start
loaded = set(sys.modules) - before
heavy = sorted(h for h in {HEAVY!r} if h in loaded)
print(json.dumps({{"import_ms": elapsed * 1000, "modules": len(loaded), "heavy_modules": heavy}}))
"""


def run(repeats: int = 5) -> dict[str, Any]:
    samples = []
    for _ in range(repeats):
        done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60,
                              check=True)
        samples.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {"import_ms": round(statistics.median(s["import_ms"] for s in samples), 1),
            "modules": samples[-1]["modules"], "heavy_modules": samples[-1]["heavy_modules"]}
