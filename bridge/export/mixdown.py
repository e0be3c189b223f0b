"""Audio for the export: stem mixdown, a peak limiter and level metering.

All audio is float32 ``(channels, samples)``. The mix is always stereo ``(2, samples)``.

Channel rules (applied per stem before the gains):

- mono ``(1, n)`` is copied to both channels at full level (as a mono file plays in a stereo player;
  no pan law, so a mono stem at 0 dB peaks where it peaked before);
- stereo ``(2, n)`` is used as is;
- 6 channels are taken as 5.1 in WAVE/FFmpeg order (FL FR FC LFE BL BR) and folded down with the
  ITU-R BS.775 coefficients: ``L = FL + 0.707 FC + 0.707 BL``, ``R = FR + 0.707 FC + 0.707 BR``; the LFE
  channel is dropped (as BS.775 does);
- any other count (3–5, 7, 8…): channel 0 is left, channel 1 is right, every further channel goes to
  both sides at -3 dB (0.707).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pedalboard

from bridge.errors import AudioError

MIX_CHANNELS = 2
#: -3 dB, the BS.775 fold-down coefficient for centre and surround channels.
_MINUS_3_DB = 1.0 / math.sqrt(2.0)
#: Loudness (BS.1770) gating block.
_LUFS_BLOCK_SECONDS = 0.4


def to_stereo(audio: np.ndarray) -> np.ndarray:
    """Fold any channel count to stereo with the rules in the module docstring.

    Parameters
    ----------
    audio : float array, shape (channels, samples)

    Returns
    -------
    np.ndarray
        float32, shape (2, samples). Stereo input is returned as float32 without a copy when it
        already is float32.
    """
    if audio.ndim != 2 or audio.shape[0] < 1:
        raise AudioError(
            f"Audio of shape {audio.shape} is not (channels, samples); "
            "pass a 2-D array with channels first, e.g. audio.T for (samples, channels) data."
        )
    audio = np.asarray(audio, dtype=np.float32)
    n_channels = audio.shape[0]
    if n_channels == 2:
        return audio
    if n_channels == 1:
        return np.repeat(audio, 2, axis=0)
    if n_channels == 6:  # 5.1: FL FR FC LFE BL BR; the LFE is dropped, as BS.775 does.
        centre = _MINUS_3_DB * audio[2]
        left = audio[0] + centre + _MINUS_3_DB * audio[4]
        right = audio[1] + centre + _MINUS_3_DB * audio[5]
        return np.stack([left, right]).astype(np.float32, copy=False)
    both = _MINUS_3_DB * audio[2:].sum(axis=0)
    return np.stack([audio[0] + both, audio[1] + both]).astype(np.float32, copy=False)


def db_to_gain(gain_db: float) -> float:
    """Amplitude factor for a gain in dB (``-6.02 dB -> 0.5``)."""
    return float(10.0 ** (gain_db / 20.0))


def mix_stems(
    stems: Sequence[np.ndarray],
    *,
    gains_db: Sequence[float],
    sample_rate: int,
    limiter_threshold_db: float = -1.0,
    ceiling_dbfs: float = -0.3,
    release_ms: float = 100.0,
    master_fx: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Sum aligned stems with gains, limit the peaks, and return a stereo mix.

    Parameters
    ----------
    stems : sequence of float arrays, each shape (channels, samples)
        Already aligned to song time, all at ``sample_rate`` and of equal length. Channel counts
        may differ; each is folded to stereo first (see module docstring).
    gains_db : sequence of float
        One gain per stem, in dB (0 = unchanged, -6.02 = half amplitude).
    sample_rate : int
        Sample rate of the stems, in Hz (the limiter's time constants depend on it).
    limiter_threshold_db : float
        Level in dBFS above which the look-ahead limiter reduces gain. Below it the mix passes
        untouched (no make-up gain), so stem gains keep their exact meaning.
    ceiling_dbfs : float
        Hard ceiling in dBFS: no output sample exceeds it. Must be >= ``limiter_threshold_db``.
    release_ms : float
        Limiter release time in milliseconds.
    master_fx : callable, optional
        The master effect chain: float32 (2, samples) -> float32 (channels, samples), run on the
        summed mix before the limiter (the limiter stays the last word on peaks).

    Returns
    -------
    np.ndarray
        float32, shape (2, samples). Silent input gives silent output (zeros, never NaN).

    Raises
    ------
    AudioError
        No stems, mismatched counts or lengths, wrong shapes, or NaN/inf samples.
    """
    mix = _sum_stems(stems, gains_db=gains_db, sample_rate=sample_rate,
                     limiter_threshold_db=limiter_threshold_db, ceiling_dbfs=ceiling_dbfs)
    if mix.shape[1] == 0:
        return mix
    if master_fx is not None:
        mix = to_stereo(np.asarray(master_fx(mix), dtype=np.float32))
    return _limit(mix, sample_rate, limiter_threshold_db=limiter_threshold_db, ceiling_dbfs=ceiling_dbfs,
                  release_ms=release_ms)


