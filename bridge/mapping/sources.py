"""Mapping sources: ``<stem>.<feature>`` curves and beat-locked oscillators, normalised to 0..1.

A source string is one of

* ``<stem>.<feature>``: ``<stem>`` is a stem name of the project (exact, then case-insensitive) or
  a role (``drums``, ``bass``, ``vocals``, ``other``…). A role that matches several stems combines
  them (see :func:`resolve_source`). ``<feature>`` is one of :data:`STEM_FEATURES`.
* ``beat.<shape>`` / ``bar.<shape>``: an oscillator whose phase comes from the detected beats /
  downbeats (interpolated between them, so it follows tempo drift), shapes :data:`OSCILLATOR_SHAPES`.

Every source is normalised to 0..1 so that a mapping's ``amount`` means the same thing everywhere.
Energy curves are divided by a robust maximum (the 98th percentile of the non-silent part of the
song), so one loud hit does not squash the rest of the song into the bottom of the range.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from bridge.analysis.types import SongAnalysis, StemFeatures
from bridge.errors import AnalysisError, ProjectError

# Re-exported from the bottom layer, where mappings have always found them: song time <-> beat (or
# bar) position on a beat grid (bridge.timebase), and MIX, the source prefix for the mix as heard
# (``mix.onset``, ``mix.rms``…, unless a stem or role is named so; in bridge.vocab because project
# presets need it below this layer).
from bridge.timebase import DEFAULT_TEMPO_BPM as DEFAULT_TEMPO_BPM
from bridge.timebase import BeatGrid
from bridge.timebase import beat_position as beat_position
from bridge.timebase import beat_time as beat_time
from bridge.vocab import MIX, names_matching

#: Features of a stem a mapping can read. ``chroma`` becomes a hue-like scalar (circular mean of
#: the pitch-class vector, C = 0.0, C# = 1/12, …); ``onsets`` is the onset event list as impulses;
#: ``hits`` the same impulses sized by how strong each onset is (the onset curve's peak there,
#: normalised like ``onset``): one frame per hit, so a hit moves the picture on exactly that frame.
#: ``kick``, ``snare`` and ``hats``: the hits of that part of a drum kit inside the stem
#: (:mod:`bridge.analysis.drum_parts`; a kit bounced as one stem, or Demucs' drums), peaks only,
#: each on its own frame and sized by the hit, like ``onset``.
DRUM_PART_FEATURES = ("kick", "snare", "hats")
STEM_FEATURES = ("rms", "low", "mid", "high", "onset", "centroid", "chroma", "onsets", "hits",
                 *DRUM_PART_FEATURES)
#: Oscillator shapes, available as ``beat.<shape>`` and ``bar.<shape>``.
OSCILLATOR_SHAPES = ("sin", "saw", "square", "tri", "pulse", "tick")
OSCILLATOR_CLOCKS = ("beat", "bar")
OSCILLATOR_SOURCES = tuple(f"{c}.{s}" for c in OSCILLATOR_CLOCKS for s in OSCILLATOR_SHAPES)

#: Features whose peaks are short events: when resampled to video frames they are max-pooled over
#: each frame's interval so a hit between two frame instants is never lost.
TRANSIENT_FEATURES = frozenset({"rms", "low", "mid", "high", "onset", "onsets", "hits", *DRUM_PART_FEATURES})

#: Percentile used as the robust maximum of energy curves.
ROBUST_PERCENTILE = 98.0
#: Frames quieter than this fraction of the song's near-peak level (−60 dB) count as silence and
#: are left out of the robust maximum (a vocal that sings for 10 % of the song still reaches 1.0).
SILENCE_FRACTION = 1e-3
#: ``beat.pulse``: exp(-PULSE_DECAY_PER_PHASE · phase), i.e. 1 on the beat, ≈0.02 by the next beat.
PULSE_DECAY_PER_PHASE = 4.0
#: Minimum span (octaves) of the centroid normalisation, so a stem of steady timbre does not have its
#: tiny centroid jitter stretched over the whole 0..1 range.
CENTROID_MIN_SPAN_OCTAVES = 2.0


@dataclass(frozen=True)
class StemSource:
    """A resolved ``<stem>.<feature>`` source.

    values: float64, shape (n,), in 0..1 at ``rate_hz`` (all features except chroma).
    chroma_vector: complex128, shape (n,), only for ``chroma``: the loudness-weighted circular mean
        of the pitch-class vector (angle = pitch class as a turn, |z| ≤ 1 = how tonal and loud).
        It is smoothed as a vector (so C → B does not sweep through every hue) and turned into a
        0..1 turn after smoothing.
    onsets_s: onset times (seconds), only for ``onsets``, used for sub-sample exact impulses.
    """

    source: str
    stems: tuple[str, ...]
    feature: str
    rate_hz: float
    values: np.ndarray | None
    chroma_vector: np.ndarray | None = None
    onsets_s: np.ndarray | None = None
    combine: Literal["single", "max", "weighted"] = "single"

    @property
    def transient(self) -> bool:
        return self.feature in TRANSIENT_FEATURES


@dataclass(frozen=True)
class OscillatorSource:
    """A resolved ``beat.<shape>`` / ``bar.<shape>`` source; evaluated analytically at frame times."""

    source: str
    clock: Literal["beat", "bar"]
    shape: str


Source = StemSource | OscillatorSource


# ---------------------------------------------------------------------------------------------
# Beat-locked oscillators (song time <-> beat position: bridge.timebase)
# ---------------------------------------------------------------------------------------------


def oscillator_values(
    source: OscillatorSource, beat_grid: BeatGrid, times_s: np.ndarray, *, interval_end_s: np.ndarray | None = None
) -> np.ndarray:
    """Oscillator value (0..1) at song times, shape (n,).

    sin: 0.5 + 0.5·sin(2π·phase); saw: phase (0 on the beat, →1 just before the next);
    square: 1 in the first half of the beat; tri: 0 on the beat, 1 half-way; pulse: 1 on the beat,
    decaying as exp(-4·phase); tick: 1 on the one frame that holds the beat, else 0 (an impulse: as
    the rate of an integrated parameter it steps once per beat). ``interval_end_s`` (same shape):
    for ``pulse`` and ``tick`` a beat that falls inside [times_s, interval_end_s) counts as hit, so a
    video frame never misses the beat between two frame instants.
    """
    pos = beat_position(times_s, beat_grid, clock=source.clock)
    phase = pos - np.floor(pos)
    shape = source.shape
    if shape == "sin":
        return 0.5 + 0.5 * np.sin(2.0 * np.pi * phase)
    if shape == "saw":
        return phase
    if shape == "square":
        return (phase < 0.5).astype(np.float64)
    if shape == "tri":
        return 1.0 - np.abs(2.0 * phase - 1.0)
    if shape in ("pulse", "tick"):
        out = np.exp(-PULSE_DECAY_PER_PHASE * phase) if shape == "pulse" else (phase < 1e-9).astype(np.float64)
        if interval_end_s is not None:
            pos_end = beat_position(interval_end_s, beat_grid, clock=source.clock)
            hit = np.ceil(pos) < pos_end
            if shape == "tick":
                out = np.where(hit, 1.0, 0.0)
            else:
                out[hit] = 1.0
        return out
    raise AssertionError(shape)  # resolve_source only lets known shapes through


# ---------------------------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------------------------


def robust_normalise(curve: np.ndarray, *, percentile: float = ROBUST_PERCENTILE) -> np.ndarray:
    """Scale a non-negative curve to 0..1 by its robust maximum, shape preserved.

    The reference is the ``percentile`` of the non-silent samples (those above SILENCE_FRACTION of
    the 99.5th percentile); values above it clip to 1. An all-silent curve gives zeros.
    """
    x = np.nan_to_num(np.asarray(curve, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    x = np.maximum(x, 0.0)
    if x.size == 0:
        return x
    near_peak = float(np.percentile(x, 99.5))
    if near_peak <= 0.0:
        near_peak = float(x.max())
        if near_peak <= 0.0:
            return np.zeros_like(x)
    active = x[x > near_peak * SILENCE_FRACTION]
    ref = float(np.percentile(active, percentile)) if active.size else near_peak
    if ref <= 0.0:
        ref = near_peak
    return np.clip(x / ref, 0.0, 1.0)


def _active_mask(stem: StemFeatures) -> np.ndarray:
    rms = np.nan_to_num(np.asarray(stem.curves["rms"], dtype=np.float64))
    near_peak = float(np.percentile(rms, 99.5)) if rms.size else 0.0
    return rms > max(near_peak * SILENCE_FRACTION, 1e-9)


def normalised_centroid(stem: StemFeatures) -> np.ndarray:
    """Spectral centroid as 0..1 on a log-frequency scale, per stem: the 2nd..98th percentile of
    log2(centroid) over the stem's non-silent frames maps to 0..1 (span at least
    CENTROID_MIN_SPAN_OCTAVES). Silent frames are 0."""
    c = np.nan_to_num(np.asarray(stem.curves["centroid"], dtype=np.float64))
    active = _active_mask(stem) & (c > 0)
    out = np.zeros_like(c)
    if not active.any():
        return out
    log_c = np.log2(c[active])
    lo, hi = np.percentile(log_c, [2.0, 98.0])
    if hi - lo < CENTROID_MIN_SPAN_OCTAVES:
        mid = 0.5 * (hi + lo)
        lo, hi = mid - CENTROID_MIN_SPAN_OCTAVES / 2, mid + CENTROID_MIN_SPAN_OCTAVES / 2
    out[active] = np.clip((log_c - lo) / (hi - lo), 0.0, 1.0)
    return out


_PITCH_CLASS_PHASORS = np.exp(2j * np.pi * np.arange(12) / 12.0)


def chroma_vector(stem: StemFeatures) -> np.ndarray:
    """Loudness-weighted circular mean of the chroma, complex, shape (n_frames,).

    z = rms01 · Σ_k c_k e^{2πik/12} / Σ_k c_k: its angle is the "average" pitch class (a turn, C = 0)
    and its magnitude says how tonal and how loud the frame is, so quiet or noisy frames barely pull
    the hue when it is smoothed.
    """
    c = np.nan_to_num(np.asarray(stem.curves["chroma"], dtype=np.float64))
    if c.ndim != 2 or c.shape[0] != 12:
        raise AnalysisError(
            f"stem {stem.name!r} has a chroma of shape {c.shape}, expected (12, n_frames); "
            "re-run the analysis of this stem"
        )
    c = np.maximum(c, 0.0)
    total = c.sum(axis=0)
    z = (_PITCH_CLASS_PHASORS @ c) / np.maximum(total, 1e-12)
    weight = robust_normalise(stem.curves["rms"])
    n = min(z.size, weight.size)
    return z[:n] * weight[:n]


def onset_impulses(onsets_s: np.ndarray, *, rate_hz: float, n: int) -> np.ndarray:
    """Unit impulses at the onset times, on the sample at or after each onset, shape (n,)."""
    out = np.zeros(n, dtype=np.float64)
    idx = np.ceil(np.asarray(onsets_s, dtype=np.float64) * rate_hz - 1e-9).astype(np.int64)
    idx = idx[(idx >= 0) & (idx < n)]
    out[idx] = 1.0
    return out


#: ``onset`` keeps only its local maxima within ±this many curve samples (±23 ms).
ONSET_PEAK_HALF_WIDTH = 2


def onset_peaks(onset: np.ndarray) -> np.ndarray:
    """The onset-strength curve with everything but its local peaks set to 0.

    The spectral flux rises a sample or two before the hit (the analysis window is 93 ms wide and
    centred): pooled into video frames, that rise would start the visual event on the frame
    *before* the one that holds the hit. Keeping the peaks (each at its own time, with its own
    strength) puts every event on the right frame, sized by the hit."""
    import scipy.ndimage  # lazy, as elsewhere in mapping: scipy's submodules are slow to import

    size = 2 * ONSET_PEAK_HALF_WIDTH + 1
    local_max = scipy.ndimage.maximum_filter1d(onset, size=size, mode="nearest")
    return np.where(onset >= local_max, onset, 0.0)


#: ``hits``: an onset's strength is the onset curve's maximum within this many seconds of it.
HIT_PEAK_WINDOW_S = 0.03


def hit_impulses(stem: StemFeatures) -> np.ndarray:
    """Impulses at the stem's onsets sized by their strength, shape (n_frames,), 0..1.

    Each onset puts, on the curve sample at or after it, the robust-normalised onset curve's
    maximum within ±HIT_PEAK_WINDOW_S (so a ghost note is small and an accent large)."""
    onset = robust_normalise(stem.curves["onset"])
    n = onset.size
    rate = float(stem.frame_rate_hz)
    out = np.zeros(n, dtype=np.float64)
    if n == 0 or stem.onsets_s.size == 0:
        return out
    half = max(1, int(round(HIT_PEAK_WINDOW_S * rate)))
    import scipy.ndimage  # lazy, as elsewhere in mapping: scipy's submodules are slow to import

    peak = scipy.ndimage.maximum_filter1d(onset, size=2 * half + 1, mode="nearest")
    idx = np.ceil(np.asarray(stem.onsets_s, dtype=np.float64) * rate - 1e-9).astype(np.int64)
    idx = idx[(idx >= 0) & (idx < n)]
    np.maximum.at(out, idx, peak[idx])
    return out


def source_stem(analysis: SongAnalysis, key: str) -> StemFeatures:
    """The features a resolved source's ``stems`` entry names: a stem, or the mix (``mix``)."""
    if key == MIX and key not in analysis.stems and analysis.mix is not None:
        return analysis.mix
    return analysis.stems[key]


