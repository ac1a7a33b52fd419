"""`spanwarden.streaming` (the Kafka runtime) and the server layer both runtimes stand on never import the
embedded runtime: what both need lives in spanwarden/server/."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "spanwarden"


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{alias.name}" for alias in node.names)
    return out


@pytest.mark.parametrize("package", ["streaming", "server"])
def test_the_package_does_not_import_the_embedded_runtime(package: str) -> None:
    found = {f"{path.relative_to(ROOT)}: {name}" for path in sorted((ROOT / package).glob("*.py"))
             for name in _imports(path) if name.startswith("spanwarden.embedded")}
    assert not found, f"spanwarden.{package} imports the embedded runtime: {sorted(found)}"
