"""Package discovery for the folder layout of the design: one import namespace `spanwarden`, whose
subpackages live in the top-level folders named below. Every subpackage under them is found, so a new one
can never be left out of the wheel (the metadata itself is in pyproject.toml).

The wheel also carries the hot path (per-record detection, the pipeline's stages, event time, the ladder,
span normalising) compiled to C extensions with mypyc, beside the same modules' Python source: Python
imports the extension when there is one, so an interpreter or platform without it runs the source, deciding
exactly the same. `SPANWARDEN_COMPILE` chooses: `auto` (the default: compile when building a wheel, fall back
to the source with one warning if there is no C compiler), `1` (compile or fail: CI and releases), `0`
(never). An editable install (`pip install -e`, what `make test` uses) is never compiled: the tests there
run the source; `.ci/package_smoke.sh` runs them again against the compiled wheel."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_ext import build_ext

FOLDERS = {
    "spanwarden": "spanwarden",
    "spanwarden.collector": "collector",
    "spanwarden.detectors": "detectors",
    "spanwarden.enforcers": "enforcers",
    "spanwarden.dashboards": "dashboards",
}

# The modules every span goes through, by folder. Not compiled: detectors/base.py (a runtime-checkable
# Protocol, which mypyc cannot compile) and package __init__ files.
COMPILED = {
    "detectors": ["*.py"],
    "spanwarden": ["pipeline.py", "event_time.py", "stages/*.py", "streaming/activity_rollup.py"],
    "enforcers": ["ladder.py"],
    "collector": ["normalize.py", "span_record.py", "attributes.py", "span_wire.py", "agent_identity.py",
                  "effects.py", "span_kind.py", "span_resource.py"],
}
NOT_COMPILED = {"__init__.py", "detectors/base.py"}
MODE = os.environ.get("SPANWARDEN_COMPILE", "auto").strip().lower()
HERE = Path(__file__).resolve().parent
STAGE = HERE / "build" / "mypyc-src"  # the folders merged into one `spanwarden` tree, as mypy must see it

packages = []
package_dir = {}
for package, folder in FOLDERS.items():
    package_dir[package] = folder
    packages.append(package)
    packages += [f"{package}.{sub}" for sub in find_packages(folder)]


def _warn(message: str) -> None:
    print(f"spanwarden build: {message}", file=sys.stderr)


def _stage() -> list[str]:
    """Copy the source into one `spanwarden` tree (mypy names modules by their folders) and return the
    staged paths of the modules to compile."""
    shutil.rmtree(STAGE, ignore_errors=True)
    for package, folder in FOLDERS.items():
        target = STAGE.joinpath(*package.split("."))
        shutil.copytree(HERE / folder, target, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyc"))
    (STAGE / "mypyc.ini").write_text(
        # The build sees no third-party packages (--no-site-packages): they are Any to the compiler, so the
        # same source compiles the same way whatever is installed where the wheel is built.
        "[mypy]\npython_version = 3.11\nignore_missing_imports = True\n")
    paths = []
    for folder, patterns in COMPILED.items():
        base = HERE / folder
        for pattern in patterns:
            for source in sorted(base.glob(pattern)):
                relative = source.relative_to(base).as_posix()
                if source.name in NOT_COMPILED or f"{folder}/{relative}" in NOT_COMPILED:
                    continue
                package = "spanwarden" if folder == "spanwarden" else f"spanwarden/{folder}"
                paths.append(str(STAGE / package / relative))
    return paths


def _building_a_wheel() -> bool:
    commands = set(sys.argv[1:])
    return bool(commands & {"bdist_wheel", "build", "build_ext", "install"}) and not commands & {
        "editable_wheel", "develop"}


def _extensions() -> list:
    if MODE == "0" or not _building_a_wheel():
        return []
    try:
        from mypyc.build import mypycify

        paths = _stage()
        return mypycify(["--config-file", str(STAGE / "mypyc.ini"), "--no-site-packages", *paths],
                        opt_level="3", group_name="spanwarden_hot", target_dir=str(HERE / "build" / "mypyc"))
    except (Exception, SystemExit) as error:  # mypyc reports type errors by exiting
        if MODE == "1":
            raise
        _warn(f"the hot path is not compiled ({type(error).__name__}: {error}); the wheel runs it as Python")
        return []


class OptionalBuildExt(build_ext):
    """Build the compiled modules; without a working C compiler, warn once and ship the Python source alone
    (unless SPANWARDEN_COMPILE=1)."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as error:
            if MODE == "1":
                raise
            for extension in self.extensions:  # a shim without its shared library would shadow the source
                Path(self.get_ext_fullpath(extension.name)).unlink(missing_ok=True)
            _warn(f"no compiled hot path ({type(error).__name__}: {error}); the wheel runs it as Python")


setup(packages=packages, package_dir=package_dir, ext_modules=_extensions(),
      cmdclass={"build_ext": OptionalBuildExt})
