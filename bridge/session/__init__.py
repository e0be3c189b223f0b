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
DAW sync                      :meth:`connect_sync` (a :class:`SyncSpec`), :meth:`disconnect_sync`,
                              :meth:`request_daw_markers`, ``sync_sources``, ``sync_spec``
what the app draws            :meth:`timeline_sections`, :meth:`mapping_curve`,
                              :meth:`mapping_indices`, ``rebounced_stems``
============================  ==================================================================

Edits that a GUI makes continuously (a slider drag) pass ``coalesce=True``: consecutive edits with
the same label within :data:`COALESCE_WINDOW_S` become one undo step.

Events (plain frozen dataclasses) are drained with :meth:`poll_events` — the GUI calls it from a
30–60 Hz timer. Session events are defined here; preview events come from
:mod:`bridge.preview.events` and are re-exported here:

* :class:`ProjectChanged` — after every edit, undo, redo, external edit of the file, or change
  the watcher made (new stem);
* :class:`ProjectSaved` / :class:`SaveFailed`; :class:`ProjectFileInvalid` (the file was edited
  outside and does not validate; the session keeps its state);
* :class:`AnalysisStarted` / :class:`AnalysisFinished` / :class:`AnalysisFailed`;
* :class:`StemFileChanged`, :class:`StemFileAdded`, :class:`StemFileMissing`,
  :class:`StemFileReturned`, :class:`StemFileUnreadable`;
* :class:`ParamsUpdated`, :class:`PreviewPassStarted`, :class:`PreviewPassFinished`,
  :class:`KeyframeRendered`, :class:`MappingProblem`, :class:`PreviewError`;
* :class:`AudioUnavailable`, :class:`MixReady`, :class:`MixFailed` (from :mod:`bridge.playback.events`).

Audio (``audio=True``, off by default for scripts and tests): :meth:`play` also plays the project's
mix through PortAudio (:mod:`bridge.playback.player`) and the transport then follows the audio device's
clock (the sample reaching the speaker), so the playhead, the preview and the sound agree. With a
DAW as the sync source the session stays silent. No device: an :class:`AudioUnavailable` event
and the playhead runs silently, as before.

``import bridge.session`` imports neither torch nor OpenCV (numpy and pydantic only): analysis,
engines and OpenCV are imported when a Session starts.

Layout of the package (one concern per file; :class:`Session` is assembled from mixins):
``core`` (construction, events queue, undo/redo, saving), ``watching`` (stems watcher, project-file
poll, analysis), ``live`` (preview, transport, audio), ``stems`` (stems, effect chains), ``edits``
(mappings, sections), ``settings`` (engine, render, tempo), ``events`` (the event dataclasses),
``api`` (the public names the GUI may use besides Session: the GUI imports bridge only through
``bridge.session``).
"""

from __future__ import annotations

# Playback's events are part of the Session's event API too (bridge.playback.events imports no sounddevice).
from bridge.playback.events import AudioUnavailable, MixFailed, MixReady

# The preview's disk-cache cap the app offers by default (Preferences ▸ Preview cache).
from bridge.preview.cache import DEFAULT_DISK_BUDGET_BYTES as DEFAULT_PREVIEW_CACHE_BYTES

# The preview's events are part of the Session's event API (numpy + pydantic only: no OpenCV, no torch).
from bridge.preview.events import (
    KeyframeRendered,
    MappingProblem,
    ParamsUpdated,
    PreviewError,
    PreviewPassFinished,
    PreviewPassStarted,
    PreviewStatus,
)
from bridge.session import api
from bridge.session._helpers import MAPPING_FIELD_WORDS, _validated, mapping_words
from bridge.session.api import check_link_available, midi_input_ports, stem_files  # noqa: F401 (in __all__ via api)
from bridge.session.core import COALESCE_WINDOW_S, DEFAULT_UNDO_LIMIT, Session
from bridge.session.events import (
    AnalysisFailed,
    AnalysisFinished,
    AnalysisStarted,
    ProjectChanged,
    ProjectFileInvalid,
    ProjectSaved,
    SaveFailed,
    StemFileAdded,
    StemFileChanged,
    StemFileMissing,
    StemFileReturned,
    StemFileUnreadable,
)

__all__ = [
    "AnalysisFailed", "AnalysisFinished", "AnalysisStarted", "COALESCE_WINDOW_S", "DEFAULT_PREVIEW_CACHE_BYTES",
    "DEFAULT_UNDO_LIMIT", "MAPPING_FIELD_WORDS", "ProjectChanged", "ProjectFileInvalid", "ProjectSaved",
    "SaveFailed", "Session", "StemFileAdded", "StemFileChanged", "StemFileMissing", "StemFileReturned",
    "StemFileUnreadable", "_validated", "mapping_words",
    # preview events (from bridge.preview.events)
    "KeyframeRendered", "MappingProblem", "ParamsUpdated", "PreviewError", "PreviewPassFinished",
    "PreviewPassStarted", "PreviewStatus",
    # playback events (from bridge.playback.events)
    "AudioUnavailable", "MixFailed", "MixReady",
    # the public types and functions of bridge.session.api (errors, vocabularies, looks, presets…)
    *api.__all__,
]


def __getattr__(name: str):
    """The names of :mod:`bridge.session.api`, looked up lazily in their home modules."""
    if name in api.EXPORTS:
        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
