"""Engine, render and tempo settings of a Session, and its status."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from bridge.errors import BridgeError, ProjectError
from bridge.session._helpers import _replace
from bridge.timebase import BeatGrid, local_tempo_bpm
from bridge.transport.state import TransportState

if TYPE_CHECKING:
    pass


class SettingsMixin:
    """Part of :class:`bridge.session.Session` (see its docstring); uses the state Session.__init__ builds."""

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

    def other_tempo_readings(self) -> list[tuple[float, float]]:
        """The detected tempo's other readings, (tempo_bpm, factor of the detected tempo) best first
        (``BeatGrid.other_readings``): what the tempo bar offers as one-click corrections. Empty once
        the tempo is corrected, and for a grid from the DAW or a tempo map."""
        a = self._analysis
        if a is None or self._project.tempo.source != "detect":
            return []
        return [(float(a.beat_grid.tempo_bpm * f), float(f)) for f in a.beat_grid.other_readings]

    def use_tempo_reading(self, factor: float) -> None:
        """Take one of :meth:`other_tempo_readings` (``factor`` × the detected tempo): ×2 and ÷2 as the
        ×2 / ÷2 buttons do (the detected beats stay; one is added between, or every other one kept),
        a 3:2 relative as a set tempo (the tracker places the beats at it). One undo step."""
        readings = self.other_tempo_readings()
        match = [(bpm, f) for bpm, f in readings if math.isclose(f, factor, rel_tol=1e-6)]
        if not match:
            offered = ", ".join(f"×{f:.3g} ({bpm:.2f} BPM)" for bpm, f in readings) or "none"
            raise ProjectError(f"×{factor:g} is not an other reading of the detected tempo (offered: {offered}); "
                               "set the tempo itself instead, or reset the rhythm corrections to see them again")
        from bridge.analysis.corrections import octave_steps

        bpm, f = match[0]
        label = f"use {bpm:.2f} BPM"
        if (k := octave_steps(f)) is not None:
            self._scale_tempo(2.0**k, label)
        else:
            self.set_rhythm(label=label, tempo_bpm=round(bpm, 2), tempo_factor=1.0)

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
        that tempo as a constant, or in a map file where the DAW's meter is not x/4 (6/8 taps dotted
        quarters, 7/8 eighths: a constant tempo counts quarters). The meter is the DAW's. One undo step;
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
        bpm = round(float(state.tempo_bpm), 3)
        if tmap is None and den == 4:
            self.set_tempo(source="constant", tempo_bpm=bpm, beats_per_bar=beats_per_bar,
                           first_downbeat_seconds=0.0, midi_file=None)
            return f"{bpm:g} BPM, {num}/{den} from the DAW"
        path = self.project_dir / "daw_tempo.mid"
        if tmap is None:
            # One tempo in 6/8, 7/8, 2/2…: a constant project tempo counts quarter notes, so the
            # DAW's meter goes into a map file, whose grid taps its beats (dotted quarters, eighths).
            BeatGrid.constant(bpm, time_signature=(num, den)).save_midi(path)
            self.set_tempo(source="midi_file", midi_file=path.name, beats_per_bar=beats_per_bar,
                           first_downbeat_seconds=0.0, tempo_bpm=None)
            return f"{bpm:g} BPM, {num}/{den} from the DAW (saved as {path.name}, which keeps the meter)"
        tmap.save_midi(path)
        self.set_tempo(source="midi_file", midi_file=path.name, beats_per_bar=beats_per_bar,
                       first_downbeat_seconds=0.0, tempo_bpm=None)
        return (f"the DAW's tempo map ({len(tempos)} tempos, {tempos[0]:g}–{tempos[-1]:g} BPM, "
                f"{recorded:.0f} beats heard) saved as {path.name}")

    def tempo_readout(self, at_seconds: float | None = None) -> tuple[float, str] | None:
        """The one BPM the app shows, and where it comes from: the DAW's own tempo while following
        one that sends it, else the project's beat grid (detected, corrected, constant or MIDI map).
        None before the first analysis when no DAW is followed. ``at_seconds`` (the playhead, for
        the transport line): where the grid's tempo changes (80 → 160), its local tempo there, as a
        DAW shows it, not the grid's one mean tempo, which the song never has."""
        last = self.clock.state
        if last is not None and last.source not in ("free", "mtc"):
            return float(last.tempo_bpm), last.source
        a = self._analysis
        if a is None:
            return None
        grid = a.beat_grid
        if at_seconds is not None and grid.tempo_span is not None:
            local = local_tempo_bpm(grid.beats_s, float(at_seconds))
            if local is not None:
                return local, grid.source
        return float(grid.tempo_bpm), grid.source

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
