"""The producer's rhythm corrections applied to the beat grid, and tap tempo (Qt-free).

A :class:`~bridge.project.schema.RhythmCorrection` is part of the project (``stembridge.json``,
undoable in the Session). Applying it re-runs only the song-level beat tracking on the cached stem
features, with what the producer fixed taken as given:

* tempo known (``tempo_bpm``): the tracker only places the beats and the downbeats
  (``track_beats(tempo_hint_bpm=…)``), so it still follows small drifts;
* ×2 / ÷2 of the detected tempo: the detected beats with one added between each, or every other
  one kept (the producer changes the tempo's octave, not the beats they see; see _at_new_octave);
* tempo and first downbeat known: the grid is exact (``beat_grid_from_tempo``), as a DAW's would be;
* first downbeat alone: the bars are counted from the tracked beat nearest to it; when that beat is
  clearly off the downbeat (the tracker's phase is wrong), every beat moves by the difference;
* meter known: ``beats_per_bar`` is passed to the tracker (6/8 and 12/8 count dotted beats, see
  :func:`~bridge.project.schema.meter_beats_per_bar`).

The result's ``source`` is "corrected" so every readout can say where the tempo came from.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import statistics
from collections.abc import Callable, Mapping

import numpy as np

from bridge.analysis.types import BeatGrid, StemFeatures
from bridge.errors import AnalysisError
from bridge.project.schema import RhythmCorrection, meter_beats_per_bar

#: Tempo range a correction may produce (the schema's bounds for tempo_bpm).
MIN_TEMPO_BPM = 20.0
MAX_TEMPO_BPM = 400.0
#: A tracked beat this close to the producer's downbeat (seconds, or fraction of a beat if larger)
#: is the same beat; farther, the tracker's phase is taken as wrong (see _bars_from).
SAME_BEAT_S = 0.035
SAME_BEAT_FRACTION = 0.05


def octave_steps(factor: float) -> int | None:
    """``k`` where ``factor`` is 2**k (another octave of the beat: ×2 is 1, ÷2 is −1), else None (a
    3:2 relative). For the tracker's other readings (``BeatGrid.other_readings``)."""
    k = round(math.log2(factor))
    return k if math.isclose(factor, 2.0**k, rel_tol=1e-6) else None


def reading_relation(factor: float) -> str:
    """"×2", "÷2", "×3/2" or "×2/3": how an other reading of the tempo relates to the detected one."""
    k = octave_steps(factor)
    if k is not None:
        return f"×{2**k:g}" if k >= 0 else f"÷{2**-k:g}"
    return "×3/2" if factor > 1.0 else "×2/3"


def tempo_span_text(grid: BeatGrid, factor: float = 1.0) -> str:
    """"168.06 BPM", or the span "79.85–161.13 BPM" of a song whose tempo changes
    (``grid.tempo_span``, computed once per grid: the app's readout asks on every tick), each times
    ``factor`` (an other reading)."""
    span = grid.tempo_span
    if span is None:
        return f"{grid.tempo_bpm * factor:.2f} BPM"
    return f"{span[0] * factor:.2f}–{span[1] * factor:.2f} BPM"


def check_tempo(tempo_bpm: float, *, what: str) -> float:
    """``tempo_bpm`` if usable, else AnalysisError naming the value (and how it came about) and the fix."""
    if not (np.isfinite(tempo_bpm) and MIN_TEMPO_BPM < tempo_bpm < MAX_TEMPO_BPM):
        raise AnalysisError(
            f"{what} gives {tempo_bpm:.2f} BPM, outside {MIN_TEMPO_BPM:g}–{MAX_TEMPO_BPM:g} BPM; undo the ×2/÷2 "
            f"or set the tempo itself (`stembridge analyze PROJECT --tempo BPM`, or the app's tempo panel)."
        )
    return float(tempo_bpm)


