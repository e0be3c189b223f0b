"""The time base: song seconds ↔ beats ↔ bars ↔ video frames, in one place.

Every layer above uses these (the transport clock, analysis, mapping, preview and export), so they
sit at the bottom of the import graph, beside :mod:`bridge.vocab` (see there for the whole layer
order; ``tests/test_layers.py`` checks it). Nothing here imports from the rest of bridge except
:mod:`bridge.errors` (and :mod:`bridge.fsutil` when a tempo map is saved).

Two descriptions of musical time live here, for now side by side:

* :class:`BeatGrid` — what analysis produces (detected, from the project's tempo or from a MIDI
  tempo track): the beats and downbeats as song seconds, counting *denominator* notes (eighths in
  6/8), with meter and swing. :func:`beat_position` / :func:`beat_time` convert song seconds ↔
  fractional beat (or bar) index on a grid, extrapolating at its tempo outside it.
* :class:`TempoMap` — what the transport follows: song seconds ↔ *quarter-note* beats,
  piecewise-linear between anchors (exact for a MIDI tempo track), with meter changes and
  bar/beat display. ``TempoMap.from_beat_grid`` / ``TempoMap.to_beat_grid`` convert.

Video frames: :func:`frame_times` (frame index → song seconds, exact for NTSC rates) and
:func:`song_frame_count`.

(Moved here from ``bridge.transport.clock``, ``bridge.analysis.types``, ``bridge.mapping.sources``
and ``bridge.mapping.evaluate``, which re-export every name.)
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from math import ceil
from pathlib import Path
from typing import Literal

import numpy as np

from bridge.errors import ProjectError, TransportError

#: The tempo :func:`beat_position` / :func:`beat_time` assume when a grid's tempo is missing or invalid.
DEFAULT_TEMPO_BPM = 120.0


# ---------------------------------------------------------------------------------------------
# Beat grid (analysis): beats and downbeats in song seconds
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class BeatGrid:
    """Song-level rhythm: tempo, beats and downbeats in seconds from song start.

    beats_s: shape (n_beats,), sorted. downbeats_s: subset of beats_s (first beat of each bar).
    beats_per_bar: beats in a bar as a listener taps them (3 for 3/4, 4 for 4/4, 2 for 6/8, 4 for
        12/8).
    source: "detected", "project" (constant tempo from the project/DAW) or "midi" (tempo map file).
    beat_division: 2 for simple meter (a beat divides into two 8ths), 3 for compound meter (6/8,
        12/8: the beat is a dotted quarter of three 8ths).
    swing_ratio, swing_level: how the off-beat 8th or 16th is delayed (detected; see beats.py).
    """

    tempo_bpm: float
    beats_s: np.ndarray
    downbeats_s: np.ndarray
    beats_per_bar: int
    source: str = "detected"
    beat_division: int = 2
    #: Long : short ratio of swung pairs (1.0 straight, 2.0 triplet swing) at ``swing_level``
    #: (8 = swung 8ths, 16 = swung 16ths, 0 = straight).
    swing_ratio: float = 1.0
    swing_level: int = 0

    @property
    def time_signature(self) -> tuple[int, int]:
        """(numerator, denominator) as notated: (4, 4), (3, 4), (6, 8), (12, 8)…"""
        if self.beat_division == 3:
            return self.beats_per_bar * 3, 8
        return self.beats_per_bar, 4

    @property
    def meter_label(self) -> str:
        num, den = self.time_signature
        return f"{num}/{den}"


# ---------------------------------------------------------------------------------------------
# Beat grid: song time <-> beat (or bar) position
# ---------------------------------------------------------------------------------------------


def _period_s(beat_grid: BeatGrid) -> float:
    tempo = float(beat_grid.tempo_bpm)
    if not np.isfinite(tempo) or tempo <= 0:
        tempo = DEFAULT_TEMPO_BPM
    return 60.0 / tempo


def _grid_points(beat_grid: BeatGrid, clock: Literal["beat", "bar"]) -> tuple[np.ndarray, float]:
    """Times of the clock's ticks (seconds, sorted) and the period used to extrapolate past them."""
    beats = np.sort(np.asarray(beat_grid.beats_s, dtype=np.float64).ravel())
    period = _period_s(beat_grid)
    if clock == "beat":
        return beats, period
    bar_period = period * max(1, int(beat_grid.beats_per_bar))
    downbeats = np.sort(np.asarray(beat_grid.downbeats_s, dtype=np.float64).ravel())
    if downbeats.size == 0 and beats.size:
        # No downbeats detected: count bars from the first beat.
        downbeats = beats[:: max(1, int(beat_grid.beats_per_bar))]
    return downbeats, bar_period


def _interp_extended(x: np.ndarray, xp: np.ndarray, fp: np.ndarray, slope_before: float,
                     slope_after: float) -> np.ndarray:
    """Piecewise-linear through (xp, fp) (xp increasing, ≥ 2 points), continued as straight lines
    of the given slopes before the first and after the last point, where np.interp would clamp.
    The one conversion both time descriptions use (beat grids and tempo maps)."""
    y = np.interp(x, xp, fp)
    y = np.where(x < xp[0], fp[0] + (x - xp[0]) * slope_before, y)
    return np.where(x > xp[-1], fp[-1] + (x - xp[-1]) * slope_after, y)


def _position(times_s: np.ndarray, ticks_s: np.ndarray, period_s: float) -> np.ndarray:
    """Fractional tick index at each time: tick i at ticks_s[i], linear in between, and
    extrapolated at ``period_s`` before the first and after the last tick."""
    t = np.asarray(times_s, dtype=np.float64)
    if ticks_s.size == 0:
        return t / period_s
    if ticks_s.size == 1:
        return (t - ticks_s[0]) / period_s
    return _interp_extended(t, ticks_s, np.arange(ticks_s.size, dtype=np.float64), 1.0 / period_s, 1.0 / period_s)