# ---------------------------------------------------------------------------------------------
# Resolving a source string
# ---------------------------------------------------------------------------------------------


def _roles(analysis: SongAnalysis, stem_roles: Mapping[str, str] | None) -> dict[str, str]:
    roles = {}
    for key, stem in analysis.stems.items():
        role = (stem_roles or {}).get(key, (stem_roles or {}).get(stem.name, stem.role))
        roles[key] = str(role).strip().lower()
    return roles


def valid_sources(analysis: SongAnalysis, *, stem_roles: Mapping[str, str] | None = None) -> list[str]:
    """Every source string that resolves for this analysis (stem names, then roles, then oscillators)."""
    roles = _roles(analysis, stem_roles)
    names = list(analysis.stems)
    role_names = [r for r in dict.fromkeys(roles.values()) if r not in names]
    out = [f"{n}.{f}" for n in [*names, *role_names] for f in STEM_FEATURES]
    if MIX not in names and MIX not in role_names:
        out += [f"{MIX}.{f}" for f in STEM_FEATURES]
    return out + list(OSCILLATOR_SOURCES)


def match_stems(stem_part: str, stems: Sequence[tuple[str, str, str]]) -> tuple[str, ...]:
    """Which stems the ``<stem>`` part of a source names; ``stems``: (key, name, role) triples, role
    stripped and lower-case. A key or name as written wins, then one ignoring case, then every stem
    with that role (several: the source combines them). Empty: no stem (``mix``, an oscillator, a
    typo, or a name that differs only in case from two stems' names: :func:`ambiguous_stems`).
    Names match as :func:`bridge.vocab.names_matching` says, as ``fx --stem`` does. The GUI's
    per-stem mapping list uses the same rules (Session.mapping_indices)."""
    by_name = _stems_named(stem_part, stems)
    if len(by_name) == 1:
        return by_name
    if by_name:
        return ()  # ambiguous: no guess (resolve_source says which stems it could be)
    folded = stem_part.casefold()
    return tuple(k for k, _, role in stems if role == folded)