def corrected_beat_grid(
    correction: RhythmCorrection,
    stems: Mapping[str, StemFeatures],
    *,
    duration_seconds: float,
    learned: Callable[[], BeatGrid] | None = None,
) -> BeatGrid:
    """The beat grid with ``correction`` applied (see the module docstring). Raises AnalysisError.

    ``learned``: the learned tracker's grid (``correction.beat_model``), used where the tempo is
    not given (the model takes no tempo hint; with a given tempo the DSP tracker places the beats).
    """
    from bridge.analysis.beats import beat_grid_from_tempo, track_beats

    beats_per_bar = correction.beats_per_bar
    only_model = correction == RhythmCorrection(beat_model=correction.beat_model)

    @functools.cache
    def detect() -> BeatGrid:
        if learned is None:
            return track_beats(stems, duration_seconds=duration_seconds, beats_per_bar=beats_per_bar)
        grid = learned()
        if beats_per_bar and grid.beats_s.shape[0] >= 2:  # the given meter, counted from the model's bar 1
            first = grid.downbeats_s[0] if grid.downbeats_s.shape[0] else grid.beats_s[0]
            grid = _bars_from(dataclasses.replace(grid, beats_per_bar=beats_per_bar), float(first),
                              duration_seconds=duration_seconds)
        return grid

    tempo_bpm: float | None = None
    scaled: BeatGrid | None = None
    if correction.tempo_bpm is not None:
        tempo_bpm = check_tempo(correction.tempo_bpm * correction.tempo_factor,
                                what=f"tempo {correction.tempo_bpm:g} BPM × {correction.tempo_factor:g}")
    elif correction.tempo_factor != 1.0:
        detected = detect()
        check_tempo(detected.tempo_bpm * correction.tempo_factor,
                    what=f"the detected {detected.tempo_bpm:.2f} BPM × {correction.tempo_factor:g}")
        scaled = _at_new_octave(detected, correction.tempo_factor, duration_seconds=duration_seconds)

    downbeat_s = correction.first_downbeat_seconds
    if downbeat_s is not None and not downbeat_s < duration_seconds:
        raise AnalysisError(
            f"first downbeat {downbeat_s:g} s is after the song's end ({duration_seconds:.2f} s); set it "
            f"where a bar starts (`stembridge analyze PROJECT --downbeat SECONDS`) or clear it (--reset-rhythm)."
        )
    if downbeat_s is not None and tempo_bpm is not None and beats_per_bar is not None:
        # everything is known: the producer's grid, exactly (no tracking at all)
        grid = beat_grid_from_tempo(tempo_bpm, duration_seconds=duration_seconds, beats_per_bar=beats_per_bar,
                                    first_downbeat_seconds=downbeat_s)
        return dataclasses.replace(_with_meter(grid, correction.meter), source="corrected")
    if tempo_bpm is not None:
        grid = track_beats(stems, duration_seconds=duration_seconds, tempo_hint_bpm=tempo_bpm,
                           beats_per_bar=beats_per_bar)
    else:
        grid = scaled or detect()
    if downbeat_s is not None:
        if tempo_bpm is not None or grid.beats_s.shape[0] < 2:
            grid = beat_grid_from_tempo(tempo_bpm or grid.tempo_bpm, duration_seconds=duration_seconds,
                                        beats_per_bar=beats_per_bar or grid.beats_per_bar,
                                        first_downbeat_seconds=downbeat_s)
        else:
            grid = _bars_from(grid, downbeat_s, duration_seconds=duration_seconds)
    grid = _with_meter(grid, correction.meter)
    if tempo_bpm is not None or scaled is not None:  # the detection's other readings no longer apply
        grid = dataclasses.replace(grid, other_readings=())
    return grid if only_model else dataclasses.replace(grid, source="corrected")


def _at_new_octave(detected: BeatGrid, tempo_factor: float, *, duration_seconds: float) -> BeatGrid:
    """The detected grid at ``tempo_factor`` (a power of two) × its tempo: ×2 keeps every detected
    beat and adds one halfway between (and half a beat before the first and after the last, inside
    the song); ÷2 keeps every other beat, those the downbeats fall on. The detected grid's drift,
    phase and first downbeat stay, so ×2 then ÷2 is the detected grid again. Re-tracking at the new
    tempo instead put a doubled swung groove on its swung 16ths, and read swung 8ths as 12/8.

    The bar keeps its number of beats (a producer's ×2 on 4/4 is 4/4 at the new tempo: bars half as
    long), the beat keeps its division and the swing moves one level (see _swing_at_new_octave)."""
    beats = np.asarray(detected.beats_s, dtype=np.float64)
    first_downbeat = float(detected.downbeats_s[0]) if detected.downbeats_s.shape[0] else None
    factor = tempo_factor
    while factor > 1.0 and beats.shape[0] >= 2:
        half = np.diff(beats) / 2.0
        edges = [beats[0] - half[0], beats[-1] + half[-1]]
        beats = np.sort(np.concatenate([beats, beats[:-1] + half, [e for e in edges if 0.0 <= e <= duration_seconds]]))
        factor /= 2.0
    while factor < 1.0 and beats.shape[0] >= 2:
        keep = int(np.argmin(np.abs(beats - first_downbeat))) % 2 if first_downbeat is not None else 0
        beats = beats[keep::2]
        factor *= 2.0
    meter = detected.beats_per_bar
    if first_downbeat is None or beats.shape[0] == 0:
        downbeats = beats[::meter]
    else:
        downbeats = beats[int(np.argmin(np.abs(beats - first_downbeat))) % meter::meter]
    return _swing_at_new_octave(
        dataclasses.replace(detected, tempo_bpm=detected.tempo_bpm * tempo_factor, beats_s=beats,
                            downbeats_s=downbeats.copy()),
        detected, tempo_factor)


