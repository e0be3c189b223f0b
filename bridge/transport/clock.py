"""The transport clock: the latest TransportState, extrapolated to *now*, plus tempo maps.

Sources (MIDI clock, MTC, OSC, Link) are pure parsers that turn messages into a
:class:`~bridge.transport.state.TransportState` stamped with the monotonic time at which its
position was true. :class:`TransportClock` holds the latest one (the I/O thread swaps one
reference; readers never lock) and :meth:`TransportClock.now` answers "where is the DAW at this
instant" by extrapolating with the tempo (or through a :class:`TempoMap`), after a user latency
offset.

Beats are quarter notes throughout (the DAW's "beats" in x/4; MIDI clock counts 24 per quarter).

:class:`TempoMap` converts song seconds ↔ beats piecewise-linearly (exact for the piecewise-constant
tempo of a MIDI tempo track); :class:`TempoMapRecorder` captures one from the transport while the
DAW plays and saves it as a MIDI file the project can use (``tempo.source = "midi_file"``).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np

from bridge.analysis.types import BeatGrid
from bridge.errors import ProjectError, TransportError
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

_VALID_DENOMINATORS = (1, 2, 4, 8, 16, 32, 64)


def bar_beat(position_beats: float, time_signature: tuple[int, int] = (4, 4)) -> tuple[int, float]:
    """1-based (bar, beat) for a position in quarter notes under one time signature.

    ``beat`` counts denominator notes (eighths in 6/8) and is fractional between beats; bars start
    at beat 0. Positions before 0 give bar 0, -1… (DAWs show a pre-roll the same way).
    """
    num, den = time_signature
    unit = 4.0 / den  # quarters per counted beat
    bar_len = num * unit
    if not math.isfinite(position_beats) or bar_len <= 0:
        return 1, 1.0
    bar_index = math.floor(position_beats / bar_len)
    in_bar = position_beats - bar_index * bar_len
    return int(bar_index) + 1, in_bar / unit + 1.0


def _check_signature(num: int, den: int, where: str) -> tuple[int, int]:
    num, den = int(num), int(den)
    if num < 1 or den not in _VALID_DENOMINATORS:
        raise ValueError(
            f"time signature {num}/{den} at {where} is invalid: the numerator must be ≥ 1 and the "
            f"denominator one of {_VALID_DENOMINATORS}"
        )
    return num, den


class TempoMap:
    """Song seconds ↔ quarter-note beats, piecewise-linear between anchors.

    Parameters
    ----------
    seconds, beats : array_like, shape (n,), n ≥ 2
        Anchors: song second ``seconds[i]`` is beat ``beats[i]``. Both strictly increasing. Between
        anchors the tempo is constant (exact for MIDI tempo tracks, whose tempo is a step function);
        before the first and after the last anchor the first/last segment's tempo continues.
    time_signatures : iterable of (beat, numerator, denominator), optional
        Meter changes at quarter-note positions (bars restart at each); default 4/4 from beat 0.

    All conversions take scalars (→ float) or arrays (→ ndarray, same shape).
    """

    def __init__(
        self,
        seconds: Iterable[float] | np.ndarray,
        beats: Iterable[float] | np.ndarray,
        *,
        time_signatures: Iterable[tuple[float, int, int]] | None = None,
    ) -> None:
        s = np.asarray(list(seconds) if not isinstance(seconds, np.ndarray) else seconds, dtype=np.float64).ravel()
        b = np.asarray(list(beats) if not isinstance(beats, np.ndarray) else beats, dtype=np.float64).ravel()
        if s.shape != b.shape or s.size < 2:
            raise ValueError(
                f"a tempo map needs at least 2 (seconds, beats) anchors of equal count; got "
                f"{s.size} seconds and {b.size} beats"
            )
        if not (np.all(np.isfinite(s)) and np.all(np.isfinite(b))):
            raise ValueError("tempo map anchors must be finite numbers (got NaN or inf)")
        if np.any(np.diff(s) <= 0) or np.any(np.diff(b) <= 0):
            i = int(np.argmax((np.diff(s) <= 0) | (np.diff(b) <= 0)))
            raise ValueError(
                f"tempo map anchors must be strictly increasing in both seconds and beats; anchor {i + 1} "
                f"({s[i + 1]:.6f} s, beat {b[i + 1]:.6f}) does not follow ({s[i]:.6f} s, beat {b[i]:.6f})"
            )
        s.flags.writeable = False
        b.flags.writeable = False
        self._s, self._b = s, b
        sigs = sorted(
            (float(at), *_check_signature(n, d, f"beat {at}"))
            for at, n, d in (time_signatures if time_signatures is not None else [(0.0, 4, 4)])
        )
        if not sigs:
            sigs = [(0.0, 4, 4)]
        self._sigs: list[tuple[float, int, int]] = sigs  # type: ignore[assignment]
        # bar number (0-based) at each signature change; bars restart at every change.
        bars = [0.0]
        for (at0, n0, d0), (at1, _, _) in zip(sigs, sigs[1:], strict=False):
            bars.append(bars[-1] + math.ceil((at1 - at0) / (n0 * 4.0 / d0) - 1e-9))
        self._sig_bars = bars

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def constant(cls, tempo_bpm: float, *, time_signature: tuple[int, int] = (4, 4)) -> TempoMap:
        """One tempo for the whole song: beat 0 at 0 s."""
        if not (math.isfinite(tempo_bpm) and tempo_bpm > 0):
            raise ValueError(f"tempo_bpm={tempo_bpm!r} must be a positive number of quarter notes per minute")
        return cls([0.0, 60.0 / tempo_bpm], [0.0, 1.0], time_signatures=[(0.0, *time_signature)])

    @classmethod
    def from_beat_grid(cls, grid: BeatGrid, *, quarters_per_beat: float = 1.0) -> TempoMap:
        """Anchors at a BeatGrid's beats: grid beat i is quarter note ``i * quarters_per_beat``.

        A grid counts denominator notes (``quarters_per_beat=0.5`` for an x/8 grid). Tempo between
        grid beats is taken as constant; the bar phase comes from the first downbeat.
        """
        beats_s = np.asarray(grid.beats_s, dtype=np.float64)
        if beats_s.size < 2:
            raise ValueError(f"the beat grid has {beats_s.size} beat(s); a tempo map needs at least 2")
        den = int(round(4.0 / quarters_per_beat))
        first_bar = 0.0
        if len(grid.downbeats_s):
            k = int(np.argmin(np.abs(beats_s - float(grid.downbeats_s[0]))))
            first_bar = (k % max(grid.beats_per_bar, 1)) * quarters_per_beat
        return cls(beats_s, np.arange(beats_s.size) * quarters_per_beat,
                   time_signatures=[(first_bar, max(int(grid.beats_per_bar), 1), den)])

    @classmethod
    def from_midi_file(cls, path: str | os.PathLike[str], *, offset_seconds: float = 0.0) -> TempoMap:
        """The tempo map of a Standard MIDI File (``set_tempo`` and ``time_signature`` events).

        Exact: anchors sit at every tempo change, in quarter notes (ticks / ticks_per_beat).
        ``offset_seconds`` is the song time of MIDI time 0.
        """
        import mido  # only needed here

        path = Path(path)
        try:
            mid = mido.MidiFile(str(path))
        except (OSError, EOFError, ValueError, KeyError, IndexError) as e:
            raise ProjectError(
                f"{path}: could not be read as a MIDI file ({e}). Export the tempo track from your DAW "
                "as a Standard MIDI File (.mid)."
            ) from None
        if mid.type == 2:
            raise ProjectError(f"{path}: MIDI type 2 (asynchronous tracks) has no single tempo map; export type 0 or 1.")
        tpq = float(mid.ticks_per_beat)
        tempos: dict[int, int] = {0: 500000}  # MIDI default: 120 BPM until the first set_tempo
        sigs: dict[int, tuple[int, int]] = {}
        tick = 0
        for msg in mido.merge_tracks(mid.tracks):
            tick += msg.time
            if msg.type == "set_tempo":
                tempos[tick] = msg.tempo  # the last event at a tick wins
            elif msg.type == "time_signature":
                sigs[tick] = (msg.numerator, msg.denominator)
        ticks = np.array(sorted(tempos), dtype=np.float64)
        uspq = np.array([tempos[int(t)] for t in ticks], dtype=np.float64)
        beats = ticks / tpq
        seconds = np.concatenate([[0.0], np.cumsum(np.diff(beats) * uspq[:-1] / 1e6)])
        # One more anchor a beat after the last change so the last tempo is carried by a segment.
        beats = np.append(beats, beats[-1] + 1.0)
        seconds = np.append(seconds, seconds[-1] + uspq[-1] / 1e6)
        sig_list = [(t / tpq, n, d) for t, (n, d) in sorted(sigs.items())] or [(0.0, 4, 4)]
        return cls(seconds + offset_seconds, beats, time_signatures=sig_list)

    # -- queries --------------------------------------------------------------------------------
    @property
    def anchors_seconds(self) -> np.ndarray:
        """shape (n,), read-only."""
        return self._s

    @property
    def anchors_beats(self) -> np.ndarray:
        """shape (n,), read-only."""
        return self._b

    @property
    def time_signatures(self) -> list[tuple[float, int, int]]:
        return list(self._sigs)

    @staticmethod
    def _map(x: float | np.ndarray, xp: np.ndarray, fp: np.ndarray) -> float | np.ndarray:
        arr = np.asarray(x, dtype=np.float64)
        y = np.interp(arr, xp, fp)
        # np.interp clamps outside the anchors; continue the end segments' tempo instead.
        lo_slope = (fp[1] - fp[0]) / (xp[1] - xp[0])
        hi_slope = (fp[-1] - fp[-2]) / (xp[-1] - xp[-2])
        y = np.where(arr < xp[0], fp[0] + (arr - xp[0]) * lo_slope, y)
        y = np.where(arr > xp[-1], fp[-1] + (arr - xp[-1]) * hi_slope, y)
        return float(y) if y.ndim == 0 else y

    def beats_to_seconds(self, beats: float | np.ndarray) -> float | np.ndarray:
        """Song seconds at quarter-note positions ``beats`` (scalar or array)."""
        return self._map(beats, self._b, self._s)

    def seconds_to_beats(self, seconds: float | np.ndarray) -> float | np.ndarray:
        """Quarter-note positions at song seconds ``seconds`` (scalar or array)."""
        return self._map(seconds, self._s, self._b)

    def _segment_tempo(self, x: float | np.ndarray, xp: np.ndarray) -> float | np.ndarray:
        arr = np.asarray(x, dtype=np.float64)
        i = np.clip(np.searchsorted(xp, arr, side="right") - 1, 0, xp.size - 2)
        bpm = 60.0 * (self._b[i + 1] - self._b[i]) / (self._s[i + 1] - self._s[i])
        return float(bpm) if np.ndim(bpm) == 0 else bpm

    def tempo_at_seconds(self, seconds: float | np.ndarray) -> float | np.ndarray:
        """Quarter-note tempo (BPM) in force at song second(s) ``seconds``."""
        return self._segment_tempo(seconds, self._s)

    def tempo_at_beats(self, beats: float | np.ndarray) -> float | np.ndarray:
        """Quarter-note tempo (BPM) in force at quarter-note position(s) ``beats``."""
        return self._segment_tempo(beats, self._b)

    def _sig_index(self, beats: float) -> int:
        i = 0
        for k, (at, _, _) in enumerate(self._sigs):
            if beats >= at - 1e-9:
                i = k
        return i

    def time_signature_at(self, beats: float) -> tuple[int, int]:
        _, n, d = self._sigs[self._sig_index(beats)]
        return n, d

    def bar_beat(self, beats: float) -> tuple[int, float]:
        """1-based (bar, beat) at a quarter-note position, following meter changes."""
        k = self._sig_index(beats)
        at, n, d = self._sigs[k]
        bar, beat = bar_beat(beats - at, (n, d))
        return bar + int(self._sig_bars[k]), beat

    # -- export ---------------------------------------------------------------------------------
    def to_beat_grid(self, *, duration_seconds: float, source: str = "daw") -> BeatGrid:
        """Every counted beat (denominator note) and downbeat from beat 0 up to ``duration_seconds``."""
        beat_pos: list[float] = []
        down_pos: list[float] = []
        end_beats = float(self.seconds_to_beats(duration_seconds))
        for k, (at, n, d) in enumerate(self._sigs):
            stop = self._sigs[k + 1][0] if k + 1 < len(self._sigs) else end_beats + 1e-9
            unit = 4.0 / d
            start = at if k else min(at, 0.0)
            # bars before the first signature (pickup) are counted from beat 0
            pos = np.arange(start, min(stop, end_beats + 1e-9), unit)
            for j, p in enumerate(pos):
                if p < 0:
                    continue
                beat_pos.append(float(p))
                if (j - int(round((at - start) / unit))) % n == 0:
                    down_pos.append(float(p))
        beats_s = np.asarray(self.beats_to_seconds(np.asarray(beat_pos, dtype=np.float64)), dtype=np.float64)
        down_s = np.asarray(self.beats_to_seconds(np.asarray(down_pos, dtype=np.float64)), dtype=np.float64)
        seg = 60.0 * np.diff(self._b) / np.diff(self._s)
        return BeatGrid(
            tempo_bpm=float(np.median(seg)),
            beats_s=np.atleast_1d(beats_s),
            downbeats_s=np.atleast_1d(down_s),
            beats_per_bar=int(self._sigs[0][1]),
            source=source,
        )

    def save_midi(self, path: str | os.PathLike[str], *, ticks_per_beat: int = 480) -> Path:
        """Write a type-0 MIDI file with one ``set_tempo`` per tempo change (atomic write).

        Anchors are rounded to ticks and tempos to whole microseconds per quarter (the MIDI file
        resolution); the map must start at beat ≥ 0 (MIDI time 0 is song start).
        """
        import mido

        from bridge.fsutil import atomic_output

        if self._b[0] < -1e-9:
            raise TransportError(
                f"the tempo map starts at beat {self._b[0]:.3f}; a MIDI file cannot hold negative "
                "positions. Record from the song start (bar 1) or trim the map."
            )
        mid = mido.MidiFile(type=0, ticks_per_beat=ticks_per_beat)
        track = mido.MidiTrack()
        mid.tracks.append(track)
        events: list[tuple[int, int, mido.MetaMessage]] = []
        for at, n, d in self._sigs:
            events.append((max(0, round(at * ticks_per_beat)), 0,
                           mido.MetaMessage("time_signature", numerator=n, denominator=d)))
        last_uspq = None
        seg_uspq = np.round(1e6 * np.diff(self._s) / np.diff(self._b)).astype(np.int64)
        for i, uspq in enumerate(seg_uspq):
            if uspq != last_uspq:
                events.append((max(0, round(self._b[i] * ticks_per_beat)), 1,
                               mido.MetaMessage("set_tempo", tempo=int(np.clip(uspq, 1, 0xFFFFFF)))))
                last_uspq = uspq
        events.sort(key=lambda e: (e[0], e[1]))
        last_tick = 0
        for tick, _, msg in events:
            track.append(msg.copy(time=tick - last_tick))
            last_tick = tick
        track.append(mido.MetaMessage("end_of_track", time=0))
        path = Path(path)
        with atomic_output(path) as tmp:
            mid.save(str(tmp))
        return path


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
    tempo_map : TempoMap, optional
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
        tempo_map: TempoMap | None = None,
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
    def tempo_map(self) -> TempoMap | None:
        return self._tempo_map

    @tempo_map.setter
    def tempo_map(self, tempo_map: TempoMap | None) -> None:
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
            beats = float(tmap.seconds_to_beats(seconds))
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
    def _seconds_at(s: TransportState, tmap: TempoMap) -> float:
        """The last report's position in song seconds (through the tempo map for beat sources)."""
        return s.position_seconds if s.source in SECONDS_BASED_SOURCES else float(tmap.beats_to_seconds(s.position_beats))


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

    def to_tempo_map(self) -> TempoMap:
        """The captured map, from beat 0 to the last beat heard (gaps filled from neighbours)."""
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
        return TempoMap(seconds, beats, time_signatures=sigs)

    def to_beat_grid(self, *, duration_seconds: float | None = None) -> BeatGrid:
        tmap = self.to_tempo_map()
        if duration_seconds is None:
            duration_seconds = float(tmap.anchors_seconds[-1])
        return tmap.to_beat_grid(duration_seconds=duration_seconds, source="daw")

    def save_midi(self, path: str | os.PathLike[str], *, ticks_per_beat: int = 480) -> Path:
        """Save the captured map as a MIDI file (``set_tempo`` events); see :meth:`TempoMap.save_midi`."""
        return self.to_tempo_map().save_midi(path, ticks_per_beat=ticks_per_beat)
