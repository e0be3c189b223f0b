"""What plays: the preview, the transport clock and audio playback of a Session."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from bridge.errors import BridgeError, ProjectError
from bridge.preview.events import PreviewStatus
from bridge.session._helpers import _analysis_signature, _check_cache_limit
from bridge.transport.state import TransportState

if TYPE_CHECKING:
    import numpy as np


class LiveMixin:
    """Part of :class:`bridge.session.Session` (see its docstring); uses the state Session.__init__ builds."""

    # -- preview -----------------------------------------------------------------------------
    def _push_preview(self, *, edit_time: float | None) -> None:
        if self._scheduler is None:
            return
        from bridge.preview.plan import PreviewInputs

        with self._lock:
            project, analysis = self._project, self._analysis
            # Current = analysed for these stems (a stem whose file went missing since keeps its
            # last analysis: it is compared with the set left out back then, not with today's).
            current = analysis is not None and self._analysis_sig == _analysis_signature(project, self._analysis_missing)
            if current and self._analysis_missing:
                # A stem gone since before the last analysis has no curves: its mappings are off until
                # the file is back (the missing-file message says so) instead of each reporting "no
                # stem named …", which read as if the mapping were wrong.
                analysed = {k.lower() for st in project.stems if st.name in analysis.stems for k in (st.name, st.role)}
                gone = {k.lower() for st in project.stems if st.name in self._analysis_missing
                        for k in (st.name, st.role)} - analysed
                off = [m.source.strip().rpartition(".")[0].lower() in gone for m in project.mappings]
                if any(off):
                    project = project.model_copy(update={"mappings": [
                        m.model_copy(update={"enabled": False}) if o else m
                        for m, o in zip(project.mappings, off, strict=True)]})
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
            beats = float(tmap.seconds_to_quarters(position_seconds))
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
