"""Analysis results: plain frozen dataclasses of numpy arrays (picklable, cacheable, Qt-free)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# BeatGrid and the span of a changing tempo are part of the time base (bridge.timebase, bottom
# layer: the transport uses it too, and a grid extrapolates by the span); re-exported here, where
# analysis results have always had them.
from bridge.timebase import TEMPO_SPAN_BEATS, TEMPO_SPAN_RATIO, BeatGrid, tempo_span_bpm  # noqa: F401

#: Sample rate all stems are analysed at (Hz). Mono, float32.
ANALYSIS_SAMPLE_RATE = 22050
#: STFT hop (samples at ANALYSIS_SAMPLE_RATE) → curve rate = 22050 / 256 ≈ 86.13 Hz.
ANALYSIS_HOP = 256
ANALYSIS_N_FFT = 2048
#: Band edges for low / mid / high energy (Hz).
LOW_BAND_HZ = (20.0, 200.0)
MID_BAND_HZ = (200.0, 2000.0)
HIGH_BAND_HZ = (2000.0, 11025.0)

#: Names of the 1-D curves every StemFeatures has (``chroma`` is 2-D, 12 × frames).
CURVE_NAMES = ("rms", "low", "mid", "high", "onset", "centroid")
#: Extra 1-D curves ``features.compute_stem_features`` adds, used mostly by beat tracking (also fine
#: as mapping sources): onset strength (log-mel spectral flux, ≥ 0) restricted to the mel bands
#: below / between / above ONSET_BAND_EDGES_HZ — roughly kick, snare body & toms, snare noise & hats.
ONSET_BAND_CURVE_NAMES = ("onset_low", "onset_mid", "onset_high")
ONSET_BAND_EDGES_HZ = (150.0, 2000.0)
#: A stem whose RMS never exceeds this (linear, = -60 dBFS) is treated as silent (no onsets; not
#: "active" for sections; ignored by beat tracking).
SILENCE_RMS = 1e-3


@dataclass(frozen=True, eq=False)
class StemFeatures:
    """Features of one stem, on a fixed time grid starting at song time 0.

    curves: name → float32 array, shape (n_frames,), except ``chroma`` with shape (12, n_frames).
        ``rms`` is linear RMS amplitude; ``low``/``mid``/``high`` are RMS of the band-passed signal;
        ``onset`` is onset strength (spectral flux, ≥ 0); ``centroid`` is in Hz.
    frame_rate_hz: samples per second of every curve (ANALYSIS_SAMPLE_RATE / ANALYSIS_HOP).
    onsets_s: onset times in seconds from song start, sorted, shape (n_onsets,).
    """

    name: str
    role: str
    frame_rate_hz: float
    curves: dict[str, np.ndarray]
    onsets_s: np.ndarray
    duration_seconds: float

    @property
    def n_frames(self) -> int:
        return int(self.curves["rms"].shape[-1])

    def times_s(self) -> np.ndarray:
        """Time of each curve sample in seconds, shape (n_frames,)."""
        return np.arange(self.n_frames, dtype=np.float64) / self.frame_rate_hz


@dataclass(frozen=True, eq=False)
class SongAnalysis:
    """Everything analysis produces for a project. ``sections`` are (start_s, end_s) pairs."""

    duration_seconds: float
    beat_grid: BeatGrid
    sections: list[tuple[float, float]]
    stems: dict[str, StemFeatures] = field(default_factory=dict)
    #: The same curves for the mix as heard (the unmuted stems summed with their gains): the
    #: mapping source ``mix.FEATURE``. None where not computed (then ``mix.*`` combines the stems).
    mix: StemFeatures | None = None

    @property
    def tempo_bpm(self) -> float:
        return self.beat_grid.tempo_bpm
