"""The package's wheel, built from the checkout and installed (not editable) into a venv outside it, so a test
runs the `spanwarden` script a stranger's install has: the wheel's modules, package data and entry point.

Its dependencies come from the test venv (a path line in the new venv, after its own site-packages, so the
wheel's `spanwarden` wins and the checkout's editable install is never loaded); resolving them from the index
is the package smoke's job (`.ci/package_smoke.sh`), which takes minutes."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, cwd: Path) -> str:
    done = subprocess.run(list(args), check=False, capture_output=True, cwd=cwd, text=True)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed: {done.stderr[-2000:]}")
    return done.stdout.strip()


def install_wheel(where: Path) -> Path:
    """Build the wheel into `where/dist`, install it into `where/venv`; return its `spanwarden` script."""
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(where / "dist"), str(ROOT), cwd=where)
    wheel = next((where / "dist").glob("spanwarden-*.whl"))
    venv = where / "venv"
    python = str(venv / "bin" / "python")
    _run(sys.executable, "-m", "venv", "--without-pip", str(venv), cwd=where)
    _run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", str(wheel), cwd=where)
    own = _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=where)
    (Path(own) / "zz-test-venv-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    found = _run(python, "-c", "import spanwarden; print(spanwarden.__file__)", cwd=where)
    if not found.startswith(str(venv)):
        raise AssertionError(f"spanwarden imported from {found}, not the installed wheel in {venv}")
    return venv / "bin" / "spanwarden"
