"""Where on the beat the grid sits (:mod:`bridge.analysis.beats`, step 3): beat salience, drum presence
and the phase correction that moves stretches of the grid by a 16th, a triplet or half a beat.
Split out of ``beats.py`` (issue 16: files by concern); the algorithm is described there."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import scipy.ndimage
import scipy.signal

from bridge.analysis.periodicity import (
    _fit_length,
    _frame_rate_hz,
    _is_audible,
    _kick_snare,
    _normalise,
    _viterbi,
)
from bridge.analysis.types import (
    SILENCE_RMS,
    StemFeatures,
)

#: Grid shifts (fractions of a beat) tried by ``_correct_phase`` and the margin a shift needs (set
#: on the dev songs: shared 12's off-beat lock is +12 % off, shared 01's funk stays 7 % short of a
#: wrong half-beat shift; both sides are within reach of this knob — see the README's table).
PHASE_SHIFTS = (-0.25, 0.25, -1.0 / 3.0, 1.0 / 3.0, -1.0 / 6.0, 1.0 / 6.0, 0.5)
#: Phase correction (:func:`_correct_phase`): window length in beats, the weight of salience
#: beside drum presence, the cost of a change of phase between windows, the current phase's
#: bonus, and how near a drum onset must be to count as on a beat.
PHASE_WINDOW_BEATS = 8
PHASE_SALIENCE_WEIGHT = 0.25
PHASE_SNARE_WEIGHT = 0.5
PHASE_CHANGE_COST = 0.3
PHASE_STAY_BONUS = 0.05
PRESENCE_TOLERANCE_S = 0.035
#: Weight and tolerance of the long–short swing test in :func:`_correct_phase`.
SWING_SHORT_WEIGHT = 0.5
SWING_TOLERANCE_S = 0.025
PHASE_SHIFT_MARGIN = 0.10


def _beat_salience(stems: Mapping[str, StemFeatures], envelope: np.ndarray, n_frames: int,
                   period: float, drum_bands: tuple[str, ...] = ("onset_low", "onset_mid")) -> np.ndarray:
    """Where beats (not just onsets) are: the sum, each part at unit std, of the drums' kick- and
    snare-band onsets (without a drums stem: every stem's low band), the pitched stems' onsets, and
    their harmonic change
    (:func:`_harmonic_change`, ``period / 4`` frames either side); the whole onset envelope when
    none of these exists. Hats, shakers and rides mark the tatum, not the beat, and a syncopated
    hi-hat or snare can outnumber the hits on the beat; kick, bass notes and chord changes still
    mostly sit on it."""
    drums = np.zeros(n_frames)
    pitched = np.zeros(n_frames)
    # Without a drums stem (a whole mix analysed as one stem, or stems without drums) the low band
    # of every stem stands in for the kick: a mix's kick lives there, and off-beat hats, a reggae
    # skank or house's open hats do not. On the LMMS set's mixes (dev) this took 13 → 16 of 38
    # items (10 of their misses had the beat on the "and"); with weights 0.5–2 on it, 15–16.
    no_drums = not any(stem.role == "drums" and _is_audible(stem) for stem in stems.values())
    for stem in stems.values():
        if not _is_audible(stem):
            continue
        active = _fit_length(stem.curves["rms"], n_frames) >= SILENCE_RMS
        if stem.role == "drums":
            for band in drum_bands:
                drums += _normalise(_fit_length(stem.curves.get(band, stem.curves["onset"]), n_frames), active)
        else:
            pitched += _normalise(_fit_length(stem.curves["onset"], n_frames), active)
            if no_drums:
                drums += _normalise(_fit_length(stem.curves.get("onset_low", stem.curves["onset"]), n_frames), active)
    harmony = _harmonic_change(stems, n_frames, window=max(2, int(round(period / 4.0))))
    parts = [p / np.std(p) for p in (drums, pitched, harmony) if np.std(p) > 1e-9]
    return np.sum(parts, axis=0) if parts else envelope


def _harmonic_change(stems: Mapping[str, StemFeatures], n_frames: int, window: int) -> np.ndarray:
    """How much the pitched stems' harmony changes at each frame: 1 − cosine between the loudness-
    weighted chroma of the ``window`` frames before and after it. Chords and bass notes change on
    beats; hats, ghost notes and anticipated kicks do not carry a new chord. Zeros without
    pitched stems."""
    chroma = np.zeros((12, n_frames))
    for stem in stems.values():
        if stem.role == "drums" or not _is_audible(stem):
            continue
        chroma += _fit_length(stem.curves["chroma"], n_frames) * _fit_length(stem.curves["rms"], n_frames)[None, :]
    if not np.any(chroma > 0):
        return np.zeros(n_frames)
    cum = np.cumsum(np.pad(chroma, ((0, 0), (1, 0))), axis=1)
    idx = np.arange(n_frames)
    before = cum[:, idx] - cum[:, np.clip(idx - window, 0, n_frames)]
    after = cum[:, np.clip(idx + window, 0, n_frames)] - cum[:, idx]
    before /= np.linalg.norm(before, axis=0) + 1e-9
    after /= np.linalg.norm(after, axis=0) + 1e-9
    return 1.0 - np.sum(before * after, axis=0)


def _onset_presence(stems: Mapping[str, StemFeatures], positions_s: np.ndarray, tolerance_s,
                    *, drums_only: bool) -> np.ndarray | None:
    """1 where an onset of an audible stem (a drums stem with ``drums_only``) lies within
    ``tolerance_s`` of each position, else 0; None without such an onset."""
    onsets = [stem.onsets_s for stem in stems.values()
              if _is_audible(stem) and (stem.role == "drums" or not drums_only)]
    on = np.sort(np.concatenate(onsets)) if onsets else np.zeros(0)
    if on.size == 0:
        return None
    i = np.clip(np.searchsorted(on, positions_s), 1, max(1, on.size - 1))
    dist = np.minimum(np.abs(on[np.minimum(i, on.size - 1)] - positions_s), np.abs(on[i - 1] - positions_s))
    return (dist <= tolerance_s).astype(np.float64)


def _beat_presence(stems: Mapping[str, StemFeatures], beats_s: np.ndarray) -> float:
    """Share of the beats with an onset of any audible stem within max(70 ms, 1/8 beat)."""
    if beats_s.shape[0] < 2:
        return 0.0
    present = _onset_presence(stems, beats_s, max(0.07, float(np.median(np.diff(beats_s))) / 8.0),
                              drums_only=False)
    return 0.0 if present is None else float(present.mean())


def _drum_presence(stems: Mapping[str, StemFeatures], positions_s: np.ndarray,
                   tolerance_s: np.ndarray) -> np.ndarray | None:
    """1 where a drums-stem onset lies within ``tolerance_s`` of each position, else 0; None
    without an audible drums stem."""
    return _onset_presence(stems, positions_s, tolerance_s, drums_only=True)


def _correct_phase(stems: Mapping[str, StemFeatures], beats_s: np.ndarray, envelope: np.ndarray,
                   n_frames: int) -> np.ndarray:
    """Move stretches of the grid by a fraction of a beat where the evidence says they sit off it.

    The dynamic program follows the strongest chain of onsets one period apart. On a syncopated
    groove that can be the anticipations: the off-beat 8th, the "a" before each beat, a swung
    last 16th — and it can slip onto them part-way through a song when the pattern changes.

    The half-beat shift is decided first, song-wide, by kick/snare salience (``PHASE_SHIFT_MARGIN``).
    Then, for windows of ``PHASE_WINDOW_BEATS`` beats, the current phase and each 16th / triplet
    shift in ``PHASE_SHIFTS`` of the local beat length are scored by:

    - **presence**: the share of beats with a drums-stem onset on them. The beat is the position
      the drummer fills in (nearly) every bar; anticipations are louder but come and go. Measured
      on songs 10 and 13 the annotated beat has a drum onset 95 % / 79 % of the time, the
      anticipation the tracker locked onto 84 % / 60 %;
    - **salience** (:func:`_beat_salience`, kick/snare, pitched onsets, harmonic change) as a share
      of the window's best, weighted by ``PHASE_SALIENCE_WEIGHT``: it decides where presence ties
      (a backbeat song has drums on the off-beat 8th as often as on the beat) and without drums;
    - **the backbeat**: the snare band at the shifted beats, as a share of the window's best,
      weighted by ``PHASE_SNARE_WEIGHT`` (whatever kick and bass anticipate, the snare on 2 and 4
      sits on the beat);
    - **swing's grammar**: drum onsets 1/6 of a beat after a candidate count against it
      (``SWING_SHORT_WEIGHT``): swing is long–short, never short–long.

    A Viterbi path over windows × shifts pays ``PHASE_CHANGE_COST`` for each change of shift, so
    a song keeps one phase unless a stretch clearly says otherwise, and the current phase gets
    ``PHASE_STAY_BONUS`` (the tracker's own chain is evidence too).
    """
    n_beats = beats_s.shape[0]
    if n_beats < 8:
        return beats_s
    fr = _frame_rate_hz()
    ibi = np.diff(beats_s)
    ibi = np.append(ibi, ibi[-1])
    sal = _beat_salience(stems, envelope, n_frames, float(np.median(ibi)) * fr)
    half = max(1, int(round(float(np.median(ibi)) * fr / 12.0)))
    peak = scipy.ndimage.maximum_filter1d(sal, size=2 * half + 1, mode="constant")
    # The off-beat 8th: drums sit on it as often as on the beat (hats, a backbeat's ghost notes),
    # so presence cannot tell; the kick and snare can, song-wide, by PHASE_SHIFT_MARGIN. Decided first,
    # on the tracker's own grid, before presence moves stretches of it by a 16th or a triplet.
    def value(shift: float) -> float:
        at = np.round((beats_s + shift * ibi) * fr).astype(int)
        at = at[(at >= 0) & (at < n_frames)]
        return float(peak[at].mean()) if at.size else -np.inf

    base = value(0.0)
    if value(0.5) > base * (1.0 + PHASE_SHIFT_MARGIN) + 1e-9:
        beats_s = beats_s + 0.5 * ibi

    shifts = np.array((0.0,) + tuple(x for x in PHASE_SHIFTS if x != 0.5))
    positions = beats_s[None, :] + shifts[:, None] * ibi[None, :]  # (shifts, beats)
    idx = np.clip(np.round(positions * fr).astype(int), 0, n_frames - 1)
    salience = peak[idx]
    presence = _drum_presence(stems, positions.ravel(), np.minimum(PRESENCE_TOLERANCE_S, np.tile(ibi, shifts.size) / 8.0))
    presence = None if presence is None else presence.reshape(shifts.size, n_beats)
    # Swing is long–short: a swung groove's notes sit at 0, 1/3, 1/2, 5/6 (16ths) or 0, 2/3 (8ths)
    # of the beat, never 1/6 after it; a grid on the swung last 16th (5/6) has the beat's own
    # onset 1/6 after each of its beats. So onsets 1/6 of a beat after a candidate count against
    # it (straight 16ths sit 1/12 of a beat away from there and, tolerance aside, do not).
    short = _drum_presence(stems, (positions + ibi[None, :] / 6.0).ravel(),
                           np.minimum(SWING_TOLERANCE_S, np.tile(ibi, shifts.size) / 12.0))
    short = None if short is None else short.reshape(shifts.size, n_beats)

    # The backbeat: whatever the kick and bass anticipate, the snare (or clap) on 2 and 4 sits on
    # the beat in nearly every groove that has one.
    kick_snare = _kick_snare(stems, n_frames)
    snare = None
    if kick_snare is not None:
        snare = scipy.ndimage.maximum_filter1d(kick_snare[1], size=2 * half + 1, mode="constant")[idx]

    win = PHASE_WINDOW_BEATS
    starts = list(range(0, max(1, n_beats - win + 1), max(1, win // 2)))
    if starts[-1] + win < n_beats:
        starts.append(n_beats - win)
    emission = np.zeros((len(starts), shifts.size))
    for w, s0 in enumerate(starts):
        seg = slice(s0, s0 + win)
        sal_w = salience[:, seg].mean(axis=1)
        sal_w = sal_w / max(float(sal_w.max()), 1e-9)
        if presence is None:
            emission[w] = sal_w  # no drums: salience alone
        else:
            emission[w] = (presence[:, seg].mean(axis=1) + PHASE_SALIENCE_WEIGHT * sal_w
                           - SWING_SHORT_WEIGHT * short[:, seg].mean(axis=1))
            if snare is not None:
                sn = snare[:, seg].mean(axis=1)
                emission[w] += PHASE_SNARE_WEIGHT * sn / max(float(sn.max()), 1e-9)
        emission[w, 0] += PHASE_STAY_BONUS
    trans = PHASE_CHANGE_COST * (1.0 - np.eye(shifts.size))
    path, _ = _viterbi(emission, trans)
    if path.any():
        # each beat takes the shift of the window whose centre is nearest
        centres = np.asarray(starts, dtype=np.float64) + win / 2.0
        nearest = np.abs(np.arange(n_beats)[:, None] + 0.5 - centres[None, :]).argmin(axis=1)
        moved = beats_s + shifts[path[nearest]] * ibi
        # a change of shift between neighbours must not reorder or double beats
        keep = np.concatenate(([True], np.diff(moved) > 0.5 * ibi[:-1]))
        beats_s, ibi = moved[keep], ibi[keep]
    return beats_s