def _swing_at_new_octave(grid: BeatGrid, detected: BeatGrid, tempo_factor: float) -> BeatGrid:
    """``grid`` with the detected swing re-expressed at ``tempo_factor`` × its tempo: the same notes,
    a level up or down (swung 16ths at 111 BPM are swung 8ths at 222). A swing that has no level at
    the new tempo (swung 8ths doubled: the beats themselves alternate long and short) reads as straight."""
    level = int(round(detected.swing_level / tempo_factor)) if detected.swing_level else 0
    if level not in (8, 16):
        return dataclasses.replace(grid, swing_ratio=1.0, swing_level=0)
    return dataclasses.replace(grid, swing_ratio=detected.swing_ratio, swing_level=level)


def _with_meter(grid: BeatGrid, meter: str | None) -> BeatGrid:
    """Mark the producer's meter on the grid: compound (6/8, 12/8: dotted beats) or simple, with
    its beat's note value (7/8: eighths), so that it reads as chosen and counts quarters right."""
    if meter is None:
        return grid
    numerator, unit = (int(x) for x in meter.split("/"))
    compound = meter_beats_per_bar(meter) != numerator
    return dataclasses.replace(grid, beat_division=3 if compound else 2, beat_unit=grid.beat_unit if compound else unit)


def _bars_from(grid: BeatGrid, downbeat_s: float, *, duration_seconds: float) -> BeatGrid:
    """Count the bars of ``grid`` from ``downbeat_s``: the tracked beat nearest to it is bar 1.
    When that beat is clearly off the producer's downbeat (more than SAME_BEAT_S or a
    SAME_BEAT_FRACTION of a beat: the tracker's phase is wrong — on the off-beat, or a sixteenth
    early on syncopated drums), all beats move by that offset: the producer's phase, the tracker's
    tempo changes."""
    beats = np.asarray(grid.beats_s, dtype=np.float64)
    nearest = int(np.argmin(np.abs(beats - downbeat_s)))
    offset = downbeat_s - beats[nearest]
    period_s = 60.0 / grid.tempo_bpm
    if abs(offset) > max(SAME_BEAT_S, SAME_BEAT_FRACTION * period_s):
        beats = beats + offset
        keep = (beats >= 0.0) & (beats <= duration_seconds)
        nearest -= int(np.count_nonzero(~keep[:nearest]))
        beats = beats[keep]
    meter = grid.beats_per_bar
    return dataclasses.replace(grid, beats_s=beats, downbeats_s=beats[nearest % meter::meter].copy())


class TapTempo:
    """Tap tempo: the median of the intervals between taps (robust to one early or late tap).

    Taps more than ``reset_after_s`` apart start a new count; the last ``window`` taps are used; a
    tempo is given from ``min_taps`` taps on.
    """

    def __init__(self, *, min_taps: int = 3, window: int = 12, reset_after_s: float = 2.0) -> None:
        self.min_taps = min_taps
        self.window = window
        self.reset_after_s = reset_after_s
        self._taps: list[float] = []

    @property
    def taps(self) -> int:
        return len(self._taps)

    def reset(self) -> None:
        self._taps.clear()

    def tap(self, at_s: float) -> float | None:
        """Register a tap at time ``at_s`` (any monotonic clock, seconds); the tempo in BPM or None."""
        if self._taps and not (0.0 < at_s - self._taps[-1] <= self.reset_after_s):
            self._taps.clear()
        self._taps.append(float(at_s))
        del self._taps[:-self.window]
        if len(self._taps) < self.min_taps:
            return None
        intervals = np.diff(self._taps)
        return 60.0 / float(statistics.median(intervals))
