"""The only Qt ↔ bridge seam: owns the :class:`~bridge.session.Session` and turns its events into a
handful of Qt signals.

Friture's pattern: the Session's threads (analysis, preview, transport I/O) fill state; the GUI
*pulls* on one QTimer (default 40 Hz) and emits at most one ``tick`` per timer shot, so a MIDI clock
at 24 ppq or an OSC flood never turns into one signal (and one repaint) per message.

Widgets read ``adapter.session.project`` / ``.analysis`` and change things only through Session
commands, via :meth:`SessionAdapter.command` (which turns a BridgeError into a message instead of
an exception in a slot).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from bridge.session import DEFAULT_ADDRESSES, DEFAULT_PREVIEW_CACHE_BYTES, BridgeError, SyncSpec
from bridge.session import MIDI_SOURCES as BRIDGE_MIDI_SOURCES

log = logging.getLogger(__name__)

#: Sync sources offered in the transport bar: label → (SyncSpec.source, default address). The MIDI
#: entries have no default: their address is a MIDI input port the producer picks.
SYNC_SOURCES: dict[str, tuple[str | None, str | None]] = {
    label: (source, DEFAULT_ADDRESSES.get(source) if source else None) for label, source in (
        ("Local clock (no DAW)", None),
        ("Ableton Live via AbletonOSC", "ableton_osc"),
        ("Ableton Live via StemBridge script", "osc"),
        ("REAPER via OSC", "reaper_osc"),
        ("Bitwig via DrivenByMoss", "bitwig_osc"),
        ("Ardour via OSC", "ardour_osc"),
        ("MIDI clock…", "midi"),
        ("MTC…", "mtc"),
    )
}
LOCAL_LABEL = "Local clock (no DAW)"
#: Entries whose value is a MIDI input port name (the rest take an OSC [HOST:]PORT).
MIDI_SOURCES = frozenset(label for label, (source, _) in SYNC_SOURCES.items() if source in BRIDGE_MIDI_SOURCES)

#: TransportState.source → how the transport bar names it.
SOURCE_LABELS = {
    "free": "Local clock", "ableton_osc": "Ableton Live via AbletonOSC", "stembridge_osc": "Ableton Live via StemBridge",
    "reaper_osc": "REAPER via OSC", "bitwig_osc": "Bitwig via DrivenByMoss", "ardour_osc": "Ardour via OSC",
    "midi_clock": "MIDI clock", "mtc": "MIDI Time Code", "link": "Ableton Link",
}

TICK_HZ = 40.0


class SessionAdapter(QObject):
    """Qt face of one Session.

    Signals
    -------
    tick(object)            TransportState at this timer shot (once per tick, always).
    projectChanged(object)  the ProjectChanged event (or None after open): panels refresh.
    analysisChanged()       a new analysis is in (timeline lanes, meters), or one failed.
    previewChanged()        keyframes rendered / params updated since the last tick.
    message(str, str)       (level, text): "info" | "error"; shown in the non-blocking message bar.
    stemFilesChanged()      a stem's file was re-bounced, added, went missing or came back.
    """

    tick = Signal(object)
    projectChanged = Signal(object)
    analysisChanged = Signal()
    previewChanged = Signal()
    message = Signal(str, str)
    stemFilesChanged = Signal()

    def __init__(self, parent: QObject | None = None, *, tick_hz: float = TICK_HZ) -> None:
        super().__init__(parent)
        self.session = None
        self.sync_label = LOCAL_LABEL
        self.sync_value: str | None = None  # the [HOST:]PORT or MIDI port in use
        self.link_enabled = False
        #: What the followed source has sent since :meth:`connect_sync` (see :meth:`sync_status`).
        self._sync_what = ""  # "REAPER via OSC + Ableton Link"; "" with the local clock
        self._sync_since = 0.0  # time.monotonic() at connect
        self._sync_seen = 0  # distinct states received since then
        self._sync_last_at: float | None = None  # received_at of the latest
        self._marker_request: tuple | None = None  # (MarkerRequest, mode, deadline, DAW label) in flight
        self._timer = QTimer(self)
        self._timer.setInterval(int(round(1000.0 / tick_hz)))
        self._timer.timeout.connect(self._on_timer)
        #: The producer's audio preferences (gui/panels/preferences.py keeps them in QSettings):
        #: playback on/off, output device (label or None = default), buffer size (0 = automatic).
        self.audio_enabled = True
        self.audio_device: str | None = None
        self.audio_blocksize = 0
        #: The cap on the preview's disk cache of rendered frames, in bytes (Preferences).
        self.preview_cache_bytes = DEFAULT_PREVIEW_CACHE_BYTES
        #: A local Demucs model folder for "Separate a mix…" / "New project from a mix…" (Preferences;
        #: None: the released htdemucs, downloaded once).
        self.separation_model_repo: str | None = None

    # -- lifetime -----------------------------------------------------------------------------
    @property
    def sync_sources(self) -> list[object]:
        """The open sync sources of the session (empty with the local clock)."""
        return [] if self.session is None else list(self.session.sync_sources)

    def open(self, project_dir: str | Path, **session_options: Any) -> None:
        """Open a project (closing any open one). Raises BridgeError (ProjectError) when it cannot."""
        from bridge.session import Session

        self.close()
        session_options.setdefault("audio", self.audio_enabled)
        session_options.setdefault("audio_device", self.audio_device)
        session_options.setdefault("audio_blocksize", self.audio_blocksize)
        session_options.setdefault("preview_disk_cache_bytes", self.preview_cache_bytes)
        self.session = Session.open(project_dir, **session_options)
        self._timer.start()
        self.projectChanged.emit(None)
        if self.session.analysis is not None:
            self.analysisChanged.emit()

    def close(self) -> None:
        self._timer.stop()
        self.disconnect_sync()
        if self.session is not None:
            try:
                self.session.close()
            finally:
                self.session = None

    # -- commands -----------------------------------------------------------------------------
    def command(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call ``session.<name>(*args, **kwargs)``; a BridgeError becomes an error message (returns None)."""
        if self.session is None:
            self.message.emit("error", "No project is open: open a project folder first (File ▸ Open).")
            return None
        try:
            return getattr(self.session, name)(*args, **kwargs)
        except BridgeError as e:
            self.message.emit("error", str(e))
            return None

    def call(self, fn, /, *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` (a bridge.session function); a BridgeError becomes an error message (returns None)."""
        try:
            return fn(*args, **kwargs)
        except BridgeError as e:
            self.message.emit("error", str(e))
            return None

    # -- sync ---------------------------------------------------------------------------------
    def midi_input_ports(self) -> list[str] | None:
        """MIDI input port names, or None (after an error message) when no MIDI backend works."""
        from bridge.session import midi_input_ports

        try:
            return midi_input_ports()
        except BridgeError as e:  # TransportError (no ALSA/JACK…) or MissingDependency (no rtmidi)
            self.message.emit("error", f"MIDI: {e}")
            return None
        except ImportError as e:
            self.message.emit("error", f"MIDI input is not available in this installation ({e}).")
            return None

    def connect_sync(self, label: str, value: str | None = None, *, link: bool | None = None) -> list[object]:
        """Follow a DAW (see :meth:`_connect_sync`); the app's own audio plays only with the local clock."""
        try:
            return self._connect_sync(label, value, link=link)
        finally:
            self._apply_audio()

    def _connect_sync(self, label: str, value: str | None = None, *, link: bool | None = None) -> list[object]:
        """Follow a DAW: ``label`` is a key of :data:`SYNC_SOURCES`; ``value`` overrides its
        [HOST:]PORT (OSC) or names the MIDI input port (MIDI clock, MTC). ``link`` adds Ableton
        Link (None: keep the current choice, :attr:`link_enabled`). Sources feed the session's
        clock through :meth:`Session.connect_sync` with a :class:`SyncSpec`. Returns the started
        sources (empty for the local clock). Errors become a message; the local clock stays then,
        except that a missing aalink only drops Link and keeps the DAW source."""
        self.disconnect_sync()
        if link is not None:
            self.link_enabled = link
        source, default = SYNC_SOURCES[label]
        value = value or default
        if self.session is None or (source is None and not self.link_enabled):
            self.sync_label, self.sync_value = LOCAL_LABEL, None
            return []
        if source is not None and not value:
            self.message.emit("error", f"{label}: pick a MIDI input port first.")
            self.sync_label, self.sync_value = LOCAL_LABEL, None
            return []
        link_problem = None
        if self.link_enabled:
            from bridge.session import check_link_available

            try:
                check_link_available()
            except BridgeError as e:  # MissingDependency: say how to install it, follow the DAW anyway
                link_problem = f"Ableton Link: {e}"
                self.link_enabled = False
                if source is None:
                    self.message.emit("error", link_problem)
                    self.sync_label, self.sync_value = LOCAL_LABEL, None
                    return []
        try:
            # every state also feeds the session's capture of the DAW's tempo map (adopt_daw_tempo)
            sources = self.session.connect_sync(SyncSpec(source=source, address=value, link=self.link_enabled))
        except BridgeError as e:
            self.message.emit("error", f"{label}{' + Ableton Link' if self.link_enabled else ''}: {e}")
            self.link_enabled = False
            self.sync_label, self.sync_value = LOCAL_LABEL, None
            return []
        self.sync_label = label if source is not None else LOCAL_LABEL
        self.sync_value = value if source is not None else None
        what = [label] if source is not None else []
        if self.link_enabled:
            what.append("Ableton Link")
        self._sync_what = " + ".join(what)
        if link_problem is not None:  # the last word, so the message bar keeps showing it
            self.message.emit("error", f"{link_problem} (waiting for {label} without Link)")
        else:  # "Following …" only once a message has arrived (_update_sync_status)
            self.message.emit("info", f"Waiting for {self._sync_what}… (nothing received yet)")
        return sources

    def set_link(self, enabled: bool) -> bool:
        """Add (or drop) Ableton Link on top of the current source; returns whether Link is on."""
        self.connect_sync(self.sync_label, self.sync_value, link=enabled)
        return self.link_enabled

    def disconnect_sync(self) -> None:
        self._marker_request = None  # its listener closes now
        if self.session is not None:
            self.session.disconnect_sync()
        self._sync_what, self._sync_since, self._sync_seen, self._sync_last_at = "", time.monotonic(), 0, None

    #: A source is "locked" once this many states arrived and the latest is younger than LOCKED_AGE_S.
    LOCKED_AFTER = 3
    LOCKED_AGE_S = 1.0

    def _update_sync_status(self) -> None:
        """Count the states the followed source sent since it was connected (called every tick);
        the first one turns the message bar's "Waiting for …" into "Following …"."""
        if not self._sync_what or self.session is None:
            return
        state = self.session.clock.state
        if state is None or state.received_at < self._sync_since or state.received_at == self._sync_last_at:
            return
        self._sync_seen += 1
        self._sync_last_at = state.received_at
        if self._sync_seen == 1:
            self.message.emit("info", f"Following {self._sync_what}")

    def sync_status(self) -> tuple[str, float | None]:
        """("off" | "waiting" | "receiving" | "locked", seconds since the last message or None).
        waiting: nothing arrived since connecting; receiving: messages came, but not a steady stream
        now (a stopped DAW may go quiet); locked: several arrived, the latest under a second ago."""
        if not self._sync_what:
            return "off", None
        self._update_sync_status()
        if self._sync_last_at is None:
            return "waiting", None
        age = max(0.0, time.monotonic() - self._sync_last_at)
        locked = self._sync_seen >= self.LOCKED_AFTER and age < self.LOCKED_AGE_S
        return ("locked" if locked else "receiving"), age

    def sync_status_text(self) -> str:
        """One line for the status light: "Locked to REAPER via OSC · last message 0.04 s ago"."""
        phase, age = self.sync_status()
        if phase == "off":
            return "Not following a DAW (local clock)"
        if phase == "waiting":
            return f"Waiting for {self._sync_what}… nothing received yet"
        verb = "Locked to" if phase == "locked" else "Receiving from"
        return f"{verb} {self._sync_what} · last message {age:.1f} s ago"

    def set_audio_preferences(self, *, enabled: bool, device: str | None, blocksize: int) -> None:
        """Apply the audio preferences (now, to the open session, and to every session opened later)."""
        self.audio_enabled, self.audio_device, self.audio_blocksize = bool(enabled), device or None, int(blocksize)
        self._apply_audio()

    def set_preview_cache_limit(self, limit_bytes: int) -> None:
        """Cap the preview's disk cache (now, for the open project, and for projects opened later)."""
        self.preview_cache_bytes = max(0, int(limit_bytes))
        if self.session is not None:
            self.command("set_preview_cache_limit", self.preview_cache_bytes)

    def preview_cache_usage(self) -> int | None:
        """Bytes the open project's preview cache holds on disk; None when no project is open."""
        return None if self.session is None else self.session.preview_cache_usage()[0]

    def clear_preview_cache(self) -> None:
        if self.session is not None:
            self.command("clear_preview_cache")

    def _apply_audio(self) -> None:
        """Sound only with the local clock: when a DAW is the sync source, the DAW plays the song."""
        if self.session is None:
            return
        local = self.sync_label == LOCAL_LABEL
        self.command("set_audio", enabled=self.audio_enabled and local, device=self.audio_device,
                     blocksize=self.audio_blocksize)

    # -- the DAW's markers → sections ------------------------------------------------------------
    #: How long to wait for the followed DAW's markers before importing what came.
    MARKER_WINDOW_S = 3.0

    def import_daw_markers(self, mode: str = "replace") -> bool:
        """Ask the followed DAW for its markers (Live's cue points via AbletonOSC, REAPER's markers
        and regions) over the sync connection; they become the sections (one undo step) as soon as
        they are in, polled from the tick (the GUI never waits on the network). Returns whether a
        request started; otherwise a message says what to do."""
        if self.session is None:
            self.message.emit("error", "No project is open: open a project folder first (File ▸ Open).")
            return False
        try:
            request = self.session.request_daw_markers()
        except BridgeError as e:
            self.message.emit("error", str(e))
            return False
        self._marker_request = (request, mode, time.monotonic() + self.MARKER_WINDOW_S, self.sync_label)
        self.message.emit("info", f"Asking {self.sync_label} for its markers…")
        return True

    def _poll_marker_request(self) -> None:
        pending = self._marker_request
        if pending is None:
            return
        request, mode, deadline, label = pending
        if not request.ready() and time.monotonic() < deadline:
            return
        self._marker_request = None
        markers = request.markers()
        count = self.command("import_daw_markers", markers, mode=mode, daw=label)
        if count is not None:
            self.message.emit("info", f"{len(markers)} markers from {label} are the sections now (Undo restores them)")

    def set_latency_ms(self, value: float) -> None:
        if self.session is not None:
            self.session.clock.latency_ms = value

    # -- the tick -----------------------------------------------------------------------------
    def _on_timer(self) -> None:
        """Drain every queued event, then emit each kind of signal at most once."""
        import bridge.session as S

        if self.session is None:
            return
        changed = None
        analysis = preview = files = False
        for e in self.session.poll_events():
            if isinstance(e, (S.StemFileChanged, S.StemFileAdded, S.StemFileMissing, S.StemFileReturned)):
                files = True
            if isinstance(e, S.ProjectChanged):
                changed = e
            elif isinstance(e, S.AnalysisFinished):
                analysis = True
            elif isinstance(e, (S.KeyframeRendered, S.ParamsUpdated, S.PreviewPassFinished)):
                preview = True
            elif isinstance(e, (S.AnalysisFailed, S.SaveFailed, S.ProjectFileInvalid, S.PreviewError)):
                self.message.emit("error", e.message)
                analysis = analysis or isinstance(e, S.AnalysisFailed)  # the status bar stops saying 'analysing…'
            elif isinstance(e, S.StemFileUnreadable):
                self.message.emit("error", f"{e.path.name}: {e.message}")
            elif isinstance(e, S.MappingProblem):
                self.message.emit("error", f"Mapping {e.index} ({e.source}): {e.message}")
            elif isinstance(e, S.StemFileChanged):
                self.message.emit("info", f"{e.name} was re-bounced; re-analysing")
            elif isinstance(e, S.StemFileAdded):
                self.message.emit("info", f"New stem {e.name} ({e.role}) from {e.path.name}")
            elif isinstance(e, (S.AudioUnavailable, S.MixFailed)):
                self.message.emit("error", e.message)
            elif isinstance(e, S.StemFileMissing):
                self.message.emit("error", f"{e.name}: {e.path} is gone; bring it back, Locate missing stems… if "
                                           "you moved it, or remove the stem")
        if changed is not None:
            self.projectChanged.emit(changed)
        if analysis:
            self.analysisChanged.emit()
        if files:
            self.stemFilesChanged.emit()
        if preview:
            self.previewChanged.emit()
        self._update_sync_status()
        self._poll_marker_request()
        self.tick.emit(self.session.transport())

    def status_text(self, state) -> str:
        """"Ableton Live via AbletonOSC · 124.00 BPM · 17.3.2 · playing" for a TransportState."""
        source = SOURCE_LABELS.get(state.source, state.source)
        if state.source == "free" and self.sync_label != LOCAL_LABEL:
            source = f"{self.sync_label} (waiting)"
        beat_int = int(state.beat)
        sixteenth = int((state.beat - beat_int) * 4) + 1
        tempo = state.tempo_bpm
        last = self.session.clock.state
        if last is not None and last.source == state.source and state.source not in ("free", "mtc"):
            tempo = last.tempo_bpm  # the DAW's own word, not the song's detected tempo map
        elif (readout := self.session.tempo_readout(state.position_seconds)) is not None:
            # one BPM everywhere: the project's grid (gui/panels/tempo.py), not the local beat; where
            # the song's tempo changes, its tempo at the playhead
            tempo = readout[0]
        return (f"{source} · {tempo:.2f} BPM · {state.bar}.{beat_int}.{sixteenth} · "
                f"{'playing' if state.playing else 'stopped'}")
