"""Beat tracking against independent truths: click tracks at known tempi and meters, the demo
song's score, and hand-made / MIDI-derived beat annotations of real music (../shared/data)."""

from __future__ import annotations

import json

import librosa
import mir_eval
import numpy as np
import pytest
import soundfile as sf
from conftest import click_track, shared_data

from bridge.analysis.beats import beat_grid_from_tempo, track_beats
from bridge.analysis.features import compute_stem_features
from bridge.analysis.types import ANALYSIS_SAMPLE_RATE, BeatGrid, StemFeatures
from bridge.errors import AnalysisError

SR = ANALYSIS_SAMPLE_RATE


def trimmed(times_s, duration_s: float) -> np.ndarray:
    """Drop the first/last 50 ms (the songs fade in/out there)."""
    t = np.asarray(times_s, dtype=np.float64)
    return t[(t >= 0.05) & (t <= duration_s - 0.05)]


def scores(ref_s, est_s, duration_s: float) -> tuple[float, float]:
    """(F-measure at ±70 ms, AMLt) with mir_eval."""
    ref, est = trimmed(ref_s, duration_s), trimmed(est_s, duration_s)
    f = mir_eval.beat.f_measure(ref, est, f_measure_threshold=0.07)
    amlt = mir_eval.beat.continuity(ref, est)[3]
    return float(f), float(amlt)


def click_stems(tempo_bpm: float, seconds: float, beats_per_bar: int, *, first_beat_s: float = 0.0,
                role: str = "drums") -> tuple[dict[str, StemFeatures], np.ndarray]:
    audio, beats = click_track(tempo_bpm, seconds, SR, beats_per_bar=beats_per_bar,
                               first_beat_s=first_beat_s, channels=1)
    return {"click": compute_stem_features(audio[0], name="click", role=role)}, beats


# --- synthetic -----------------------------------------------------------------------------------

@pytest.mark.parametrize("tempo_bpm, beats_per_bar, first_beat_s",
                         [(97.0, 4, 0.0), (97.0, 3, 0.0), (75.0, 3, 0.4), (143.0, 4, 0.25),
                          (60.0, 4, 0.0)])  # 60: not 120 through its 2- and 4-second peaks
def test_click_track_tempo_beats_meter_and_downbeats(tempo_bpm, beats_per_bar, first_beat_s):
    seconds = 30.0
    stems, beats = click_stems(tempo_bpm, seconds, beats_per_bar, first_beat_s=first_beat_s)
    grid = track_beats(stems, duration_seconds=seconds)
    assert grid.source == "detected"
    assert grid.tempo_bpm == pytest.approx(tempo_bpm, rel=0.01)
    assert grid.beats_per_bar == beats_per_bar
    f, _ = scores(beats, grid.beats_s, seconds)
    assert f >= 0.95
    f_down, _ = scores(beats[::beats_per_bar], grid.downbeats_s, seconds)
    assert f_down >= 0.95
    assert np.all(np.diff(grid.beats_s) > 0)
    assert set(np.round(grid.downbeats_s, 9)) <= set(np.round(grid.beats_s, 9))


@pytest.mark.xfail(strict=True, reason=(
    "issue 12, known: chroma and levels come from windows centred on their frames, so half of a short "
    "accented click lands in the beat before and the harmonic change peaks after the downbeat; the fixes "
    "tried cost real songs (session 15 note). strict: this test fails loudly once the downbeat is right"))
def test_a_pitched_metronome_bounced_as_one_stem_has_its_downbeat_on_one():
    """A DAW metronome: a higher, louder click on 1 (1500 Hz, twice the level), 1000 Hz on the other
    beats, bounced as "Click.wav" (role other). The downbeats are the high clicks."""
    seconds, tempo_bpm = 20.0, 120.0
    n = int(seconds * SR)
    y = np.zeros(n, dtype=np.float32)
    beats = np.arange(0.0, seconds - 0.05, 60.0 / tempo_bpm)
    length = int(0.03 * SR)
    t = np.arange(length) / SR
    for i, at in enumerate(beats):
        one = i % 4 == 0
        click = (1.0 if one else 0.5) * np.sin(2 * np.pi * (1500.0 if one else 1000.0) * t) * np.exp(-t / 0.008)
        start = int(round(at * SR))
        y[start:start + length] += click[: n - start].astype(np.float32)
    grid = track_beats({"Click": compute_stem_features(y, name="Click", role="other")}, duration_seconds=seconds)
    assert grid.beats_per_bar == 4
    f_down, _ = scores(beats[::4], grid.downbeats_s, seconds)
    assert f_down >= 0.95


