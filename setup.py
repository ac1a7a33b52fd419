"""Package discovery for the folder layout of the design: one import namespace `spanwarden`, whose
subpackages live in the top-level folders named below. Every subpackage under them is found, so a new one
can never be left out of the wheel (the metadata itself is in pyproject.toml)."""

from setuptools import find_packages, setup

FOLDERS = {
    "spanwarden": "spanwarden",
    "spanwarden.collector": "collector",
    "spanwarden.detectors": "detectors",
    "spanwarden.enforcers": "enforcers",
    "spanwarden.dashboards": "dashboards",
}

packages = []
package_dir = {}
for package, folder in FOLDERS.items():
    package_dir[package] = folder
    packages.append(package)
    packages += [f"{package}.{sub}" for sub in find_packages(folder)]

setup(packages=packages, package_dir=package_dir)
