"""The application model: commands in, events out. Qt-free; the GUI and ``stembridge preview`` sit on it.

A :class:`Session` owns one open project and everything live around it:

* the :class:`~bridge.project.schema.Project` (an immutable snapshot swapped on every edit) with
  undo/redo for every command and a debounced, atomic autosave;
* the analysis results (computed on a CPU thread pool, cached per stem by content hash);
* the :class:`~bridge.transport.clock.TransportClock` (a free-running clock with local
  play/pause/seek, or one fed by a DAW sync source);
* the preview (:class:`~bridge.preview.scheduler.PreviewScheduler`: one model worker thread owns
  the engines) and :meth:`Session.frame_at` for playback;
* the stems-folder watcher (re-bounced stems are re-analysed, new files become stems, deleted
  files are reported).

Threads (DESIGN.md "Threads"): commands are meant to be called from one thread (the GUI thread);
they return quickly (a validated model copy plus bookkeeping) and never wait for analysis or
rendering. Everything slow happens on the Session's threads, which report through events.

Commands (all raise :class:`~bridge.errors.ProjectError` with the field, the value and the fix
when an edit would make the project invalid; nothing changes then):

============================  ==================================================================
project                       :meth:`open`, :meth:`new`, :meth:`save`, :meth:`close`,
                              :meth:`rename_project`
stems                         :meth:`add_stem`, :meth:`remove_stem`, :meth:`rename_stem`,
                              :meth:`set_stem_role`, :meth:`set_stem_gain`,
                              :meth:`set_stem_offset`, :meth:`set_stem_muted`
effect chains                 :meth:`add_fx`, :meth:`remove_fx`, :meth:`set_fx`, :meth:`move_fx`,
                              :meth:`set_fx_state` (stem None: the master chain), :meth:`fx_chain`
mappings                      :meth:`add_mapping`, :meth:`update_mapping`, :meth:`remove_mapping`,
                              :meth:`duplicate_mapping`, :meth:`move_mapping`, :meth:`set_mappings`,
                              :meth:`set_mapping_solo` (monitoring, not saved)
sections and prompts          :meth:`add_section`, :meth:`update_section`, :meth:`set_prompt`,
                              :meth:`split_section`, :meth:`move_section`, :meth:`remove_section`,
                              :meth:`adopt_detected_sections`, :meth:`import_daw_markers`
settings                      :meth:`set_engine`, :meth:`set_render`, :meth:`set_tempo`,
                              :meth:`adopt_daw_tempo` (with :meth:`record_daw_state` as the sync
                              sources' ``on_state``)
history                       :meth:`undo`, :meth:`redo` (``can_undo``, ``undo_label``…)
transport                     :meth:`play`, :meth:`pause`, :meth:`seek`, :meth:`transport`
audio playback                :meth:`set_audio`, :meth:`set_solo`, :meth:`set_loop`
preview                       :meth:`frame_at`, :meth:`preview_status`, :meth:`wait_idle`
============================  ==================================================================

Edits that a GUI makes continuously (a slider drag) pass ``coalesce=True``: consecutive edits with
the same label within :data:`COALESCE_WINDOW_S` become one undo step.

Events (plain frozen dataclasses) are drained with :meth:`poll_events` — the GUI calls it from a
30–60 Hz timer. Session events are defined here; preview events come from
:mod:`bridge.preview.scheduler` and are re-exported here:

* :class:`ProjectChanged` — after every edit, undo, redo, external edit of the file, or change
  the watcher made (new stem);
* :class:`ProjectSaved` / :class:`SaveFailed`; :class:`ProjectFileInvalid` (the file was edited
  outside and does not validate; the session keeps its state);
* :class:`AnalysisStarted` / :class:`AnalysisFinished` / :class:`AnalysisFailed`;
* :class:`StemFileChanged`, :class:`StemFileAdded`, :class:`StemFileMissing`,
  :class:`StemFileReturned`, :class:`StemFileUnreadable`;
* :class:`ParamsUpdated`, :class:`PreviewPassStarted`, :class:`PreviewPassFinished`,
  :class:`KeyframeRendered`, :class:`MappingProblem`, :class:`PreviewError`;
* :class:`AudioUnavailable`, :class:`MixReady`, :class:`MixFailed` (from :mod:`bridge.playback`).

Audio (``audio=True``, off by default for scripts and tests): :meth:`play` also plays the project's
mix through PortAudio (:mod:`bridge.playback`) and the transport then follows the audio device's
clock (the sample reaching the speaker), so the playhead, the preview and the sound agree. With a
DAW as the sync source the session stays silent. No device: an :class:`AudioUnavailable` event
and the playhead runs silently, as before.

``import bridge.session`` imports neither torch nor OpenCV (numpy and pydantic only): analysis,
engines and OpenCV are imported when a Session starts.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ValidationError

from bridge.errors import BridgeError, Cancelled, ProjectError
from bridge.jobs import CancelToken

# Playback's events are part of the Session's event API too (bridge.playback imports no sounddevice).
from bridge.playback import AudioUnavailable, MixFailed, MixReady, PlaybackController  # noqa: F401

# The preview's disk-cache cap the app offers by default (Preferences ▸ Preview cache).
from bridge.preview.cache import DEFAULT_DISK_BUDGET_BYTES as DEFAULT_PREVIEW_CACHE_BYTES  # noqa: F401

# The preview's events are part of the Session's event API (numpy + pydantic only: no OpenCV, no torch).
from bridge.preview.scheduler import (
    KeyframeRendered,
    MappingProblem,
    ParamsUpdated,
    PreviewError,
    PreviewPassFinished,
    PreviewPassStarted,
    PreviewStatus,
)
from bridge.project.schema import FxSlot, Project, Section, StemSpec
from bridge.project.schema import Mapping as MappingSpec
from bridge.project.store import (
    cache_dir,
    format_validation_error,
    load_project,
    project_file,
    relative_stem_path,
    resolve_stem_path,
    save_project,
    stem_path_is_inside,
)
from bridge.transport.clock import TransportClock
from bridge.transport.state import TransportState

if TYPE_CHECKING:
    import numpy as np

    from bridge.analysis.types import SongAnalysis
    from bridge.mapping.frame_params import FrameParams
    from bridge.preview.scheduler import PreviewScheduler

log = logging.getLogger(__name__)

#: Consecutive ``coalesce=True`` edits with the same label within this many seconds are one undo step.
COALESCE_WINDOW_S = 1.0
#: Undo steps kept (each is one Project snapshot: a few kB).
DEFAULT_UNDO_LIMIT = 500

Origin = Literal["edit", "undo", "redo", "external", "watcher"]


# =================================================================================================
# Events
# =================================================================================================

@dataclass(frozen=True)
class ProjectChanged:
    """The project changed. ``parts``: which top-level fields differ (stems, mappings, sections,
    engine, render, tempo, name…). The undo state is included so a GUI can update its menu."""

    label: str
    origin: Origin
    parts: frozenset[str]
    can_undo: bool
    can_redo: bool
    undo_label: str | None
    redo_label: str | None


@dataclass(frozen=True)
class ProjectSaved:
    path: Path
    autosave: bool


@dataclass(frozen=True)
class SaveFailed:
    message: str


@dataclass(frozen=True)
class ProjectFileInvalid:
    """``stembridge.json`` was changed outside the app and cannot be used; the session's state is kept."""

    message: str


