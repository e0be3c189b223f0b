"""Layers of the ``bridge`` package: every import runs downward and no two packages import each other.

Layer order, lowest first. A module may import from its own first-level package (``bridge.X`` and
everything under it) and from any *lower* layer; packages in the same layer may not import each
other. Function-level (lazy) imports count like module-level ones: a lazy import still makes the
lower package depend on the higher one.

==  ==================================  ==============================================================
 0  errors                              the exception tree
 1  fsutil, jobs, cli_support,          atomic files, cancel tokens / progress, CLI helpers, DAW
    daw_install                         script installer
 2  timebase, vocab                     seconds <-> beats <-> frames (BeatGrid: the one tempo map); the names
                                        every layer shares (visual parameters, SectionLook, built-in
                                        effect names, the ``mix`` source)
 3  transport                           DAW sync: parsers, clock, ports
 4  stems                               discover, load, roles
 5  separation                          Demucs
 6  project                             schema, store, presets, create
 7  plugins                             effect chains over audio (FxSlot is in the schema)
 8  analysis                            features, rhythm, sections; analysing a Project (runs chains)
 9  mapping                             sources x targets -> FrameParams, sections -> SectionLook
10  visuals                             engines (procedural, shader, lcm) and their CLIs
11  export                              render, video, segments, cluster
12  playback                            audio output
13  preview                             cache, scheduler, watcher
14  session                             the app model
15  demo, commands                      the demo project; commands that need a Session
16  cli                                 ``stembridge``
17  __main__                            ``python -m bridge``
==  ==================================  ==============================================================

The graph is read from the source with :mod:`ast` (nothing is imported, so the test is fast and sees
imports a code path might never run); module names in lazy-export tables resolved with
``importlib.import_module`` count as imports too. The self-checks at the bottom run the same walker over tiny
fake packages to show it can fail.
"""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

LAYERS: tuple[frozenset[str], ...] = tuple(frozenset(names) for names in (
    {"errors"},
    {"gl"},
    {"fsutil", "jobs", "cli_support", "daw_install"},
    {"timebase", "vocab"},
    {"transport"},
    {"stems"},
    {"separation"},
    {"project"},
    {"plugins"},
    {"analysis"},
    {"mapping"},
    {"visuals"},
    {"export"},
    {"playback"},
    {"preview"},
    {"session"},
    {"demo", "commands"},
    {"cli"},
    {"__main__"},
))


