"""The transport clock: the latest TransportState, extrapolated to *now*, plus tempo maps.

Sources (MIDI clock, MTC, OSC, Link) are pure parsers that turn messages into a
:class:`~bridge.transport.state.TransportState` stamped with the monotonic time at which its
position was true. :class:`TransportClock` holds the latest one (the I/O thread swaps one
reference; readers never lock) and :meth:`TransportClock.now` answers "where is the DAW at this
instant" by extrapolating with the tempo (or through the tempo map of a
:class:`~bridge.timebase.BeatGrid`), after a user latency offset.

Beats are quarter notes throughout (the DAW's "beats" in x/4; MIDI clock counts 24 per quarter):
``TransportState.position_beats`` is a quarter-note position, converted with the grid's
``quarters_to_seconds`` / ``seconds_to_quarters``.

:class:`BeatGrid` (the one type of musical time, defined in :mod:`bridge.timebase`, re-exported
here) converts song seconds ↔ quarter notes piecewise-linearly (exact for the piecewise-constant
tempo of a MIDI tempo track);
:class:`TempoMapRecorder` captures one from the transport while the DAW plays and saves it as a
MIDI file the project can use (``tempo.source = "midi_file"``).

Layer: :mod:`bridge.transport` sits just above the time base and the vocabularies and imports
nothing from analysis, project or mapping (see :mod:`bridge.vocab` for the order).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from bridge.errors import TransportError

# The time base (BeatGrid, bar_beat) lives at the bottom layer, bridge.timebase, so that
# analysis and mapping can use it without importing the transport; re-exported from here.
from bridge.timebase import BeatGrid, bar_beat
from bridge.transport.state import TransportState

#: Sources whose position is measured in song seconds (MTC timecode); the clock extrapolates and
#: converts from seconds for these, from beats for every other source.
SECONDS_BASED_SOURCES: frozenset[str] = frozenset({"mtc"})

#: A playing state older than this (seconds, per source) means the DAW stopped without saying so:
#: MTC has no Stop message (the quarter frames just end), and a DAW that crashes mid-play sends no
#: MIDI Stop. Quarter frames come every ≤ 21 ms (24 fps at half speed) and clocks every ≤ 125 ms
#: (20 BPM), so these leave room for a stalled driver without freezing a running song.
DEFAULT_STALE_AFTER_S: Mapping[str, float] = {"mtc": 0.25, "midi_clock": 1.0}

#: Extrapolate at most this far (seconds, per source) past the last message, then hold until the
#: next one. Quarter frames arrive every ≤ 10.4 ms at 1:1 speed (≤ 21 ms at half speed), so when
#: none came for 30 ms the DAW has most likely stopped (MTC cannot say so): holding bounds the
#: overshoot at 30 ms instead of running on for the whole stale timeout.
DEFAULT_MAX_EXTRAPOLATION_S: Mapping[str, float] = {"mtc": 0.03}

class TransportClock:
    """The latest TransportState, extrapolated to any instant.

    Thread model: the transport I/O thread calls :meth:`update` with a new immutable state; readers
    (preview, GUI timer) call :meth:`now`. One attribute is swapped (atomic in CPython), so nobody
    locks and nobody sees a half-updated state.

    Parameters
    ----------
    latency_ms : float
        User offset. **Positive = show a later song position**: ``now(t)`` reports where the DAW
        will be ``latency_ms`` after ``t``. Use it to make up for the time from ``now()`` to the
        frame being on screen (render + display, typically 20–80 ms). Negative = show an earlier
        position, for a DAW whose audio reaches the speakers later than its sync messages (large
        audio buffers without delay compensation on the sync output).
    tempo_map : BeatGrid, optional
        When set, beats ↔ seconds go through it (the project's tempo map: exact through tempo
        changes) and the tempo reported is the map's at that position; otherwise the state's tempo
        is taken as constant from its position onwards.
    stale_after_s : mapping source → seconds, optional
        A playing state older than this is reported stopped at its own position (see
        :data:`DEFAULT_STALE_AFTER_S`). Sources not listed never go stale.
    max_extrapolation_s : mapping source → seconds, optional
        Hold the position after extrapolating this far past a state (see
        :data:`DEFAULT_MAX_EXTRAPOLATION_S`). Sources not listed extrapolate without limit.
    time_fn : callable
        The monotonic clock (``time.monotonic``); tests pass a fake.
    """

    def __init__(
        self,
        *,
        latency_ms: float = 0.0,
        tempo_map: BeatGrid | None = None,
        stale_after_s: Mapping[str, float] | None = None,
        max_extrapolation_s: Mapping[str, float] | None = None,
        time_fn: Callable[[], float] = time.monotonic,
    ) -> None:
        self._state: TransportState | None = None
        self._latency_s = 0.0
        self.latency_ms = latency_ms
        self._tempo_map = tempo_map
        self._stale = dict(DEFAULT_STALE_AFTER_S if stale_after_s is None else stale_after_s)
        self._max_extra = dict(DEFAULT_MAX_EXTRAPOLATION_S if max_extrapolation_s is None else max_extrapolation_s)
        self._time_fn = time_fn

    # -- configuration --------------------------------------------------------------------------
    @property
    def latency_ms(self) -> float:
        return self._latency_s * 1000.0

    @latency_ms.setter
    def latency_ms(self, value: float) -> None:
        value = float(value)
        if not (math.isfinite(value) and abs(value) <= 10_000.0):
            raise ValueError(
                f"latency_ms={value!r} is out of range: use a number of milliseconds within ±10000 "
                "(positive shows a later song position)"
            )
        self._latency_s = value / 1000.0

    @property
    def tempo_map(self) -> BeatGrid | None:
        return self._tempo_map

    @tempo_map.setter
    def tempo_map(self, tempo_map: BeatGrid | None) -> None:
        self._tempo_map = tempo_map

    @property
    def state(self) -> TransportState | None:
        """The latest state as received (not extrapolated); None before the first update."""
        return self._state

    def update(self, state: TransportState) -> None:
        """Swap in a new state (called from the transport I/O thread)."""
        self._state = state

    # -- reading --------------------------------------------------------------------------------
    def now(self, at: float | None = None) -> TransportState:
        """Where the DAW is at monotonic time ``at`` (default: now), after the latency offset.

        The returned state has ``received_at = at`` (the query instant, before the offset).
        """
        t_query = self._time_fn() if at is None else float(at)
        s = self._state
        if s is None:
            bar, beat = bar_beat(0.0)
            return TransportState(received_at=t_query, bar=bar, beat=beat)
        tmap = self._tempo_map
        playing, dt = self._extrapolation(s, t_query)
        if tmap is not None:
            seconds = self._seconds_at(s, tmap) + dt
            beats = float(tmap.seconds_to_quarters(seconds))
            tempo = float(tmap.tempo_at_seconds(seconds))
            bar, beat = tmap.bar_beat(beats)
            signature = tmap.time_signature_at(beats)
        else:
            beats = s.position_beats + dt * s.tempo_bpm / 60.0
            seconds = s.position_seconds + dt
            tempo = s.tempo_bpm
            signature = s.time_signature
            bar, beat = bar_beat(beats, signature)
        return TransportState(
            playing=playing, tempo_bpm=tempo, position_beats=beats, position_seconds=seconds,
            bar=bar, beat=beat, time_signature=signature, source=s.source, received_at=t_query,
        )

    def position(self, at: float | None = None) -> tuple[float, bool]:
        """(song seconds, playing) as :meth:`now` gives them, without the musical fields — the
        preview asks at every edit and keyframe, and the tempo-map lookups for bar, beat and
        tempo cost several times what the position does."""
        t_query = self._time_fn() if at is None else float(at)
        s = self._state
        if s is None:
            return 0.0, False
        playing, dt = self._extrapolation(s, t_query)
        tmap = self._tempo_map
        return (self._seconds_at(s, tmap) if tmap is not None else s.position_seconds) + dt, playing

    def _extrapolation(self, s: TransportState, t_query: float) -> tuple[bool, float]:
        """(playing, seconds to add to the last report) at ``t_query``, latency offset included."""
        stale_s = self._stale.get(s.source)
        playing = s.playing and not (stale_s is not None and t_query - s.received_at > stale_s)
        if not playing:
            return False, 0.0
        elapsed = t_query - s.received_at
        max_elapsed = self._max_extra.get(s.source)
        if max_elapsed is not None and elapsed > max_elapsed:
            elapsed = max_elapsed  # hold (the latency offset still applies on top)
        return True, (elapsed + self._latency_s) * s.clock_ratio

    @staticmethod
    def _seconds_at(s: TransportState, tmap: BeatGrid) -> float:
        """The last report's position in song seconds (through the tempo map for beat sources)."""
        return s.position_seconds if s.source in SECONDS_BASED_SOURCES else float(tmap.quarters_to_seconds(s.position_beats))


