"""Per-stem feature curves from ONE shared STFT (rms, band energies, onset strength, centroid, chroma).

Every curve lives on the fixed analysis grid: frame ``k`` is at ``k * ANALYSIS_HOP /
ANALYSIS_SAMPLE_RATE`` seconds (centred STFT frames, so frame 0 is song time 0), and there are
``1 + n_samples // ANALYSIS_HOP`` frames.

Band energies (``low``/``mid``/``high``) are computed from the shared power spectrogram, not with
pedalboard filters: pedalboard's ``LowpassFilter``/``HighpassFilter`` are first-order (6 dB/octave)
filters, so a 1 kHz tone still shows up in the "low" band only ~14 dB down, and three extra
filter passes plus three framings cost more than summing spectrogram rows that are already there.
Summing STFT bins gives brick-wall band edges (to within the Hann main lobe, ±2 bins ≈ ±22 Hz) and,
through Parseval, band RMS values in the same linear units as ``rms`` (``low² + mid² + high² ≈ rms²``
for content above 20 Hz).
"""

from __future__ import annotations

import warnings

import librosa
import numpy as np
import scipy.fft
import scipy.ndimage

from bridge.analysis.drum_parts import DRUM_PARTS, drum_part_onsets
from bridge.analysis.types import (
    ANALYSIS_HOP,
    ANALYSIS_N_FFT,
    ANALYSIS_SAMPLE_RATE,
    HIGH_BAND_HZ,
    LOW_BAND_HZ,
    MID_BAND_HZ,
    ONSET_BAND_EDGES_HZ,
    SILENCE_RMS,
    StemFeatures,
)
from bridge.errors import AnalysisError

#: Mel bands of the log spectrogram the spectral flux is computed on (librosa's default count).
N_MELS = 128
#: Frames the spectral flux is delayed by so that its peaks sit on the onsets. The flux between
#: centred frames k-1 and k rises while the 93 ms window slides over an onset, i.e. up to half a
#: window early; librosa (center=True) delays it by n_fft / (2 hop) = 4 frames, which we measured
#: to detect drum hits within a mix 8-24 ms late (median, demo song and shared songs 01/03). With
#: 3 frames those medians are 0 to +13 ms; isolated clicks over digital silence come out about a
#: frame early (-10 to -21 ms; tests/test_features.py checks they stay within two frames).
ONSET_DELAY_FRAMES = 3
#: Frames per FFT block in :func:`stft_magnitude` (≈ 0.5 MB of float32 input: stays in cache).
_STFT_BLOCK_FRAMES = 64
#: Onset peak picking is relative to the loudest flux within this window (s), but never to less
#: than this fraction of the stem's loudest flux (so near-silent passages stay quiet).
ONSET_LOCAL_WINDOW_S = 4.0
ONSET_LOCAL_FLOOR = 0.2
#: ``onset_fine`` (the mix's curve the visuals follow, :func:`fine_onset`): the same log-mel flux
#: from a 23 ms window (512 samples, hop 128 = 5.8 ms, 64 mel bands: 128 leave empty bands at this
#: window), max-pooled onto the curve rate. The 93 ms window of ``onset`` blurs notes closer than
#: it into one smear: on dense parts (fast lines, rolls; Freedoom E1M3/E1M9/E3M7) the travel it
#: drives correlated 0.32–0.47 with the mix's onsets at the video frame rate, 0.77–0.90 with this
#: one (before the look; benchmarks/av_sync.py's onset envelope, 22 dev songs). Decoded exports of
#: the 12 Freedoom dev songs meeting both sync goals: 5 → 8 (E1M3 ρ 0.30 → 0.59).
FINE_ONSET_N_FFT = 512
FINE_ONSET_HOP = 128
FINE_ONSET_N_MELS = 64


def frame_rate_hz(sample_rate: int = ANALYSIS_SAMPLE_RATE) -> float:
    """Curve sample rate in Hz (frames per second) for ``sample_rate``."""
    return sample_rate / ANALYSIS_HOP


def n_frames_for(n_samples: int) -> int:
    """Number of centred STFT frames for a signal of ``n_samples`` samples."""
    return 1 + n_samples // ANALYSIS_HOP


