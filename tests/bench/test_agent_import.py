"""The agent side stays light: `import spanwarden` and `instrument` load no server-side module."""

from __future__ import annotations

import json
import subprocess
import sys

from spanwarden.bench import agent_import


def test_agent_import_loads_no_heavy_module():
    result = agent_import.run(repeats=1)
    assert {"import_ms", "modules", "heavy_modules"} <= set(result)
    assert result["heavy_modules"] == [] and result["modules"] > 0


def test_the_probe_would_see_a_heavy_module():
    """The check can fail: a probe that also imports numpy names it."""
    probe = agent_import.PROBE.replace("import spanwarden\n", "import spanwarden\nimport numpy\n", 1)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert "numpy" in json.loads(done.stdout)["heavy_modules"]


def test_bench_agent_import_prints_its_contract():
    done = subprocess.run([sys.executable, "-m", "spanwarden.cli", "bench", "agent-import", "--json",
                           "--repeats", "1"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"import_ms", "modules", "heavy_modules"} <= set(figures)
    assert figures["compiled"] is False  # the editable install runs the source (setup.py)
