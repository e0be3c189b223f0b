"""Evaluate a project's mappings into FrameParams (one row per video frame).

Per mapping: normalised source (0..1, :mod:`bridge.mapping.sources`) → attack/release follower →
curve → ``amount · curve + offset`` → the mapping's clamp. Contributions are summed per target onto
the parameter's neutral value and clipped to the parameter's range.

Time handling
-------------
* Stem features are smoothed at their own rate (≈86 Hz), over the whole song, so a window of frames
  is identical to the same rows of the whole-song result (the follower's state never depends on
  where the window starts).
* Frame k is on screen from k/fps to (k+1)/fps (exact rational fps). Energy and onset features are
  max-pooled over that interval (plus the interpolated value at its start): a hit that falls
  between two frame instants is never lost, it is shown on the frame that is on screen when it
  happens; at most one frame early, which is the direction audiences tolerate best (a picture
  slightly ahead of the sound). On the decaying side of an envelope the max is the value at the
  frame instant, so release times are reproduced exactly.
* Oscillators are computed analytically at the frame instants (their discontinuities sit exactly
  on beats), ``*.pulse`` counts a beat inside the frame interval as a hit; their follower runs at
  the frame rate from frame 0.
* chroma is smoothed as a 2-D pitch vector (time constant max(attack_ms, release_ms)) and
  interpolated at the frame instants, then turned into a 0..1 turn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction
from math import exp

import numpy as np

from bridge.analysis.types import SongAnalysis
from bridge.errors import ProjectError
from bridge.mapping.frame_params import FrameParams
from bridge.mapping.params import PARAMETER_NAMES, PARAMETERS, is_shader_target
from bridge.mapping.sections import section_timeline
from bridge.mapping.sources import OscillatorSource, StemSource, oscillator_values, resolve_source
from bridge.project import schema

# Frame index <-> song seconds is part of the time base (bridge.timebase); re-exported here.
from bridge.timebase import frame_times as frame_times
from bridge.timebase import song_frame_count as song_frame_count
from bridge.vocab import SectionLook

#: ``exp`` curve: (e^(k·x) − 1) / (e^k − 1), k = EXP_CURVE_K (slow start, steep end).
EXP_CURVE_K = 4.0


def _coefficient(time_ms: float, rate_hz: float) -> float:
    """One-pole smoothing coefficient for a time constant (ms) at a sample rate; 0 ms → 1 (no smoothing)."""
    if time_ms <= 0.0:
        return 1.0
    return 1.0 - exp(-1000.0 / (time_ms * rate_hz))


def envelope_follower(x: np.ndarray, *, rate_hz: float, attack_ms: float, release_ms: float) -> np.ndarray:
    """One-pole follower with separate attack and release time constants, starting from 0.

    y[n] = y[n-1] + a·(x[n] − y[n-1]) with a = 1 − exp(−1/(τ·rate)), τ = attack_ms when the input
    is above the output, release_ms otherwise: after a step up/down the output has moved 63 % of
    the way after τ. x: shape (n,) → shape (n,) float64.

    The asymmetric follower is non-linear (the branch depends on the output), so it cannot be an
    ``lfilter``; it is a plain loop over Python floats (≈6 ms for 31k samples, a 6-minute song at
    86 Hz). Equal attack and release use ``lfilter``.
    """
    x = np.asarray(x, dtype=np.float64)
    a_att = _coefficient(attack_ms, rate_hz)
    a_rel = _coefficient(release_ms, rate_hz)
    if a_att == 1.0 and a_rel == 1.0:
        return x.copy()
    if a_att == a_rel:
        from scipy.signal import lfilter  # lazy: scipy.signal takes ~0.5 s to import

        return lfilter([a_att], [1.0, a_att - 1.0], x)
    out = [0.0] * x.size
    y = 0.0
    for i, v in enumerate(x.tolist()):
        y += (a_att if v > y else a_rel) * (v - y)
        out[i] = y
    return np.asarray(out, dtype=np.float64)


def integrate_rate(rate: np.ndarray, *, offset: float = 0.0) -> np.ndarray:
    """Running sum of a per-frame rate (an integrated parameter's column), starting at ``offset``
    (the sum over the frames before this window). Wrapped to [0, 1): integrated parameters are
    phases (turns), and float32 tables keep their precision that way over long songs."""
    return np.mod(offset + np.cumsum(rate, dtype=np.float64), 1.0)


def apply_curve(x: np.ndarray, curve: str) -> np.ndarray:
    """Shape a 0..1 signal (clipped to 0..1 first): linear, exp (slow start), smoothstep (3x² − 2x³)."""
    x = np.clip(x, 0.0, 1.0)
    if curve == "linear":
        return x
    if curve == "exp":
        return np.expm1(EXP_CURVE_K * x) / np.expm1(EXP_CURVE_K)
    if curve == "smoothstep":
        return x * x * (3.0 - 2.0 * x)
    raise ProjectError(f"mapping curve {curve!r} is unknown; use linear, exp or smoothstep")


def _pool_to_frames(y: np.ndarray, rate_hz: float, edges_s: np.ndarray, *, transient: bool) -> np.ndarray:
    """Resample a feature-rate signal to frames: value at each frame instant (linear
    interpolation), and for transient signals the max with every sample inside [t_k, t_k+1)."""
    sample_times = np.arange(y.size, dtype=np.float64) / rate_hz
    starts = edges_s[:-1]
    at_start = np.interp(starts, sample_times, y) if y.size else np.zeros(starts.size)
    if not transient or y.size == 0:
        return at_start
    pos = edges_s * rate_hz
    idx = np.clip(np.ceil(pos - 1e-9).astype(np.int64), 0, y.size)
    lo, hi = idx[:-1], idx[1:]
    nonempty = hi > lo
    if not nonempty.any():
        return at_start
    # reduceat over interleaved [lo, hi) pairs; a -inf sentinel keeps hi == y.size a valid index.
    y_ext = np.append(y, -np.inf)
    pairs = np.stack([lo[nonempty], hi[nonempty]], axis=1).ravel()
    seg_max = np.maximum.reduceat(y_ext, pairs)[::2]
    out = at_start.copy()
    out[nonempty] = np.maximum(at_start[nonempty], seg_max)
    return out


def _stem_signal(src: StemSource, m: schema.Mapping, edges_s: np.ndarray) -> np.ndarray:
    rate = src.rate_hz
    if src.feature == "chroma":
        z = src.chroma_vector
        assert z is not None
        # One symmetric time constant (attack/release of a direction make no sense): the slower
        # of the two, so a mapping left at the default 5 ms attack does not flicker with every note.
        a = _coefficient(max(m.attack_ms, m.release_ms), rate)
        if a < 1.0:
            from scipy.signal import lfilter  # lazy: scipy.signal takes ~0.5 s to import

            z = lfilter([a], [1.0, a - 1.0], z)
        sample_times = np.arange(z.size, dtype=np.float64) / rate
        starts = edges_s[:-1]
        re = np.interp(starts, sample_times, z.real)
        im = np.interp(starts, sample_times, z.imag)
        return np.mod(np.arctan2(im, re) / (2.0 * np.pi), 1.0)
    assert src.values is not None
    x = src.values
    if src.feature == "onsets" and src.onsets_s is not None and m.release_ms > 0:
        # Put each impulse on the first sample at/after the onset, already decayed by the release
        # for the fraction of a sample it arrives late: the follower's output then equals the
        # continuous-time one-pole at every sample (exactly so for attack 0).
        n = x.size
        pos = src.onsets_s * rate
        idx = np.ceil(pos - 1e-9).astype(np.int64)
        keep = (idx >= 0) & (idx < n)
        amp = np.exp(-(idx[keep] - pos[keep]) / (m.release_ms * 1e-3 * rate))
        x = np.zeros(n, dtype=np.float64)
        np.maximum.at(x, idx[keep], amp)
    # The follower is causal: samples after the window's last frame cannot change it, so they are
    # not computed (a window near the song start is cheap; the rows stay identical).
    needed = int(np.ceil(edges_s[-1] * rate)) + 2
    if needed < x.size:
        x = x[:needed]
    y = envelope_follower(x, rate_hz=rate, attack_ms=m.attack_ms, release_ms=m.release_ms)
    return _pool_to_frames(y, rate, edges_s, transient=src.transient)


def _oscillator_signal(
    src: OscillatorSource, m: schema.Mapping, analysis: SongAnalysis, fps: Fraction, start_frame: int, n_frames: int
) -> np.ndarray:
    smoothing = m.attack_ms > 0 or m.release_ms > 0
    # The follower's state depends on every earlier frame, so it starts at frame 0 (cheap: one
    # value per frame) and the window is cut out afterwards.
    first = 0 if smoothing and start_frame > 0 else start_frame
    count = start_frame + n_frames - first
    edges = frame_times(fps, first, count)
    x = oscillator_values(src, analysis.beat_grid, edges[:-1], interval_end_s=edges[1:])
    if smoothing:
        x = envelope_follower(x, rate_hz=float(fps), attack_ms=m.attack_ms, release_ms=m.release_ms)
    return x[start_frame - first:]


def mapping_contribution(
    m: schema.Mapping,
    src: StemSource | OscillatorSource,
    analysis: SongAnalysis,
    *,
    fps: Fraction,
    start_frame: int,
    edges_s: np.ndarray,
) -> np.ndarray:
    """What one mapping adds to its target on frames ``start_frame …``: source → smoothing → curve
    → × amount + offset → clamp. Shape (len(edges_s) - 1,), float64. ``edges_s`` are the frame
    interval edges from :func:`frame_times`. Exposed so incremental evaluators (the preview
    scheduler memoises per mapping) compute exactly what :func:`evaluate_mappings` does."""
    return scale_contribution(m, mapping_signal(m, src, analysis, fps=fps, start_frame=start_frame, edges_s=edges_s))


def mapping_signal(
    m: schema.Mapping,
    src: StemSource | OscillatorSource,
    analysis: SongAnalysis,
    *,
    fps: Fraction,
    start_frame: int,
    edges_s: np.ndarray,
) -> np.ndarray:
    """The first half of :func:`mapping_contribution`: source → smoothing → curve. It reads only
    the mapping's source, attack_ms, release_ms and curve, so an incremental evaluator can keep it
    while amount, offset or clamp change (the usual slider drags)."""
    n_frames = len(edges_s) - 1
    if isinstance(src, OscillatorSource):
        x = _oscillator_signal(src, m, analysis, fps, start_frame, n_frames)
    else:
        x = _stem_signal(src, m, edges_s)
    return apply_curve(x, m.curve)


def scale_contribution(m: schema.Mapping, shaped: np.ndarray) -> np.ndarray:
    """The second half of :func:`mapping_contribution`: × amount + offset → clamp."""
    contribution = m.amount * shaped + m.offset
    if m.clamp is not None:
        contribution = np.clip(contribution, m.clamp[0], m.clamp[1])
    return contribution


def column_names(mappings: Sequence[schema.Mapping]) -> tuple[str, ...]:
    """FrameParams columns for these mappings: every visual parameter, then the ``shader:NAME``
    targets that enabled mappings drive (sorted; neutral 0, not clipped: the shader engine adds them
    to the input's DEFAULT and clamps to its MIN/MAX)."""
    extra = sorted({m.target for m in mappings if m.enabled and is_shader_target(m.target)})
    return PARAMETER_NAMES + tuple(extra)


def evaluate_mappings(
    mappings: Sequence[schema.Mapping],
    analysis: SongAnalysis,
    sections: Sequence[SectionLook],
    *,
    fps: Fraction,
    start_frame: int = 0,
    n_frames: int | None = None,
    stem_roles: Mapping[str, str] | None = None,
) -> FrameParams:
    """Visual parameters for frames ``start_frame … start_frame + n_frames − 1``.

    Parameters
    ----------
    mappings: the project's mappings; disabled ones are skipped.
    analysis: features of every stem plus the beat grid.
    sections: resolved sections (:func:`bridge.mapping.sections.resolve_sections`).
    fps: exact frame rate; frame k is at k/fps seconds.
    n_frames: None → to the end of the song, ceil(duration · fps) frames in all.
    stem_roles: stem name → role, overriding the roles stored in the analysis.

    Returns
    -------
    FrameParams with values float32 (n_frames, len(PARAMETER_NAMES)); the rows equal the same rows
    of the whole-song evaluation.

    Raises
    ------
    ProjectError: an unknown source (the message lists the valid ones) or a bad window.
    """
    fps = Fraction(fps)
    if fps <= 0:
        raise ProjectError(f"fps {fps} must be positive, e.g. 30 or 30000/1001")
    if start_frame < 0:
        raise ProjectError(f"start_frame {start_frame} must be >= 0 (frame 0 is the song start)")
    if n_frames is None:
        n_frames = max(0, song_frame_count(analysis.duration_seconds, fps) - start_frame)
    if n_frames < 0:
        raise ProjectError(f"n_frames {n_frames} must be >= 0")

    edges = frame_times(fps, start_frame, n_frames)
    names = column_names(mappings)
    values = np.zeros((n_frames, len(names)), dtype=np.float64)
    for j, name in enumerate(PARAMETER_NAMES):
        values[:, j] = PARAMETERS[name].neutral
    # Integrated parameters need their rate from the song's first frame: the window's rows hold
    # the running sum, which must equal the whole-song evaluation's.
    integrated = {m.target for m in mappings if m.enabled and m.target in PARAMETERS and PARAMETERS[m.target].integrated}
    head_edges = frame_times(fps, 0, start_frame) if integrated and start_frame > 0 else None
    heads: dict[str, np.ndarray] = {t: np.full(start_frame, PARAMETERS[t].neutral) for t in integrated}

    for m in mappings:
        if not m.enabled:
            continue
        src = resolve_source(m.source, analysis, stem_roles=stem_roles)
        values[:, names.index(m.target)] += mapping_contribution(
            m, src, analysis, fps=fps, start_frame=start_frame, edges_s=edges)
        if head_edges is not None and m.target in heads:
            heads[m.target] += mapping_contribution(m, src, analysis, fps=fps, start_frame=0, edges_s=head_edges)

    for j, name in enumerate(PARAMETER_NAMES):
        p = PARAMETERS[name]
        np.clip(values[:, j], p.minimum, p.maximum, out=values[:, j])
        if p.integrated:
            head = heads.get(name)
            offset = float(np.sum(np.clip(head, p.minimum, p.maximum))) if head is not None else 0.0
            values[:, j] = integrate_rate(values[:, j], offset=offset)

    section_index, section_mix = section_timeline(sections, edges[:-1], edges[1:])
    return FrameParams(
        fps=fps,
        start_frame=start_frame,
        values=values.astype(np.float32),
        section_index=section_index,
        section_mix=section_mix,
        names=names,
    )
