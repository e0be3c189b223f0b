"""Source-separation quality: BSS Eval v4 SDR/ISR/SIR/SAR, as museval computes it (numpy/scipy only).

Why by hand: museval (the SiSEC/MUSDB18 reference) pulls musdb, stempeg, simplejson and jsonschema
and expects (samples, channels) arrays; mir_eval only has BSS Eval v3 (framewise filters), whose
numbers are not the published ones. The maths here is museval's ``metrics.bss_eval`` with
``mode="v4"``: one set of 512-tap distortion filters per source, fitted on the *whole* signals, then
the energy ratios are taken per window (1 s windows and hop by default). A track's score is the
median over its windows (NaN windows — silent reference or estimate — ignored), as in SiSEC 2018 and
the Demucs papers.

Conventions: sources are stacked as (sources, channels, samples) float arrays, stembridge's layout
(museval uses (sources, samples, channels)). Results are in dB.

Verified against museval's own regression values (``tests/test_separation.py`` uses
``../shared/data/stems_musicdelta_80srock``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import fft as sp_fft
from scipy.linalg import toeplitz

#: museval's default length of the distortion filters (taps).
FILTERS_LEN = 512


@dataclass(frozen=True)
class BssEvalScores:
    """Framewise BSS Eval v4 metrics in dB, each (sources, windows); NaN where a window is silent."""

    sdr: np.ndarray
    isr: np.ndarray
    sir: np.ndarray
    sar: np.ndarray
    window_samples: int
    hop_samples: int

    def median(self, metric: str = "sdr") -> np.ndarray:
        """Per-source median over windows (NaN windows ignored): the number SiSEC/MUSDB tables report."""
        values = getattr(self, metric)
        out = np.full(values.shape[0], np.nan)
        for i, row in enumerate(values):
            finite = row[np.isfinite(row)]
            if finite.size:
                out[i] = float(np.median(finite))
        return out


def _stack(sources: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    arr = np.asarray(sources, dtype=np.float64)
    if arr.ndim == 2:  # (sources, samples): mono
        arr = arr[:, None, :]
    if arr.ndim != 3:
        raise ValueError(f"expected (sources, channels, samples), got shape {arr.shape}")
    return arr


def _window_slices(num_samples: int, window: int, hop: int) -> list[slice]:
    # museval's Framing: only whole windows, except a signal shorter than one window is one window.
    if window >= num_samples:
        return [slice(0, num_samples)]
    nwin = (num_samples - window + hop) // hop
    return [slice(t * hop, min(t * hop + window, num_samples)) for t in range(nwin)]


def _any_silent(block: np.ndarray) -> bool:
    """True if any source in (sources, channels, samples) is exactly zero everywhere (museval's test)."""
    return bool(np.any(np.all(block.sum(axis=1) == 0, axis=1)))


def _reference_gram(ref_spec: np.ndarray, n_fft: int, filters_len: int) -> np.ndarray:
    """Gram matrix of the delayed references, (S, C, L, S, C, L) flattened to (S*C*L, S*C*L)."""
    nsrc, nchan = ref_spec.shape[:2]
    flat = ref_spec.reshape(nsrc * nchan, -1)
    n = nsrc * nchan
    G = np.zeros((n, filters_len, n, filters_len))
    for a in range(n):
        for b in range(a, n):
            ssf = sp_fft.irfft(flat[b] * np.conj(flat[a]), n=n_fft)
            block = toeplitz(np.hstack((ssf[0], ssf[-1:-filters_len:-1])), r=ssf[:filters_len])
            # museval: G[j, i, c2, c1] = ss for (i, c1) = a, (j, c2) = b, and its transpose.
            G[b, :, a, :] = block
            G[a, :, b, :] = block.T
    return G.reshape(n * filters_len, n * filters_len)


def _cross_terms(ref_spec: np.ndarray, est_spec: np.ndarray, n_fft: int, filters_len: int) -> np.ndarray:
    """Correlations of each delayed reference channel with each estimate channel: (S*C*L, C_est)."""
    nsrc, nchan = ref_spec.shape[:2]
    nchan_est = est_spec.shape[0]
    D = np.zeros((nsrc, nchan, filters_len, nchan_est))
    for c in range(nchan_est):
        ssef = sp_fft.irfft(ref_spec * np.conj(est_spec[c]), n=n_fft, axis=-1)
        D[:, :, 0, c] = ssef[..., 0]
        D[:, :, 1:, c] = ssef[..., -1:-filters_len:-1]
    return D.reshape(nsrc * nchan * filters_len, nchan_est)


def _solve(G: np.ndarray, D: np.ndarray) -> np.ndarray:
    # Exactly museval's: np.linalg.solve(G + eps*I, D), least squares if singular. (All right-hand
    # sides at once: one factorisation instead of one per estimate, same solution.)
    eps = np.finfo(np.float64).eps
    try:
        return np.linalg.solve(G + eps * np.eye(G.shape[0]), D)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(G, D, rcond=None)[0]


def _project(refs: np.ndarray, filters: np.ndarray, out_len: int) -> np.ndarray:
    """Filter references (S, C, n) with (S, C, L, C_out) FIR filters and sum: (C_out, n + L - 1)."""
    n_fft = sp_fft.next_fast_len(out_len, real=True)
    R = sp_fft.rfft(refs, n=n_fft, axis=-1)  # (S, C, F)
    H = sp_fft.rfft(filters, n=n_fft, axis=2)  # (S, C, F, C_out)
    Y = np.einsum("scf,scfo->of", R, H)
    return sp_fft.irfft(Y, n=n_fft, axis=-1)[:, :out_len]


def _safe_db(num: float, den: float) -> float:
    if den == 0:
        return np.inf
    return float(10 * np.log10(num / den))


def bss_eval_v4(
    references: Sequence[np.ndarray] | np.ndarray,
    estimates: Sequence[np.ndarray] | np.ndarray,
    *,
    window_samples: int,
    hop_samples: int,
    filters_len: int = FILTERS_LEN,
) -> BssEvalScores:
    """BSS Eval v4 ("images" version, time-invariant filters) like ``museval.evaluate(mode="v4")``.

    Parameters
    ----------
    references, estimates : (sources, channels, samples)
        Estimates are zero-padded or cut to the references' length, as museval does. The i-th
        estimate is scored against the i-th reference (no permutation search).
    window_samples, hop_samples : int
        Evaluation windows, e.g. ``sample_rate`` for museval's 1 s windows and hops.

    Returns
    -------
    BssEvalScores with (sources, windows) arrays in dB. A window where any reference or any
    estimate source is all zeros gets NaN (museval's rule).
    """
    refs = _stack(references)
    ests = _stack(estimates)
    if refs.shape[:2] != ests.shape[:2]:
        raise ValueError(f"references {refs.shape} and estimates {ests.shape} differ in sources/channels")
    nsrc, nchan, nsampl = refs.shape
    if ests.shape[2] != nsampl:  # museval.pad_or_truncate
        fixed = np.zeros_like(refs)
        n = min(nsampl, ests.shape[2])
        fixed[:, :, :n] = ests[:, :, :n]
        ests = fixed
    if nsampl == 0:
        raise ValueError("empty signals: nothing to evaluate")
    for name, arr in (("reference", refs), ("estimate", ests)):
        if _any_silent(arr):
            raise ValueError(f"a {name} source is all zeros; BSS Eval is undefined for silent sources")

    L = filters_len
    n_fft = int(2 ** np.ceil(np.log2(nsampl + L - 1.0)))
    ref_spec = sp_fft.rfft(refs, n=n_fft, axis=-1)  # (S, C, F)
    est_spec = sp_fft.rfft(ests, n=n_fft, axis=-1)

    # Interference filters: each estimate projected on all delayed references (one LU, all RHS).
    G = _reference_gram(ref_spec, n_fft, L)
    D_all = np.concatenate([_cross_terms(ref_spec, est_spec[j], n_fft, L) for j in range(nsrc)], axis=1)
    C_all = _solve(G, D_all).reshape(nsrc, nchan, L, nsrc, nchan)  # [..., jest, c_out]
    # Spatial-distortion filters: each estimate projected on its own reference only.
    Cj = []
    for j in range(nsrc):
        Gj = _reference_gram(ref_spec[j:j + 1], n_fft, L)
        Dj = _cross_terms(ref_spec[j:j + 1], est_spec[j], n_fft, L)
        Cj.append(_solve(Gj, Dj).reshape(1, nchan, L, nchan))

    windows = _window_slices(nsampl, window_samples, hop_samples)
    out = np.full((4, nsrc, len(windows)), np.nan)
    for t, win in enumerate(windows):
        ref_w = refs[:, :, win]
        est_w = ests[:, :, win]
        if _any_silent(ref_w) or _any_silent(est_w):
            continue
        n_w = ref_w.shape[2]
        out_len = n_w + L - 1
        for j in range(nsrc):
            s_true = np.zeros((nchan, out_len))
            s_true[:, :n_w] = ref_w[j]
            e_spat = _project(ref_w[j:j + 1], Cj[j], out_len) - s_true
            e_interf = _project(ref_w, C_all[:, :, :, j, :], out_len) - s_true - e_spat
            e_artif = -s_true - e_spat - e_interf
            e_artif[:, :n_w] += est_w[j]
            energy_true = np.sum(s_true ** 2)
            out[0, j, t] = _safe_db(energy_true, np.sum((e_spat + e_interf + e_artif) ** 2))
            out[1, j, t] = _safe_db(energy_true, np.sum(e_spat ** 2))
            out[2, j, t] = _safe_db(np.sum((s_true + e_spat) ** 2), np.sum(e_interf ** 2))
            out[3, j, t] = _safe_db(np.sum((s_true + e_spat + e_interf) ** 2), np.sum(e_artif ** 2))
    return BssEvalScores(sdr=out[0], isr=out[1], sir=out[2], sar=out[3],
                         window_samples=window_samples, hop_samples=hop_samples)


def sdr_per_stem(
    references: Mapping[str, np.ndarray],
    estimates: Mapping[str, np.ndarray],
    *,
    sample_rate: int,
    window_seconds: float = 1.0,
    hop_seconds: float = 1.0,
) -> dict[str, float]:
    """Median framewise BSS Eval v4 SDR (dB) per stem, as the MUSDB18 / Demucs tables report it.

    references, estimates: name → (channels, samples) at ``sample_rate``; scored jointly over the
    names present in both (interference is measured against the other references).
    """
    names = [n for n in references if n in estimates]
    if not names:
        raise ValueError(f"no stem names in common: references {list(references)}, estimates {list(estimates)}")
    scores = bss_eval_v4(
        [references[n] for n in names], [estimates[n] for n in names],
        window_samples=int(window_seconds * sample_rate), hop_samples=int(hop_seconds * sample_rate),
    )
    medians = scores.median("sdr")
    return {n: float(v) for n, v in zip(names, medians, strict=True)}


def utterance_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Plain signal-to-noise "new SDR" of the MDX 2021 challenge (no filters): 10 log10(|s|² / |s - ŝ|²).

    Cheap and monotonic with quality; useful as a second opinion next to BSS Eval.
    """
    ref = np.asarray(reference, dtype=np.float64)
    est = np.asarray(estimate, dtype=np.float64)
    n = min(ref.shape[-1], est.shape[-1])
    ref, est = ref[..., :n], est[..., :n]
    eps = 1e-8
    return float(10 * np.log10((np.sum(ref ** 2) + eps) / (np.sum((ref - est) ** 2) + eps)))
