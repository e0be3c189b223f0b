"""Find the producer's plugins (VST3, and Audio Units on macOS) and describe them, safely.

Every bundle is loaded by pedalboard in a **child process** (``_probe.py``) with a timeout: a plugin
that crashes, hangs or is not a plugin at all is reported and blocklisted, and the scan goes on with
a fresh child. Results are cached as JSON in the user cache folder, keyed by path and modification
time, so a later scan only loads new or changed bundles; ``rescan=True`` loads everything again
(blocklisted bundles included).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bridge.fsutil import atomic_write_text
from bridge.plugins.builtins import PLUGIN_BUNDLE_SUFFIXES

log = logging.getLogger(__name__)

CACHE_VERSION = 1
#: Seconds one bundle may take to load (a child's start-up, ~0.5 s, counts for its first bundle).
DEFAULT_TIMEOUT_S = 20.0
_PROBE_SCRIPT = Path(__file__).with_name("_probe.py")


@dataclass(frozen=True)
class PluginInfo:
    """One plugin found by the scan (a bundle may hold several)."""

    name: str
    path: str
    format: str  # "VST3" or "AU"
    manufacturer: str = ""
    category: str = ""
    version: str = ""
    is_instrument: bool = False
    latency_samples: int = 0
    #: one dict per parameter: name (the Python name to set), label, units, min, max, step, values, default
    parameters: tuple[dict, ...] = ()


@dataclass(frozen=True)
class ScanFailure:
    """A bundle the scan could not load; it stays blocklisted until it changes or a rescan."""

    path: str
    reason: str


@dataclass
class ScanResult:
    plugins: list[PluginInfo] = field(default_factory=list)
    failures: list[ScanFailure] = field(default_factory=list)
    #: bundles loaded in a child process this time (the rest came from the cache)
    probed: int = 0
    folders: list[str] = field(default_factory=list)


def default_cache_file() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("stembridge", appauthor=False)) / "plugins.json"


def standard_folders(platform: str = sys.platform) -> list[Path]:
    """Where plugin installers put VST3 bundles (and Audio Units) on ``platform``."""
    home = Path.home()
    if platform == "darwin":
        return [Path("/Library/Audio/Plug-Ins/VST3"), home / "Library/Audio/Plug-Ins/VST3",
                Path("/Library/Audio/Plug-Ins/Components"), home / "Library/Audio/Plug-Ins/Components"]
    if platform.startswith("win"):
        common = os.environ.get("COMMONPROGRAMFILES", r"C:\Program Files\Common Files")
        return [Path(common) / "VST3"]
    return [home / ".vst3", Path("/usr/lib/vst3"), Path("/usr/local/lib/vst3")]


def find_bundles(folders: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Every ``.vst3`` / ``.component`` under ``folders`` (bundles are not descended into). Sorted."""
    found: set[Path] = set()
    for folder in folders:
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            continue
        for root, dirs, files in os.walk(folder, followlinks=True):
            for name in list(dirs) + files:
                if name.lower().endswith(PLUGIN_BUNDLE_SUFFIXES):
                    found.add(Path(root, name).resolve())
            dirs[:] = [d for d in dirs if not d.lower().endswith(PLUGIN_BUNDLE_SUFFIXES)]
    return sorted(found)


def bundle_fingerprint(path: str | os.PathLike[str]) -> list[int]:
    """[newest mtime_ns, total size] of a bundle's files: a changed binary inside a bundle folder
    does not touch the folder's own mtime."""
    path = Path(path)
    st = path.stat()
    if not path.is_dir():
        return [st.st_mtime_ns, st.st_size]
    newest, size = st.st_mtime_ns, 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                s = os.stat(os.path.join(root, name))
            except OSError:
                continue
            newest, size = max(newest, s.st_mtime_ns), size + s.st_size
    return [newest, size]


def _format_of(path: str) -> str:
    return "AU" if path.rstrip("/\\").lower().endswith(".component") else "VST3"


# --- the child process ---------------------------------------------------------------------------

class _ProbeDied(Exception):
    """The child crashed or hung on a bundle: the message is the reason to report."""