@dataclass(frozen=True)
class AnalysisStarted:
    reason: str
    stems: tuple[str, ...]


@dataclass(frozen=True)
class AnalysisFinished:
    reason: str
    duration_seconds: float
    tempo_bpm: float
    elapsed_s: float


@dataclass(frozen=True)
class AnalysisFailed:
    reason: str
    message: str


@dataclass(frozen=True)
class StemFileChanged:
    """A stem's file has new content (a re-bounce); it is being re-analysed."""

    name: str
    path: Path


@dataclass(frozen=True)
class StemFileAdded:
    """A new audio file appeared in a stems folder and was added as a stem (undoable)."""

    name: str
    path: Path
    role: str


@dataclass(frozen=True)
class StemFileMissing:
    """A stem's file is gone. The stem stays in the project (and its last analysis stays in use)
    until the file is back or the stem is removed."""

    name: str
    path: Path


@dataclass(frozen=True)
class StemFileReturned:
    name: str
    path: Path


@dataclass(frozen=True)
class StemFileUnreadable:
    """A file in a stems folder stopped changing but does not decode (incomplete or corrupt)."""

    path: Path
    message: str


# =================================================================================================
# Helpers
# =================================================================================================

#: How undo labels name a mapping's fields.
MAPPING_FIELD_WORDS = {"attack_ms": "attack", "release_ms": "release", "clamp": "range", "enabled": "on/off"}


def mapping_words(m: MappingSpec) -> str:
    """A mapping in words, for undo labels and messages: ``Drums.onset → travel``."""
    return f"{m.source} → {m.target}"


def _follow_solo(solo: frozenset[int], old: Sequence[MappingSpec], new: Sequence[MappingSpec]) -> frozenset[int]:
    """The indices in ``new`` of the soloed mappings of ``old``. Edits keep untouched mappings as the
    same objects (a delete, move or duplicate, and undo, which restores the earlier list), so a solo
    follows its object (the first of a duplicate's two); a mapping edited in place (the only item
    that differs, same length) keeps its index; one that is gone loses its solo."""
    edited_in_place = len(old) == len(new) and sum(a is not b for a, b in zip(old, new, strict=True)) == 1
    out = set()
    for k in solo:
        if k >= len(old):
            continue
        j = next((j for j, m in enumerate(new) if m is old[k]), None)
        if j is not None:
            out.add(j)
        elif edited_in_place and new[k] is not old[k]:
            out.add(k)
    return frozenset(out)


@dataclass
class _UndoEntry:
    label: str
    project: Project
    at: float
    coalesce: bool = False
    #: What a coalesced gesture edits (e.g. one mapping's amount); None → the label.
    key: str | None = None


def _validated(project: Project, *, what: str, base: Project | None = None) -> Project:
    """A fresh, validated Project (model_copy does not validate); ProjectError with the field and fix.

    ``base``: the project the edit started from. Top-level fields still holding the very same
    objects as in ``base`` were validated when ``base`` was, so only the others are dumped and
    validated again (a mapping edit re-validates the mapping list, not every stem and section);
    the project-level validators always run.
    """
    try:
        if base is None:
            return Project.model_validate(project.model_dump())
        data = {name: _revalidation_data(getattr(project, name), getattr(base, name))
                for name in Project.model_fields}
        return Project.model_validate(data)
    except ValidationError as e:
        raise ProjectError(format_validation_error(e, source=what)) from None


def _revalidation_data(value: Any, before: Any) -> Any:
    """``value`` as input for validating it again: kept as it is where it is the object ``before``
    held (validated then), dumped where it is new; a list keeps the items it shares with
    ``before`` (an edit of one mapping re-validates that mapping, not all of them)."""
    if value is before:
        return value
    if isinstance(value, list) and isinstance(before, list):
        old_ids = {id(item) for item in before}
        return [item if id(item) in old_ids else _dump(item) for item in value]
    return _dump(value)


def _dump(value: Any) -> Any:
    return value.model_dump() if isinstance(value, BaseModel) else value


def _replace(model: BaseModel, changes: Mapping[str, Any], *, what: str) -> BaseModel:
    try:
        return type(model).model_validate({**model.model_dump(), **changes})
    except ValidationError as e:
        raise ProjectError(format_validation_error(e, source=what)) from None


def _changed_parts(old: Project, new: Project) -> frozenset[str]:
    return frozenset(name for name in Project.model_fields if getattr(old, name) != getattr(new, name))


def _active_fx(slots: Sequence[Any]) -> str:
    """A stem chain's active slots (what its analysis hears) as text; bypassed slots change nothing."""
    return "|".join(s.model_dump_json() for s in slots if not s.bypass)


def _analysis_signature(project: Project, missing: Iterable[str]) -> tuple:
    """What the analysis depends on: the present stems' names, files, offsets and active effects, and
    the tempo."""
    gone = set(missing)
    return (tuple((s.name, s.path, s.offset_seconds, _active_fx(s.fx)) for s in project.stems if s.name not in gone),
            project.tempo.model_dump_json(), project.rhythm.model_dump_json())


def _file_signature(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)


# =================================================================================================
# The session
# =================================================================================================

