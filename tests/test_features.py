"""Per-stem features and the analysis pipeline, checked against signals with known answers."""

from __future__ import annotations

import threading
import warnings

import librosa
import numpy as np
import pytest
from conftest import click_track

from bridge.analysis import features as F
from bridge.analysis.beats import beat_grid_from_tempo
from bridge.analysis.pipeline import analyze_stems, features_for_stem
from bridge.analysis.types import (
    ANALYSIS_HOP,
    ANALYSIS_SAMPLE_RATE,
    CURVE_NAMES,
    ONSET_BAND_CURVE_NAMES,
    StemFeatures,
)
from bridge.errors import AnalysisError, Cancelled
from bridge.jobs import CancelToken

SR = ANALYSIS_SAMPLE_RATE


def tone(freq_hz: float, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def bursts(times_s: np.ndarray, seconds: float, *, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Drum-like hits: 'kick' = 55 Hz sine burst, 'hat' = noise above ~5 kHz (first difference)."""
    y = np.zeros(int(seconds * SR), dtype=np.float32)
    n = int(0.08 * SR)
    env = np.exp(-np.arange(n) / (0.015 * SR))
    for t in times_s:
        i = int(round(t * SR))
        if kind == "kick":
            hit = 0.8 * np.sin(2 * np.pi * 55.0 * np.arange(n) / SR) * env
        else:
            noise = rng.standard_normal(n + 1)
            hit = 0.3 * np.diff(np.diff(noise, prepend=0.0)) * env  # 2nd difference: mostly > 5 kHz
        y[i : i + n] += hit[: len(y[i : i + n])].astype(np.float32)
    return y


# --- curves: grid, units, bands ------------------------------------------------------------------

@pytest.mark.parametrize("freq_hz, band", [(100.0, "low"), (1000.0, "mid"), (5000.0, "high")])
def test_sine_levels_land_in_the_right_band(freq_hz, band):
    feats = F.compute_stem_features(tone(freq_hz, 2.0, 0.5), name="sine", role="other")
    mid = slice(20, -20)  # away from the fade-in/out of the centred first/last frames
    expected_rms = 0.5 / np.sqrt(2)
    assert np.median(feats.curves["rms"][mid]) == pytest.approx(expected_rms, rel=0.02)
    assert np.median(feats.curves[band][mid]) == pytest.approx(expected_rms, rel=0.02)
    for other in {"low", "mid", "high"} - {band}:
        assert np.median(feats.curves[other][mid]) < 0.01 * expected_rms
    assert np.median(feats.curves["centroid"][mid]) == pytest.approx(freq_hz, rel=0.02)


@pytest.mark.parametrize("freq_hz", [261.63, 440.0, 1000.0])
def test_chroma_peaks_at_the_pitch_class(freq_hz):
    feats = F.compute_stem_features(tone(freq_hz, 1.5), name="sine", role="other")
    pitch_class = int(round(12 * np.log2(freq_hz / 440.0))) % 12  # relative to A
    expected_row = (pitch_class + 9) % 12  # row 0 is C, A is row 9
    chroma = feats.curves["chroma"]
    assert chroma.shape == (12, feats.n_frames)
    assert np.argmax(np.median(chroma[:, 10:-10], axis=1)) == expected_row


def test_curves_share_one_grid_starting_at_zero():
    n_samples = 3 * SR + 123
    feats = F.compute_stem_features(tone(220.0, n_samples / SR), name="a", role="bass")
    n_frames = 1 + n_samples // ANALYSIS_HOP
    assert feats.frame_rate_hz == pytest.approx(SR / ANALYSIS_HOP)
    assert feats.duration_seconds == pytest.approx(n_samples / SR)
    for name in CURVE_NAMES + ONSET_BAND_CURVE_NAMES:
        curve = feats.curves[name]
        assert curve.shape == (n_frames,) and curve.dtype == np.float32, name
        assert np.all(np.isfinite(curve)) and np.all(curve >= 0), name
    assert feats.times_s()[0] == 0.0


def test_click_onsets_are_found_on_time():
    audio, beats = click_track(97.0, 10.0, SR, channels=1)
    feats = F.compute_stem_features(audio[0], name="click", role="drums")
    assert len(feats.onsets_s) == len(beats)  # including the click at 0 s
    err_s = np.abs(feats.onsets_s - beats)
    assert err_s.max() < 0.025, err_s  # a frame is 11.6 ms: within two frames
    # the onset curve peaks at the click frame, not half a window early or late
    fr = feats.frame_rate_hz
    peaks = [int(np.argmax(feats.curves["onset"][int(t * fr) - 5 : int(t * fr) + 6])) - 5 for t in beats[1:-1]]
    assert np.abs(np.median(peaks)) <= 1


def test_band_onsets_separate_kick_from_hats(rng):
    kicks = np.arange(0.5, 6.0, 1.0)
    hats = kicks + 0.5
    # A -50 dBFS noise floor, as room tone / bleed in a real drum stem: over pure digital silence
    # the log-spectral flux turns even a hat's tiny low-frequency leakage into a 20 dB jump.
    floor = (3e-3 * rng.standard_normal(int(6.5 * SR))).astype(np.float32)
    y = bursts(kicks, 6.5, kind="kick", rng=rng) + bursts(hats, 6.5, kind="hat", rng=rng) + floor
    feats = F.compute_stem_features(y, name="drums", role="drums")
    fr = feats.frame_rate_hz

    def peak_near(curve: str, times: np.ndarray) -> float:
        c = feats.curves[curve]
        return float(np.mean([c[int(t * fr) - 3 : int(t * fr) + 4].max() for t in times]))

    assert peak_near("onset_low", kicks) > 5 * peak_near("onset_low", hats)
    assert peak_near("onset_high", hats) > 5 * peak_near("onset_high", kicks)


def test_silent_and_near_silent_stems_have_no_onsets(rng):
    for audio in (np.zeros(2 * SR, np.float32), (1e-5 * rng.standard_normal(2 * SR)).astype(np.float32)):
        feats = F.compute_stem_features(audio, name="empty", role="vocals")
        assert feats.onsets_s.shape == (0,)
        for name, curve in feats.curves.items():
            assert np.all(np.isfinite(curve)), name
    silent = F.compute_stem_features(np.zeros(SR, np.float32), name="s", role="other")
    assert all(float(np.abs(c).max()) == 0.0 for c in silent.curves.values())


def test_one_stft_per_stem(monkeypatch):
    """Every spectral feature shares one STFT: no librosa function computes its own."""
    ours, librosas = [], []
    real_ours, real_librosa = F.stft_magnitude, librosa.stft

    def count_ours(*args, **kwargs):
        ours.append(1)
        return real_ours(*args, **kwargs)

    def count_librosa(*args, **kwargs):
        librosas.append(1)
        return real_librosa(*args, **kwargs)

    monkeypatch.setattr(F, "stft_magnitude", count_ours)
    for module in (librosa, librosa.core, librosa.core.spectrum):
        monkeypatch.setattr(module, "stft", count_librosa)
    F.compute_stem_features(tone(440.0, 1.0), name="a", role="other")
    assert (len(ours), len(librosas)) == (1, 0)


@pytest.mark.parametrize("n_samples", [1, 300, 2049, 3 * SR + 17])
def test_stft_magnitude_equals_librosa(rng, n_samples):
    y = rng.standard_normal(n_samples).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # librosa warns when n_fft > len(y)
        expected = np.abs(librosa.stft(y, n_fft=2048, hop_length=ANALYSIS_HOP, center=True,
                                       pad_mode="constant"))
    got = F.stft_magnitude(y)
    assert got.shape == expected.shape == (1025, 1 + n_samples // ANALYSIS_HOP)
    np.testing.assert_allclose(got, expected, atol=1e-4 * max(1.0, float(expected.max())))


@pytest.mark.parametrize(
    "audio, kwargs, words",
    [
        (np.zeros(SR, np.float32), {"sample_rate": 44100}, ["44100", "22050"]),
        (np.zeros((2, SR), np.float32), {}, ["(2, 22050)", "mono"]),
        (np.zeros(0, np.float32), {}, ["empty"]),
        (np.zeros(SR, np.int16), {}, ["int16"]),
        (np.full(SR, np.nan, np.float32), {}, ["NaN"]),
    ],
)
def test_unusable_audio_is_refused_with_the_value(audio, kwargs, words):
    with pytest.raises(AnalysisError) as err:
        F.compute_stem_features(audio, name="Bad Stem", role="other", **kwargs)
    for word in words + ["Bad Stem"]:
        assert word in str(err.value)


# --- pipeline ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def three_stems():
    gen = np.random.default_rng(3)
    audio, _ = click_track(97.0, 12.0, SR, channels=1)
    bass = tone(55.0, 12.0, 0.3) * (np.arange(12 * SR) % (SR // 2) < SR // 4)
    pad = tone(261.63, 12.0, 0.2) + (1e-4 * gen.standard_normal(12 * SR)).astype(np.float32)
    return [("Drums", "drums", audio[0]), ("Bass", "bass", bass.astype(np.float32)), ("Pad", "other", pad)]


def test_pipeline_threads_match_serial_and_report_progress(three_stems):
    calls = []
    parallel = analyze_stems(three_stems, duration_seconds=12.0, max_workers=2,
                             progress=lambda d, t, label: calls.append((d, t, label)))
    serial = analyze_stems(three_stems, duration_seconds=12.0, max_workers=1)
    assert list(parallel.stems) == ["Drums", "Bass", "Pad"]
    for name in parallel.stems:
        for key, curve in parallel.stems[name].curves.items():
            np.testing.assert_array_equal(curve, serial.stems[name].curves[key])
        # per-stem features do not depend on the other stems
        alone = features_for_stem(name, parallel.stems[name].role, dict((n, a) for n, _, a in three_stems)[name])
        np.testing.assert_array_equal(alone.curves["onset"], parallel.stems[name].curves["onset"])
    np.testing.assert_array_equal(parallel.beat_grid.beats_s, serial.beat_grid.beats_s)
    assert parallel.tempo_bpm == pytest.approx(97.0, rel=0.01)
    assert calls[0][0] == 0 and calls[-1][:2] == (5, 5)
    assert [d for d, _, _ in calls] == sorted(d for d, _, _ in calls)
    assert parallel.sections[0][0] == 0.0 and parallel.sections[-1][1] == 12.0


def test_pipeline_uses_a_given_beat_grid(three_stems):
    grid = beat_grid_from_tempo(120.0, duration_seconds=12.0)
    result = analyze_stems(three_stems, duration_seconds=12.0, beat_grid=grid)
    assert result.beat_grid is grid


def test_pipeline_cancel_raises_cancelled(three_stems):
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        analyze_stems(three_stems, duration_seconds=12.0, cancel=token)


def test_pipeline_cancel_during_features_stops_before_beats(three_stems, monkeypatch):
    token = CancelToken()
    started = threading.Event()
    real = F.compute_stem_features
    import bridge.analysis.pipeline as P

    def slow_then_cancel(*args, **kwargs):
        started.set()
        token.cancel()
        return real(*args, **kwargs)

    monkeypatch.setattr(P, "compute_stem_features", slow_then_cancel)
    monkeypatch.setattr(P, "track_beats", lambda *a, **k: pytest.fail("beats ran after cancel"))
    with pytest.raises(Cancelled):
        analyze_stems(three_stems, duration_seconds=12.0, cancel=token, max_workers=2)
    assert started.is_set()


def test_pipeline_refuses_bad_input(three_stems):
    with pytest.raises(AnalysisError, match="No stems"):
        analyze_stems([], duration_seconds=10.0)
    with pytest.raises(AnalysisError, match="Drums"):
        analyze_stems([three_stems[0], three_stems[0]], duration_seconds=10.0)
    with pytest.raises(AnalysisError, match="duration_seconds"):
        analyze_stems(three_stems, duration_seconds=0.0)
    with pytest.raises(AnalysisError, match="Pad"):
        analyze_stems([("Pad", "other", np.zeros((2, 100), np.float32))], duration_seconds=1.0)
    assert isinstance(features_for_stem("x", "other", np.zeros(SR, np.float32)), StemFeatures)