class TempoMapRecorder:
    """Captures the DAW's tempo map from transport states while it plays.

    Feed every state (``record(state)``; the I/O callback or a GUI timer can do it). Within a run of
    playing states, wall-clock time advances like song time, so the seconds between two states are
    spread over the beats between them in bins of ``resolution_beats``; the per-bin sums telescope,
    so jitter in single timestamps cancels and only a run's end points carry it. Jumps (position
    not matching the elapsed time at the state's tempo) and gaps end a run. Replaying a passage
    averages it. Use beat-based sources (MIDI clock, OSC): MTC carries no tempo of its own.
    """

    def __init__(self, *, resolution_beats: float = 0.25, max_gap_s: float = 0.5) -> None:
        if not (resolution_beats > 0 and math.isfinite(resolution_beats)):
            raise ValueError(f"resolution_beats={resolution_beats!r} must be a positive number of quarter notes")
        self.resolution_beats = float(resolution_beats)
        self.max_gap_s = float(max_gap_s)
        self.reset()

    def reset(self) -> None:
        self._bins: dict[int, list[float]] = {}  # bin index -> [seconds, beats] accumulated
        self._prev: TransportState | None = None
        self._sigs: list[tuple[float, int, int]] = []  # (beat, numerator, denominator) as heard

    @property
    def recorded_beats(self) -> float:
        """How many quarter notes of song have been captured (summed over bins)."""
        return float(sum(v[1] for v in self._bins.values()))

    def record(self, state: TransportState | None) -> None:
        """Take one state (None, as parsers return when nothing changed, is ignored)."""
        if state is None:
            return
        prev, self._prev = self._prev, (state if state.playing else None)
        if not state.playing or state.source in SECONDS_BASED_SOURCES:
            return
        num, den = state.time_signature
        if not self._sigs or self._sigs[-1][1:] != (num, den):
            self._sigs.append((max(0.0, float(state.position_beats)), int(num), int(den)))
        if prev is None:
            return
        db = state.position_beats - prev.position_beats
        dt = state.received_at - prev.received_at
        if not (db > 0 and 0 < dt <= self.max_gap_s and math.isfinite(db) and math.isfinite(dt)):
            return
        expected_db = dt * 0.5 * (state.tempo_bpm + prev.tempo_bpm) / 60.0
        if abs(db - expected_db) > 0.5 * db + 2.0 / 24.0:  # a jump (SPP, locate, loop), not tempo
            return
        res = self.resolution_beats
        b0, b1 = prev.position_beats, state.position_beats
        i = math.floor(b0 / res)
        while i * res < b1:
            overlap = min(b1, (i + 1) * res) - max(b0, i * res)
            if overlap > 0:
                acc = self._bins.setdefault(i, [0.0, 0.0])
                acc[0] += dt * overlap / db
                acc[1] += overlap
            i += 1

    def to_tempo_map(self) -> BeatGrid:
        """The captured map (a BeatGrid with explicit quarter-note anchors), from beat 0 to the last beat heard (gaps filled from neighbours)."""
        res = self.resolution_beats
        usable = {i: v for i, v in self._bins.items() if v[1] >= 0.1 * res}
        if not usable:
            raise TransportError(
                "no tempo map was captured yet: nothing was recorded while the DAW was playing. Start "
                "playback in the DAW (with MIDI clock or OSC sync on) and record again."
            )
        idx = np.array(sorted(usable), dtype=np.int64)
        spb = np.array([usable[i][0] / usable[i][1] for i in idx])  # seconds per beat per bin
        first = min(0, int(idx[0]))
        all_idx = np.arange(first, int(idx[-1]) + 1)
        # fill missing bins by interpolating seconds-per-beat (tempo) between the heard ones
        spb_all = np.interp(all_idx, idx, spb)
        beats = np.concatenate([[first * res], (all_idx + 1) * res])
        seconds = np.concatenate([[0.0], np.cumsum(spb_all * res)])
        seconds -= np.interp(0.0, beats, seconds)  # beat 0 at 0 s
        sigs = sorted(self._sigs) or [(0.0, 4, 4)]
        sigs[0] = (0.0, sigs[0][1], sigs[0][2])
        return BeatGrid.from_tempo_anchors(seconds, beats, time_signatures=sigs)

    def to_beat_grid(self, *, duration_seconds: float | None = None) -> BeatGrid:
        tmap = self.to_tempo_map()
        if duration_seconds is None:
            duration_seconds = float(tmap.anchors_seconds[-1])
        return tmap.with_beats_until(duration_seconds, source="daw")

    def save_midi(self, path: str | os.PathLike[str], *, ticks_per_beat: int = 480) -> Path:
        """Save the captured map as a MIDI file (``set_tempo`` events); see :meth:`BeatGrid.save_midi`."""
        return self.to_tempo_map().save_midi(path, ticks_per_beat=ticks_per_beat)
