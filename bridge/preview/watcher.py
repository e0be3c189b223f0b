"""Watch the stems folder(s): re-bounced stems, new files, deleted files.

A DAW rewrites a stem over several seconds when the producer re-bounces it. A file is acted on
only once it has stopped changing — the same size and modification time for ``settle_polls``
polls in a row — *and* it decodes as audio (its header is complete and promises no more data than
the file holds: :func:`bridge.stems.load.probe_audio`). Then its content hash is compared with the
last one seen, so touching a file or rewriting identical bytes triggers nothing.

Why polling and not OS notifications (inotify / FSEvents / ReadDirectoryChangesW, e.g. through
the ``watchdog`` package): notifications say *that* a file is being written, not *when the writer
is done*, so a settle timer and a size/mtime check are needed anyway; a stems folder holds a few
dozen files, so a ``stat`` each half second costs nothing; and polling works the same on network
drives and synced folders (where notifications are unreliable) with no extra dependency.

Events (:class:`FileChange`): ``changed`` (a known stem has new, complete content), ``added`` (a
new audio file appeared after watching started and is complete), ``removed`` (a known stem is
gone for ``settle_polls`` polls; a quick delete-and-rewrite is a change, not a removal),
``returned`` (a removed stem is back, with its content), ``unreadable`` (a file stopped changing
but does not decode; reported once per version of the file).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bridge.errors import AudioError
from bridge.stems.load import AUDIO_EXTENSIONS, file_digest, probe_audio
from bridge.stems.roles import looks_like_full_mix

log = logging.getLogger(__name__)

ChangeKind = Literal["changed", "added", "removed", "returned", "unreadable"]


@dataclass(frozen=True)
class FileChange:
    kind: ChangeKind
    path: Path
    digest: str | None = None   # content hash (changed / added / returned)
    message: str = ""           # why (unreadable)


@dataclass
class _Tracked:
    signature: tuple[int, int] | None        # (size, mtime_ns); None = missing
    stable_polls: int = 0
    acted_signature: tuple[int, int] | None = None  # the version last acted on (or found unreadable)
    digest: str | None = None                 # content last reported / known
    is_stem: bool = False
    missing_polls: int = 0
    reported_missing: bool = False
    is_new: bool = False                      # appeared after watching started (not a stem yet)


def _signature(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None
    return (st.st_size, st.st_mtime_ns)


def _candidate(path: Path) -> bool:
    name = path.name
    return (path.suffix.lower() in AUDIO_EXTENSIONS and not name.startswith(".")
            and not looks_like_full_mix(path.name))


def _decodable(path: Path) -> str | None:
    """None when the file is complete audio, else why not."""
    try:
        probe_audio(path)
    except AudioError as e:
        return str(e)
    return None


@dataclass
class StemWatcher:
    """Polls the folders that hold the stems.

    Parameters
    ----------
    stems : {path: digest or None}
        The project's stem files and their known content hashes (None = unknown: the next complete
        new version is reported as changed).
    on_change : callable(FileChange)
        Called from the watcher thread (or from :meth:`poll_once`'s caller).
    interval_s : seconds between polls.
    settle_polls : polls a file must stay unchanged before it is acted on (≥ 1).
    extra_folders : more folders to watch for new stems.
    """

    stems: dict[Path, str | None]
    on_change: Callable[[FileChange], None]
    interval_s: float = 0.5
    settle_polls: int = 3
    extra_folders: Iterable[Path] = ()
    decodable: Callable[[Path], str | None] = _decodable
    _files: dict[Path, _Tracked] = field(default_factory=dict, init=False)
    _folders: set[Path] = field(default_factory=set, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.interval_s <= 0 or self.settle_polls < 1:
            raise ValueError(f"interval_s {self.interval_s} must be > 0 and settle_polls {self.settle_polls} >= 1")
        stems, self.stems = self.stems, {}
        self.set_stems(stems, extra_folders=self.extra_folders)
        # Everything already in the folders is the baseline: only files that appear later are new.
        for folder in self._folders:
            for path in self._list(folder):
                if path not in self._files:
                    self._files[path] = _Tracked(signature=_signature(path), acted_signature=_signature(path))

    # -- configuration -----------------------------------------------------------------------
    def set_stems(self, stems: dict[Path, str | None], *, extra_folders: Iterable[Path] = ()) -> None:
        """Replace the set of stems (after stems were added or removed in the project)."""
        with self._lock:
            stems = {Path(p).resolve(): d for p, d in stems.items()}
            for path, tracked in self._files.items():
                if path not in stems and tracked.is_stem:
                    tracked.is_stem = False
            for path, digest in stems.items():
                tracked = self._files.get(path)
                sig = _signature(path)
                if tracked is None:
                    tracked = self._files[path] = _Tracked(signature=sig, acted_signature=sig)
                tracked.is_stem = True
                tracked.is_new = False
                if digest is not None:
                    tracked.digest = digest
                if sig is not None and tracked.acted_signature is None:
                    tracked.acted_signature = sig
            self.stems = stems
            self._folders = {p.parent for p in stems} | {Path(f).resolve() for f in extra_folders}

    def known_digest(self, path: Path) -> str | None:
        with self._lock:
            t = self._files.get(Path(path).resolve())
            return None if t is None else t.digest

    # -- polling -----------------------------------------------------------------------------
    @staticmethod
    def _list(folder: Path) -> list[Path]:
        try:
            return [p.resolve() for p in folder.iterdir() if p.is_file() and _candidate(p)]
        except OSError:
            return []

    def poll_once(self) -> list[FileChange]:
        """One poll: returns (and passes to ``on_change``) what is ready to act on."""
        changes: list[FileChange] = []
        with self._lock:
            folders = set(self._folders)
            present = {p for folder in folders for p in self._list(folder)}
            for path in present - set(self._files):
                self._files[path] = _Tracked(signature=None, is_new=True)
            ready: list[tuple[Path, _Tracked]] = []
            for path, t in self._files.items():
                sig = _signature(path)
                if sig is None:
                    t.stable_polls = 0
                    t.signature = None
                    if t.is_stem and not t.reported_missing:
                        t.missing_polls += 1
                        if t.missing_polls >= self.settle_polls:
                            t.reported_missing = True
                            changes.append(FileChange("removed", path))
                    continue
                t.missing_polls = 0
                if sig != t.signature:
                    t.signature, t.stable_polls = sig, 0
                    continue
                t.stable_polls += 1
                if t.stable_polls >= self.settle_polls and sig != t.acted_signature and (t.is_stem or t.is_new):
                    ready.append((path, t))
        # Decoding and hashing happen outside the lock (a large file takes a while to hash).
        for path, t in ready:
            problem = self.decodable(path)
            if problem is not None:
                with self._lock:
                    t.acted_signature = t.signature
                changes.append(FileChange("unreadable", path, message=problem))
                continue
            try:
                digest = file_digest(path)
            except OSError as e:
                changes.append(FileChange("unreadable", path, message=str(e)))
                continue
            with self._lock:
                if _signature(path) != t.signature:
                    continue  # it changed while being hashed: wait for it to settle again
                t.acted_signature = t.signature
                was_missing = t.reported_missing
                t.reported_missing = False
                if t.is_stem:
                    if was_missing:
                        t.digest = digest
                        changes.append(FileChange("returned", path, digest))
                    elif digest != t.digest:  # an unknown (None) reference counts as changed
                        t.digest = digest
                        changes.append(FileChange("changed", path, digest))
                elif t.is_new:
                    t.is_new = False
                    t.digest = digest
                    changes.append(FileChange("added", path, digest))
        for c in changes:
            try:
                self.on_change(c)
            except Exception:  # noqa: BLE001 - a failing consumer must not stop the watcher
                log.exception("stem watcher consumer failed on %s", c)
        return changes

    # -- thread ------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="stembridge-stem-watcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001
                log.exception("stem watcher poll failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5 * self.interval_s + 1.0)
            self._thread = None


def stem_paths_of(project, project_dir: str | os.PathLike[str]) -> list[Path]:
    """Absolute paths of a project's stems."""
    from bridge.project.store import resolve_stem_path

    return [resolve_stem_path(s.path, Path(project_dir)) for s in project.stems]