class _Child:
    """One ``_probe.py`` process; bundles are sent one at a time, each answer awaited with a timeout."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(_PROBE_SCRIPT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True, encoding="utf-8", bufsize=1,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True, name="plugin-scan-reader").start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def probe(self, path: str, timeout_s: float) -> dict:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(path + "\n")
            self.proc.stdin.flush()
        except OSError:
            raise _ProbeDied(self._death("before loading")) from None
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                raise _ProbeDied(
                    f"no answer in {timeout_s:g} s: it hung while loading, or is very slow to load (some "
                    "reverbs build their tables then). If it is only slow: stembridge plugins "
                    f"scan --rescan --timeout {max(300, int(4 * timeout_s))}") from None
            if line is None:
                raise _ProbeDied(self._death("while loading"))
            try:
                msg = json.loads(line)
            except json.JSONDecodeError:
                continue
            if msg.get("done") == path:
                return msg

    def _death(self, when: str) -> str:
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            code = None
        if code is not None and code < 0:
            try:
                sig = signal.Signals(-code).name
            except ValueError:
                sig = f"signal {-code}"
            return f"crashed {when} ({sig})"
        return f"crashed {when} (exit status {code})"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def close(self) -> None:
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()


def probe_bundles(paths: Sequence[str], *, timeout_s: float = DEFAULT_TIMEOUT_S, workers: int | None = None,
                  progress: Callable[[int, int, str], None] | None = None) -> dict[str, dict]:
    """Load each bundle in a child process. Returns path -> ``{"plugins": [...]}`` or ``{"error": why}``.

    A child that crashes or hangs is replaced by a new one for the remaining bundles.
    """
    todo: queue.Queue[str] = queue.Queue()
    for p in paths:
        todo.put(p)
    results: dict[str, dict] = {}
    lock = threading.Lock()
    n_workers = max(1, min(workers or min(4, os.cpu_count() or 1), len(paths)))

    def work() -> None:
        child: _Child | None = None
        try:
            while True:
                try:
                    path = todo.get_nowait()
                except queue.Empty:
                    return
                if child is None:
                    child = _Child()
                try:
                    msg = child.probe(path, timeout_s)
                    outcome = {"error": f"pedalboard could not load it: {msg['error']}"} if "error" in msg \
                        else {"plugins": msg.get("plugins", [])}
                except _ProbeDied as e:
                    outcome = {"error": str(e)}
                    child = None  # dead or killed: the next bundle gets a fresh process
                with lock:
                    results[path] = outcome
                    if progress is not None:
                        progress(len(results), len(paths), Path(path).name)
        finally:
            if child is not None:
                child.close()

    threads = [threading.Thread(target=work, name=f"plugin-scan-{i}") for i in range(n_workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


# --- the cache -----------------------------------------------------------------------------------

def _read_cache(cache_file: Path) -> dict:
    try:
        data = json.loads(cache_file.read_text(encoding="utf-8"))
        if isinstance(data, dict) and data.get("version") == CACHE_VERSION and isinstance(data.get("entries"), dict):
            return data
    except (OSError, ValueError):
        pass
    return {"version": CACHE_VERSION, "entries": {}, "user_folders": []}


def _result_from_entries(entries: dict, folders: list[str], probed: int) -> ScanResult:
    result = ScanResult(probed=probed, folders=folders)
    for path in sorted(entries):
        entry = entries[path]
        if "error" in entry:
            result.failures.append(ScanFailure(path=path, reason=entry["error"]))
            continue
        for d in entry.get("plugins", []):
            result.plugins.append(PluginInfo(
                name=d["name"], path=path, format=_format_of(path), manufacturer=d.get("manufacturer", ""),
                category=d.get("category", ""), version=d.get("version", ""),
                is_instrument=bool(d.get("is_instrument", False)),
                latency_samples=int(d.get("latency_samples", 0)),
                parameters=tuple(d.get("parameters", ())),
            ))
    return result


def scan_plugins(
    folders: Iterable[str | os.PathLike[str]] = (),
    *,
    standard: bool = True,
    rescan: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    cache_file: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> ScanResult:
    """Scan the standard plugin folders plus ``folders`` (remembered for later scans).

    Parameters
    ----------
    folders : extra folders to scan (the producer's own); remembered in the cache file.
    standard : include :func:`standard_folders` (folders given before are always included).
    rescan : load every bundle again, even unchanged and blocklisted ones.
    timeout_s : seconds one bundle may take to load before it is blocklisted as hanging.
    cache_file : default ``<user cache>/stembridge/plugins.json``.

    Returns
    -------
    ScanResult
        ``plugins`` (one per plugin, a bundle may hold several) and ``failures`` (bundles that
        crashed, hung or are not plugins: blocklisted until they change or ``rescan``).
    """
    cache_path = Path(cache_file) if cache_file is not None else default_cache_file()
    cache = _read_cache(cache_path)
    user = [str(Path(f).expanduser().resolve()) for f in folders]
    remembered = list(dict.fromkeys([*cache.get("user_folders", []), *user]))
    scan_folders = ([str(f) for f in standard_folders()] if standard else []) + remembered
    scan_folders = list(dict.fromkeys(scan_folders))
    bundles = [str(p) for p in find_bundles(scan_folders)]

    old = cache["entries"]
    entries: dict[str, dict] = {}
    todo: list[str] = []
    for path in bundles:
        try:
            fp = bundle_fingerprint(path)
        except OSError:
            continue
        hit = old.get(path)
        if not rescan and hit is not None and hit.get("fingerprint") == fp:
            entries[path] = hit
        else:
            entries[path] = {"fingerprint": fp}
            todo.append(path)
    if todo:
        log.info("loading %d plugin bundle(s) in a child process", len(todo))
        for path, outcome in probe_bundles(todo, timeout_s=timeout_s, workers=workers, progress=progress).items():
            entries[path].update(outcome)
            if "error" in outcome:
                log.warning("plugin %s skipped and blocklisted: %s", path, outcome["error"])
    # Bundles outside this scan's folders stay known (a scan of one folder must not forget the rest).
    for path, entry in old.items():
        if path not in entries and Path(path).exists():
            entries[path] = entry
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cache_path, json.dumps(
        {"version": CACHE_VERSION, "user_folders": remembered, "entries": entries}, indent=1))
    result = _result_from_entries({p: entries[p] for p in bundles}, scan_folders, probed=len(todo))
    return result


def known_plugins(cache_file: str | os.PathLike[str] | None = None) -> ScanResult:
    """What the last scans found (the cache), without loading anything. Bundles since deleted are left out."""
    cache_path = Path(cache_file) if cache_file is not None else default_cache_file()
    cache = _read_cache(cache_path)
    entries = {p: e for p, e in cache["entries"].items() if Path(p).exists()}
    return _result_from_entries(entries, list(cache.get("user_folders", [])), probed=0)


def find_known_plugin(name: str, *, cache_file: str | os.PathLike[str] | None = None) -> PluginInfo | None:
    """A scanned plugin by name (case-insensitive), e.g. "ZamComp"; None when the scan never saw it."""
    for info in known_plugins(cache_file).plugins:
        if info.name.lower() == name.lower():
            return info
    return None


def as_json(result: ScanResult) -> dict:
    return {"plugins": [asdict(p) for p in result.plugins],
            "failures": [asdict(f) for f in result.failures],
            "probed": result.probed, "folders": result.folders}