def beat_position(times_s: np.ndarray, beat_grid: BeatGrid, *, clock: Literal["beat", "bar"] = "beat") -> np.ndarray:
    """Beat (or bar) position at song times: 0.0 at the grid's first beat (downbeat), 1.0 at the
    next one, linear in between; extrapolated at ``tempo_bpm`` outside the detected beats.

    times_s: shape (n,) seconds → shape (n,) float64 positions (negative before the first beat).
    """
    ticks, period = _grid_points(beat_grid, clock)
    return _position(np.atleast_1d(times_s), ticks, period)


def beat_time(positions: np.ndarray, beat_grid: BeatGrid, *, clock: Literal["beat", "bar"] = "beat") -> np.ndarray:
    """Inverse of :func:`beat_position`: song time (seconds) of fractional beat (bar) positions."""
    b = np.atleast_1d(np.asarray(positions, dtype=np.float64))
    ticks, period = _grid_points(beat_grid, clock)
    if ticks.size == 0:
        return b * period
    if ticks.size == 1:
        return ticks[0] + b * period
    return _interp_extended(b, np.arange(ticks.size, dtype=np.float64), ticks, period, period)


# ---------------------------------------------------------------------------------------------
# Tempo map (transport): song seconds <-> quarter notes, bars and beats
# ---------------------------------------------------------------------------------------------

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


def _is_compound(numerator: int, denominator: int) -> bool:
    """6/8, 9/8, 12/8 (and x/16 alike): beats of three of the denominator's notes."""
    return denominator >= 8 and numerator >= 6 and numerator % 3 == 0


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
    def from_beat_grid(cls, grid: BeatGrid, *, quarters_per_beat: float | None = None) -> TempoMap:
        """Anchors at a BeatGrid's beats: grid beat i is quarter note ``i * quarters_per_beat``.

        By default from the grid: a compound grid (6/8, 12/8: ``beat_division`` 3) counts dotted
        quarters, 1.5 quarter notes each, and its bars are notated x/8; a simple one counts quarters.
        ``quarters_per_beat=0.5`` reads a grid that counts eighths. Tempo between grid beats is
        taken as constant; the bar phase comes from the first downbeat.
        """
        beats_s = np.asarray(grid.beats_s, dtype=np.float64)
        if beats_s.size < 2:
            raise ValueError(f"the beat grid has {beats_s.size} beat(s); a tempo map needs at least 2")
        per_bar = max(int(grid.beats_per_bar), 1)
        if quarters_per_beat is None:
            quarters_per_beat = 1.5 if grid.beat_division == 3 else 1.0
        if abs(quarters_per_beat - 1.5) < 1e-9:
            num, den = per_bar * 3, 8  # dotted quarters: three eighths each
        else:
            num, den = per_bar, int(round(4.0 / quarters_per_beat))
        first_bar = 0.0
        if len(grid.downbeats_s):
            k = int(np.argmin(np.abs(beats_s - float(grid.downbeats_s[0]))))
            first_bar = (k % per_bar) * quarters_per_beat
        return cls(beats_s, np.arange(beats_s.size) * quarters_per_beat,
                   time_signatures=[(first_bar, num, den)])

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
        # outside the anchors, the end segments' tempo continues
        y = _interp_extended(np.asarray(x, dtype=np.float64), xp, fp, (fp[1] - fp[0]) / (xp[1] - xp[0]),
                             (fp[-1] - fp[-2]) / (xp[-1] - xp[-2]))
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
        """Every beat as a listener taps it and every downbeat from beat 0 up to ``duration_seconds``.

        A beat is the denominator note, except in compound meter (6/8, 9/8, 12/8: the numerator a
        multiple of 3 from 6 up, over 8), where it is the dotted quarter of three eighths — the
        grid analysis makes for such a song (``beat_division`` 3, 2 beats to a 6/8 bar), so
        mappings tick on the same beats whichever the tempo came from. The first signature decides.
        """
        beat_pos: list[float] = []
        down_pos: list[float] = []
        end_beats = float(self.seconds_to_beats(duration_seconds))
        compound = _is_compound(*self._sigs[0][1:])
        for k, (at, n, d) in enumerate(self._sigs):
            stop = self._sigs[k + 1][0] if k + 1 < len(self._sigs) else end_beats + 1e-9
            unit = 4.0 / d
            if _is_compound(n, d):
                unit, n = 3.0 * unit, n // 3
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
            beats_per_bar=int(self._sigs[0][1]) // (3 if compound else 1),
            source=source,
            beat_division=3 if compound else 2,
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


# ---------------------------------------------------------------------------------------------
# Video frames
# ---------------------------------------------------------------------------------------------


def frame_times(fps: Fraction, start_frame: int, n_frames: int) -> np.ndarray:
    """Song time (s) of frames start_frame … start_frame+n_frames (inclusive, n_frames+1 values:
    the last is the end of the last frame's interval). k/fps computed as (k·den)/num, one rounding."""
    k = np.arange(start_frame, start_frame + n_frames + 1, dtype=np.int64)
    return (k * fps.denominator) / float(fps.numerator)


def song_frame_count(duration_seconds: float, fps: Fraction) -> int:
    """ceil(duration · fps), exact (a song of exactly 10 s at 30 fps has 300 frames)."""
    return max(0, ceil(Fraction(duration_seconds) * fps))
