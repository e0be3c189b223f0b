"""The time base: song seconds ↔ beats ↔ quarter notes ↔ bars ↔ video frames, in one place.

Every layer above uses these (the transport clock, analysis, mapping, preview and export), so they
sit at the bottom of the import graph, beside :mod:`bridge.vocab` (see there for the whole layer
order; ``tests/test_layers.py`` checks it). Nothing here imports from the rest of bridge except
:mod:`bridge.errors` (and :mod:`bridge.fsutil` when a tempo map is saved).

Design: one type of musical time, :class:`BeatGrid`
---------------------------------------------------
A BeatGrid is what analysis detects *and* what the transport follows. It carries

* the **beats** a listener taps (``beats_s``, ``downbeats_s``: song seconds) with meter
  (``beats_per_bar``, ``beat_division``) and swing — what mappings tick on; and
* a **tempo map**: song seconds ↔ *quarter notes*, piecewise-linear between anchors, with meter
  changes — what a DAW's position (MIDI clock, SPP, OSC) is counted in.

Two units, named in every method so they are never confused:

* **beat** (``beat_position`` / ``beat_time``, ``beats_s``): the grid's tapped beat — the
  denominator note in simple meter (a quarter in 4/4), the dotted quarter of three eighths in
  compound meter (6/8, 12/8: ``beat_division`` 3). Beat ``i`` is ``beats_s[i]``.
* **quarter** (``seconds_to_quarters`` / ``quarters_to_seconds`` / ``tempo_at_quarters`` /
  ``bar_beat`` / ``time_signature_at``): a quarter note, the DAW's and MIDI's "beat" whatever the
  meter. Tempos of the map (``tempo_at_*``) are quarter notes per minute.

One rule past a grid's ends, for both units: the tempo of the map's first / last segment goes on
(an explicit map's own; a map through detected beats gets end segments at ``tempo_bpm``, not at
its first or last, jittered, interval; where its tempo changes, at the median of its first / last
``TEMPO_SPAN_BEATS`` intervals: :func:`tempo_span_bpm`).

Over 600 lines with a reason: one type (:class:`BeatGrid`) whose two units share one extrapolation
rule and one kernel; split in two, each half would need the other's internals.

Where the tempo map comes from:

* a grid built from beats (analysis, the analysis cache, ``BeatGrid(...)``): anchors at its beats,
  grid beat ``i`` = quarter ``i × quarters_per_beat`` (1.5 in compound meter, else 1), one time
  signature from the grid, the bar phase from its first downbeat;
* :meth:`BeatGrid.from_tempo_anchors`, :meth:`BeatGrid.constant`, :meth:`BeatGrid.from_midi_file`
  (the DAW, the project's tempo, a MIDI tempo track, :class:`~bridge.transport.clock.TempoMapRecorder`):
  explicit anchors and meter changes (``tempo_anchors_s`` / ``tempo_anchors_quarters`` /
  ``meter_changes``); their beats are counted from quarter 0 to the last anchor, and
  :meth:`BeatGrid.with_beats_until` counts them to the song's end (the grid analysis stores).

Both kinds go through the same kernel (:func:`_interp_extended`). The module functions
:func:`beat_position` / :func:`beat_time` are thin wrappers of the methods; :func:`bar_beat`
is the bar/beat arithmetic of one time signature.

Video frames: :func:`frame_times` (frame index → song seconds, exact for NTSC rates) and
:func:`song_frame_count`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from math import ceil
from pathlib import Path
from typing import Literal

import numpy as np

from bridge.errors import ProjectError, TransportError

#: The tempo :func:`beat_position` / :func:`beat_time` assume when a grid's tempo is missing or invalid.
DEFAULT_TEMPO_BPM = 120.0

_VALID_DENOMINATORS = (1, 2, 4, 8, 16, 32, 64)

#: (quarter-note position, numerator, denominator): a meter change; bars restart at each.
MeterChange = tuple[float, int, int]


# ---------------------------------------------------------------------------------------------
# The kernel: piecewise-linear maps, continued past their ends
# ---------------------------------------------------------------------------------------------


def _interp_extended(x: np.ndarray, xp: np.ndarray, fp: np.ndarray, slope_before: float,
                     slope_after: float) -> np.ndarray:
    """Piecewise-linear through (xp, fp) (xp increasing, ≥ 2 points), continued as straight lines
    of the given slopes before the first and after the last point, where np.interp would clamp.
    The one conversion every seconds ↔ beats ↔ quarters query goes through."""
    y = np.interp(x, xp, fp)
    y = np.where(x < xp[0], fp[0] + (x - xp[0]) * slope_before, y)
    return np.where(x > xp[-1], fp[-1] + (x - xp[-1]) * slope_after, y)


def _map_through(x: float | np.ndarray, xp: np.ndarray, fp: np.ndarray) -> float | np.ndarray:
    """Through anchors (xp → fp), the first/last segment's slope continuing outside them."""
    y = _interp_extended(np.asarray(x, dtype=np.float64), xp, fp, (fp[1] - fp[0]) / (xp[1] - xp[0]),
                         (fp[-1] - fp[-2]) / (xp[-1] - xp[-2]))
    return float(y) if y.ndim == 0 else y


