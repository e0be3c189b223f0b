"""The GUI talks to bridge only through ``bridge.session`` (DESIGN.md: "gui/: views over Session").

The imports are read from gui/'s source with :mod:`ast` (module level and inside functions, so an
import a code path rarely runs counts too); ``importlib.import_module("bridge.…")`` strings count
as imports. Every name the GUI takes from ``bridge.session`` must exist there (a lazy re-export that
lost its home fails here, not in a dialog a producer opens once a month). A self-check shows the
walker can fail.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: What gui/ may import from bridge: the Session's package and its public-names module.
ALLOWED = frozenset({"bridge.session", "bridge.session.api"})


def bridge_imports(source: str, filename: str = "<gui>") -> list[tuple[int, str, tuple[str, ...]]]:
    """(line, module, names) for every import of a ``bridge`` module in ``source``; ``names`` are the
    names taken with ``from module import …`` (empty for ``import module``)."""
    out = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, ()) for a in node.names if a.name.split(".")[0] == "bridge"]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            if node.module == "bridge":  # from bridge import session, errors → bridge.session, bridge.errors
                out += [(node.lineno, f"bridge.{a.name}", ()) for a in node.names]
            elif node.module.split(".")[0] == "bridge":
                out.append((node.lineno, node.module, tuple(a.name for a in node.names)))
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and node.args[0].value.split(".")[0] == "bridge"):
            out.append((node.lineno, node.args[0].value, ()))
    return out


def seam_violations(root: Path) -> list[str]:
    bad = []
    for path in sorted((root / "gui").rglob("*.py")):
        for line, module, _ in bridge_imports(path.read_text(encoding="utf-8"), str(path)):
            if module not in ALLOWED:
                bad.append(f"{path.relative_to(root)}:{line}: imports {module}")
    return bad


def test_gui_imports_bridge_only_through_session():
    files = list((ROOT / "gui").rglob("*.py"))
    assert len(files) > 10, "found almost no GUI files: is ROOT right?"
    bad = seam_violations(ROOT)
    assert not bad, ("gui/ imports bridge modules other than bridge.session; re-export the public name in "
                     "bridge/session/api.py (or add a Session method) and import it from bridge.session:\n  "
                     + "\n  ".join(bad))


def test_every_name_the_gui_takes_from_session_exists():
    import bridge.session

    taken = {(name, f"{path.relative_to(ROOT)}:{line}")
             for path in sorted((ROOT / "gui").rglob("*.py"))
             for line, module, names in bridge_imports(path.read_text(encoding="utf-8"))
             if module == "bridge.session" for name in names}
    assert len(taken) > 20, "the GUI takes almost nothing from bridge.session: did the walker break?"
    missing = sorted(where + ": " + name for name, where in taken if not hasattr(bridge.session, name))
    assert not missing, "names the GUI imports that bridge.session does not have:\n  " + "\n  ".join(missing)


@pytest.mark.parametrize(("source", "expected"), [
    ("from bridge.session import Session\n", []),
    ("import bridge.session as S\n", []),
    ("def f():\n    from bridge.errors import BridgeError\n", ["bridge.errors"]),
    ("from bridge import session, errors\n", ["bridge.errors"]),
    ("import bridge.transport.listen\n", ["bridge.transport.listen"]),
    ("import importlib\nm = importlib.import_module('bridge.mapping')\n", ["bridge.mapping"]),
    ("from bridge.session.core import Session\n", ["bridge.session.core"]),
    ("import numpy\nfrom gui.app import x\n", []),
])
def test_the_walker_finds_every_kind_of_bridge_import(tmp_path, source, expected):
    (tmp_path / "gui").mkdir()
    (tmp_path / "gui" / "mod.py").write_text(source)
    assert [v.rpartition(" ")[2] for v in seam_violations(tmp_path)] == expected
