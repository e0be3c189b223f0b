"""The Session: construction, events, undo/redo and saving; the commands live in its mixins."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bridge.errors import BridgeError, ProjectError
from bridge.jobs import CancelToken
from bridge.playback.controller import PlaybackController
from bridge.project.schema import Project
from bridge.project.store import (
    cache_dir,
    load_project,
    project_file,
    resolve_stem_path,
    save_project,
)
from bridge.session._helpers import (
    COALESCE_WINDOW_S,
    DEFAULT_UNDO_LIMIT,
    Origin,
    _analysis_signature,
    _changed_parts,
    _check_cache_limit,
    _file_signature,
    _follow_solo,
    _UndoEntry,
    _validated,
)
from bridge.session.edits import EditsMixin
from bridge.session.events import (
    ProjectChanged,
    ProjectSaved,
    SaveFailed,
    StemFileMissing,
    StemFileReturned,
)
from bridge.session.live import LiveMixin
from bridge.session.settings import SettingsMixin
from bridge.session.stems import StemsMixin
from bridge.session.sync import SyncMixin
from bridge.session.views import ViewsMixin
from bridge.session.watching import WatchingMixin
from bridge.transport.clock import TransportClock
from bridge.transport.state import TransportState

if TYPE_CHECKING:
    from bridge.analysis.types import SongAnalysis
    from bridge.mapping.frame_params import FrameParams
    from bridge.preview.scheduler import PreviewScheduler

log = logging.getLogger(__name__)


# =================================================================================================
# The session
# =================================================================================================

class Session(WatchingMixin, LiveMixin, StemsMixin, EditsMixin, SettingsMixin, SyncMixin,
              ViewsMixin):
    """One open project with its analysis, transport, preview and watcher (see the module docstring).

    Build it with :meth:`open` or :meth:`new`; close it with :meth:`close` (or use it as a context
    manager). Options (keyword-only, all optional):

    autosave, autosave_delay_s, autosave_max_delay_s:
        Save ``stembridge.json`` (atomically) ``autosave_delay_s`` after the last edit, and at least
        every ``autosave_max_delay_s`` while edits keep coming: a crash loses at most that much.
    watch, watch_interval_s, watch_settle_polls:
        Poll the stems folders (and the project file, for edits made outside) every
        ``watch_interval_s``; a file is acted on once unchanged for ``watch_settle_polls`` polls.
    preview, preview_long_side, preview_debounce_s, preview_warmup_frames, preview_probe,
    engine_factory, lcm_options, frame_cache_bytes:
        The preview scheduler's options (:class:`~bridge.preview.scheduler.PreviewScheduler`).
    preview_disk_cache_bytes:
        Cap on the preview's disk cache of rendered frames (least recently used files go first;
        default 2 GiB; None = the default). Change it with :meth:`set_preview_cache_limit`.
    clock:
        A TransportClock fed by a DAW source; default a free-running clock driven by
        :meth:`play` / :meth:`pause` / :meth:`seek`.
    analyse, analysis_workers:
        Analyse at open (default); threads for per-stem analysis.
    undo_limit:
        Undo steps kept.
    """

    def __init__(self, project: Project, project_dir: str | os.PathLike[str], *,
                 autosave: bool = True, autosave_delay_s: float = 1.0, autosave_max_delay_s: float = 5.0,
                 watch: bool = True, watch_interval_s: float = 0.5, watch_settle_polls: int = 3,
                 preview: bool = True, preview_long_side: int | None = None, preview_debounce_s: float | None = None,
                 preview_warmup_frames: int | None = None, preview_probe: bool = True,
                 engine_factory: Callable[[str, Mapping[str, Any]], Any] | None = None,
                 lcm_options: Mapping[str, Any] | None = None, frame_cache_bytes: int | None = None,
                 preview_disk_cache_bytes: int | None = None,
                 clock: TransportClock | None = None, analyse: bool = True, analysis_workers: int = 2,
                 undo_limit: int = DEFAULT_UNDO_LIMIT, audio: bool = False,
                 audio_device: int | str | None = None, audio_blocksize: int = 0) -> None:
        if autosave_delay_s < 0 or autosave_max_delay_s < autosave_delay_s:
            raise ValueError("autosave_delay_s must be >= 0 and autosave_max_delay_s >= autosave_delay_s")
        self.project_dir = Path(project_dir).resolve()
        self._lock = threading.RLock()
        self._events: deque[object] = deque(maxlen=10_000)
        self._project = project
        self._saved_project: Project | None = project
        self._undo: list[_UndoEntry] = []
        self._redo: list[_UndoEntry] = []
        self._undo_limit = int(undo_limit)
        self._mapping_solo: frozenset[int] = frozenset()
        self._closed = False
        self._last_edit_time: float | None = None
        self._missing: set[str] = set()
        self._rebounced: set[str] = set()  # stems whose file changed on disk (rebounced_stems)

        # analysis
        self._cpu = ThreadPoolExecutor(max_workers=max(1, analysis_workers), thread_name_prefix="stembridge-cpu")
        self._analysis_workers = max(1, analysis_workers)
        self._analysis: SongAnalysis | None = None
        self._analysis_sig: tuple | None = None
        self._analysis_missing: frozenset[str] = frozenset()  # stems left out of that analysis
        self._analysis_gen = 0
        self._analysis_token: CancelToken | None = None
        self._analysis_running = False
        self._analysis_done = threading.Event()

        # transport
        self._owns_clock = clock is None
        self.clock = clock if clock is not None else TransportClock()
        if self._owns_clock:
            tempo = project.tempo.tempo_bpm or 120.0
            self.clock.update(TransportState(playing=False, tempo_bpm=tempo, source="free",
                                             received_at=time.monotonic()))
        # the followed DAW's tempo map, captured while it plays (record_daw_state, adopt_daw_tempo)
        from bridge.transport.clock import TempoMapRecorder

        self._daw_tempo = TempoMapRecorder()
        self._daw_tempo_lock = threading.Lock()
        self._daw_tempos: set[float] = set()  # distinct tempos the DAW reported while playing

        # audio playback (the player opens at the first play)
        self.audio = PlaybackController(
            submit=self._cpu.submit, emit=self._emit, enabled=audio, device=audio_device,
            blocksize=audio_blocksize,
            project_source=lambda: (self._project, self.project_dir, frozenset(self._missing)))

        # autosave
        self._autosave = autosave
        self._autosave_delay_s = float(autosave_delay_s)
        self._autosave_max_delay_s = float(autosave_max_delay_s)
        self._save_cond = threading.Condition()
        self._save_lock = threading.Lock()
        self._unsaved_since: float | None = None
        self._project_file = project_file(self.project_dir)
        self._project_file_sig = _file_signature(self._project_file)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

        # preview
        self._scheduler: PreviewScheduler | None = None
        self._cache = None
        if preview:
            from bridge.preview.cache import (
                DEFAULT_DISK_BUDGET_BYTES,
                DEFAULT_MEMORY_BUDGET_BYTES,
                FrameCache,
            )
            from bridge.preview.plan import DEFAULT_PREVIEW_LONG_SIDE
            from bridge.preview.scheduler import (
                DEFAULT_DEBOUNCE_S,
                DEFAULT_WARMUP_FRAMES,
                PreviewScheduler,
            )

            self._cache = FrameCache(cache_dir(self.project_dir) / "preview",
                                     memory_budget_bytes=frame_cache_bytes or DEFAULT_MEMORY_BUDGET_BYTES,
                                     disk_budget_bytes=DEFAULT_DISK_BUDGET_BYTES if preview_disk_cache_bytes is None
                                     else _check_cache_limit(preview_disk_cache_bytes))
            self._scheduler = PreviewScheduler(
                cache=self._cache, emit=self._emit, playhead=self._playhead, engine_factory=engine_factory,
                long_side=preview_long_side or DEFAULT_PREVIEW_LONG_SIDE,
                debounce_s=DEFAULT_DEBOUNCE_S if preview_debounce_s is None else preview_debounce_s,
                warmup_frames=DEFAULT_WARMUP_FRAMES if preview_warmup_frames is None else preview_warmup_frames,
                probe=preview_probe, lcm_options=lcm_options)

        # watcher
        self._watcher = None
        self._watch_interval_s = float(watch_interval_s)
        if watch:
            from bridge.preview.watcher import StemWatcher

            self._watcher = StemWatcher(self._stem_files(project), self._on_file_change,
                                        interval_s=watch_interval_s, settle_polls=watch_settle_polls)
            self._start_thread("stembridge-watcher", self._watch_loop)
        if autosave:
            self._start_thread("stembridge-autosave", self._autosave_loop)
        self._find_missing_stems()  # before the first analysis: one gone file must not fail it for all
        if analyse:
            self._request_analysis("open")

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def open(cls, location: str | os.PathLike[str], **options: Any) -> Session:
        """Open ``stembridge.json`` (or the folder holding it). Raises ProjectError."""
        project, project_dir = load_project(location)
        return cls(project, project_dir, **options)

    @classmethod
    def new(cls, project_dir: str | os.PathLike[str], stems_dir: str | os.PathLike[str], *,
            name: str | None = None, roles: Mapping[str, str] | None = None, overwrite: bool = False,
            project_fields: Mapping[str, Any] | None = None, **options: Any) -> Session:
        """Create a project from a folder of stems (:func:`bridge.project.create.new_project`) and open it."""
        from bridge.project.create import new_project

        result = new_project(project_dir, stems_dir, name=name, roles=roles, overwrite=overwrite,
                             **dict(project_fields or {}))
        return cls.open(result.project_dir, **options)

    def _start_thread(self, name: str, target: Callable[[], None]) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self, *, save: bool = True) -> None:
        """Stop every thread; save unsaved edits first (unless ``save`` is False). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self.disconnect_sync()
        with self._save_cond:
            self._save_cond.notify_all()
        for t in self._threads:
            t.join(timeout=10.0)
        if self._analysis_token is not None:
            self._analysis_token.cancel()
        self.audio.close()
        if self._scheduler is not None:
            self._scheduler.stop()
        self._cpu.shutdown(wait=True, cancel_futures=True)
        if save and self.dirty:
            try:
                self._save(autosave=True)
            except BridgeError as e:
                log.error("could not save %s on close: %s", self._project_file, e)
        if self._cache is not None:
            self._cache.close()

    # -- state -------------------------------------------------------------------------------
    @property
    def project(self) -> Project:
        """The current project (a snapshot: treat it as read-only; change it through commands)."""
        return self._project

    @property
    def analysis(self) -> SongAnalysis | None:
        return self._analysis

    @property
    def params(self) -> FrameParams | None:
        """The preview's current FrameParams (whole song), once analysis is done."""
        plan = self._scheduler.plan if self._scheduler is not None else None
        return None if plan is None else plan.params

    @property
    def dirty(self) -> bool:
        """Edits not yet written to ``stembridge.json``."""
        return self._project != self._saved_project

    @property
    def missing_stems(self) -> frozenset[str]:
        return frozenset(self._missing)

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def undo_label(self) -> str | None:
        return self._undo[-1].label if self._undo else None

    @property
    def redo_label(self) -> str | None:
        return self._redo[-1].label if self._redo else None

    @property
    def scheduler(self) -> PreviewScheduler | None:
        return self._scheduler

    # -- events ------------------------------------------------------------------------------
    def _emit(self, event: object) -> None:
        self._events.append(event)

    def poll_events(self, max_events: int | None = None) -> list[object]:
        """Events since the last call, oldest first (thread-safe; never blocks)."""
        out: list[object] = []
        while self._events and (max_events is None or len(out) < max_events):
            try:
                out.append(self._events.popleft())
            except IndexError:
                break
        return out

    # -- editing machinery -------------------------------------------------------------------
    def _edit(self, label: str, change: Callable[[Project], Project], *, origin: Origin = "edit",
              coalesce: bool = False, key: str | None = None) -> bool:
        """Apply ``change`` to the current project as one undoable step. Returns False for a no-op."""
        with self._lock:
            self._check_open()
            old = self._project
            new = _validated(change(old), what=f"the edit {label!r}", base=old)
            if new == old:
                return False
            now = time.monotonic()
            top = self._undo[-1] if self._undo else None
            key = key or label
            if coalesce and top is not None and top.coalesce and top.key == key and now - top.at < COALESCE_WINDOW_S:
                top.at = now  # the same gesture continues: keep the snapshot from before it began
            else:
                self._undo.append(_UndoEntry(label, old, now, coalesce, key))
                del self._undo[:-self._undo_limit]
            self._redo.clear()
            self._set_project(new, label, origin)
            return True

    def _set_project(self, new: Project, label: str, origin: Origin) -> None:
        old = self._project
        self._project = new
        now = time.monotonic()
        self._last_edit_time = now
        parts = _changed_parts(old, new)
        self._missing &= {s.name for s in new.stems}
        if "stems" in parts:
            self._recheck_moved_stems(old, new)
        if self._mapping_solo and new.mappings is not old.mappings:
            self._mapping_solo = _follow_solo(self._mapping_solo, old.mappings, new.mappings)
        self._emit(ProjectChanged(label, origin, parts, bool(self._undo), bool(self._redo),
                                  self.undo_label, self.redo_label))
        self._mark_unsaved(now)
        if "stems" in parts and self._watcher is not None:
            self._watcher.set_stems(self._stem_files(new))
        if "stems" in parts:
            self.audio.refresh_mix()
        same_inputs = new.stems == old.stems and new.tempo == old.tempo  # a mapping/section/render edit
        same_inputs = same_inputs and new.rhythm == old.rhythm  # …not a rhythm correction
        if not same_inputs and _analysis_signature(new, self._missing) != _analysis_signature(old, self._missing):
            self._request_analysis(label)
        else:
            self._push_preview(edit_time=now)

    def _recheck_moved_stems(self, old: Project, new: Project) -> None:
        """A stem pointed at another file (relinked, or an undo of that): missing or not by that file."""
        before = {s.name: s.path for s in old.stems}
        for s in new.stems:
            if s.name not in before or before[s.name] == s.path:
                continue
            path = resolve_stem_path(s.path, self.project_dir)
            if path.is_file() and s.name in self._missing:
                self._missing.discard(s.name)
                self._emit(StemFileReturned(s.name, path))
            elif not path.is_file() and s.name not in self._missing:
                self._missing.add(s.name)
                self._emit(StemFileMissing(s.name, path))

    def _check_open(self) -> None:
        if self._closed:
            raise ProjectError("this session is closed; open the project again")

    def undo(self) -> bool:
        """Undo the last edit. Returns False when there is nothing to undo."""
        with self._lock:
            self._check_open()
            if not self._undo:
                return False
            entry = self._undo.pop()
            self._redo.append(_UndoEntry(entry.label, self._project, time.monotonic()))
            self._set_project(entry.project, entry.label, "undo")
            return True

    def redo(self) -> bool:
        """Redo the last undone edit. Returns False when there is nothing to redo."""
        with self._lock:
            self._check_open()
            if not self._redo:
                return False
            entry = self._redo.pop()
            self._undo.append(_UndoEntry(entry.label, self._project, time.monotonic()))
            self._set_project(entry.project, entry.label, "redo")
            return True

    # -- saving ------------------------------------------------------------------------------
    def save(self) -> Path:
        """Write ``stembridge.json`` now (atomic). Raises ProjectError (with the reason) on failure."""
        return self._save(autosave=False)

    def _save(self, *, autosave: bool) -> Path:
        if self._watcher is not None:
            # another window (or the CLI) may have saved since our last look: take its edits in
            # first, or this write would silently undo them
            self._poll_project_file()
        with self._save_lock:
            with self._lock:
                project = self._project
            try:
                path = save_project(project, self.project_dir)
            except (OSError, BridgeError) as e:
                message = f"could not save {self._project_file}: {e}"
                self._emit(SaveFailed(message))
                raise ProjectError(message + ". Check the disk space and the folder's permissions.") from None
            with self._lock:
                self._saved_project = project
                self._project_file_sig = _file_signature(path)
            with self._save_cond:
                if self._project == project:
                    self._unsaved_since = None
            self._emit(ProjectSaved(path, autosave))
            return path

    def _mark_unsaved(self, now: float) -> None:
        with self._save_cond:
            if self._unsaved_since is None:
                self._unsaved_since = now
                # Only the first unsaved edit wakes the autosave thread: later ones only move its
                # due time later, which it finds when it wakes for the earlier one (waking it on
                # every slider step would take the GIL from the preview threads for nothing).
                self._save_cond.notify_all()

    def _autosave_loop(self) -> None:
        while not self._stop.is_set():
            with self._save_cond:
                while not self._stop.is_set():
                    if self._unsaved_since is not None:
                        last = self._last_edit_time or self._unsaved_since
                        due = min(last + self._autosave_delay_s, self._unsaved_since + self._autosave_max_delay_s)
                        wait = due - time.monotonic()
                        if wait <= 0:
                            break
                        self._save_cond.wait(wait)
                    else:
                        self._save_cond.wait()
                if self._stop.is_set():
                    return
            if not self.dirty:
                with self._save_cond:
                    self._unsaved_since = None
                continue
            try:
                self._save(autosave=True)
            except ProjectError as e:
                log.warning("%s", e)
                self._stop.wait(self._autosave_delay_s)  # retry later; the event told the user

    # -- project ---------------------------------------------------------------------------
    def rename_project(self, name: str) -> None:
        self._edit("rename project", lambda p: p.model_copy(update={"name": name}))

