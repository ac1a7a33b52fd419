"""The compiled hot path (setup.py's COMPILED, mypyc) names modules that exist, covers the modules
`spanwarden.build_info` reports on, and asking whether it is compiled imports nothing heavy (the agent's light
install has no numpy). That the compiled wheel decides as the source does is checked by
.ci/package_smoke.sh against the installed wheel."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from spanwarden.build_info import HOT_MODULES

ROOT = Path(__file__).resolve().parents[1]


def _setup_value(name: str) -> object:
    for node in ast.walk(ast.parse((ROOT / "setup.py").read_text())):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == name:
            return ast.literal_eval(node.value)
    raise AssertionError(f"setup.py has no {name}")


def _compiled_modules() -> set[str]:
    compiled, excluded = _setup_value("COMPILED"), _setup_value("NOT_COMPILED")
    assert isinstance(compiled, dict) and isinstance(excluded, set)
    modules = set()
    for folder, patterns in compiled.items():
        for pattern in patterns:
            sources = sorted((ROOT / folder).glob(pattern))
            assert sources, f"setup.py COMPILED: {folder}/{pattern} matches no module"
            for source in sources:
                path = source.relative_to(ROOT / folder).as_posix()
                if source.name in excluded or f"{folder}/{path}" in excluded:
                    continue
                relative = path.removesuffix(".py")
                package = "spanwarden" if folder == "spanwarden" else f"spanwarden.{folder}"
                modules.add(f"{package}.{relative.replace('/', '.')}")
    return modules


def test_the_reported_hot_modules_are_compiled_ones():
    modules = _compiled_modules()
    assert set(HOT_MODULES) <= modules, set(HOT_MODULES) - modules
    assert "spanwarden.detectors.base" not in modules  # a runtime-checkable Protocol: mypyc cannot compile it


def test_asking_whether_compiled_imports_nothing_heavy():
    code = ("import sys; from spanwarden.build_info import compiled_modules; print(compiled_modules()); "
            "heavy = [m for m in ('numpy', 'spanwarden.pipeline', 'spanwarden.detectors.agent_detectors') "
            "if m in sys.modules]; assert not heavy, heavy")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