def test_click_track_as_a_non_drum_stem_works_too():
    stems, beats = click_stems(97.0, 20.0, 4, role="other")
    grid = track_beats(stems, duration_seconds=20.0)
    assert grid.tempo_bpm == pytest.approx(97.0, rel=0.01)
    assert scores(beats, grid.beats_s, 20.0)[0] >= 0.95


def test_drum_stem_outweighs_a_conflicting_pitched_stem(rng):
    """Drums at 100 BPM, an arpeggio stem at an unrelated 133 BPM pulse: the beat is the drums'."""
    seconds = 24.0
    stems, beats = click_stems(100.0, seconds, 4)
    t = np.arange(int(seconds * SR)) / SR
    note_period_s = 0.45
    phase = t % note_period_s
    arp = 0.3 * np.sin(2 * np.pi * 440.0 * t) * np.exp(-phase / 0.05)
    stems["arp"] = compute_stem_features(arp.astype(np.float32), name="arp", role="other")
    grid = track_beats(stems, duration_seconds=seconds)
    assert grid.tempo_bpm == pytest.approx(100.0, rel=0.01)
    assert scores(beats, grid.beats_s, seconds)[0] >= 0.95


def dotted_eighth_waltz(tempo_bpm: float, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """3/4 drums, mono: 16th hats (louder on the beat), snare on beats 2 and 3, and a kick on every
    dotted 8th (16ths 0, 3, 6, 9 of the bar's 12) — four evenly spaced kicks against three beats.
    Returns (audio (samples,), beat times (s))."""
    gen = np.random.default_rng(3)
    n = int(seconds * SR)
    audio = np.zeros(n, np.float32)
    sixteenths_s = np.arange(0.0, seconds - 0.1, 60.0 / tempo_bpm / 4)
    tk = np.arange(int(0.15 * SR)) / SR
    kick = (np.sin(2 * np.pi * (55 + 60 * np.exp(-tk / 0.02)) * tk) * np.exp(-tk / 0.08)).astype(np.float32)
    hat = (gen.standard_normal(int(0.03 * SR)) * np.exp(-np.arange(int(0.03 * SR)) / (0.005 * SR))).astype(np.float32)
    snare = (gen.standard_normal(int(0.1 * SR)) * np.exp(-np.arange(int(0.1 * SR)) / (0.03 * SR))).astype(np.float32)
    for i, t in enumerate(sixteenths_s):
        start, pos = int(t * SR), i % 12
        hits = [(0.35 if pos % 4 == 0 else 0.2, hat)]
        if pos in (0, 3, 6, 9):
            hits.append((0.8, kick))
        if pos in (4, 8):
            hits.append((0.4, snare))
        for amp, wave in hits:
            end = min(n, start + wave.shape[0])
            audio[start:end] += amp * wave[: end - start]
    return audio, sixteenths_s[::4]


def test_waltz_with_a_dotted_eighth_kick_is_three_four():
    """Twelve 16ths grouped 3+3+3+3 by the kick: still 3 beats of four 16ths at 90 BPM, not 4 beats
    of three (120 BPM) nor 2 of six (60 BPM)."""
    seconds = 30.0
    audio, beats = dotted_eighth_waltz(90.0, seconds)
    grid = track_beats({"drums": compute_stem_features(audio, name="drums", role="drums")},
                       duration_seconds=seconds)
    assert grid.tempo_bpm == pytest.approx(90.0, rel=0.01)
    assert grid.beats_per_bar == 3
    assert scores(beats, grid.beats_s, seconds)[0] >= 0.95
    assert scores(beats[::3], grid.downbeats_s, seconds)[0] >= 0.95


def test_tempo_hint_is_followed():
    stems, beats = click_stems(97.0, 20.0, 4)
    exact = track_beats(stems, duration_seconds=20.0, tempo_hint_bpm=97.0)
    assert exact.tempo_bpm == 97.0
    assert scores(beats, exact.beats_s, 20.0)[0] >= 0.95
    # a hint at double the clicks' tempo: beats at the hint's period, half of them on clicks
    double = track_beats(stems, duration_seconds=20.0, tempo_hint_bpm=194.0)
    assert double.tempo_bpm == 194.0
    assert np.median(np.diff(double.beats_s)) == pytest.approx(60.0 / 194.0, rel=0.03)
    assert mir_eval.beat.continuity(trimmed(beats, 20.0), trimmed(double.beats_s, 20.0))[3] >= 0.95


def test_given_meter_is_used():
    stems, beats = click_stems(97.0, 24.0, 4)
    grid = track_beats(stems, duration_seconds=24.0, beats_per_bar=3)
    assert grid.beats_per_bar == 3
    assert np.allclose(grid.downbeats_s, grid.beats_s[grid.beats_s.searchsorted(grid.downbeats_s[0])::3])


def test_silence_gives_an_empty_grid_not_an_error():
    silent = {"pad": compute_stem_features(np.zeros(5 * SR, np.float32), name="pad", role="other")}
    grid = track_beats(silent, duration_seconds=5.0)
    assert grid.beats_s.shape == (0,) and grid.downbeats_s.shape == (0,)
    assert grid.tempo_bpm == 120.0 and grid.beats_per_bar == 4 and grid.source == "detected"
    hinted = track_beats(silent, duration_seconds=5.0, tempo_hint_bpm=90.0, beats_per_bar=3)
    assert hinted.tempo_bpm == 90.0 and hinted.beats_per_bar == 3
    assert track_beats({}, duration_seconds=5.0).beats_s.shape == (0,)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_white_noise_gets_no_tempo(seed):
    """Noise has no beat: its random onsets must not be chained into a confident grid (it used to
    read 112–192 BPM). A click track at the same level right after it still gets its tempo."""
    noise = np.random.default_rng(seed).standard_normal(20 * SR).astype(np.float32) * 0.1
    grid = track_beats({"hiss": compute_stem_features(noise, name="hiss", role="other")}, duration_seconds=20.0)
    assert grid.beats_s.shape == (0,), f"noise got {grid.beats_s.shape[0]} beats at {grid.tempo_bpm:.1f} BPM"
    stems, beats = click_stems(112.0, 20.0, 4)
    assert abs(track_beats(stems, duration_seconds=20.0).tempo_bpm - 112.0) < 1.0


@pytest.mark.parametrize("kwargs, word", [
    ({"duration_seconds": 0.0}, "duration_seconds"),
    ({"duration_seconds": 5.0, "tempo_hint_bpm": -3.0}, "tempo_hint_bpm"),
    ({"duration_seconds": 5.0, "beats_per_bar": 0}, "beats_per_bar"),
])
def test_bad_arguments_raise_analysis_error(kwargs, word):
    with pytest.raises(AnalysisError, match=word):
        track_beats({}, **kwargs)


def test_beat_grid_from_tempo():
    grid = beat_grid_from_tempo(120.0, duration_seconds=10.0, beats_per_bar=4, first_downbeat_seconds=1.2)
    assert isinstance(grid, BeatGrid) and grid.source == "project" and grid.tempo_bpm == 120.0
    np.testing.assert_allclose(grid.beats_s, 0.2 + 0.5 * np.arange(20))  # pickup beats at 0.2, 0.7
    np.testing.assert_allclose(grid.downbeats_s, [1.2, 3.2, 5.2, 7.2, 9.2])
    waltz = beat_grid_from_tempo(90.0, duration_seconds=8.0, beats_per_bar=3)
    np.testing.assert_allclose(np.diff(waltz.beats_s), 60.0 / 90.0)
    np.testing.assert_allclose(waltz.downbeats_s, waltz.beats_s[::3])
    with pytest.raises(AnalysisError, match="first_downbeat_seconds"):
        beat_grid_from_tempo(120.0, duration_seconds=10.0, first_downbeat_seconds=12.0)
    with pytest.raises(AnalysisError, match="tempo"):
        beat_grid_from_tempo(0.0, duration_seconds=10.0)


@pytest.fixture(scope="module")
def demo_song():
    from bridge.demo.song import generate_demo_song

    song = generate_demo_song(sample_rate=SR)
    roles = {"drums": "drums", "bass": "bass"}
    stems = {name: compute_stem_features(audio.mean(axis=0), name=name, role=roles.get(name, "other"))
             for name, audio in song.stems.items()}
    return song, stems


def test_demo_song_beats(demo_song):
    song, stems = demo_song
    grid = track_beats(stems, duration_seconds=song.duration_seconds)
    assert grid.tempo_bpm == pytest.approx(song.tempo_bpm, rel=0.01)
    assert grid.beats_per_bar == song.beats_per_bar
    assert scores(song.beats_s, grid.beats_s, song.duration_seconds)[0] >= 0.95
    assert scores(song.downbeats_s, grid.downbeats_s, song.duration_seconds)[0] >= 0.9


# --- real music (../shared/data) -------------------------------------------------------------------

def load_song(folder_name: str) -> tuple[dict[str, StemFeatures], dict]:
    folder = shared_data("songs", folder_name)
    truth = json.loads((folder / "ground_truth.json").read_text())
    stems = {}
    for name, info in truth["stems"].items():
        audio, rate = sf.read(folder / info["file"], dtype="float32", always_2d=True)
        mono = librosa.resample(audio.mean(axis=1), orig_sr=rate, target_sr=SR)
        role = name if name in ("drums", "bass") else "other"
        stems[name] = compute_stem_features(mono.astype(np.float32), name=name, role=role)
    return stems, truth


@pytest.fixture(scope="module")
def funk():
    return load_song("01_gmd_funk_groove1_138")


@pytest.fixture(scope="module")
def waltz():
    return load_song("03_freedoom_e2m6_concept_of_technology_3-4")


@pytest.mark.shared_data
def test_real_funk_drums_138(funk):
    """A human drummer's funk groove: librosa's default tracker locks to 4/3 of the tempo here."""
    stems, truth = funk
    duration = truth["duration_s"]
    grid = track_beats(stems, duration_seconds=duration)
    f, amlt = scores(truth["beats"], grid.beats_s, duration)
    assert max(f, amlt) >= 0.8, (f, amlt)
    assert grid.tempo_bpm == pytest.approx(138.0, rel=0.02)
    assert grid.beats_per_bar == 4
    assert scores(truth["downbeats"], grid.downbeats_s, duration)[0] >= 0.8


@pytest.mark.shared_data
def test_real_waltz_with_the_projects_meter(waltz):
    """3/4 at 82 BPM, four stems. Given the time signature, tempo, beats and downbeats follow."""
    stems, truth = waltz
    duration = truth["duration_s"]
    grid = track_beats(stems, duration_seconds=duration, beats_per_bar=3)
    f, amlt = scores(truth["beats"], grid.beats_s, duration)
    assert max(f, amlt) >= 0.8, (f, amlt)
    assert grid.tempo_bpm == pytest.approx(82.0, rel=0.02)
    assert scores(truth["downbeats"], grid.downbeats_s, duration)[0] >= 0.8
    hinted = track_beats(stems, duration_seconds=duration, tempo_hint_bpm=82.0)
    assert max(scores(truth["beats"], hinted.beats_s, duration)) >= 0.8
    assert hinted.beats_per_bar == 3  # the meter is detected once the tempo is known


@pytest.mark.shared_data
def test_real_waltz_without_hints(waltz):
    """No hints: the kick's dotted-8th pattern (3+3+3+3 sixteenths) must not read as 4 beats of
    110 BPM (the tatum-rate prior in beats.py); beats, 82 BPM, 3/4 and the downbeats are found."""
    stems, truth = waltz
    duration = truth["duration_s"]
    grid = track_beats(stems, duration_seconds=duration)
    f, amlt = scores(truth["beats"], grid.beats_s, duration)
    assert max(f, amlt) >= 0.8, (f, amlt)
    assert grid.tempo_bpm == pytest.approx(82.0, rel=0.02)
    assert grid.beats_per_bar == 3
    assert scores(truth["downbeats"], grid.downbeats_s, duration)[0] >= 0.8


@pytest.mark.shared_data
def test_real_rubato_piano_is_followed():
    """Debussy with 140 tempo changes (92–128 BPM), no drums: a regression guard, no target."""
    stems, truth = load_song("05_pianomidi_debussy_snow_rubato")
    grid = track_beats(stems, duration_seconds=truth["duration_s"])
    f, amlt = scores(truth["beats"], grid.beats_s, truth["duration_s"])
    assert max(f, amlt) >= 0.5, (f, amlt)


@pytest.mark.shared_data
@pytest.mark.slow
@pytest.mark.parametrize("folder_name, tempo_bpm, beats_per_bar", [
    ("06_freedoom_e1m4_flood_the_city_80", 80.0, 4),  # half-time feel over 16th bass: not 160
    ("12_freedoom_map15_backpack_of_shells_105", 105.0, 4),  # off-beat snare: beats on the kick
])
def test_real_songs_meet_the_rhythm_goals(folder_name, tempo_bpm, beats_per_bar):
    """The issue's goals (beat F or AMLt ≥ 0.9, downbeat F ≥ 0.8, tempo within 4 %, meter) on
    songs with drums. Song 06 was kept aside while the tracker was developed; 12 was a dev song."""
    stems, truth = load_song(folder_name)
    duration = truth["duration_s"]
    grid = track_beats(stems, duration_seconds=duration)
    f, amlt = scores(truth["beats"], grid.beats_s, duration)
    assert max(f, amlt) >= 0.9, (f, amlt)
    assert grid.tempo_bpm == pytest.approx(tempo_bpm, rel=0.04)
    assert grid.beats_per_bar == beats_per_bar
    assert scores(truth["downbeats"], grid.downbeats_s, duration)[0] >= 0.8


def test_a_dense_real_rock_mix_alone_gets_the_beat_its_drums_play():
    """A real recording analysed as one stem (no separation): MUSDB's "Music Delta - 80s Rock" mix.
    Its guitars' flux swells and fades smoothly, which hid the beat: the noise gate dropped every
    beat (before that, they ran at 190 BPM). The truth comes from the song's own drums stem: its
    strong hits (librosa onset peaks, the loudest tenth of the envelope) and their median spacing."""
    folder = shared_data("stems_musicdelta_80srock")
    mix, _ = librosa.load(folder / "mixture.wav", sr=SR, mono=True)
    drums, _ = librosa.load(folder / "drums.wav", sr=SR, mono=True)
    env = librosa.onset.onset_strength(y=drums, sr=SR, hop_length=128)
    peaks = librosa.util.peak_pick(env, pre_max=10, post_max=10, pre_avg=20, post_avg=20,
                                   delta=0.5 * float(np.percentile(env, 90)), wait=20)
    hits_s = librosa.frames_to_time(peaks, sr=SR, hop_length=128)
    true_bpm = 60.0 / float(np.median(np.diff(hits_s)))
    assert 100 < true_bpm < 120, f"truth from the drums stem looks wrong: {true_bpm:.1f} BPM"

    grid = track_beats({"mix": compute_stem_features(mix, name="mix", role="other")},
                       duration_seconds=mix.shape[0] / SR)
    assert grid.beats_s.shape[0] >= 10, f"{grid.beats_s.shape[0]} beats at {grid.tempo_bpm:.1f} BPM"
    assert abs(grid.tempo_bpm / true_bpm - 1.0) < 0.04, (grid.tempo_bpm, true_bpm)
    f = mir_eval.beat.f_measure(mir_eval.beat.trim_beats(hits_s), mir_eval.beat.trim_beats(grid.beats_s))
    assert f >= 0.8, f"beats vs the drums' hits: F {f:.2f}"


def test_a_part_entering_marks_a_section_boundary_a_steady_loop_has_none():
    """The section accent of the downbeat finder: a pad entering on beat 32 (bar 9) and leaving on
    beat 64 peaks there, and a click loop with no change of part gives no accent at all."""
    from bridge.analysis.bars import _section_boundaries
    from bridge.analysis.periodicity import _frame_rate_hz

    tempo_bpm, seconds = 120.0, 40.0
    stems, beats = click_stems(tempo_bpm, seconds, 4)
    frames = np.round(beats * _frame_rate_hz()).astype(int)
    n_frames = stems["click"].n_frames
    assert not _section_boundaries(stems, frames, n_frames).any()

    t = np.arange(int(seconds * SR)) / SR
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)) / 3.0
    pad = (0.3 * chord * ((t >= beats[32]) & (t < beats[64]))).astype(np.float32)
    stems["pad"] = compute_stem_features(pad, name="pad", role="other")
    accent = _section_boundaries(stems, frames, n_frames)
    peaks = set(np.flatnonzero(accent > 0.5 * accent.max()))
    assert peaks and peaks <= {31, 32, 33, 63, 64, 65}, sorted(peaks)