# ---------------------------------------------------------------------------------------------
# Bars and meters
# ---------------------------------------------------------------------------------------------


def bar_beat(position_quarters: float, time_signature: tuple[int, int] = (4, 4)) -> tuple[int, float]:
    """1-based (bar, beat) for a position in quarter notes under one time signature.

    ``beat`` counts denominator notes (eighths in 6/8) and is fractional between beats; bars start
    at quarter 0. Positions before 0 give bar 0, -1… (DAWs show a pre-roll the same way).
    """
    num, den = time_signature
    unit = 4.0 / den  # quarters per counted beat
    bar_len = num * unit
    if not math.isfinite(position_quarters) or bar_len <= 0:
        return 1, 1.0
    bar_index = math.floor(position_quarters / bar_len)
    in_bar = position_quarters - bar_index * bar_len
    return int(bar_index) + 1, in_bar / unit + 1.0


def _is_compound(numerator: int, denominator: int) -> bool:
    """6/8, 9/8, 12/8 (and x/16 alike): beats of three of the denominator's notes."""
    return denominator >= 8 and numerator >= 6 and numerator % 3 == 0


def beat_quarters(numerator: int, denominator: int) -> float:
    """Quarter notes in the beat a listener taps in this meter: a dotted quarter in compound
    meter, else the denominator's note (an eighth in 7/8)."""
    return 1.5 if _is_compound(numerator, denominator) else 4.0 / denominator


def _check_signature(num: int, den: int, where: str) -> tuple[int, int]:
    num, den = int(num), int(den)
    if num < 1 or den not in _VALID_DENOMINATORS:
        raise ValueError(
            f"time signature {num}/{den} at {where} is invalid: the numerator must be ≥ 1 and the "
            f"denominator one of {_VALID_DENOMINATORS}"
        )
    return num, den


def _checked_meters(time_signatures: Iterable[tuple[float, int, int]] | None) -> tuple[MeterChange, ...]:
    sigs = sorted(
        (float(at), *_check_signature(n, d, f"quarter {at}"))
        for at, n, d in (time_signatures if time_signatures is not None else [(0.0, 4, 4)])
    )
    return tuple(sigs) if sigs else ((0.0, 4, 4),)  # type: ignore[return-value]


