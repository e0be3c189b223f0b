"""The engine never imports Qt, and importing it (or starting the CLI/app) never loads the model stack."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO

_CHECK = """
import sys, importlib, pkgutil, bridge
for m in pkgutil.walk_packages(bridge.__path__, "bridge."):
    importlib.import_module(m.name)
heavy = [n for n in ("torch", "diffusers", "demucs", "transformers") if n in sys.modules]
print("PySide6" in sys.modules, heavy)
"""


def test_every_bridge_module_imports_without_qt_or_torch():
    r = subprocess.run([sys.executable, "-c", _CHECK], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False []"