@dataclass(frozen=True)
class Edge:
    """``module`` (in first-level unit ``unit``) imports ``target`` (in ``target_unit``) at path:line."""

    module: str
    unit: str
    target: str
    target_unit: str
    path: str
    line: int

    def where(self) -> str:
        return f"{self.path}:{self.line}: {self.module} imports {self.target}"


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _unit(module: str) -> str:
    """First-level unit of a module: ``bridge.analysis.types`` -> ``analysis``; ``bridge`` -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def import_edges(root: Path, package: str = "bridge") -> list[Edge]:
    """Every import from one module of ``package`` to another: module level, inside functions, and
    module names given as strings in a file that calls ``importlib.import_module`` (lazy exports)."""
    files = {_module_name(root, p): p for p in sorted((root / package).rglob("*.py"))}
    edges: list[Edge] = []
    for module, path in files.items():
        is_pkg = path.name == "__init__.py"
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text, filename=str(path))
        dynamic = "import_module" in text
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = module.split(".")
                    base = base[: len(base) - node.level + (1 if is_pkg else 0)]
                    name = ".".join(base + ([node.module] if node.module else []))
                else:
                    name = node.module or ""
                # ``from bridge.x import y``: y is a submodule or a name defined in bridge.x.
                names = [f"{name}.{a.name}" for a in node.names] + [name]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and dynamic:
                # A lazy-export table (``{"Name": "bridge.x.y"}`` + importlib.import_module): the
                # string is an import too. Only exact module names count.
                if node.value not in files:
                    continue
                names = [node.value]
            else:
                continue
            targets = set()
            for name in names:
                while name and name not in files:
                    name = name.rpartition(".")[0]
                if name and name != module:
                    targets.add(name)
            # ``from bridge.x import y`` where y is a submodule: the edge is to bridge.x.y, not also
            # to bridge.x's __init__ (its parent), unless a name of bridge.x itself is imported.
            for target in sorted(targets):
                if any(t.startswith(target + ".") for t in targets) and isinstance(node, ast.ImportFrom):
                    continue
                edges.append(Edge(module, _unit(module), target, _unit(target),
                                  str(path.relative_to(root)), node.lineno))
    return edges


def package_cycles(edges: list[Edge]) -> list[list[str]]:
    """Strongly connected groups (more than one unit) of the first-level package graph."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        if e.unit and e.target_unit and e.unit != e.target_unit:
            graph.setdefault(e.unit, set()).add(e.target_unit)
            graph.setdefault(e.target_unit, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan; the graph has a few dozen nodes
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def layer_of(layers: tuple[frozenset[str], ...]) -> dict[str, int]:
    return {name: i for i, names in enumerate(layers) for name in names}


def unknown_units(edges: list[Edge], layers: tuple[frozenset[str], ...]) -> list[str]:
    known = layer_of(layers)
    units = {e.unit for e in edges} | {e.target_unit for e in edges}
    return sorted(u for u in units if u and u not in known)


def upward_imports(edges: list[Edge], layers: tuple[frozenset[str], ...]) -> list[str]:
    """One line per import that does not run strictly downward between first-level packages."""
    layer = layer_of(layers)
    bad = []
    for e in edges:
        if not e.unit or not e.target_unit or e.unit == e.target_unit:
            continue  # the package root (``bridge``, ``__version__``) and imports inside a package
        if e.unit not in layer or e.target_unit not in layer:
            continue  # reported by unknown_units
        src, dst = layer[e.unit], layer[e.target_unit]
        if dst > src:
            bad.append(f"{e.where()}: upward, from {e.unit} (layer {src}) to {e.target_unit} (layer {dst})")
        elif dst == src:
            bad.append(f"{e.where()}: sideways, {e.unit} and {e.target_unit} share layer {src}")
    return bad


def _closing_edges(edges: list[Edge], cycle: list[str]) -> list[str]:
    members = set(cycle)
    return [e.where() for e in edges
            if e.unit in members and e.target_unit in members and e.unit != e.target_unit]


# -- the real package --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bridge_edges() -> list[Edge]:
    edges = import_edges(ROOT)
    assert len(edges) > 100, "the walker found almost no imports in bridge/: is ROOT right?"
    return edges


def test_every_bridge_package_has_a_layer(bridge_edges):
    on_disk = {_unit(_module_name(ROOT, p)) for p in (ROOT / "bridge").rglob("*.py")} - {""}
    missing = sorted(on_disk - set(layer_of(LAYERS)))
    assert not missing, (f"bridge.{', bridge.'.join(missing)} has no layer: add it to LAYERS in "
                         "tests/test_layers.py (and to the table in its docstring and bridge/vocab.py's)")


def test_bridge_has_no_package_cycles(bridge_edges):
    cycles = package_cycles(bridge_edges)
    assert not cycles, "package cycles in bridge:\n" + "\n".join(
        f"  {' <-> '.join(c)}, closed by:\n    " + "\n    ".join(_closing_edges(bridge_edges, c))
        for c in cycles)


def test_every_bridge_import_runs_downward(bridge_edges):
    bad = upward_imports(bridge_edges, LAYERS)
    assert not bad, ("imports that run up or across the layers (order in tests/test_layers.py; move the "
                     "shared code down, e.g. into bridge.vocab or bridge.timebase):\n  " + "\n  ".join(bad))


# -- self-checks: the walker on tiny fake packages ---------------------------------------------

_FAKE_LAYERS = (frozenset({"low"}), frozenset({"mid"}), frozenset({"high"}))

_CASES = {
    "clean": dict(
        files={"low.py": "X = 1\n",
               "mid/__init__.py": "from fake.low import X\n",
               "high.py": "import fake.mid\nfrom . import low\n"},
        cycles=[], bad=[]),
    "lazy cycle": dict(
        files={"low.py": "def f():\n    from fake.high import Y\n    return Y\n",
               "mid/__init__.py": "",
               "high.py": "from fake.low import f\nY = 2\n"},
        cycles=[["high", "low"]], bad=["fake/low.py:2: fake.low imports fake.high: upward, from low (layer 0) "
                                       "to high (layer 2)"]),
    "relative upward import": dict(
        files={"low.py": "",
               "mid/__init__.py": "",
               "mid/part.py": "from ..high import Y\n",
               "high.py": "Y = 3\n"},
        cycles=[], bad=["fake/mid/part.py:1: fake.mid.part imports fake.high: upward, from mid (layer 1) "
                        "to high (layer 2)"]),
    "lazy export table": dict(
        files={"low.py": '_EXPORTS = {"Y": "fake.high"}\n\n\ndef __getattr__(name):\n'
                         '    import importlib\n\n    return getattr(importlib.import_module(_EXPORTS[name]), name)\n',
               "mid/__init__.py": "",
               "high.py": "Y = 5\n"},
        cycles=[], bad=["fake/low.py:1: fake.low imports fake.high: upward, from low (layer 0) to high (layer 2)"]),
    "submodule import": dict(
        files={"low.py": "",
               "mid/__init__.py": "",
               "mid/sub.py": "Z = 4\n",
               "high.py": "",
               "other.py": "from fake.mid import sub\n"},
        cycles=[], bad=[], unknown=["other"]),
}


def _write_fake(tmp_path: Path, files: dict[str, str]) -> Path:
    pkg = tmp_path / "fake"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for rel, text in files.items():
        path = pkg / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return tmp_path


@pytest.mark.parametrize("case", sorted(_CASES))
def test_the_walker_finds_cycles_and_upward_imports(tmp_path, case):
    spec = _CASES[case]
    root = _write_fake(tmp_path, spec["files"])
    edges = import_edges(root, "fake")
    assert package_cycles(edges) == spec["cycles"]
    assert upward_imports(edges, _FAKE_LAYERS) == spec["bad"]
    assert unknown_units(edges, _FAKE_LAYERS) == spec.get("unknown", [])


def test_the_walker_sees_the_edge_that_closes_a_bridge_cycle(tmp_path):
    # The cycle this layering removed (transport.clock -> analysis.types -> ... -> transport.clock),
    # rebuilt in miniature: the real test would have named both files and lines.
    root = _write_fake(tmp_path, {
        "transport/__init__.py": "", "transport/clock.py": "from fake.analysis.types import BeatGrid\n",
        "analysis/__init__.py": "", "analysis/types.py": "BeatGrid = object\n",
        "analysis/tempo_map.py": "def read():\n    from fake.transport.clock import TempoMap\n",
    })
    edges = import_edges(root, "fake")
    cycles = package_cycles(edges)
    assert cycles == [["analysis", "transport"]]
    assert _closing_edges(edges, cycles[0]) == [
        "fake/analysis/tempo_map.py:2: fake.analysis.tempo_map imports fake.transport.clock",
        "fake/transport/clock.py:1: fake.transport.clock imports fake.analysis.types",
    ]