class Session:
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
            from bridge.preview.scheduler import (
                DEFAULT_DEBOUNCE_S,
                DEFAULT_PREVIEW_LONG_SIDE,
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

    # -- watching ----------------------------------------------------------------------------
    def _stem_files(self, project: Project) -> dict[Path, str | None]:
        known = {}
        for s in project.stems:
            path = resolve_stem_path(s.path, self.project_dir)
            known[path] = self._watcher.known_digest(path) if self._watcher is not None else None
        return known

    def _watch_loop(self) -> None:
        while not self._stop.wait(self._watch_interval_s):
            try:
                self._watcher.poll_once()
                self._poll_project_file()
            except Exception:  # noqa: BLE001 - the watcher must keep running
                log.exception("watching the stems folder failed")

    def _stem_by_path(self, path: Path) -> StemSpec | None:
        for s in self._project.stems:
            if resolve_stem_path(s.path, self.project_dir) == Path(path).resolve():
                return s
        return None

    def _on_file_change(self, change) -> None:
        """Called on the watcher thread for each settled change."""
        stem = self._stem_by_path(change.path)
        if change.kind == "changed" and stem is not None:
            self._emit(StemFileChanged(stem.name, change.path))
            self._request_analysis(f"{stem.name} changed on disk")
            self.audio.refresh_mix()  # hear the new bounce
        elif change.kind == "removed" and stem is not None:
            # Keep the stem and its last analysis: a producer deleting a bounce usually re-bounces it.
            with self._lock:
                self._missing.add(stem.name)
            self._emit(StemFileMissing(stem.name, change.path))
        elif change.kind == "returned" and stem is not None:
            with self._lock:
                self._missing.discard(stem.name)
            self._emit(StemFileReturned(stem.name, change.path))
            self._request_analysis(f"{stem.name} is back")
            self.audio.refresh_mix()
        elif change.kind == "added" and stem is None:
            try:
                name, role = self._add_stem_file(change.path, origin="watcher")
            except (BridgeError, OSError) as e:
                self._emit(StemFileUnreadable(change.path, str(e)))
                return
            self._emit(StemFileAdded(name, change.path, role))
        elif change.kind == "unreadable":
            self._emit(StemFileUnreadable(change.path, change.message))

    def _poll_project_file(self) -> None:
        """An edit made to stembridge.json outside the app becomes an (undoable) external edit."""
        sig = _file_signature(self._project_file)
        if sig is None or sig == self._project_file_sig:
            return
        with self._save_lock:  # not while we are writing it ourselves
            sig = _file_signature(self._project_file)
            if sig is None or sig == self._project_file_sig:
                return
            self._project_file_sig = sig
            try:
                loaded, _ = load_project(self._project_file)
            except ProjectError as e:
                self._emit(ProjectFileInvalid(str(e)))
                return
        with self._lock:
            if loaded == self._project:
                return
            self._saved_project = loaded
            self._edit("edit outside stembridge", lambda _: loaded, origin="external")
            self._saved_project = loaded  # what is on disk now

    # -- analysis ----------------------------------------------------------------------------
    def _request_analysis(self, reason: str) -> None:
        with self._lock:
            if self._closed:
                return
            self._analysis_gen += 1
            gen = self._analysis_gen
            if self._analysis_token is not None:
                self._analysis_token.cancel()
            token = self._analysis_token = CancelToken()
            project = self._project
            missing = frozenset(self._missing)
            self._analysis_running = True
            self._analysis_done.clear()
        present = tuple(s.name for s in project.stems if s.name not in missing)
        self._emit(AnalysisStarted(reason, present))
        try:
            self._cpu.submit(self._run_analysis, gen, project, missing, token, reason)
        except RuntimeError:  # the pool is shut down: the session is closing
            pass

    def _run_analysis(self, gen: int, project: Project, missing: frozenset[str], token: CancelToken,
                      reason: str) -> None:
        from bridge.analysis.project import analyze_project

        t0 = time.perf_counter()
        present = [s for s in project.stems if s.name not in missing]
        try:
            if not present:
                raise ProjectError("the project has no stems whose files are there; add stems or bring the files back")
            sub = project.model_copy(update={"stems": present}) if len(present) != len(project.stems) else project
            analysis = analyze_project(sub, self.project_dir, cancel=token, max_workers=self._analysis_workers)
        except Cancelled:
            return
        except BridgeError as e:
            with self._lock:
                if gen == self._analysis_gen:
                    self._analysis_running = False
                    self._analysis_done.set()
            self._emit(AnalysisFailed(reason, str(e)))
            return
        except Exception as e:  # noqa: BLE001 - a bug must be reported, not kill the pool thread silently
            log.exception("analysis failed")
            with self._lock:
                if gen == self._analysis_gen:
                    self._analysis_running = False
                    self._analysis_done.set()
            self._emit(AnalysisFailed(reason, f"{type(e).__name__}: {e}"))
            return
        with self._lock:
            if gen != self._analysis_gen:
                return  # a newer request superseded this one
            self._analysis = analysis
            self._analysis_sig = _analysis_signature(project, missing)
            self._analysis_missing = missing
            self._analysis_running = False
        self._emit(AnalysisFinished(reason, analysis.duration_seconds, analysis.tempo_bpm, time.perf_counter() - t0))
        self._use_tempo_map(analysis)
        self._push_preview(edit_time=None)
        self._analysis_done.set()

    def _use_tempo_map(self, analysis: SongAnalysis) -> None:
        """Beats from the DAW (or our own clock) map to song seconds through the project's beat grid.
        Our own clock keeps its place in the song: a corrected grid (×2, a new downbeat) must not move
        the playhead (it jumped to half its time on ×2); a DAW's beats stay the DAW's."""
        from bridge.transport.clock import TempoMap

        state = self.clock.state
        keep_s = self.clock.position()[0] if state is not None and state.source == "free" else None
        try:
            self.clock.tempo_map = TempoMap.from_beat_grid(analysis.beat_grid)
        except ValueError:
            self.clock.tempo_map = None
        if keep_s is not None:
            self._set_transport(seconds=keep_s, wake=False)

    def wait_for_analysis(self, timeout_s: float | None = None) -> bool:
        """Block until the latest requested analysis finished (or failed). For scripts and tests."""
        return self._analysis_done.wait(timeout_s)

    # -- preview -----------------------------------------------------------------------------
    def _push_preview(self, *, edit_time: float | None) -> None:
        if self._scheduler is None:
            return
        from bridge.preview.scheduler import PreviewInputs

        with self._lock:
            project, analysis = self._project, self._analysis
            # Current = analysed for these stems (a stem whose file went missing since keeps its
            # last analysis: it is compared with the set left out back then, not with today's).
            current = analysis is not None and self._analysis_sig == _analysis_signature(project, self._analysis_missing)
            if self._mapping_solo:  # monitoring: the preview evaluates only the soloed mappings
                project = project.model_copy(update={"mappings": [
                    m if i in self._mapping_solo else m.model_copy(update={"enabled": False})
                    for i, m in enumerate(project.mappings)]})
        if current:
            self._scheduler.update(PreviewInputs(project=project, analysis=analysis, edit_time=edit_time))

    def _playhead(self) -> tuple[float, bool]:
        self._follow_audio()
        return self.clock.position()

    def frame_at(self, t_seconds: float) -> np.ndarray:
        """The best preview frame for song time ``t_seconds``, within a few ms, never waiting on the
        model worker: a cached keyframe, else the neighbouring keyframes blended and modulated by
        that instant's parameters, else the procedural engine at preview resolution (black before
        the first analysis). RGB uint8 (h, w, 3); do not modify it (cached frames are shared)."""
        if self._scheduler is None:
            raise ProjectError("this session was opened with preview=False; open it with the preview on")
        return self._scheduler.frame_at(t_seconds)

    def preview_status(self) -> PreviewStatus | None:
        return None if self._scheduler is None else self._scheduler.status()

    def wait_idle(self, timeout_s: float = 60.0) -> bool:
        """Block until analysis and the preview have caught up with every edit (scripts, tests)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self._analysis_done.wait(max(0.0, deadline - time.monotonic())):
                return False
            if self._scheduler is not None and not self._scheduler.wait_idle(max(0.0, deadline - time.monotonic())):
                return False
            # Both quiet at the same instant (an analysis finishing hands the preview new work).
            if self._analysis_done.is_set() and (self._scheduler is None or self._scheduler.wait_idle(0)):
                return True
        return False

    # -- transport ---------------------------------------------------------------------------
    def transport(self) -> TransportState:
        """Where the transport is now (extrapolated; while our audio plays, the sample heard now)."""
        self._follow_audio()
        return self.clock.now()

    def _follow_audio(self) -> None:
        """While the audio plays, put the clock where the device is (the GUI timer and the preview
        both read through here; a loop region loops the silent clock too)."""
        state = self.clock.state
        if self.audio.active and state is not None and state.source != "free":
            self.audio.stop()  # a DAW took over the transport: it is the one making sound
            return
        heard = self.audio.follow()
        if heard is not None:
            self._set_transport(playing=heard[1], seconds=heard[0], wake=False)
            return
        loop = self.audio.loop
        if loop is not None and state is not None and state.source == "free":
            position, playing = self.clock.position()
            # as the audio does: wrap on crossing the end (read at >= 30 Hz), never from past it
            if playing and loop[1] <= position < loop[1] + 0.5:
                self._set_transport(seconds=loop[0] + (position - loop[1]) % (loop[1] - loop[0]))

    def _audio_allowed(self) -> bool:
        state = self.clock.state
        return state is None or state.source == "free"  # with a DAW as the source, stay silent

    def _set_transport(self, *, playing: bool | None = None, seconds: float | None = None,
                       wake: bool = True) -> None:
        s = self.clock.now()
        position_seconds = s.position_seconds if seconds is None else float(seconds)
        tmap = self.clock.tempo_map
        if seconds is None:
            beats = s.position_beats
        elif tmap is not None:
            beats = float(tmap.seconds_to_beats(position_seconds))
        else:
            beats = position_seconds * s.tempo_bpm / 60.0
        self.clock.update(TransportState(
            playing=s.playing if playing is None else playing, tempo_bpm=s.tempo_bpm, position_beats=beats,
            position_seconds=position_seconds, time_signature=s.time_signature,
            source=s.source if not self._owns_clock else "free", received_at=s.received_at))
        if wake and self._scheduler is not None:
            self._scheduler.wakeup()

    def play(self) -> None:
        """Start the session's own clock (with a DAW source, the DAW's next message wins) and, with
        audio on and no DAW source, the mix from the playhead (an :class:`AudioUnavailable` event
        when it cannot sound)."""
        if self.audio.active:
            return
        position = self.clock.position()[0]
        if self._audio_allowed() and self.audio.start(position):
            self._set_transport(playing=True, seconds=position)
        else:
            self._set_transport(playing=True)

    def pause(self) -> None:
        heard = self.audio.stop()
        self._set_transport(playing=False, seconds=heard)

    def seek(self, seconds: float) -> None:
        """Move the playhead to song time ``seconds`` (keeps playing or stopped)."""
        if not (seconds == seconds) or seconds < 0:  # NaN or negative
            raise ProjectError(f"seek position {seconds!r} must be a number of seconds >= 0")
        self.audio.seek(seconds)
        self._set_transport(seconds=seconds)

    # -- the preview's disk cache -------------------------------------------------------------------
    def preview_cache_usage(self) -> tuple[int, int | None]:
        """(bytes the preview's disk cache holds now, its cap); (0, None) without a preview."""
        if self._cache is None:
            return 0, None
        return self._cache.disk_usage(), self._cache.disk_budget_bytes

    def set_preview_cache_limit(self, limit_bytes: int) -> None:
        """Cap the preview's disk cache; a smaller cap deletes least-recently-used frames at once."""
        limit = _check_cache_limit(limit_bytes)
        if self._cache is not None:
            self._cache.set_disk_budget(limit)

    def clear_preview_cache(self) -> None:
        """Delete the preview's rendered frames on disk (those in memory stay until they are dropped)."""
        if self._cache is not None:
            self._cache.clear_disk()

    # -- audio playback ------------------------------------------------------------------------------
    def set_audio(self, *, enabled: bool | None = None, device: Any = ..., blocksize: int | None = None) -> None:
        """Audio playback on/off, the output device (PortAudio index, name or label; None = the
        default) and buffer size (frames; 0 = automatic). Takes effect at the next :meth:`play`."""
        player = self.audio.player
        heard = player.position_s() if self.audio.active and player is not None else None
        try:
            closed = self.audio.configure(enabled=enabled, device=device, blocksize=blocksize)
        except BridgeError as e:
            raise ProjectError(str(e)) from None
        if closed and heard is not None:  # it was playing: go on where it was, on the new device
            self._set_transport(seconds=heard)
            if self.audio.enabled and self._audio_allowed():
                self.audio.start(heard)

    def set_solo(self, names: Iterable[str]) -> None:
        """Only these stems sound in playback (monitoring: not saved, no undo, not in the export)."""
        names = frozenset(names)
        unknown = names - {s.name for s in self._project.stems}
        if unknown:
            raise ProjectError(f"solo: no stem named {sorted(unknown)}; stems are "
                               f"{[s.name for s in self._project.stems]}")
        self.audio.set_solo(names)

    def set_loop(self, start_s: float | None, end_s: float | None = None) -> None:
        """Loop song time [start_s, end_s) while playing (sound and playhead); None ends it."""
        try:
            self.audio.set_loop(start_s, end_s)
        except BridgeError as e:
            raise ProjectError(str(e)) from None

    # =============================================================================================
    # Commands
    # =============================================================================================

    def rename_project(self, name: str) -> None:
        self._edit("rename project", lambda p: p.model_copy(update={"name": name}))

    # -- stems -------------------------------------------------------------------------------
    def _stem_index(self, project: Project, name: str) -> int:
        for i, s in enumerate(project.stems):
            if s.name == name:
                return i
        names = ", ".join(repr(s.name) for s in project.stems) or "none"
        raise ProjectError(f"there is no stem named {name!r}; the stems are: {names}")

    def _update_stem(self, label: str, name: str, changes: Mapping[str, Any], *, coalesce: bool = False) -> None:
        def change(p: Project) -> Project:
            i = self._stem_index(p, name)
            stems = list(p.stems)
            stems[i] = _replace(stems[i], changes, what=f"stem {name!r}")
            return p.model_copy(update={"stems": stems})

        self._edit(label, change, coalesce=coalesce)

    def _add_stem_file(self, path: Path, *, name: str | None = None, role: str | None = None,
                       offset_seconds: float = 0.0, gain_db: float = 0.0, origin: Origin = "edit") -> tuple[str, str]:
        from bridge.stems import display_names, guess_role, probe_audio

        path = Path(path).resolve()
        probe_audio(path)  # raises AudioError naming the problem
        with self._lock:
            project = self._project
            if any(resolve_stem_path(s.path, self.project_dir) == path for s in project.stems):
                raise ProjectError(f"{path} is already a stem of this project")
            existing = [resolve_stem_path(s.path, self.project_dir) for s in project.stems]
            if name is None:
                name = display_names([*existing, path])[-1]
                taken = {s.name for s in project.stems}
                base, n = name, 2
                while name in taken:
                    name, n = f"{base} {n}", n + 1
            role = role or guess_role(path.name)
            # the user picked this file: if it lies outside the project and stems folders, say so
            # in the file, so loading it later is not refused as a path planted by someone else
            external = not stem_path_is_inside(path, project, self.project_dir)
            spec = StemSpec(name=name, path=relative_stem_path(path, self.project_dir), role=role,
                            offset_seconds=offset_seconds, gain_db=gain_db, external=external)
            self._edit(f"add stem {name}", lambda p: p.model_copy(update={"stems": [*p.stems, spec]}), origin=origin)
            return name, spec.role

    def add_stem(self, path: str | os.PathLike[str], *, name: str | None = None, role: str | None = None,
                 offset_seconds: float = 0.0, gain_db: float = 0.0) -> str:
        """Add an audio file as a stem (role guessed from its name unless given). Returns its name.
        Raises AudioError when the file is not usable audio, ProjectError when the name is taken."""
        try:
            return self._add_stem_file(Path(path), name=name, role=role, offset_seconds=offset_seconds,
                                       gain_db=gain_db)[0]
        except ValidationError as e:  # StemSpec(...) with a bad role / offset / gain
            raise ProjectError(format_validation_error(e, source=f"stem {path}")) from None

    def remove_stem(self, name: str) -> None:
        """Remove a stem (its mappings stay and report a problem until removed or re-pointed)."""
        def change(p: Project) -> Project:
            i = self._stem_index(p, name)
            return p.model_copy(update={"stems": [s for j, s in enumerate(p.stems) if j != i]})

        self._edit(f"remove stem {name}", change)

    def rename_stem(self, name: str, new_name: str) -> None:
        """Rename a stem and the mappings that name it (``Old.feature`` → ``New.feature``)."""
        def change(p: Project) -> Project:
            i = self._stem_index(p, name)
            stems = list(p.stems)
            stems[i] = _replace(stems[i], {"name": new_name}, what=f"stem {name!r}")
            prefix = f"{name}."
            mappings = [m.model_copy(update={"source": new_name + "." + m.source[len(prefix):]})
                        if m.source.startswith(prefix) else m for m in p.mappings]
            return p.model_copy(update={"stems": stems, "mappings": mappings})

        self._edit(f"rename stem {name}", change)

    def set_stem_role(self, name: str, role: str) -> None:
        self._update_stem(f"stem {name} role", name, {"role": role})

    def set_stem_gain(self, name: str, gain_db: float, *, coalesce: bool = False) -> None:
        self._update_stem(f"stem {name} gain", name, {"gain_db": gain_db}, coalesce=coalesce)

    def set_stem_offset(self, name: str, offset_seconds: float, *, coalesce: bool = False) -> None:
        self._update_stem(f"stem {name} offset", name, {"offset_seconds": offset_seconds}, coalesce=coalesce)

    def set_stem_muted(self, name: str, muted: bool) -> None:
        self._update_stem(f"{'mute' if muted else 'unmute'} stem {name}", name, {"muted": muted})

    # -- effect chains (a stem's, or the master's when ``stem`` is None) ------------------------
    def _chain_words(self, stem: str | None) -> str:
        return "master" if stem is None else f"stem {stem}"

    def fx_chain(self, stem: str | None) -> list[FxSlot]:
        """A stem's effect chain, or the master chain (``stem=None``)."""
        from bridge.plugins.edit import chain_of

        return chain_of(self.project, stem)

    def _set_chain(self, label: str, stem: str | None, change: Callable[[list[FxSlot]], list[FxSlot]], *,
                   coalesce: bool = False, key: str | None = None) -> None:
        from bridge.plugins.edit import chain_of, with_chain

        self._edit(label, lambda p: with_chain(p, stem, change(chain_of(p, stem))), coalesce=coalesce, key=key)

    def _fx_tempo(self) -> float:
        from bridge.analysis.project import chain_tempo_bpm

        return chain_tempo_bpm(self.project) or 120.0

    def add_fx(self, stem: str | None, plugin: str | FxSlot, *, name: str | None = None,
               parameters: Mapping[str, Any] | None = None, mix: float = 1.0, position: int | None = None) -> int:
        """Add an effect to a stem's chain (the master chain when ``stem`` is None): ``plugin`` is a
        built-in's class name, a scanned plugin's name, a bundle path (as `stembridge fx add`), or a
        ready FxSlot. Returns its index in the chain. PluginError when it cannot be used."""
        from bridge.plugins.edit import chain_of, make_slot

        chain_of(self.project, stem)  # an unknown stem fails before a plugin is loaded
        slot = plugin if isinstance(plugin, FxSlot) else make_slot(
            plugin, name=name, parameters=dict(parameters or {}), mix=mix, tempo_bpm=self._fx_tempo())
        at = len(chain_of(self.project, stem)) if position is None else position
        at = max(0, min(at, len(chain_of(self.project, stem))))
        self._set_chain(f"add {slot.label} to {self._chain_words(stem)}", stem,
                        lambda slots: [*slots[:at], slot, *slots[at:]])
        return at

    def remove_fx(self, stem: str | None, index: int) -> None:
        """Remove slot ``index`` (0-based) from a stem's chain or the master chain."""
        slots = self.fx_chain(stem)
        i = self._check_index(slots, index, f"{self._chain_words(stem)} effect")
        label = f"remove {slots[i].label} from {self._chain_words(stem)}"
        self._set_chain(label, stem, lambda s: [x for j, x in enumerate(s) if j != i])

    def set_fx(self, stem: str | None, index: int, *, parameters: Mapping[str, Any] | None = None,
               mix: float | None = None, bypass: bool | None = None, coalesce: bool = False) -> None:
        """Change slot ``index``: parameters merged in (checked by loading the plugin, whose full state
        is re-captured), wet/dry ``mix`` 0..1, ``bypass``."""
        from bridge.plugins.edit import update_slot

        slots = self.fx_chain(stem)
        i = self._check_index(slots, index, f"{self._chain_words(stem)} effect")
        new = update_slot(slots[i], parameters=dict(parameters) if parameters else None, mix=mix,
                          bypass=bypass, tempo_bpm=self._fx_tempo())
        what = ("bypass" if bypass else "enable") if bypass is not None and parameters is None and mix is None \
            else ("wet/dry" if mix is not None and not parameters else
                  f"{', '.join(parameters)}" if parameters else "settings")
        label = f"{self._chain_words(stem)} {slots[i].label} {what}"

        def change(s: list[FxSlot]) -> list[FxSlot]:
            s = list(s)
            s[i] = new
            return s

        self._set_chain(label, stem, change, coalesce=coalesce, key=f"fx {stem} {i} {what}")

    def move_fx(self, stem: str | None, index: int, to: int) -> None:
        """Move slot ``index`` to position ``to`` (0-based; the others keep their order). Order is what
        the audio goes through, so a stem's move re-analyses that stem (unless only bypassed slots move)."""
        slots = self.fx_chain(stem)
        i = self._check_index(slots, index, f"{self._chain_words(stem)} effect")
        j = self._check_index(slots, to, f"{self._chain_words(stem)} effect")

        def change(s: list[FxSlot]) -> list[FxSlot]:
            s = list(s)
            s.insert(j, s.pop(i))
            return s

        self._set_chain(f"move {slots[i].label} {'up' if j < i else 'down'} in {self._chain_words(stem)}",
                        stem, change)

    def set_fx_state(self, stem: str | None, index: int, raw_state: str | None,
                     parameters: Mapping[str, Any] | None = None) -> None:
        """Slot ``index`` takes a state made outside the chain editor (the plugin's own window):
        ``raw_state`` (base64) and the named ``parameters`` read back with it, replacing the old ones.
        One undo step; a no-op when nothing changed."""
        slots = self.fx_chain(stem)
        i = self._check_index(slots, index, f"{self._chain_words(stem)} effect")
        try:
            new = FxSlot.model_validate({**slots[i].model_dump(), "raw_state": raw_state,
                                         "parameters": dict(parameters or {})})
        except ValueError as e:
            raise ProjectError(f"{slots[i].label}: the state from its window was refused ({e})") from None

        def change(s: list[FxSlot]) -> list[FxSlot]:
            s = list(s)
            s[i] = new
            return s

        self._set_chain(f"{self._chain_words(stem)} {slots[i].label} edited in its window", stem, change)

    # -- mappings ----------------------------------------------------------------------------
    @staticmethod
    def _check_index(items: Sequence[object], index: int, what: str) -> int:
        if not isinstance(index, int) or not -len(items) <= index < len(items):
            span = f"0–{len(items) - 1}" if items else "none yet"
            raise ProjectError(f"{what} index {index!r} does not exist; the project has {len(items)} ({span})")
        return index % len(items)

    def _mapping_words(self, index: int) -> str:
        """``Drums.onset → travel``: how undo labels name mapping ``index`` (its index when it has none)."""
        mappings = self._project.mappings
        if isinstance(index, int) and -len(mappings) <= index < len(mappings):
            return mapping_words(mappings[index])
        return f"mapping {index}"

    def add_mapping(self, source: str, target: str, **fields: Any) -> int:
        """Add a mapping (``source`` → ``target``; other Mapping fields as keywords). Returns its index."""
        try:
            mapping = MappingSpec(source=source, target=target, **fields)
        except ValidationError as e:
            raise ProjectError(format_validation_error(e, source="the new mapping")) from None
        with self._lock:
            self._edit(f"add mapping {mapping_words(mapping)}",
                       lambda p: p.model_copy(update={"mappings": [*p.mappings, mapping]}))
            return len(self._project.mappings) - 1

    def update_mapping(self, index: int, *, coalesce: bool = False, **changes: Any) -> None:
        """Change fields of mapping ``index`` (amount, offset, curve, attack_ms, release_ms, clamp,
        enabled, source, target). The undo label names it in words: "change Drums.onset → travel amount"."""
        def change(p: Project) -> Project:
            i = self._check_index(p.mappings, index, "mapping")
            mappings = list(p.mappings)
            mappings[i] = _replace(mappings[i], changes, what=f"mapping {i}")
            return p.model_copy(update={"mappings": mappings})

        with self._lock:
            words = self._mapping_words(index)
            if set(changes) == {"enabled"}:
                label = f"{'unmute' if changes['enabled'] else 'mute'} mapping {words}"
            else:
                label = f"change {words} {', '.join(MAPPING_FIELD_WORDS.get(k, k) for k in sorted(changes))}"
            self._edit(label, change, coalesce=coalesce, key=f"mapping {index} {sorted(changes)}")

    def remove_mapping(self, index: int) -> None:
        """Delete mapping ``index`` (the later ones move up by one; a solo follows its mapping)."""
        def change(p: Project) -> Project:
            i = self._check_index(p.mappings, index, "mapping")
            return p.model_copy(update={"mappings": [m for j, m in enumerate(p.mappings) if j != i]})

        with self._lock:
            self._edit(f"delete mapping {self._mapping_words(index)}", change)

    def duplicate_mapping(self, index: int) -> int:
        """Copy mapping ``index`` to just after it. Returns the copy's index."""
        def change(p: Project) -> Project:
            i = self._check_index(p.mappings, index, "mapping")
            return p.model_copy(update={"mappings": [*p.mappings[:i + 1], p.mappings[i], *p.mappings[i + 1:]]})

        with self._lock:
            words = self._mapping_words(index)
            i = self._check_index(self._project.mappings, index, "mapping")
            self._edit(f"duplicate mapping {words}", change)
            return i + 1

    def move_mapping(self, index: int, to: int) -> None:
        """Move mapping ``index`` to position ``to`` (the others keep their order; a solo follows its
        mapping). Order matters where it shows: the editor's rows and the file."""
        def change(p: Project) -> Project:
            i = self._check_index(p.mappings, index, "mapping")
            j = self._check_index(p.mappings, to, "mapping")
            mappings = list(p.mappings)
            mappings.insert(j, mappings.pop(i))
            return p.model_copy(update={"mappings": mappings})

        with self._lock:
            words = self._mapping_words(index)
            i = self._check_index(self._project.mappings, index, "mapping")
            j = self._check_index(self._project.mappings, to, "mapping")
            self._edit(f"move mapping {words} {'up' if j < i else 'down'}", change)

    @property
    def mapping_solo(self) -> frozenset[int]:
        """The soloed mappings' indices (empty: none soloed, every enabled mapping plays)."""
        return self._mapping_solo

    def set_mapping_solo(self, indices: Iterable[int]) -> None:
        """Only these mappings drive the preview (monitoring, like a stem's solo: not saved, no undo,
        not in the export). Muted (disabled) mappings stay off. Each solo follows its mapping through
        edits, deletes, duplicates, moves and their undo; a preset replacing the mappings clears it."""
        with self._lock:
            solo = frozenset(self._check_index(self._project.mappings, i, "mapping") for i in indices)
            if solo == self._mapping_solo:
                return
            self._mapping_solo = solo
        self._push_preview(edit_time=time.monotonic())

    def set_mappings(self, mappings: Sequence[MappingSpec | Mapping[str, Any]], *, label: str = "replace mappings") -> None:
        """Replace every mapping (a preset, a paste)."""
        try:
            items = [m if isinstance(m, MappingSpec) else MappingSpec(**m) for m in mappings]
        except ValidationError as e:
            raise ProjectError(format_validation_error(e, source="the mappings")) from None
        self._edit(label, lambda p: p.model_copy(update={"mappings": items}))

    # -- mapping presets: the shipped ones and the producer's own ----------------------------
    def mapping_presets(self) -> tuple[list[str], list[str]]:
        """(shipped preset names, the producer's saved preset names)."""
        from bridge.mapping.presets import PRESETS
        from bridge.mapping.user_presets import list_user_presets

        return list(PRESETS), list_user_presets()

    def apply_mapping_preset(self, name: str) -> None:
        """Replace the mappings with a shipped preset (built for this project's stems) or a saved one;
        one undo step ("apply preset NAME")."""
        from bridge.mapping.presets import PRESETS
        from bridge.mapping.user_presets import load_user_preset

        stems = self.project.stems
        mappings = PRESETS[name](stems) if name in PRESETS else load_user_preset(name, stems)
        self.set_mappings(mappings, label=f"apply preset {name}")

    def save_mapping_preset(self, name: str, *, overwrite: bool = False) -> Path:
        """Save this project's mappings as the producer's preset ``name`` (user config folder)."""
        from bridge.mapping.user_presets import save_user_preset

        project = self.project
        return save_user_preset(name, project.mappings, project.stems, overwrite=overwrite)

    def delete_mapping_preset(self, name: str) -> Path:
        """Delete the producer's saved preset ``name`` (shipped presets cannot be deleted)."""
        from bridge.mapping.user_presets import delete_user_preset

        return delete_user_preset(name)

    # -- sections ----------------------------------------------------------------------------
    def add_section(self, start: float, *, end: float | None = None, unit: str = "seconds", **fields: Any) -> int:
        """Add a section (prompt, negative_prompt, seed, style, name, transition_beats, look, transition as keywords).
        Returns its index."""
        try:
            section = Section(start=start, end=end, unit=unit, **fields)
        except ValidationError as e:
            raise ProjectError(format_validation_error(e, source="the new section")) from None
        with self._lock:
            self._edit(f"add section at {start:g} {unit}",
                       lambda p: p.model_copy(update={"sections": [*p.sections, section]}))
            return len(self._project.sections) - 1

    def update_section(self, index: int, *, coalesce: bool = False, **changes: Any) -> None:
        if changes.get("look"):
            from bridge.visuals.shader import check_look_name

            try:
                changes["look"] = check_look_name(str(changes["look"]))
            except ValueError as e:
                raise ProjectError(f"section {index}: {e}") from None

        def change(p: Project) -> Project:
            i = self._check_index(p.sections, index, "section")
            sections = list(p.sections)
            sections[i] = _replace(sections[i], changes, what=f"section {i}")
            return p.model_copy(update={"sections": sections})

        self._edit(f"section {index} {', '.join(sorted(changes))}", change, coalesce=coalesce)

    def set_prompt(self, index: int, prompt: str, *, negative_prompt: str | None = None,
                   coalesce: bool = False) -> None:
        changes: dict[str, Any] = {"prompt": prompt}
        if negative_prompt is not None:
            changes["negative_prompt"] = negative_prompt
        self.update_section(index, coalesce=coalesce, **changes)

    def split_section(self, index: int, at: float) -> int:
        """Split section ``index`` at ``at`` (in the section's unit): the new second half copies its
        prompt and style with the next seed. Returns the new section's index."""
        def change(p: Project) -> Project:
            i = self._check_index(p.sections, index, "section")
            s = p.sections[i]
            if not s.start < at or (s.end is not None and not at < s.end):
                raise ProjectError(f"split point {at:g} must lie inside section {i} ({s.start:g}–"
                                   f"{'end' if s.end is None else f'{s.end:g}'} {s.unit})")
            first = _replace(s, {"end": at if s.end is not None else None}, what=f"section {i}")
            second = _replace(s, {"start": at, "name": f"{s.name} 2" if s.name else "",
                                  "seed": (s.seed + 1) % 2**32}, what="the new section")
            sections = list(p.sections)
            sections[i:i + 1] = [first, second]
            return p.model_copy(update={"sections": sections})

        with self._lock:
            self._edit(f"split section {index}", change)
            return self._check_index(self._project.sections, index, "section") + 1

    def move_section(self, index: int, start: float, *, coalesce: bool = False) -> None:
        """Move section ``index`` to begin at ``start`` (its length is kept when it has an end)."""
        def change(p: Project) -> Project:
            i = self._check_index(p.sections, index, "section")
            s = p.sections[i]
            end = None if s.end is None else s.end + (start - s.start)
            sections = list(p.sections)
            sections[i] = _replace(s, {"start": start, "end": end}, what=f"section {i}")
            return p.model_copy(update={"sections": sections})

        self._edit(f"move section {index}", change, coalesce=coalesce)

    def remove_section(self, index: int) -> None:
        def change(p: Project) -> Project:
            i = self._check_index(p.sections, index, "section")
            return p.model_copy(update={"sections": [s for j, s in enumerate(p.sections) if j != i]})

        self._edit(f"remove section {index}", change)

    def adopt_detected_sections(self) -> int:
        """Make the detected sections the project's editable sections. Returns how many."""
        from bridge.project.create import sections_from_analysis
        from bridge.visuals.character import section_transitions

        analysis = self._analysis
        if analysis is None:
            raise ProjectError("the stems are not analysed yet; wait for the analysis, then adopt its sections")
        sections = sections_from_analysis(analysis.sections, seed=self._project.engine.seed,
                                          transitions=section_transitions(analysis, list(analysis.sections)))
        self._edit("adopt detected sections", lambda p: p.model_copy(update={"sections": sections}))
        return len(sections)

    def import_daw_markers(self, markers: Sequence[Any], *, mode: str = "replace", daw: str = "the DAW") -> int:
        """The DAW's markers (:class:`bridge.transport.markers.DawMarker`, from
        :func:`bridge.transport.osc_io.fetch_daw_markers`) become the sections, names kept, as one
        undoable edit. ``mode`` "replace" (a marker named like a section keeps its prompt and seed)
        or "merge" (existing sections stay; markers add sections where none starts). Live's cue
        points stay in beats (quarter notes, as the transport maps Live's position through the
        beat grid), REAPER's in seconds. Returns how many sections the project has after it."""
        from bridge.project.markers import markers_to_sections

        if not markers:
            raise ProjectError(
                f"{daw} sent no markers, so the sections were left as they are. Add markers (Live: Set Locator; "
                "REAPER: Insert marker, with the stembridge pattern file) and import again")
        if mode not in ("replace", "merge"):
            raise ProjectError(f"marker import mode {mode!r} must be 'replace' or 'merge'")

        def change(p: Project) -> Project:
            try:
                sections = markers_to_sections(markers, p.sections, mode=mode, seed=p.engine.seed)
            except (ValueError, ValidationError) as e:
                raise ProjectError(f"the markers from {daw} do not make valid sections: {e}") from None
            return p.model_copy(update={"sections": sections})

        with self._lock:
            self._edit(f"import {len(markers)} markers from {daw}", change)
            return len(self._project.sections)

    # -- settings ----------------------------------------------------------------------------
    def set_engine(self, *, coalesce: bool = False, **changes: Any) -> None:
        """Engine settings: name, model, steps, preview_steps, base_strength, guidance_scale,
        keyframe_every_beats, seed."""
        self._edit(f"engine {', '.join(sorted(changes))}",
                   lambda p: p.model_copy(update={"engine": _replace(p.engine, changes, what="engine settings")}),
                   coalesce=coalesce)

    def set_render(self, *, coalesce: bool = False, label: str | None = None, **changes: Any) -> None:
        """Render settings: width, height, fps, sample_rate, crf. The preview follows the size's
        aspect (what you see is the frame you export, never stretched)."""
        self._edit(label or f"render {', '.join(sorted(changes))}",
                   lambda p: p.model_copy(update={"render": _replace(p.render, changes, what="render settings")}),
                   coalesce=coalesce)

    def set_tempo(self, **changes: Any) -> None:
        """Tempo settings: source (detect/constant/midi_file), tempo_bpm, beats_per_bar,
        first_downbeat_seconds, midi_file. Re-analyses (the beat grid changes)."""
        self._edit(f"tempo {', '.join(sorted(changes))}",
                   lambda p: p.model_copy(update={"tempo": _replace(p.tempo, changes, what="tempo settings")}))

    # -- rhythm corrections (bridge.analysis.corrections; the app's tempo panel) ---------------
    def set_rhythm(self, *, label: str | None = None, coalesce: bool = False, **changes: Any) -> None:
        """Correct the detected rhythm: tempo_bpm, tempo_factor, meter ("4/4", "6/8"…),
        first_downbeat_seconds (None clears one). Re-runs only the song-level beat tracking."""
        if self._project.tempo.source != "detect":
            raise ProjectError(
                f"this project's beat grid comes from the DAW (tempo.source {self._project.tempo.source!r}), not from "
                "detection; change the tempo there, or set tempo.source to 'detect' to correct the detected rhythm"
            )
        self._edit(label or f"rhythm {', '.join(sorted(changes))}",
                   lambda p: p.model_copy(update={"rhythm": _replace(p.rhythm, changes, what="rhythm correction")}),
                   coalesce=coalesce)

    def set_tempo_bpm(self, tempo_bpm: float, *, coalesce: bool = False) -> None:
        """The song's tempo (the tracker only places beats and bars); resets ×2/÷2."""
        self.set_rhythm(label="set tempo", coalesce=coalesce, tempo_bpm=tempo_bpm, tempo_factor=1.0)

    def _scale_tempo(self, factor: float, label: str) -> None:
        from bridge.analysis.corrections import check_tempo

        r = self._project.rhythm
        new_factor = r.tempo_factor * factor
        base = r.tempo_bpm if r.tempo_bpm is not None else (
            None if self._analysis is None or r.tempo_factor == 0 else self._analysis.tempo_bpm / r.tempo_factor)
        if base is not None:
            try:
                check_tempo(base * new_factor, what=f"{label} of {base * r.tempo_factor:.2f} BPM")
            except BridgeError as e:
                raise ProjectError(str(e)) from None
        self.set_rhythm(label=label, tempo_factor=new_factor)

    def double_tempo(self) -> None:
        """×2: the tempo was read at half speed (a 167 BPM song read as 84)."""
        self._scale_tempo(2.0, "double tempo")

    def half_tempo(self) -> None:
        """÷2: the tempo was read at double speed."""
        self._scale_tempo(0.5, "half tempo")

    def set_meter(self, meter: str | None) -> None:
        """The time signature ("4/4", "3/4", "6/8", "12/8"…); None detects it again."""
        self.set_rhythm(label="set meter", meter=meter)

    def set_downbeat(self, seconds: float | None = None) -> float:
        """Bar 1 starts at song time ``seconds`` (default: the playhead). Returns the time used."""
        t = self.clock.position()[0] if seconds is None else float(seconds)
        a = self._analysis
        if a is not None and not t < a.duration_seconds:
            raise ProjectError(f"downbeat at {t:.2f} s is after the song's end ({a.duration_seconds:.2f} s); "
                               "move the playhead to a bar's first beat, then set the downbeat")
        self.set_rhythm(label="set downbeat", first_downbeat_seconds=max(0.0, round(t, 4)))
        return max(0.0, round(t, 4))

    def tap_tempo(self, at_s: float | None = None) -> float | None:
        """One tap (``at_s``: a monotonic time in seconds, default now). From the third tap of a
        run the tempo (median of the tap intervals) becomes the song's tempo: one undo step per run."""
        from bridge.analysis.corrections import TapTempo

        tapper = self.__dict__.setdefault("_tap_tempo", TapTempo())
        bpm = tapper.tap(time.monotonic() if at_s is None else float(at_s))
        if bpm is not None:
            bpm = round(bpm, 2)
            if not 20.0 < bpm < 400.0:
                raise ProjectError(f"tapped {bpm:g} BPM, outside 20–400 BPM; tap once on every beat, at least "
                                   "three taps, less than 2 s apart")
            self.set_rhythm(label="tap tempo", coalesce=True, tempo_bpm=bpm, tempo_factor=1.0)
        return bpm

    def reset_rhythm(self) -> None:
        """Forget every rhythm correction: the detected tempo, meter and bars again."""
        from bridge.project.schema import RhythmCorrection

        self._edit("reset rhythm", lambda p: p.model_copy(update={"rhythm": RhythmCorrection()}))

    # -- the DAW's tempo as the project's grid ---------------------------------------------------
    def record_daw_state(self, state: TransportState) -> None:
        """Capture the followed DAW's tempo map (``on_state`` of the sync sources; any thread)."""
        if state.source in ("free", "mtc") or not state.playing:
            return
        with self._daw_tempo_lock:
            self._daw_tempo.record(state)
            if len(self._daw_tempos) < 1000:
                self._daw_tempos.add(round(float(state.tempo_bpm), 2))

    def adopt_daw_tempo(self) -> str:
        """Make the followed DAW's tempo and meter the project's beat grid, so the analysis, the
        preview and the export count the DAW's bars (beat 0 = the DAW's song start, which is also
        how the transport maps the DAW's beats to seconds). The DAW sent several tempos while it
        played: the tempo map captured then (:class:`~bridge.transport.clock.TempoMapRecorder`),
        saved as ``daw_tempo.mid`` in the project folder (``tempo.source`` "midi_file"); one tempo:
        that tempo as a constant. The meter is the DAW's (its numerator, for x/4). One undo step;
        the beat grid is analysed again. Returns what was adopted, in words."""
        state = self.clock.state
        if state is None or state.source in ("free", "mtc"):
            raise ProjectError("no DAW that sends its tempo is followed (MTC and the local clock carry none): "
                               "follow the DAW (Transport ▸ Connect to your DAW…), then adopt its tempo")
        num, den = state.time_signature
        beats_per_bar = num if den == 4 else max(1, round(num * 4 / den))
        with self._daw_tempo_lock:
            tempos = sorted(self._daw_tempos)
            recorded = self._daw_tempo.recorded_beats
            # several tempos: more than 0.5 % apart (Ardour's tempo, derived from its position, wobbles)
            changes = len(tempos) > 1 and tempos[-1] > tempos[0] * 1.005
            tmap = self._daw_tempo.to_tempo_map() if changes and recorded >= 8 else None
        if tmap is None:
            bpm = round(float(state.tempo_bpm), 3)
            self.set_tempo(source="constant", tempo_bpm=bpm, beats_per_bar=beats_per_bar,
                           first_downbeat_seconds=0.0, midi_file=None)
            return f"{bpm:g} BPM, {num}/{den} from the DAW"
        path = self.project_dir / "daw_tempo.mid"
        tmap.save_midi(path)
        self.set_tempo(source="midi_file", midi_file=path.name, beats_per_bar=beats_per_bar,
                       first_downbeat_seconds=0.0, tempo_bpm=None)
        return (f"the DAW's tempo map ({len(tempos)} tempos, {tempos[0]:g}–{tempos[-1]:g} BPM, "
                f"{recorded:.0f} beats heard) saved as {path.name}")

    def tempo_readout(self) -> tuple[float, str] | None:
        """The one BPM the app shows, and where it comes from: the DAW's own tempo while following
        one that sends it, else the project's beat grid (detected, corrected, constant or MIDI map).
        None before the first analysis when no DAW is followed."""
        last = self.clock.state
        if last is not None and last.source not in ("free", "mtc"):
            return float(last.tempo_bpm), last.source
        a = self._analysis
        return None if a is None else (float(a.beat_grid.tempo_bpm), a.beat_grid.source)

    # -- status ------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """A JSON-able summary (CLI status line, GUI status bar)."""
        st = self.preview_status()
        t = self.clock.now()
        return {
            "project": self._project.name,
            "dirty": self.dirty,
            "analysing": self._analysis_running,
            "missing_stems": sorted(self._missing),
            "position_seconds": round(t.position_seconds, 4),
            "playing": t.playing,
            "preview": None if st is None else st.to_json(),
        }


__all__ = [
    "AnalysisFailed", "AnalysisFinished", "AnalysisStarted", "COALESCE_WINDOW_S", "ProjectChanged",
    "ProjectFileInvalid", "ProjectSaved", "SaveFailed", "Session", "StemFileAdded", "StemFileChanged",
    "StemFileMissing", "StemFileReturned", "StemFileUnreadable",
    # preview events (from bridge.preview.scheduler)
    "KeyframeRendered", "MappingProblem", "ParamsUpdated", "PreviewError", "PreviewPassFinished",
    "PreviewPassStarted", "PreviewStatus",
]


def _check_cache_limit(limit_bytes: int) -> int:
    if isinstance(limit_bytes, bool) or not isinstance(limit_bytes, int) or limit_bytes < 0:
        raise ProjectError(f"preview cache limit {limit_bytes!r} must be a whole number of bytes >= 0")
    return limit_bytes