#: A level no mix reaches (+80 dBFS): run through the limiter first, it leaves the deepest gain
#: reduction the limiter can be in (see :func:`mix_stems_window`).
_PRIMER_LEVEL = 1.0e4
_PRIMER_SECONDS = 0.05


def mix_stems_window(
    stems: Sequence[np.ndarray],
    *,
    gains_db: Sequence[float],
    sample_rate: int,
    exact_from: int,
    limiter_threshold_db: float = -1.0,
    ceiling_dbfs: float = -0.3,
    release_ms: float = 100.0,
) -> np.ndarray | None:
    """:func:`mix_stems` of stems cut from the middle of a song, or None when that could differ from
    the whole song's mix at sample ``exact_from`` (of the window) or later.

    Summing is sample by sample, but the limiter remembers: its gain reduction at the window's start
    depends on the song before it. The window is limited twice, from no reduction (gain 1, the most
    the limiter can give) and from the deepest (after :data:`_PRIMER_LEVEL`, which no mix reaches).
    The limiter's release is monotone in its state, so whatever state the whole song's mix reaches
    the window with lies between those two runs; when they agree bit for bit from ``exact_from`` on,
    so does the whole song's mix. When they do not, the caller mixes from the song's start.

    They agree once a peak in the window pulls both runs to the same gain: pedalboard's
    BrickwallLimiter never quite releases (measured: after any reduction its gain stays at
    0.999857, -0.0012 dB, for the rest of the song), so a window where the limiter does not act
    cannot show whether it acted before. No master chain: a plug-in's state cannot be bounded.
    """
    mix = _sum_stems(stems, gains_db=gains_db, sample_rate=sample_rate,
                     limiter_threshold_db=limiter_threshold_db, ceiling_dbfs=ceiling_dbfs)
    limiter = {"limiter_threshold_db": limiter_threshold_db, "ceiling_dbfs": ceiling_dbfs, "release_ms": release_ms}
    if mix.shape[1] == 0:
        return mix
    fresh = _limit(mix, sample_rate, **limiter)
    n_primer = int(round(_PRIMER_SECONDS * sample_rate))
    primed = _limit(np.concatenate([np.full((MIX_CHANNELS, n_primer), _PRIMER_LEVEL, np.float32), mix], axis=1),
                    sample_rate, **limiter)[:, n_primer:]
    if not np.array_equal(fresh[:, exact_from:], primed[:, exact_from:]):
        return None
    return fresh


