"""Section boundaries (intro / verse / drop…) snapped to downbeats, from bar-synchronous features.

Each bar (downbeat to downbeat) is described by

- which stems are playing (fraction of the bar each stem is audible) — a drum entry or a breakdown
  is the clearest section change in produced music, so this carries the most weight;
- each stem's low/mid/high band level (dB relative to that stem's loudest bar, 30 dB = 1 unit);
- each stem's onset density (how busy it is);
- the harmony: chroma of the pitched (non-drum) stems, loudness-weighted, as a unit vector.

A boundary candidate at bar ``i`` scores the distance between the mean feature vector of the
``min_bars`` bars before and the ``min_bars`` bars after (a two-window novelty; Foote's checkerboard
kernel on the bar self-similarity matrix computes nearly the same thing, but this form keeps the
units readable: one stem switching on adds 1.0). Local maxima above ``NOVELTY_THRESHOLD`` are taken
strongest first, at least ``min_bars`` bars apart and from the song start.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from bridge.analysis.types import SILENCE_RMS, BeatGrid, StemFeatures
from bridge.errors import AnalysisError

#: A boundary needs at least this novelty (distance units: 1.0 = one stem switching on/off).
NOVELTY_THRESHOLD = 0.45
#: A stem counts as playing in a frame when louder than this many dB below its own peak (and
#: above SILENCE_RMS).
ACTIVE_BELOW_PEAK_DB = 40.0
#: Feature weights (see the module docstring).
ACTIVITY_WEIGHT = 1.0
LEVEL_WEIGHT = 0.7
DENSITY_WEIGHT = 0.3
CHROMA_WEIGHT = 0.6
_LEVEL_RANGE_DB = 30.0
#: Phrase length in bars and the novelty bonus of bars that start a phrase (counted from the
#: first downbeat).
PHRASE_BARS = 4
PHRASE_BONUS = 0.25


def _bars(downbeats_s: np.ndarray, duration_seconds: float) -> np.ndarray:
    """Bar start times (s) inside the song, sorted, unique, shape (n_bars,)."""
    d = np.unique(np.asarray(downbeats_s, dtype=np.float64))
    return d[(d >= 0.0) & (d < duration_seconds)]


def _bar_features(stems: Mapping[str, StemFeatures], bar_starts_s: np.ndarray,
                  duration_seconds: float) -> np.ndarray:
    """Feature matrix, shape (n_bars, n_features), in the weighted units of the module docstring."""
    n_bars = bar_starts_s.shape[0]
    bar_ends_s = np.append(bar_starts_s[1:], duration_seconds)
    columns: list[np.ndarray] = []
    chroma_sum = np.zeros((n_bars, 12))
    for stem in stems.values():
        fr = stem.frame_rate_hz
        n = stem.n_frames
        lo = np.clip(np.round(bar_starts_s * fr).astype(int), 0, n)
        hi = np.clip(np.round(bar_ends_s * fr).astype(int), 0, n)
        hi = np.maximum(hi, np.minimum(lo + 1, n))

        def bar_mean(curve: np.ndarray, lo: np.ndarray = lo, hi: np.ndarray = hi) -> np.ndarray:
            # Mean over each bar via a cumulative sum (curves may be 2-D: (..., n_frames)).
            csum = np.concatenate([np.zeros(curve.shape[:-1] + (1,)), np.cumsum(curve, axis=-1)], axis=-1)
            width = np.maximum(hi - lo, 1)
            return (csum[..., hi] - csum[..., lo]) / width

        rms = stem.curves["rms"].astype(np.float64)
        peak = float(rms.max(initial=0.0))
        if peak < SILENCE_RMS:
            active = np.zeros_like(rms)
        else:
            floor = max(SILENCE_RMS, peak * 10.0 ** (-ACTIVE_BELOW_PEAK_DB / 20.0))
            active = (rms >= floor).astype(np.float64)
        columns.append(ACTIVITY_WEIGHT * bar_mean(active))
        for band in ("low", "mid", "high"):
            level = bar_mean(stem.curves[band].astype(np.float64) ** 2)
            level_db = 10.0 * np.log10(np.maximum(level, 1e-12))
            top_db = level_db.max(initial=-120.0)
            rel = np.clip(level_db - top_db, -_LEVEL_RANGE_DB, 0.0) / _LEVEL_RANGE_DB + 1.0
            columns.append(LEVEL_WEIGHT * rel)
        onset_frames = np.zeros(n)
        idx = np.clip(np.round(stem.onsets_s * fr).astype(int), 0, n - 1)
        np.add.at(onset_frames, idx, 1.0)
        per_second = bar_mean(onset_frames) * fr
        columns.append(DENSITY_WEIGHT * np.clip(per_second / 8.0, 0.0, 1.0))
        if stem.role != "drums" and peak >= SILENCE_RMS:
            weighted = stem.curves["chroma"].astype(np.float64) * rms[None, :]
            chroma_sum += bar_mean(weighted).T
    norm = np.linalg.norm(chroma_sum, axis=1, keepdims=True)
    chroma_unit = np.divide(chroma_sum, norm, out=np.zeros_like(chroma_sum), where=norm > 1e-12)
    features = np.column_stack(columns) if columns else np.zeros((n_bars, 0))
    return np.hstack([features, CHROMA_WEIGHT * chroma_unit])


def _novelty(features: np.ndarray, width: int) -> np.ndarray:
    """Two-window novelty at each bar start, shape (n_bars,); 0 at the first bar.

    Each window is a Gaussian-tapered mean of up to ``width`` bars (weights ≈ 1, .75, .45, .2
    for width 4): the nearest bars dominate, so two changes ``width`` bars apart still give two
    separate peaks, while a whole chord progression of ``width`` bars is averaged out.
    """
    n_bars = features.shape[0]
    sigma = max(width / 2.0, 0.5)
    taper = np.exp(-0.5 * ((np.arange(width) + 0.5) / sigma) ** 2)
    out = np.zeros(n_bars)
    for i in range(1, n_bars):
        left = features[max(0, i - width) : i][::-1]  # nearest bar first
        right = features[i : min(n_bars, i + width)]
        wl, wr = taper[: left.shape[0]], taper[: right.shape[0]]
        diff = (wr @ right) / wr.sum() - (wl @ left) / wl.sum()
        out[i] = float(np.linalg.norm(diff))
    return out


def _pick(novelty: np.ndarray, *, min_bars: int) -> list[int]:
    """Bar indices of boundaries: local maxima ≥ threshold, strongest first, ≥ min_bars apart."""
    n_bars = novelty.shape[0]
    candidates = []
    for i in range(min_bars, n_bars - min_bars + 1):
        lo, hi = max(1, i - 1), min(n_bars, i + 2)
        if novelty[i] >= NOVELTY_THRESHOLD and novelty[i] >= novelty[lo:hi].max():
            candidates.append(i)
    chosen: list[int] = []
    for i in sorted(candidates, key=lambda j: -novelty[j]):
        if all(abs(i - j) >= min_bars for j in chosen):
            chosen.append(i)
    return sorted(chosen)


def detect_sections(
    stems: Mapping[str, StemFeatures],
    beat_grid: BeatGrid,
    *,
    duration_seconds: float,
    min_bars: int = 4,
) -> list[tuple[float, float]]:
    """Section boundaries at downbeats, as contiguous (start_s, end_s) pairs covering the song.

    Parameters
    ----------
    stems : mapping name → StemFeatures
    beat_grid : BeatGrid
        Boundaries are chosen among ``beat_grid.downbeats_s``.
    duration_seconds : float
        Song length; the last section ends here, the first starts at 0.
    min_bars : int
        Shortest section in bars, counted from the first downbeat (a pickup before it joins the
        first section) to the last bar start (a 2-bar outro is kept with the section before it).

    Returns
    -------
    list of (start_s, end_s)
        At least one section; ``[(0.0, duration_seconds)]`` when there are fewer than
        ``2 * min_bars`` bars, no downbeats (a silent song) or nothing changes.

    Raises
    ------
    AnalysisError
        duration_seconds ≤ 0 or min_bars < 1.
    """
    if not np.isfinite(duration_seconds) or duration_seconds <= 0:
        raise AnalysisError(
            f"duration_seconds={duration_seconds!r} is not a positive length; pass the song length "
            f"in seconds."
        )
    if not isinstance(min_bars, (int, np.integer)) or min_bars < 1:
        raise AnalysisError(
            f"min_bars={min_bars!r} must be a whole number of bars ≥ 1 (e.g. 4 or 8)."
        )
    whole = [(0.0, float(duration_seconds))]
    bar_starts = _bars(beat_grid.downbeats_s, duration_seconds)
    if bar_starts.shape[0] < 2 * min_bars or not stems:
        return whole
    features = _bar_features(stems, bar_starts, duration_seconds)
    novelty = _novelty(features, min_bars)
    # Produced music is built in 4-bar phrases: of two neighbouring candidates (a build-up bar and
    # the drop after it) the one on the phrase grid is the section start.
    novelty[::PHRASE_BARS] *= 1.0 + PHRASE_BONUS
    boundaries = _pick(novelty, min_bars=min_bars)
    edges = [0.0] + [float(bar_starts[i]) for i in boundaries] + [float(duration_seconds)]
    return [(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]