def stft_magnitude(y: np.ndarray) -> np.ndarray:
    """|STFT| of mono ``y``: Hann window ANALYSIS_N_FFT, hop ANALYSIS_HOP, centred, zero-padded.

    Equal to ``np.abs(librosa.stft(y, n_fft, hop, center=True, pad_mode="constant"))`` (tested),
    float32, shape (1 + n_fft/2, 1 + len(y) // hop). Written out because librosa frames the signal
    as columns and transforms along the strided axis; FFT-ing contiguous rows of a sliding-window
    view, a block at a time, is twice as fast, and the STFT is most of the analysis time.
    """
    n_fft, hop = ANALYSIS_N_FFT, ANALYSIS_HOP
    padded = np.pad(y.astype(np.float32, copy=False), n_fft // 2, mode="constant")
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]  # (n_frames, n_fft) view
    n_frames = 1 + y.shape[0] // hop
    frames = frames[:n_frames]
    window = librosa.filters.get_window("hann", n_fft, fftbins=True).astype(np.float32)
    out = np.empty((n_fft // 2 + 1, n_frames), dtype=np.float32)
    for start in range(0, n_frames, _STFT_BLOCK_FRAMES):
        block = frames[start : start + _STFT_BLOCK_FRAMES] * window
        out[:, start : start + block.shape[0]] = np.abs(scipy.fft.rfft(block, axis=1)).T
    return out


def fine_onset(y: np.ndarray, n_frames: int) -> np.ndarray:
    """Onset strength from a short window, shape (n_frames,) at the curve rate:
    ``librosa.onset.onset_strength`` at FINE_ONSET_N_FFT / FINE_ONSET_HOP / FINE_ONSET_N_MELS (log-mel
    flux, delayed by n_fft / (2 hop) frames onto the onset); curve sample k takes the maximum of the
    fine frames in [k, k + 1) curve frames, so no hit between two samples is lost."""
    with warnings.catch_warnings():  # a stem shorter than the window: librosa warns, the result is fine
        warnings.simplefilter("ignore", UserWarning)
        env = librosa.onset.onset_strength(y=y, sr=ANALYSIS_SAMPLE_RATE, n_fft=FINE_ONSET_N_FFT,
                                           hop_length=FINE_ONSET_HOP, n_mels=FINE_ONSET_N_MELS)
    step = ANALYSIS_HOP // FINE_ONSET_HOP
    out = np.zeros(n_frames * step, dtype=np.float64)
    take = min(out.shape[0], env.shape[0])
    out[:take] = env[:take]
    return out.reshape(n_frames, step).max(axis=1)


def _check_audio(audio: np.ndarray, *, name: str, sample_rate: int) -> np.ndarray:
    if sample_rate != ANALYSIS_SAMPLE_RATE:
        raise AnalysisError(
            f"Stem '{name}' was given at {sample_rate} Hz, but analysis runs at "
            f"{ANALYSIS_SAMPLE_RATE} Hz; resample it first (bridge.stems loads at that rate)."
        )
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise AnalysisError(
            f"Stem '{name}' has shape {audio.shape}, but analysis expects mono audio of shape "
            f"(samples,); mix the channels down first (e.g. audio.mean(axis=0))."
        )
    if audio.size == 0:
        raise AnalysisError(
            f"Stem '{name}' is empty (0 samples); there is nothing to analyse. "
            f"Check that the file was rendered completely."
        )
    if not np.issubdtype(audio.dtype, np.floating):
        raise AnalysisError(
            f"Stem '{name}' has dtype {audio.dtype}, but analysis expects float audio in [-1, 1]; "
            f"convert it with audio.astype(np.float32) / 32768 (for int16)."
        )
    audio = audio.astype(np.float32, copy=False)
    if not np.all(np.isfinite(audio)):
        n_bad = int(np.count_nonzero(~np.isfinite(audio)))
        raise AnalysisError(
            f"Stem '{name}' contains {n_bad} NaN/inf samples; the file is corrupt or was rendered "
            f"with a broken plug-in. Re-render the stem."
        )
    return audio


def compute_stem_features(
    audio: np.ndarray,
    *,
    name: str,
    role: str,
    sample_rate: int = ANALYSIS_SAMPLE_RATE,
    fine: bool = False,
) -> StemFeatures:
    """Compute every curve of one stem from a single STFT (``fine``: and ``onset_fine`` from a second,
    short one: the mix's, which the visuals follow).

    Parameters
    ----------
    audio : np.ndarray, shape (n_samples,), float
        MONO audio at ``ANALYSIS_SAMPLE_RATE``, time 0 = song start.
    name, role : str
        Stem name and role ("drums", "bass", "vocals", "other" or a user role).
    sample_rate : int
        Must equal ``ANALYSIS_SAMPLE_RATE`` (the caller resamples).

    Returns
    -------
    StemFeatures
        curves (float32, shape (n_frames,) unless noted), n_frames = 1 + n_samples // ANALYSIS_HOP:

        - ``rms``: linear RMS amplitude (a full-scale sine gives ≈ 0.707).
        - ``low``/``mid``/``high``: RMS amplitude of the content in LOW/MID/HIGH_BAND_HZ.
        - ``onset``: onset strength = positive spectral flux of the log-mel spectrogram (dB per
          frame, mean over 128 mel bands, as ``librosa.onset.onset_strength``, but delayed by
          ONSET_DELAY_FRAMES instead of 4, and a sound already playing at 0 s counts as an onset
          at frame 0), ≥ 0.
        - ``onset_low``/``onset_mid``/``onset_high``: the same flux restricted to the mel bands in
          ONSET_BAND_EDGES_HZ (kick / snare body & toms / snare noise & hats); used by beat tracking.
        - ``kick``/``snare``/``hats``: how strongly each part of a drum kit hits at each frame
          (:mod:`~bridge.analysis.drum_parts`: the mel flux explained by three fixed drum
          spectra), ≥ 0, on the ``onset`` curve's frames; the mapping sources ``drums.kick`` ….
        - ``onset_fine`` (only with ``fine``): the onset strength from a 23 ms window
          (:func:`fine_onset`); what the mapping source ``onset`` reads where it exists.
        - ``centroid``: spectral centroid in Hz (0 in silent frames).
        - ``chroma``: shape (12, n_frames), pitch-class energy, each frame max-normalised to 1
          (0 in silent frames); C = row 0; tuning fixed at A440 (no tuning estimation: it costs a
          pitch tracker pass, and DAW stems are in concert pitch).

        onsets_s: onset times in seconds (librosa peak picking on ``onset``), empty for a silent stem.

    Raises
    ------
    AnalysisError
        Wrong sample rate, not mono, empty, not float, or NaN/inf samples.
    """
    y = _check_audio(audio, name=name, sample_rate=sample_rate)
    n_samples = y.shape[0]
    sr = ANALYSIS_SAMPLE_RATE
    n_fft, hop = ANALYSIS_N_FFT, ANALYSIS_HOP

    # The one STFT everything below shares (centred frames: frame k ↔ time k·hop/sr).
    mag = stft_magnitude(y)
    power = mag * mag  # shape (1 + n_fft/2, n_frames)
    n_frames = power.shape[1]
    freqs_hz = librosa.fft_frequencies(sr=sr, n_fft=n_fft)

    # Parseval: mean square of a stationary signal = Σ_k |X_k|² / (n_fft · Σ w²) over the two-sided
    # spectrum; the one-sided spectrum counts every bin but DC and Nyquist twice. Total and band
    # energies come out of one (4 × bins) @ (bins × frames) product.
    window = librosa.filters.get_window("hann", n_fft, fftbins=True)
    scale = 1.0 / (n_fft * float(np.sum(window**2)))
    one_sided = np.full(freqs_hz.shape, 2.0)
    one_sided[0] = one_sided[-1] = 1.0
    rows = [np.ones_like(freqs_hz, dtype=bool)]
    for lo_hz, hi_hz in (LOW_BAND_HZ, MID_BAND_HZ, HIGH_BAND_HZ):
        # half-open bands, except that the top band keeps the Nyquist bin
        rows.append((freqs_hz >= lo_hz) & ((freqs_hz < hi_hz) | (hi_hz >= freqs_hz[-1])))
    weights = (np.stack(rows) * one_sided * scale).astype(np.float32)
    rms, low, mid, high = np.sqrt(np.maximum(weights @ power, 0.0))

    # Onset strength: librosa's spectral flux on a log-mel spectrogram (ref=1.0, so a silent stem
    # stays flat at the floor and has zero flux), computed per band in one pass; the overall
    # envelope is the width-weighted mean of the bands, i.e. the mean over all mel bands.
    mel_basis = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=N_MELS, fmax=sr / 2.0)
    mel_power = mel_basis @ power
    mel_db = librosa.power_to_db(mel_power, ref=1.0, top_db=80.0)
    mel_hz = librosa.mel_frequencies(n_mels=N_MELS + 2, fmax=sr / 2.0)[1:-1]  # band centres
    edges = [0]
    for edge_hz in ONSET_BAND_EDGES_HZ:
        edges.append(int(np.searchsorted(mel_hz, edge_hz)))
    edges.append(N_MELS)
    # Silence before the song (one floor-level frame in front), so that a hit right at 0 s, as
    # many stems begin, is an onset too.
    floor_db = float(mel_db.min())  # this stem's quietest level (≥ its peak − 80 dB)
    padded = np.concatenate([np.full((N_MELS, 1), floor_db, dtype=mel_db.dtype), mel_db], axis=1)
    flux = librosa.onset.onset_strength_multi(
        S=padded, sr=sr, n_fft=n_fft, hop_length=hop, channels=edges, center=False
    )  # shape (n_bands, n_frames + 1): flux[j] = max(0, padded[j] - padded[j-1]), flux[0] = 0
    band_flux = np.zeros((flux.shape[0], n_frames), dtype=np.float64)
    # flux[k + 1] compares frames k and k-1; it is delayed by ONSET_DELAY_FRAMES to sit on the
    # onset. What was already sounding at frame 0 (it began at or before 0 s) goes to frame 0.
    band_flux[:, ONSET_DELAY_FRAMES:] = flux[:, 2 : 2 + n_frames - ONSET_DELAY_FRAMES]
    band_flux[:, 0] = flux[:, 1]
    widths = np.diff(edges).astype(np.float64)
    onset = (widths @ band_flux) / widths.sum()
    onset_low, onset_mid, onset_high = band_flux[0], band_flux[1], band_flux[2]
    parts = drum_part_onsets(mel_power, mel_hz)
    del mel_power

    # Spectral centroid = Σ f·|X| / Σ |X| (librosa.feature.spectral_centroid computes the same
    # through a normalised copy of the whole spectrogram, which costs more than all the rest).
    mag_sum = mag.sum(axis=0)
    centroid = np.divide(freqs_hz.astype(np.float32) @ mag, mag_sum,
                         out=np.zeros_like(mag_sum), where=mag_sum > 1e-10)
    chroma = librosa.feature.chroma_stft(S=power, sr=sr, n_fft=n_fft, hop_length=hop,
                                         tuning=0.0)
    del mag, power

    silent = float(rms.max(initial=0.0)) < SILENCE_RMS
    if silent:
        # Dither or denormal noise would otherwise be normalised up into a storm of "onsets".
        onsets_s = np.zeros(0, dtype=np.float64)
    else:
        # Peak picking on the envelope scaled by its running maximum (over ONSET_LOCAL_WINDOW_S,
        # floored at ONSET_LOCAL_FLOOR of the stem's maximum): with one global scale, as
        # librosa.onset.onset_detect normalises, a loud drop hides every hit of a quiet intro
        # (measured on the demo song and shared songs 01/03: drum-onset F 0.43–0.72 → 0.67–0.80,
        # pitched stems unchanged within ±0.03).
        window = max(3, int(round(ONSET_LOCAL_WINDOW_S * sr / hop)))
        local_max = scipy.ndimage.maximum_filter1d(onset, size=window, mode="nearest")
        scaled = onset / np.maximum(local_max, ONSET_LOCAL_FLOOR * float(onset.max()))
        onsets_s = librosa.onset.onset_detect(onset_envelope=scaled, sr=sr, hop_length=hop,
                                              units="time", backtrack=False, normalize=False)
        onsets_s = np.asarray(onsets_s, dtype=np.float64)

    curves = {
        "rms": rms,
        "low": low,
        "mid": mid,
        "high": high,
        "onset": onset,
        "onset_low": onset_low,
        "onset_mid": onset_mid,
        "onset_high": onset_high,
        **dict(zip(DRUM_PARTS, parts, strict=True)),
        "centroid": centroid,
        "chroma": chroma,
    }
    if fine:
        curves["onset_fine"] = fine_onset(y, n_frames)
    curves = {
        key: np.nan_to_num(np.asarray(val, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        for key, val in curves.items()
    }
    for key, val in curves.items():
        if val.shape[-1] != n_frames:  # pragma: no cover - guards librosa behaviour changes
            raise AnalysisError(f"Internal error: curve '{key}' has {val.shape[-1]} frames, "
                                f"expected {n_frames}; please report this.")
    return StemFeatures(
        name=name,
        role=role,
        frame_rate_hz=frame_rate_hz(sr),
        curves=curves,
        onsets_s=onsets_s,
        duration_seconds=n_samples / sr,
    )