def ambiguous_stems(stem_part: str, stems: Sequence[tuple[str, str, str]]) -> tuple[str, ...]:
    """The stems (keys) ``stem_part`` could mean when it names several in different cases (``Drums``
    and ``drums``); empty when it names one stem or none."""
    hits = _stems_named(stem_part, stems)
    return hits if len(hits) > 1 else ()


def _stems_named(stem_part: str, stems: Sequence[tuple[str, str, str]]) -> tuple[str, ...]:
    """Keys of the stems whose key or name ``stem_part`` spells (exactly: that one; else ignoring case)."""
    if stem_part in (k for k, _, _ in stems):
        return (stem_part,)
    key_of: dict[str, str] = {}
    for k, name, _ in stems:
        key_of.setdefault(name, k)
        key_of.setdefault(k, k)
    return tuple(dict.fromkeys(key_of[n] for n in names_matching(stem_part, key_of)))


def _match_stems(
    stem_part: str, analysis: SongAnalysis, roles: dict[str, str]
) -> tuple[str, ...]:
    return match_stems(stem_part, [(k, s.name, roles[k]) for k, s in analysis.stems.items()])


#: Resolved sources per analysis object (analyses are immutable): editing one mapping in the GUI
#: re-evaluates without re-normalising every curve. Entries go away with the analysis.
_SOURCE_CACHE: weakref.WeakKeyDictionary[SongAnalysis, dict[tuple, Source]] = weakref.WeakKeyDictionary()


