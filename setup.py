"""Only the package list lives here (the rest is in pyproject.toml): ``daw_scripts/`` stays at the
top of the repository, where producers look for the DAW scripts, and ships inside the wheel as the
package data of ``bridge.daw_scripts`` (found with importlib.resources by bridge/daw_install.py)."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["bridge*", "gui*"]) + ["bridge.daw_scripts"],
    package_dir={"bridge.daw_scripts": "daw_scripts"},
)