def _checked_anchors(seconds: Iterable[float] | np.ndarray,
                     quarters: Iterable[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.array(list(seconds) if not isinstance(seconds, np.ndarray) else seconds, dtype=np.float64).ravel()
    q = np.array(list(quarters) if not isinstance(quarters, np.ndarray) else quarters, dtype=np.float64).ravel()
    if s.shape != q.shape or s.size < 2:
        raise ValueError(
            f"a tempo map needs at least 2 (seconds, quarters) anchors of equal count; got "
            f"{s.size} seconds and {q.size} quarters"
        )
    if not (np.all(np.isfinite(s)) and np.all(np.isfinite(q))):
        raise ValueError("tempo map anchors must be finite numbers (got NaN or inf)")
    if np.any(np.diff(s) <= 0) or np.any(np.diff(q) <= 0):
        i = int(np.argmax((np.diff(s) <= 0) | (np.diff(q) <= 0)))
        raise ValueError(
            f"tempo map anchors must be strictly increasing in both seconds and quarters; anchor {i + 1} "
            f"({s[i + 1]:.6f} s, quarter {q[i + 1]:.6f}) does not follow ({s[i]:.6f} s, quarter {q[i]:.6f})"
        )
    s.flags.writeable = False
    q.flags.writeable = False
    return s, q


def _tapped_beats(sigs: tuple[MeterChange, ...], end_quarters: float) -> tuple[list[float], list[float], int, int, int]:
    """The beats a listener taps, as quarter positions from quarter 0 to ``end_quarters``.

    A beat is the denominator note (an eighth in 7/8), except in compound meter (6/8, 9/8, 12/8:
    the numerator a multiple of 3 from 6 up, over 8), where it is the dotted quarter of three
    eighths — the grid analysis makes for such a song (``beat_division`` 3, 2 beats to a 6/8 bar).
    The first signature decides beats_per_bar, beat_division and beat_unit. Returns (beats,
    downbeats, beats_per_bar, beat_division, beat_unit).
    """
    beat_pos: list[float] = []
    down_pos: list[float] = []
    compound = _is_compound(*sigs[0][1:])
    for k, (at, n, d) in enumerate(sigs):
        stop = sigs[k + 1][0] if k + 1 < len(sigs) else end_quarters + 1e-9
        unit = beat_quarters(n, d)
        if _is_compound(n, d):
            n //= 3
        start = at if k else min(at, 0.0)
        # bars before the first signature (pickup) are counted from quarter 0
        pos = np.arange(start, min(stop, end_quarters + 1e-9), unit)
        for j, p in enumerate(pos):
            if p < 0:
                continue
            beat_pos.append(float(p))
            if (j - int(round((at - start) / unit))) % n == 0:
                down_pos.append(float(p))
    return (beat_pos, down_pos, int(sigs[0][1]) // (3 if compound else 1), 3 if compound else 2,
            8 if compound else int(sigs[0][2]))


def _counted_beats(s: np.ndarray, q: np.ndarray, sigs: tuple[MeterChange, ...], end_quarters: float) -> dict:
    """The BeatGrid fields a tempo map (anchors ``s`` ↔ ``q``, meter changes ``sigs``) gives when its
    tapped beats are counted from quarter 0 to ``end_quarters``; ``tempo_bpm`` is in those beats,
    like a detected grid's: 60 / their median interval (6/8 at 120 quarters a minute is 80 dotted
    beats, 7/8 is 240 eighths), the tempo most of the song has. It was the median of the map's
    segment tempi, which a map of 90 then 135 put at 112.5, a tempo it never has, and a map that
    runs on past the song counted tempi the song never reaches. With fewer than two beats counted:
    that median of the segments, over the first signature's quarters per beat."""
    beat_q, down_q, per_bar, division, unit = _tapped_beats(sigs, end_quarters)
    beats_s = np.atleast_1d(np.asarray(_map_through(np.asarray(beat_q, dtype=np.float64), q, s), dtype=np.float64))
    gaps = np.diff(beats_s)
    if gaps.size and float(np.median(gaps)) > 0:
        tempo_bpm = 60.0 / float(np.median(gaps))
    else:
        tempo_bpm = float(np.median(60.0 * np.diff(q) / np.diff(s))) / beat_quarters(*sigs[0][1:])
    return {
        "tempo_bpm": tempo_bpm,
        "beats_s": beats_s,
        "downbeats_s": np.atleast_1d(np.asarray(_map_through(np.asarray(down_q, dtype=np.float64), q, s), dtype=np.float64)),
        "beats_per_bar": per_bar,
        "beat_division": division,
        "beat_unit": unit,
    }


# ---------------------------------------------------------------------------------------------
# The one type: BeatGrid
# ---------------------------------------------------------------------------------------------


#: A detected grid "changes tempo" where its local tempo spans more than this ratio.
TEMPO_SPAN_RATIO = 1.04
#: Beats over which the local tempo is taken (a median, so one odd beat does not count).
TEMPO_SPAN_BEATS = 8


def tempo_span_bpm(beats_s: np.ndarray) -> tuple[float, float] | None:
    """(slowest, fastest) local tempo of a beat sequence where it changes: 80 → 160, a 120 → 150
    ramp; None where the song keeps one tempo (within ``TEMPO_SPAN_RATIO``) or has too few beats.

    The local tempo is 60 / the median of ``TEMPO_SPAN_BEATS`` consecutive beat intervals; its 5th
    and 95th percentiles are the span, so a beat or two at a change does not widen it. A grid's one
    ``tempo_bpm`` (the slope of beat time against beat index) of a song that doubles from 80 to
    160 lies between the two (119 for 8 bars at 80, then 12 at 160), a tempo the song never has:
    the readouts show this span instead. Checked against the true beats' own span on the shared,
    Freedoom dev and LMMS dev items: the two agree on 144 of 147; the three others are our grid's
    own changes (an octave switch mid-song, a rubato read as 121-126 BPM)."""
    beats = np.asarray(beats_s, dtype=np.float64)
    if beats.shape[0] < 2 * TEMPO_SPAN_BEATS:
        return None
    gaps = np.diff(beats)
    windows = np.lib.stride_tricks.sliding_window_view(gaps, TEMPO_SPAN_BEATS)
    local = 60.0 / np.median(windows, axis=1)
    slow, fast = (float(x) for x in np.percentile(local, [5.0, 95.0]))
    return (slow, fast) if fast > TEMPO_SPAN_RATIO * slow else None


def local_tempo_bpm(beats_s: np.ndarray, seconds: float) -> float | None:
    """The local tempo at ``seconds`` that :func:`tempo_span_bpm` spans: 60 / the median of the
    ``TEMPO_SPAN_BEATS`` beat intervals around it (all of them in a shorter grid; the first or last
    ones before or after the beats). None with fewer than 2 beats. What a DAW shows at its playhead:
    80 before a song doubles, 160 after."""
    beats = np.sort(np.asarray(beats_s, dtype=np.float64).ravel())
    gaps = np.diff(beats)
    if gaps.size == 0:
        return None
    i = int(np.searchsorted(beats, seconds))
    lo = int(np.clip(i - TEMPO_SPAN_BEATS // 2, 0, max(0, gaps.size - TEMPO_SPAN_BEATS)))
    period = float(np.median(gaps[lo : lo + TEMPO_SPAN_BEATS]))
    return 60.0 / period if period > 0 else None


@dataclass(frozen=True, eq=False)
class BeatGrid:
    """Song-level rhythm: tempo, beats and downbeats in seconds from song start, and the tempo map
    (song seconds ↔ quarter notes, meter changes) that goes with them. See the module docstring
    for the two units (tapped *beats* vs *quarters*).

    tempo_bpm: tapped beats per minute, whatever the grid came from (a 6/8 song at 120 quarters a
        minute: 80 dotted beats; the quarter-note tempo is ``tempo_bpm × quarters_per_beat``).
    beats_s: shape (n_beats,), sorted. downbeats_s: subset of beats_s (first beat of each bar).
    beats_per_bar: beats in a bar as a listener taps them (3 for 3/4, 4 for 4/4, 2 for 6/8, 4 for
        12/8).
    source: "detected", "project" (constant tempo from the project/DAW), "midi" (tempo map file) or
        "daw" (captured from the transport).
    beat_division: 2 for simple meter (a beat divides into two 8ths), 3 for compound meter (6/8,
        12/8: the beat is a dotted quarter of three 8ths).
    beat_unit: the note a beat is in simple meter, as a time signature's denominator: 4 (a quarter),
        8 (an eighth: 7/8, 5/8), 2 (a half: 2/2). Compound meter ignores it (the dotted quarter).
    swing_ratio, swing_level: how the off-beat 8th or 16th is delayed (detected; see beats.py).
    other_readings: the tracker's next-best tempi as factors of ``tempo_bpm``, best first (2.0: the
        song may run at double this tempo; 1.5, 2/3: at 3:2); empty unless detected, uncorrected.
    tempo_anchors_s, tempo_anchors_quarters, meter_changes: an explicit tempo map (use the
        classmethods); None: the map runs through ``beats_s`` (see :attr:`quarters_per_beat`).
        ``dataclasses.replace`` keeps an explicit map as it is.

    Quarter-note conversions take scalars (→ float) or arrays (→ ndarray, same shape); a grid built
    from beats raises ValueError at its first quarter-note query if its beats cannot carry a map
    (fewer than 2, or not strictly increasing): :meth:`require_tempo_map` checks up front.
    """

    tempo_bpm: float
    beats_s: np.ndarray
    downbeats_s: np.ndarray
    beats_per_bar: int
    source: str = "detected"
    beat_division: int = 2
    beat_unit: int = 4
    #: Long : short ratio of swung pairs (1.0 straight, 2.0 triplet swing) at ``swing_level``
    #: (8 = swung 8ths, 16 = swung 16ths, 0 = straight).
    swing_ratio: float = 1.0
    swing_level: int = 0
    other_readings: tuple[float, ...] = ()
    tempo_anchors_s: np.ndarray | None = None
    tempo_anchors_quarters: np.ndarray | None = None
    meter_changes: tuple[MeterChange, ...] | None = None

    def __post_init__(self) -> None:
        explicit = (self.tempo_anchors_s is not None, self.tempo_anchors_quarters is not None)
        if explicit[0] != explicit[1]:
            raise ValueError("an explicit tempo map needs both tempo_anchors_s and tempo_anchors_quarters")
        if explicit[0]:
            s, q = _checked_anchors(self.tempo_anchors_s, self.tempo_anchors_quarters)  # type: ignore[arg-type]
            object.__setattr__(self, "tempo_anchors_s", s)
            object.__setattr__(self, "tempo_anchors_quarters", q)
            object.__setattr__(self, "meter_changes", _checked_meters(self.meter_changes))
        elif self.meter_changes is not None:
            raise ValueError("meter_changes need explicit tempo anchors (a grid built from beats takes its meter from them)")
        if self.beat_unit not in (1, 2, 4, 8, 16, 32):
            raise ValueError(f"beat_unit={self.beat_unit!r} is not a note value; use a time signature's "
                             f"denominator (4 for quarter-note beats, 8 for eighths as in 7/8)")

    # -- construction: an explicit tempo map ---------------------------------------------------
    @classmethod
    def from_tempo_anchors(
        cls,
        seconds: Iterable[float] | np.ndarray,
        quarters: Iterable[float] | np.ndarray,
        *,
        time_signatures: Iterable[tuple[float, int, int]] | None = None,
        source: str = "daw",
    ) -> BeatGrid:
        """A grid from a tempo map: song second ``seconds[i]`` is quarter note ``quarters[i]``.

        Both strictly increasing, n ≥ 2. Between anchors the tempo is constant (exact for MIDI tempo
        tracks, whose tempo is a step function); before the first and after the last anchor the
        first/last segment's tempo continues. ``time_signatures``: meter changes as
        (quarter, numerator, denominator), bars restarting at each; default 4/4 from quarter 0.
        The beats are counted from quarter 0 to the last anchor (:meth:`with_beats_until` for more);
        ``tempo_bpm`` is in those beats (:func:`_counted_beats`: 80 for 6/8 at 120 quarters a minute).
        """
        s, q = _checked_anchors(seconds, quarters)
        sigs = _checked_meters(time_signatures)
        return cls(**_counted_beats(s, q, sigs, float(q[-1])), source=source,
                   tempo_anchors_s=s, tempo_anchors_quarters=q, meter_changes=sigs)

    @classmethod
    def constant(cls, tempo_bpm: float, *, time_signature: tuple[int, int] = (4, 4),
                 source: str = "project") -> BeatGrid:
        """One tempo, ``tempo_bpm`` quarter notes a minute, for the whole song (quarter 0 at 0 s);
        the grid's own ``tempo_bpm`` is in its tapped beats (dotted quarters in 6/8)."""
        if not (math.isfinite(tempo_bpm) and tempo_bpm > 0):
            raise ValueError(f"tempo_bpm={tempo_bpm!r} must be a positive number of quarter notes per minute")
        return cls.from_tempo_anchors([0.0, 60.0 / tempo_bpm], [0.0, 1.0],
                                      time_signatures=[(0.0, *time_signature)], source=source)

    @classmethod
    def from_midi_file(cls, path: str | os.PathLike[str], *, offset_seconds: float = 0.0,
                       source: str = "midi") -> BeatGrid:
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
        quarters = ticks / tpq
        seconds = np.concatenate([[0.0], np.cumsum(np.diff(quarters) * uspq[:-1] / 1e6)])
        # One more anchor a quarter after the last change so the last tempo is carried by a segment.
        quarters = np.append(quarters, quarters[-1] + 1.0)
        seconds = np.append(seconds, seconds[-1] + uspq[-1] / 1e6)
        sig_list = [(t / tpq, n, d) for t, (n, d) in sorted(sigs.items())] or [(0.0, 4, 4)]
        return cls.from_tempo_anchors(seconds + offset_seconds, quarters, time_signatures=sig_list, source=source)

    def with_beats_until(self, duration_seconds: float, *, source: str | None = None) -> BeatGrid:
        """Every beat as a listener taps it and every downbeat from quarter 0 up to
        ``duration_seconds`` (see :func:`_tapped_beats`: dotted quarters in 6/8, eighths in 7/8) —
        the grid analysis makes and caches for a song whose tempo comes from a map, so mappings
        tick on the same beats whichever the tempo came from. It keeps this grid's tempo map (its
        quarter notes stay exact through tempo and meter changes); ``tempo_bpm`` is in its beats."""
        s, q, sigs, _ = self._tempo_map
        end_quarters = float(self.seconds_to_quarters(duration_seconds))
        return BeatGrid(**_counted_beats(s, q, sigs, end_quarters), source=self.source if source is None else source,
                        tempo_anchors_s=s, tempo_anchors_quarters=q, meter_changes=sigs)

    # -- the grid's meter ----------------------------------------------------------------------
    @property
    def time_signature(self) -> tuple[int, int]:
        """(numerator, denominator) as notated: (4, 4), (3, 4), (6, 8), (12, 8)…"""
        if self.beat_division == 3:
            return self.beats_per_bar * 3, 8
        return self.beats_per_bar, self.beat_unit

    @property
    def meter_label(self) -> str:
        num, den = self.time_signature
        return f"{num}/{den}"

    @property
    def quarters_per_beat(self) -> float:
        """Quarter notes in one tapped beat: 1.5 in compound meter (a dotted quarter), else
        4 / ``beat_unit`` (1 for a quarter, 0.5 for the eighths of 7/8)."""
        return 1.5 if self.beat_division == 3 else 4.0 / self.beat_unit

    @property
    def quarter_tempo_bpm(self) -> float:
        """``tempo_bpm`` in quarter notes a minute, as a DAW shows it (120 for 6/8 at 80 dotted beats)."""
        return float(self.tempo_bpm) * self.quarters_per_beat

    # -- song seconds <-> tapped beats (or bars) -----------------------------------------------
    def _period_s(self) -> float:
        tempo = float(self.tempo_bpm)
        return 60.0 / (tempo if np.isfinite(tempo) and tempo > 0 else DEFAULT_TEMPO_BPM)

    @cached_property
    def tempo_span(self) -> tuple[float, float] | None:
        """:func:`tempo_span_bpm` of this grid's beats, computed once (the transport line asks for it
        on every tick)."""
        return tempo_span_bpm(self.beats_s)

    @cached_property
    def _edge_periods_s(self) -> tuple[float, float]:
        """Seconds per tapped beat before the first and after the last beat: the one extrapolation
        rule of the grid, shared with its quarter notes — the tempo map's first / last segment
        (an explicit map's own). A map through the beats ends in segments at ``tempo_bpm``, unless
        its tempo changes (:func:`tempo_span_bpm`): then at the tempo of its first / last
        ``TEMPO_SPAN_BEATS`` beats (a song that doubles from 80 to 160 runs on at 160 after its last
        beat, not at the 119 of the line through all its beats, a tempo it never has)."""
        if self.tempo_anchors_s is None or self.tempo_anchors_quarters is None:
            if self.tempo_span is not None:
                first, last = (local_tempo_bpm(self.beats_s, at) for at in (-np.inf, np.inf))
                if first is not None and last is not None:  # (None: repeated beats, the rule below)
                    return 60.0 / first, 60.0 / last
            period = self._period_s()
            return period, period
        s, q = self.tempo_anchors_s, self.tempo_anchors_quarters
        sigs = self.meter_changes or ((0.0, 4, 4),)
        return (beat_quarters(*sigs[0][1:]) * float(s[1] - s[0]) / float(q[1] - q[0]),
                beat_quarters(*sigs[-1][1:]) * float(s[-1] - s[-2]) / float(q[-1] - q[-2]))

    def _ticks(self, clock: Literal["beat", "bar"]) -> tuple[np.ndarray, float, float]:
        """The clock's ticks (seconds, sorted) and the periods that extrapolate before / after them."""
        beats = np.sort(np.asarray(self.beats_s, dtype=np.float64).ravel())
        before, after = self._edge_periods_s
        if clock == "beat":
            return beats, before, after
        per_bar = max(1, int(self.beats_per_bar))
        downbeats = np.sort(np.asarray(self.downbeats_s, dtype=np.float64).ravel())
        if downbeats.size == 0 and beats.size:
            # No downbeats detected: count bars from the first beat.
            downbeats = beats[::per_bar]
        return downbeats, before * per_bar, after * per_bar

    def beat_position(self, times_s: np.ndarray, *, clock: Literal["beat", "bar"] = "beat") -> np.ndarray:
        """Tapped-beat (or bar) position at song times: 0.0 at the grid's first beat (downbeat), 1.0
        at the next one, linear in between; outside the beats, the tempo of the tempo map's end
        continues (for a grid of detected beats ``tempo_bpm``, or its edge tempo where it changes:
        :meth:`_edge_periods_s`).

        times_s: shape (n,) seconds → shape (n,) float64 positions (negative before the first beat).
        """
        ticks, before, after = self._ticks(clock)
        t = np.atleast_1d(np.asarray(times_s, dtype=np.float64))
        if ticks.size < 2:
            origin = ticks[0] if ticks.size else 0.0
            return (t - origin) / np.where(t < origin, before, after)
        return _interp_extended(t, ticks, np.arange(ticks.size, dtype=np.float64), 1.0 / before, 1.0 / after)

    def beat_time(self, positions: np.ndarray, *, clock: Literal["beat", "bar"] = "beat") -> np.ndarray:
        """Inverse of :meth:`beat_position`: song time (seconds) of fractional beat (bar) positions."""
        b = np.atleast_1d(np.asarray(positions, dtype=np.float64))
        ticks, before, after = self._ticks(clock)
        if ticks.size < 2:
            return (ticks[0] if ticks.size else 0.0) + b * np.where(b < 0, before, after)
        return _interp_extended(b, np.arange(ticks.size, dtype=np.float64), ticks, before, after)

    # -- song seconds <-> quarter notes (the tempo map) ----------------------------------------
    @cached_property
    def _tempo_map(self) -> tuple[np.ndarray, np.ndarray, tuple[MeterChange, ...], tuple[float, ...]]:
        """(anchor seconds, anchor quarters, meter changes, bar number at each change)."""
        if self.tempo_anchors_s is not None and self.tempo_anchors_quarters is not None:
            s, q = self.tempo_anchors_s, self.tempo_anchors_quarters
            sigs = self.meter_changes or ((0.0, 4, 4),)
        else:
            # anchors at the beats: grid beat i is quarter i × quarters_per_beat; the tempo between
            # beats is taken as constant, and outside them the edge tempo (one more anchor a beat
            # before the first and after the last: the beats extrapolate the same way); the bar
            # phase comes from the first downbeat.
            beats_s = np.asarray(self.beats_s, dtype=np.float64).ravel()
            if beats_s.size < 2:
                raise ValueError(f"the beat grid has {beats_s.size} beat(s); a tempo map needs at least 2")
            per_bar = max(int(self.beats_per_bar), 1)
            qpb = self.quarters_per_beat
            num, den = self.time_signature
            first_bar = 0.0
            if len(self.downbeats_s):
                k = int(np.argmin(np.abs(beats_s - float(self.downbeats_s[0]))))
                first_bar = (k % per_bar) * qpb
            before, after = self._edge_periods_s
            s, q = _checked_anchors(np.concatenate(([beats_s[0] - before], beats_s, [beats_s[-1] + after])),
                                    np.arange(-1, beats_s.size + 1) * qpb)
            sigs = _checked_meters([(first_bar, num, den)])
        bars = [0.0]  # bar number (0-based) at each signature change; bars restart at every change
        for (at0, n0, d0), (at1, _, _) in zip(sigs, sigs[1:], strict=False):
            bars.append(bars[-1] + math.ceil((at1 - at0) / (n0 * 4.0 / d0) - 1e-9))
        return s, q, sigs, tuple(bars)

    def require_tempo_map(self) -> BeatGrid:
        """This grid, its quarter-note map derived (and cached) now: ValueError if its beats cannot
        carry one (fewer than 2, not strictly increasing, not finite). For the transport, which
        must not meet that error mid-play."""
        _ = self._tempo_map
        return self

    @property
    def anchors_seconds(self) -> np.ndarray:
        """The tempo map's anchors in song seconds, shape (n,), read-only."""
        return self._tempo_map[0]

    @property
    def anchors_quarters(self) -> np.ndarray:
        """The tempo map's anchors in quarter notes, shape (n,), read-only."""
        return self._tempo_map[1]

    def quarters_to_seconds(self, quarters: float | np.ndarray) -> float | np.ndarray:
        """Song seconds at quarter-note positions (scalar or array)."""
        s, q, _, _ = self._tempo_map
        return _map_through(quarters, q, s)

    def seconds_to_quarters(self, seconds: float | np.ndarray) -> float | np.ndarray:
        """Quarter-note positions at song seconds (scalar or array)."""
        s, q, _, _ = self._tempo_map
        return _map_through(seconds, s, q)

    def _segment_tempo(self, x: float | np.ndarray, use_seconds: bool) -> float | np.ndarray:
        s, q, _, _ = self._tempo_map
        xp = s if use_seconds else q
        arr = np.asarray(x, dtype=np.float64)
        i = np.clip(np.searchsorted(xp, arr, side="right") - 1, 0, xp.size - 2)
        bpm = 60.0 * (q[i + 1] - q[i]) / (s[i + 1] - s[i])
        return float(bpm) if np.ndim(bpm) == 0 else bpm

    def tempo_at_seconds(self, seconds: float | np.ndarray) -> float | np.ndarray:
        """Quarter-note tempo (quarters per minute) in force at song second(s) ``seconds``."""
        return self._segment_tempo(seconds, True)

    def tempo_at_quarters(self, quarters: float | np.ndarray) -> float | np.ndarray:
        """Quarter-note tempo (quarters per minute) in force at quarter-note position(s)."""
        return self._segment_tempo(quarters, False)

    def _sig_index(self, quarters: float) -> int:
        i = 0
        for k, (at, _, _) in enumerate(self._tempo_map[2]):
            if quarters >= at - 1e-9:
                i = k
        return i

    def time_signature_at(self, quarters: float) -> tuple[int, int]:
        """(numerator, denominator) in force at a quarter-note position."""
        _, n, d = self._tempo_map[2][self._sig_index(quarters)]
        return n, d

    def bar_beat(self, quarters: float) -> tuple[int, float]:
        """1-based (bar, beat) at a quarter-note position, following meter changes; ``beat``
        counts denominator notes (see :func:`bar_beat`)."""
        _, _, sigs, bars = self._tempo_map
        k = self._sig_index(quarters)
        at, n, d = sigs[k]
        bar, beat = bar_beat(quarters - at, (n, d))
        return bar + int(bars[k]), beat

    def save_midi(self, path: str | os.PathLike[str], *, ticks_per_beat: int = 480) -> Path:
        """Write the tempo map as a type-0 MIDI file with one ``set_tempo`` per tempo change
        (atomic write).

        Anchors are rounded to ticks and tempos to whole microseconds per quarter (the MIDI file
        resolution); the map must start at quarter ≥ 0 (MIDI time 0 is song start).
        """
        import mido

        from bridge.fsutil import atomic_output

        s, q, sigs, _ = self._tempo_map
        if q[0] < -1e-9:
            raise TransportError(
                f"the tempo map starts at beat {q[0]:.3f}; a MIDI file cannot hold negative "
                "positions. Record from the song start (bar 1) or trim the map."
            )
        mid = mido.MidiFile(type=0, ticks_per_beat=ticks_per_beat)
        track = mido.MidiTrack()
        mid.tracks.append(track)
        events: list[tuple[int, int, mido.MetaMessage]] = []
        for at, n, d in sigs:
            events.append((max(0, round(at * ticks_per_beat)), 0,
                           mido.MetaMessage("time_signature", numerator=n, denominator=d)))
        last_uspq = None
        seg_uspq = np.round(1e6 * np.diff(s) / np.diff(q)).astype(np.int64)
        for i, uspq in enumerate(seg_uspq):
            if uspq != last_uspq:
                events.append((max(0, round(q[i] * ticks_per_beat)), 1,
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


def beat_position(times_s: np.ndarray, beat_grid: BeatGrid, *, clock: Literal["beat", "bar"] = "beat") -> np.ndarray:
    """:meth:`BeatGrid.beat_position` (tapped beats or bars at song seconds)."""
    return beat_grid.beat_position(times_s, clock=clock)


def beat_time(positions: np.ndarray, beat_grid: BeatGrid, *, clock: Literal["beat", "bar"] = "beat") -> np.ndarray:
    """:meth:`BeatGrid.beat_time` (song seconds at tapped-beat or bar positions)."""
    return beat_grid.beat_time(positions, clock=clock)


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