def resolve_source(
    source: str, analysis: SongAnalysis, *, stem_roles: Mapping[str, str] | None = None
) -> Source:
    """Turn a source string into normalised data at the feature rate (or an oscillator); cached
    per analysis object. See :func:`_resolve_source` for the rules."""
    key = (source, tuple(sorted((stem_roles or {}).items())))
    try:
        per_analysis = _SOURCE_CACHE.setdefault(analysis, {})
    except TypeError:  # not weak-referenceable (a subclass with __slots__): no caching
        return _resolve_source(source, analysis, stem_roles=stem_roles)
    hit = per_analysis.get(key)
    if hit is None:
        hit = _resolve_source(source, analysis, stem_roles=stem_roles)
        if isinstance(hit, StemSource):  # shared between calls: make the arrays read-only
            for arr in (hit.values, hit.chroma_vector, hit.onsets_s):
                if arr is not None:
                    arr.flags.writeable = False
        per_analysis[key] = hit
    return hit


def _resolve_source(
    source: str, analysis: SongAnalysis, *, stem_roles: Mapping[str, str] | None = None
) -> Source:
    """Turn a source string into normalised data at the feature rate (or an oscillator).

    A role matching several stems combines them: energy curves (rms/low/mid/high/onset) and onsets
    by element-wise **max** of the per-stem normalised curves (keeps 0..1; the loudest stem leads),
    centroid by the rms-weighted mean, chroma by the **sum** of the loudness-weighted pitch vectors.

    Raises
    ------
    ProjectError
        unknown stem/role or feature; the message lists the valid choices.
    """
    text = source.strip()
    stem_part, sep, feature = text.rpartition(".")
    if not sep or not stem_part or not feature:
        raise ProjectError(
            f"mapping source {source!r} must look like 'stem.feature' (e.g. 'drums.onset') "
            f"or an oscillator ({', '.join(OSCILLATOR_SOURCES)})"
        )
    roles = _roles(analysis, stem_roles)
    keys = _match_stems(stem_part, analysis, roles)
    mix_stem = None
    if not keys and stem_part.lower() == MIX and analysis.stems:
        # The mix as heard; without its analysis (an older cache, a bare analyze_song), every stem.
        if analysis.mix is not None:
            mix_stem = analysis.mix
            keys = (MIX,)  # SongAnalysis.mix, not a stem: consumers look it up with source_stem()
        else:
            keys = tuple(analysis.stems)

    if not keys and stem_part.lower() in OSCILLATOR_CLOCKS:
        shape = feature.lower()
        if shape not in OSCILLATOR_SHAPES:
            raise ProjectError(
                f"mapping source {source!r}: {shape!r} is not an oscillator shape; "
                f"use one of {', '.join(f'{stem_part.lower()}.{s}' for s in OSCILLATOR_SHAPES)}"
            )
        return OscillatorSource(source=text, clock=stem_part.lower(), shape=shape)  # type: ignore[arg-type]

    if not keys:
        stem_list = ", ".join(analysis.stems) or "(none analysed)"
        several = ambiguous_stems(stem_part, [(k, st.name, roles[k]) for k, st in analysis.stems.items()])
        if several:
            raise ProjectError(
                f"mapping source {source!r}: {stem_part!r} is ambiguous: the stems "
                f"{' and '.join(repr(k) for k in several)} differ only in case; write the stem's name exactly "
                f"as it is spelled (e.g. '{several[0]}.{feature}'). Stems: {stem_list}"
            )
        role_list = ", ".join(dict.fromkeys(roles.values())) or "(none)"
        raise ProjectError(
            f"mapping source {source!r}: there is no stem or role named {stem_part!r}. "
            f"Stems: {stem_list}; roles: {role_list}; oscillators: {', '.join(OSCILLATOR_SOURCES)}. "
            "Fix the mapping's source or add/rename the stem."
        )
    feature = feature.lower()
    if feature not in STEM_FEATURES:
        raise ProjectError(
            f"mapping source {source!r}: {feature!r} is not a stem feature; "
            f"valid features are {', '.join(STEM_FEATURES)} (e.g. '{stem_part}.onset')"
        )

    stems = [mix_stem] if mix_stem is not None else [analysis.stems[k] for k in keys]
    rate = float(stems[0].frame_rate_hz)
    for s in stems[1:]:
        if abs(float(s.frame_rate_hz) - rate) > 1e-9:
            raise AnalysisError(
                f"stems {stems[0].name!r} and {s.name!r} were analysed at different curve rates "
                f"({rate} Hz vs {s.frame_rate_hz} Hz); re-run the analysis"
            )
    n = max(s.n_frames for s in stems)
    combine: Literal["single", "max", "weighted"] = "single" if len(stems) == 1 else (
        "weighted" if feature in ("centroid", "chroma") else "max"
    )

    def padded(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return x if x.size == n else np.pad(x[:n], (0, n - min(x.size, n)))

    for s in stems:
        needed = {"chroma": "chroma", "onsets": "rms", "hits": "onset"}.get(feature, feature)
        if needed not in s.curves:
            raise AnalysisError(
                f"stem {s.name!r} has no {needed!r} curve (it has {', '.join(s.curves)}); "
                "re-run the analysis of this stem"
            )

    if feature == "chroma":
        z = np.zeros(n, dtype=np.complex128)
        for s in stems:
            v = chroma_vector(s)
            z += padded(v.real) + 1j * padded(v.imag)
        return StemSource(text, keys, feature, rate, None, chroma_vector=z, combine=combine)
    if feature == "onsets":
        onsets = np.unique(np.concatenate([np.asarray(s.onsets_s, dtype=np.float64).ravel() for s in stems]))
        values = onset_impulses(onsets, rate_hz=rate, n=n)
        return StemSource(text, keys, feature, rate, values, onsets_s=onsets, combine=combine)
    if feature == "hits":
        values = np.max([padded(hit_impulses(s)) for s in stems], axis=0)
        return StemSource(text, keys, feature, rate, values, combine=combine)
    if feature == "centroid":
        cents = [padded(normalised_centroid(s)) for s in stems]
        if len(stems) == 1:
            values = cents[0]
        else:
            weights = [padded(robust_normalise(s.curves["rms"])) for s in stems]
            wsum = np.sum(weights, axis=0)
            values = np.sum([c * w for c, w in zip(cents, weights, strict=True)], axis=0) / np.maximum(wsum, 1e-12)
        return StemSource(text, keys, feature, rate, values, combine=combine)
    # ``onset`` reads the mix's short-window curve where there is one (bridge.analysis.features.
    # fine_onset). Normalised like the others: the 98th percentile clips the strongest hits to one
    # size, which keeps a transition on more beats than 99–99.5 would (av_sync dev songs: BAS worst
    # 0.89 vs 0.73–0.83) for a little less onset–motion correlation (mean 0.78 vs 0.80).
    curve = "onset_fine" if feature == "onset" and all("onset_fine" in s.curves for s in stems) else feature
    values = np.max([padded(robust_normalise(s.curves[curve])) for s in stems], axis=0)
    if feature == "onset" or feature in DRUM_PART_FEATURES:
        values = onset_peaks(values)
    return StemSource(text, keys, feature, rate, values, combine=combine)
