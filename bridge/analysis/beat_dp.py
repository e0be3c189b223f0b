"""The beat tracker's dynamic program and its check of a changing tempo.

:func:`_dp_beats` is step 3 of :mod:`~bridge.analysis.beats` (Ellis 2007, "Beat tracking by
dynamic programming", with a fractional and optionally time-varying period); :func:`_refine`
places its beats between frames; :func:`_confirm_change` decides, by the same program's terms,
whether a tempo that changes during the song (from the windowed comb in
:func:`bridge.analysis.beats._local_periods`) fits the music better than one tempo.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage

from bridge.analysis.periodicity import _frame_rate_hz

#: A tempo change that is not a whole octave is kept only when, where the tempo differs, its beats
#: sit on onsets this much better than the beats of the song's one tempo, and the beat tracker's
#: objective per second is this much higher (:func:`_confirm_change`).
LOCAL_ALIGN_GAIN = 0.15
LOCAL_OBJECTIVE_GAIN = 0.3
#: A glide of the local tempo inside a stretch of STEP_REACH_S that changes by more than
#: STEP_RATIO is a step, placed where the beats fit best among at most STEP_CANDIDATES onset peaks
#: (:func:`_place_steps`); a ramp (120 → 150 BPM over 16 bars: 2 % in 2 s) is left to glide.
STEP_RATIO = 1.1
STEP_REACH_S = 8.0
STEP_CANDIDATES = 24
#: A step whose tempo ratio is within this many octaves of 2 (or 1/2) is placed by :func:`_octave_cut`.
OCTAVE_STEP_TOL = 0.06


def _local_score(envelope: np.ndarray, period: float) -> np.ndarray:
    """The onset envelope smoothed by a narrow Gaussian (σ = period / 32, as Ellis and librosa)."""
    sigma = max(period / 32.0, 0.5)
    return scipy.ndimage.gaussian_filter1d(envelope, sigma=sigma, mode="constant")


def _dp_beats(local: np.ndarray, period: float | np.ndarray, tightness: float) -> np.ndarray:
    """Ellis' beat-tracking dynamic program with a fractional, optionally time-varying period.

    C[t] = local[t] + max_{t−2P ≤ τ ≤ t−P/2} (C[τ] − α·log²((t−τ)/P)) with P = P(t) when
    ``period`` is an array (one period per frame: a tempo ramp or change). Frames are processed
    in blocks of ⌈min P/2⌉: every predecessor of a block lies before it, so each block is one
    vectorised step (≈ 40× fewer Python iterations than frame by frame). Returns beat frame indices.
    """
    n = local.shape[0]
    if n == 0:
        return np.zeros(0, dtype=int)
    periods = np.broadcast_to(np.asarray(period, dtype=np.float64), (n,))
    block = max(1, int(np.ceil(float(periods.min()) / 2.0)))
    cumscore = local.astype(np.float64).copy()
    backlink = np.full(n, -1, dtype=np.int64)
    for start in range(block, n, block):
        stop = min(n, start + block)
        p = float(periods[start])
        gaps = np.arange(max(block, int(np.ceil(p / 2.0))), int(np.floor(2.0 * p)) + 1)
        penalty = tightness * np.log(gaps / p) ** 2  # shape (n_gaps,)
        t = np.arange(start, stop)[:, None]  # (b, 1)
        pred = t - gaps[None, :]  # (b, n_gaps)
        valid = pred >= 0
        cand = np.where(valid, cumscore[np.clip(pred, 0, None)] - penalty[None, :], -np.inf)
        best = np.argmax(cand, axis=1)
        best_score = cand[np.arange(stop - start), best]
        # A chain may also start afresh here (Ellis' DP forces a predecessor, however badly
        # placed, which drags the first beats of a song towards a pickup and then drifts back).
        ok = np.isfinite(best_score) & (best_score > 0.0)
        cumscore[start:stop] = local[start:stop] + np.where(ok, best_score, 0.0)
        backlink[start:stop] = np.where(ok, pred[np.arange(stop - start), best], -1)
    # The last beat: the best-scoring frame within the final period (C only grows along a chain).
    tail_start = max(0, n - int(np.ceil(periods[-1])))
    last = tail_start + int(np.argmax(cumscore[tail_start:]))
    beats = [last]
    while backlink[beats[-1]] >= 0:
        beats.append(int(backlink[beats[-1]]))
    return np.asarray(beats[::-1], dtype=int)


def _objective_per_beat(local: np.ndarray, frames: np.ndarray, periods: np.ndarray, tightness: float) -> float:
    """The dynamic program's objective of a beat chain per beat: the mean over its gaps of the
    onset strength at the gap's end minus the tightness penalty of the gap against the period in
    force there (-inf for fewer than two beats)."""
    if frames.shape[0] < 2:
        return -np.inf
    gaps = np.diff(frames).astype(np.float64)
    return float(np.mean(local[frames[1:]] - tightness * np.log(gaps / periods[frames[1:]]) ** 2))


def _octave_cut(local: np.ndarray, slow: float, lo: int, hi: int, speeds_up: bool,
                tightness: float) -> int | None:
    """The frame where the tempo doubles (``speeds_up``) or halves within ``local[lo:hi]``, or None.

    Where the tempo steps by an octave, the slow beats go on through the change: in the fast part
    every slow beat is a beat, and so is every point half-way between two of them. Onset strength
    at those half-way points, against the slow beats either side, is low before the change (an
    8th note, or nothing) and as high as at the beats after it. So the slow grid is tracked over
    the stretch, that ratio taken per gap, and the cut put at the slow beat where a two-segment
    mean fits it best (the fast side higher). Per beat, the dynamic program's own objective cannot
    place such a step: the slow beats are the strongest either side, so it put the change late,
    by several seconds on GM renders of Freedoom songs whose tempo was doubled at a bar line."""
    frames = lo + _dp_beats(local[lo:hi], slow, tightness)
    if frames.shape[0] < 6:
        return None
    mids = np.round((frames[1:] + frames[:-1]) / 2.0).astype(int)
    ratio = 2.0 * local[mids] / (local[frames[1:]] + local[frames[:-1]] + 1e-9)
    if not speeds_up:
        ratio = ratio[::-1]
    best, best_k = 0.0, None
    for k in range(2, ratio.shape[0] - 1):
        gap = float(ratio[k:].mean() - ratio[:k].mean())
        separation = gap * np.sqrt(k * (ratio.shape[0] - k) / ratio.shape[0])
        if gap > 0 and separation > best:
            best, best_k = separation, k
    if best_k is None:
        return None
    return int(frames[best_k] if speeds_up else frames[frames.shape[0] - 1 - best_k])


def _place_steps(local: np.ndarray, periods: np.ndarray, tightness: float) -> np.ndarray:
    """``periods`` with each step in tempo made a step at the frame where the music changes.

    The local tempo (:func:`bridge.analysis.beats._local_periods`) glides from one tempo to the
    next between the centres of its 8-s windows, so around a step (a change by more than
    ``STEP_RATIO`` within ``STEP_REACH_S``) the beats were tracked at tempi the song never has: a
    6/8 song stepping from 60 to 80 dotted beats a minute had one beat 0.81 s long between beats
    of 1.0 s and 0.75 s. Each onset peak within half a window either side of the glide is tried
    as the step (the tempo before it held up to it, the tempo after it from it), and so is the
    glide itself; the one whose beats there the dynamic program scores best per beat is kept (run
    on the stretch around the step only, so a long song pays little). Letting the chain take
    either tempo anywhere in the glide instead let a groove with loud anticipations slip a 16th
    onto them. A step by an octave (80 → 160) is placed by :func:`_octave_cut` instead, where the
    per-beat score cannot see it. Ramps (a few per cent between windows) are left as they are."""
    n = periods.shape[0]
    reach = max(2, int(STEP_REACH_S * _frame_rate_hz()))
    shortest = scipy.ndimage.minimum_filter1d(periods, size=reach, mode="nearest")
    longest = scipy.ndimage.maximum_filter1d(periods, size=reach, mode="nearest")
    # the glides: where the period moves between frames, inside a stretch that changes by a step
    moving = (np.abs(np.gradient(periods)) > 1e-9) & (longest > STEP_RATIO * shortest)
    out = periods.copy()
    edges = np.flatnonzero(np.diff(np.concatenate(([0], moving.astype(np.int8), [0]))))
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        # the tempi either side, where the path has settled (it can pass through a third on the way)
        before = float(np.median(periods[max(0, a - reach) : a])) if a > 0 else float(periods[0])
        after = float(np.median(periods[b : b + reach])) if b < n else float(periods[-1])
        # the music may change anywhere the windows that saw both tempi reach, either side of the glide
        lo, hi = max(0, a - reach // 2), min(n, b + reach // 2)
        if abs(abs(np.log2(after / before)) - 1.0) <= OCTAVE_STEP_TOL:
            cut = _octave_cut(local, max(before, after), max(0, lo - reach // 2), min(n, hi + reach // 2),
                              after < before, tightness)
            if cut is not None:
                out[lo:cut], out[cut:hi] = before, after
                continue
        peaks = lo + np.flatnonzero((local[lo:hi] >= scipy.ndimage.maximum_filter1d(local[lo:hi], size=5))
                                    & (local[lo:hi] > np.median(local)))
        if peaks.size > STEP_CANDIDATES:
            peaks = peaks[np.argsort(local[peaks])[-STEP_CANDIDATES:]]
        span = slice(max(0, lo - reach), min(n, hi + reach))  # the chain around the step
        best, best_score = None, -np.inf
        for cut in np.concatenate(([-1, a, b], peaks)):
            trial = out.copy()
            if cut >= 0:  # (-1: the glide as it is)
                trial[lo:cut], trial[cut:hi] = before, after
            frames = span.start + _dp_beats(local[span], trial[span], tightness)
            # per beat around the change (a total would favour the cut that gives the most beats)
            score = _objective_per_beat(local, frames[(frames >= lo) & (frames < hi)], trial, tightness)
            if score > best_score:
                best, best_score = trial, score
        out = best
    return out


def _confirm_change(envelope: np.ndarray, period: float, varying: np.ndarray, tightness: float) -> np.ndarray | None:
    """``varying`` (per-frame periods from :func:`_local_periods`) if the beats it gives fit the
    music clearly better than those of the one ``period``, else None (keep one tempo).

    The windows' comb cannot tell a tempo change from a stretch of the song that *reads* at
    another tempo for 8 s: an intro or a solo whose groove fits a period 16-30 % off. On the dev
    sets (shared, synthetic, Freedoom 1, LMMS dev) the local path fired on 9 items: the two
    synthetic songs whose tempo changes and 7 real songs whose tempo never does, all 7 then
    wrong. Both beat sequences are judged where the tempo differs, by the beat tracker's own
    terms: how strongly their beats sit on onsets (mean smoothed onset strength at the beats) and
    the dynamic program's objective per second (onset strength at the beats minus the tightness
    penalty for straying from the period each sequence assumes: one tempo held through a ramp
    pays for every stretched beat). A change must win both, by ``LOCAL_ALIGN_GAIN`` and
    ``LOCAL_OBJECTIVE_GAIN``: on ramps and steps (synthetic band songs, drums on one stem or
    track by track) the ratios were ≥ 1.23 and ≥ 1.69; every one of the 7 false changes failed
    one of them by a wide margin (1.19 with an objective ratio of 1.00; 1.51 with 0.83 onsets).
    A change by a whole octave is kept as it is: half- and double-time beats sit on onsets
    equally well, so neither measure can judge it.
    """
    changed = np.abs(varying / period - 1.0) > 0.04
    octave = np.abs(np.abs(np.log2(varying / period)) - 1.0) <= 0.06
    if np.mean(octave[changed]) >= 0.8:  # the rest: the glide between the windows' centres
        return varying
    local = _local_score(envelope, period)
    seconds = changed.sum() / _frame_rate_hz()

    def fit(periods: float | np.ndarray) -> tuple[float, float]:
        frames = _dp_beats(local, periods, tightness)
        per = np.broadcast_to(np.asarray(periods, dtype=np.float64), local.shape)
        on = changed[frames]
        if on.sum() < 2:
            return 0.0, 0.0
        gaps = np.diff(frames).astype(np.float64)
        ends = frames[1:]
        gain = local[ends] - tightness * np.log(gaps / per[ends]) ** 2
        return float(local[frames[on]].mean()), float(gain[changed[ends]].sum() / seconds)

    (align_one, objective_one), (align_new, objective_new) = fit(period), fit(varying)
    kept = (align_new >= (1.0 + LOCAL_ALIGN_GAIN) * align_one
            and objective_new >= objective_one + LOCAL_OBJECTIVE_GAIN * abs(objective_one))
    return varying if kept else None


def _refine(local: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Sub-frame beat positions (frames, float): parabolic interpolation of the local score peak."""
    out = frames.astype(np.float64)
    n = local.shape[0]
    for i, f in enumerate(frames):
        if 1 <= f < n - 1:
            a, b, c = local[f - 1], local[f], local[f + 1]
            denom = a - 2 * b + c
            if denom < 0 and b >= a and b >= c:
                out[i] = f + float(np.clip(0.5 * (a - c) / denom, -0.5, 0.5))
    return out
