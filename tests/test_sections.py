"""Section boundaries against songs whose structure is known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from bridge.analysis.beats import beat_grid_from_tempo, track_beats
from bridge.analysis.features import compute_stem_features
from bridge.analysis.sections import detect_sections
from bridge.analysis.types import ANALYSIS_SAMPLE_RATE, BeatGrid
from bridge.errors import AnalysisError

SR = ANALYSIS_SAMPLE_RATE
TEMPO_BPM = 100.0
BEAT_S = 60.0 / TEMPO_BPM
BAR_S = 4 * BEAT_S
#: C, G, Am, F (MIDI pitches of the pad voicing, bass root)
CHORDS = [((60, 64, 67), 36), ((59, 62, 67), 31), ((57, 60, 64), 33), ((57, 60, 65), 29)]


def midi_hz(pitch: float) -> float:
    return 440.0 * 2.0 ** ((pitch - 69) / 12)


def synth_song(n_bars: int, *, drums_from_bar: int | None, drums_off_bars: tuple[int, ...] = (),
               seed: int = 5) -> dict[str, np.ndarray]:
    """Pad (one chord per bar, C–G–Am–F), bass (root on every beat) and, from ``drums_from_bar``
    (1-based) on, drums (kick 1 & 3, snare 2 & 4, 8th hats). Mono float32 stems at SR."""
    gen = np.random.default_rng(seed)
    n = int(round(n_bars * BAR_S * SR))
    t = np.arange(n) / SR
    pad, bass, drums = (np.zeros(n) for _ in range(3))
    note_len = int(0.3 * SR)
    decay = np.exp(-np.arange(note_len) / (0.08 * SR))
    hit_len = int(0.12 * SR)
    hit_env = np.exp(-np.arange(hit_len) / (0.02 * SR))
    for bar in range(n_bars):
        (voicing, root) = CHORDS[bar % 4]
        lo, hi = int(round(bar * BAR_S * SR)), int(round((bar + 1) * BAR_S * SR))
        for p in voicing:
            pad[lo:hi] += 0.08 * np.sin(2 * np.pi * midi_hz(p) * t[lo:hi])
        for beat in range(4):
            i = int(round((bar * 4 + beat) * BEAT_S * SR))
            seg = 0.4 * np.sin(2 * np.pi * midi_hz(root) * np.arange(note_len) / SR) * decay
            bass[i : i + note_len] += seg[: n - i]
        playing = drums_from_bar is not None and bar + 1 >= drums_from_bar and bar + 1 not in drums_off_bars
        if not playing:
            continue
        for eighth in range(8):
            i = int(round((bar * 4 + eighth / 2) * BEAT_S * SR))
            m = min(hit_len, n - i)
            if eighth in (0, 4):
                drums[i : i + m] += (0.8 * np.sin(2 * np.pi * 55 * np.arange(m) / SR) * hit_env[:m])
            if eighth in (2, 6):
                drums[i : i + m] += 0.4 * gen.standard_normal(m) * hit_env[:m]
            drums[i : i + m] += 0.1 * np.diff(gen.standard_normal(m + 1)) * hit_env[:m] ** 4
    return {"Pad": pad.astype(np.float32), "Bass": bass.astype(np.float32),
            "Drums": drums.astype(np.float32)}


def analyse(stems: dict[str, np.ndarray]):
    roles = {"Pad": "other", "Bass": "bass", "Drums": "drums"}
    return {name: compute_stem_features(audio, name=name, role=roles[name]) for name, audio in stems.items()}


def assert_contiguous(sections, duration):
    assert sections[0][0] == 0.0 and sections[-1][1] == pytest.approx(duration)
    for (a0, a1), (b0, _) in zip(sections[:-1], sections[1:], strict=True):
        assert a1 == b0 and a1 > a0


@pytest.fixture(scope="module")
def drums_enter_at_bar_9():
    n_bars = 16
    return analyse(synth_song(n_bars, drums_from_bar=9)), n_bars * BAR_S


def test_drums_entering_at_bar_9_is_the_only_boundary(drums_enter_at_bar_9):
    feats, duration = drums_enter_at_bar_9
    grid = beat_grid_from_tempo(TEMPO_BPM, duration_seconds=duration)
    sections = detect_sections(feats, grid, duration_seconds=duration)
    assert_contiguous(sections, duration)
    assert [round(a, 6) for a, _ in sections] == [0.0, round(8 * BAR_S, 6)]


def test_drums_entry_found_on_a_detected_grid(drums_enter_at_bar_9):
    feats, duration = drums_enter_at_bar_9
    grid = track_beats(feats, duration_seconds=duration)
    sections = detect_sections(feats, grid, duration_seconds=duration)
    assert_contiguous(sections, duration)
    starts = np.array([a for a, _ in sections])
    assert np.min(np.abs(starts - 8 * BAR_S)) < BEAT_S / 2
    assert all(b - a >= 4 * BAR_S - BEAT_S for a, b in sections[1:-1])


def test_a_loop_without_changes_is_one_section():
    n_bars = 16
    feats = analyse(synth_song(n_bars, drums_from_bar=1))
    duration = n_bars * BAR_S
    grid = beat_grid_from_tempo(TEMPO_BPM, duration_seconds=duration)
    assert detect_sections(feats, grid, duration_seconds=duration) == [(0.0, duration)]


def test_sections_respect_min_bars():
    n_bars = 20
    # drums enter at bar 5, drop out for bars 11–12, come back: the 2-bar break is too short for
    # a section of its own with min_bars=4
    feats = analyse(synth_song(n_bars, drums_from_bar=5, drums_off_bars=(11, 12)))
    duration = n_bars * BAR_S
    grid = beat_grid_from_tempo(TEMPO_BPM, duration_seconds=duration)
    for min_bars in (2, 4):
        sections = detect_sections(feats, grid, duration_seconds=duration, min_bars=min_bars)
        assert_contiguous(sections, duration)
        starts = np.round(np.array([a for a, _ in sections]) / BAR_S).astype(int)
        assert 4 in starts  # bar 5 (0-based bar index 4)
        assert np.all(np.diff(starts) >= min_bars) and starts[-1] <= n_bars - min_bars
        if min_bars == 2:
            assert 10 in starts and 12 in starts  # the break, bars 11-12


def test_pickup_before_the_first_downbeat_joins_the_first_section(drums_enter_at_bar_9):
    feats, duration = drums_enter_at_bar_9
    grid = beat_grid_from_tempo(TEMPO_BPM, duration_seconds=duration, first_downbeat_seconds=BEAT_S)
    sections = detect_sections(feats, grid, duration_seconds=duration)
    assert_contiguous(sections, duration)
    assert sections[0][0] == 0.0


def test_no_downbeats_or_few_bars_give_one_section(drums_enter_at_bar_9):
    feats, duration = drums_enter_at_bar_9
    empty = BeatGrid(tempo_bpm=120.0, beats_s=np.zeros(0), downbeats_s=np.zeros(0), beats_per_bar=4)
    assert detect_sections(feats, empty, duration_seconds=duration) == [(0.0, duration)]
    short = beat_grid_from_tempo(TEMPO_BPM, duration_seconds=5 * BAR_S)
    assert detect_sections(feats, short, duration_seconds=5 * BAR_S) == [(0.0, 5 * BAR_S)]
    assert detect_sections({}, short, duration_seconds=5 * BAR_S) == [(0.0, 5 * BAR_S)]


def test_bad_arguments_raise_analysis_error(drums_enter_at_bar_9):
    feats, duration = drums_enter_at_bar_9
    grid = beat_grid_from_tempo(TEMPO_BPM, duration_seconds=duration)
    with pytest.raises(AnalysisError, match="duration_seconds"):
        detect_sections(feats, grid, duration_seconds=-1.0)
    with pytest.raises(AnalysisError, match="min_bars"):
        detect_sections(feats, grid, duration_seconds=duration, min_bars=0)


def test_demo_song_drop_is_a_boundary():
    from bridge.demo.song import generate_demo_song

    song = generate_demo_song(sample_rate=SR)
    roles = {"drums": "drums", "bass": "bass"}
    feats = {n: compute_stem_features(a.mean(axis=0), name=n, role=roles.get(n, "other"))
             for n, a in song.stems.items()}
    grid = track_beats(feats, duration_seconds=song.duration_seconds)
    sections = detect_sections(feats, grid, duration_seconds=song.duration_seconds)
    assert_contiguous(sections, song.duration_seconds)
    drop_s = next(a for a, _, name in song.sections if name == "drop")
    starts = np.array([a for a, _ in sections])
    assert np.min(np.abs(starts - drop_s)) < 60.0 / song.tempo_bpm / 2