def _sum_stems(stems: Sequence[np.ndarray], *, gains_db: Sequence[float], sample_rate: int,
               limiter_threshold_db: float, ceiling_dbfs: float) -> np.ndarray:
    """The checked, gained sum of the stems, float32 (2, samples) (see :func:`mix_stems`)."""
    if len(stems) == 0:
        raise AudioError("mix_stems got no stems; pass at least one (channels, samples) array.")
    if len(gains_db) != len(stems):
        raise AudioError(
            f"mix_stems got {len(stems)} stems but {len(gains_db)} gains; pass one gain_db per stem."
        )
    if not limiter_threshold_db <= ceiling_dbfs <= 0.0:
        raise AudioError(
            f"Limiter threshold {limiter_threshold_db} dB and ceiling {ceiling_dbfs} dBFS are "
            "inconsistent; need threshold <= ceiling <= 0 dBFS (e.g. -1.0 and -0.3)."
        )
    if sample_rate <= 0:
        raise AudioError(f"sample_rate {sample_rate} Hz is not positive; pass the stems' rate.")
    n_samples = stems[0].shape[-1]
    mix = np.zeros((MIX_CHANNELS, n_samples), dtype=np.float32)
    for index, (stem, gain_db) in enumerate(zip(stems, gains_db, strict=True)):
        stereo = to_stereo(np.asarray(stem))
        if stereo.shape[1] != n_samples:
            raise AudioError(
                f"Stem {index} has {stereo.shape[1]} samples but stem 0 has {n_samples}; the mix "
                "needs stems aligned to song time and padded/trimmed to the same length."
            )
        if not np.isfinite(stereo).all():
            raise AudioError(
                f"Stem {index} contains NaN or infinite samples; re-export it from the DAW "
                "(the mix would be noise or silence)."
            )
        mix += np.float32(db_to_gain(float(gain_db))) * stereo
    return mix


def _limit(mix: np.ndarray, sample_rate: int, *, limiter_threshold_db: float, ceiling_dbfs: float,
           release_ms: float) -> np.ndarray:
    # pedalboard.Limiter (JUCE dsp::Limiter) adds make-up gain and compresses from -10 dBFS up, which
    # would change every stem's level; BrickwallLimiter only acts above its ceiling and compensates
    # its look-ahead latency, so the mix stays sample-aligned with the video.
    limiter = pedalboard.BrickwallLimiter(
        ceiling_db=limiter_threshold_db, release_ms=release_ms, true_peak=False
    )
    limited = limiter(mix, sample_rate)
    # The look-ahead limiter can overshoot on the sharpest transients; this clip is the guarantee.
    ceiling = np.float32(db_to_gain(ceiling_dbfs))
    np.clip(limited, -ceiling, ceiling, out=limited)
    return np.ascontiguousarray(limited, dtype=np.float32)


def _amplitude_db(value: float) -> float:
    return 20.0 * math.log10(value) if value > 0.0 else -math.inf


def integrated_loudness_lufs(audio: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness in LUFS (ITU-R BS.1770-4 / EBU R128 gating), by pyloudnorm.

    Parameters
    ----------
    audio : float array, shape (channels, samples)
        Up to 5 channels in pyloudnorm's order (L, R, C, Ls, Rs); the export's mix is stereo.

    Returns
    -------
    float
        LUFS; ``-inf`` for silence or audio shorter than one 400 ms block.
    """
    import pyloudnorm

    if audio.shape[-1] < int(round(_LUFS_BLOCK_SECONDS * sample_rate)) or not np.any(audio):
        return -math.inf
    with np.errstate(divide="ignore"):
        lufs = pyloudnorm.Meter(sample_rate, block_size=_LUFS_BLOCK_SECONDS).integrated_loudness(
            np.ascontiguousarray(audio.T, dtype=np.float64))
    return float(lufs) if np.isfinite(lufs) else -math.inf


def measure_levels(audio: np.ndarray, sample_rate: int) -> dict[str, float]:
    """Peak, RMS and integrated loudness of a mix, for the CLI and the GUI meter.

    Parameters
    ----------
    audio : float array, shape (channels, samples)
    sample_rate : int
        In Hz.

    Returns
    -------
    dict
        ``peak_dbfs`` (largest absolute sample), ``rms_dbfs`` (over all channels and samples; a
        full-scale sine reads -3.01), ``loudness_lufs`` (BS.1770 integrated). Silence reads
        ``-inf`` for all three, never NaN.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.size == 0:
        return {"peak_dbfs": -math.inf, "rms_dbfs": -math.inf, "loudness_lufs": -math.inf}
    peak = float(np.max(np.abs(audio)))
    rms = math.sqrt(float(np.mean(np.square(audio, dtype=np.float64))))
    return {
        "peak_dbfs": _amplitude_db(peak),
        "rms_dbfs": _amplitude_db(rms),
        "loudness_lufs": integrated_loudness_lufs(audio, sample_rate),
    }
