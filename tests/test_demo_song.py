"""The demo song: determinism, levels, and that its ground truth is really in the audio.

Every check on the audio measures it independently (scipy filters, FFTs, a Hilbert envelope,
soundfile), never with the generator's own helpers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from numpy.lib.stride_tricks import sliding_window_view
from scipy import fft as sp_fft
from scipy import signal

from bridge.demo import (
    STEM_NAMES,
    DemoSong,
    generate_demo_song,
    write_demo_stems,
    write_ground_truth,
)
from bridge.errors import AudioError, RenderError

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PITCH_CLASS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


@pytest.fixture(scope="module")
def song() -> DemoSong:
    return generate_demo_song()


def _dbfs(x: np.ndarray | float) -> float:
    return float(20.0 * np.log10(np.max(np.abs(x)) + 1e-12))


def _rms_db(x: np.ndarray) -> float:
    return float(10.0 * np.log10(np.mean(np.asarray(x, dtype=np.float64) ** 2) + 1e-20))


def _segment(x: np.ndarray, start_s: float, end_s: float, sample_rate: int) -> np.ndarray:
    return x[..., int(round(start_s * sample_rate)):int(round(end_s * sample_rate))]


# ---------------------------------------------------------------------------------------------
# determinism, shapes, levels


def test_same_bytes_every_call(song: DemoSong) -> None:
    again = generate_demo_song()
    for name in STEM_NAMES:
        assert again.stems[name].tobytes() == song.stems[name].tobytes(), name
    np.testing.assert_array_equal(again.beats_s, song.beats_s)
    for name in STEM_NAMES:
        np.testing.assert_array_equal(again.onsets_s[name], song.onsets_s[name])


def test_seed_changes_the_sound_not_the_timeline(song: DemoSong) -> None:
    other = generate_demo_song(seed=8)
    assert other.stems["drums"].tobytes() != song.stems["drums"].tobytes()
    np.testing.assert_array_equal(other.downbeats_s, song.downbeats_s)
    for name in STEM_NAMES:
        np.testing.assert_array_equal(other.onsets_s[name], song.onsets_s[name])
    assert other.sections == song.sections


def test_shapes_dtypes_and_length(song: DemoSong) -> None:
    assert set(song.stems) == {"drums", "bass", "other", "vocals"}
    n = song.stems["drums"].shape[1]
    assert n == round(song.duration_seconds * song.sample_rate)
    assert 28.0 <= song.duration_seconds <= 40.0
    for name, x in song.stems.items():
        assert x.dtype == np.float32, name
        assert x.shape == (2, n), name
        assert np.all(np.isfinite(x)), name
    assert song.sample_rate == 44100


def test_levels_dc_and_fades(song: DemoSong) -> None:
    sr = song.sample_rate
    for name, x in song.stems.items():
        assert -6.5 <= _dbfs(x) <= -2.5, (name, _dbfs(x))
        assert np.max(np.abs(x.astype(np.float64).mean(axis=1))) < 1e-3, f"{name} has DC"
        # the very ends are faded (≤ 50 ms): first and last samples are ~silent
        assert np.max(np.abs(x[:, :2])) < 1e-3, name
        assert np.max(np.abs(x[:, -2:])) < 1e-3, name
        # ... and the fade is short: 60 ms in, there is already sound in the stems that start at once
        if name in ("drums", "bass", "other"):
            assert _dbfs(x[:, : int(0.06 * sr)]) > -60.0, name
    mix = np.sum([song.stems[k].astype(np.float64) for k in STEM_NAMES], axis=0)
    assert _dbfs(mix) < 3.0, _dbfs(mix)
    assert _rms_db(mix) > -20.0  # a real track, not a whisper


def test_stereo_stems_are_really_stereo(song: DemoSong) -> None:
    # hats are panned, the pad and reverbs are wide: the channels must differ
    for name in ("drums", "other", "vocals"):
        x = song.stems[name].astype(np.float64)
        side = x[0] - x[1]
        assert _rms_db(side) > _rms_db(x) - 30.0, name


def test_bass_has_no_clicks(song: DemoSong) -> None:
    # a click at a note boundary is broadband; the low-passed bass has nothing near 8 kHz otherwise
    x = song.stems["bass"].astype(np.float64).mean(axis=0)
    hf = signal.sosfiltfilt(signal.butter(8, 8000.0, "highpass", fs=song.sample_rate, output="sos"), x)
    assert _dbfs(hf) - _dbfs(x) < -40.0


def test_bad_arguments_are_explained() -> None:
    with pytest.raises(AudioError, match="8000"):
        generate_demo_song(sample_rate=8000)
    with pytest.raises(AudioError, match="-1"):
        generate_demo_song(seed=-1)


def test_demo_with_an_odd_width_says_so_before_making_anything(tmp_path) -> None:
    """`stembridge demo --width 321` made the song and its stems, then failed in pydantic's words."""
    from bridge.demo.project import make_demo
    from bridge.errors import ProjectError

    with pytest.raises(ProjectError) as e:
        make_demo(tmp_path / "demo", width=321, height=180)
    assert str(e.value) == "--width: 321 is odd; H.264 (yuv420p) needs even frame sizes, use 322"
    assert not (tmp_path / "demo").exists()


# ---------------------------------------------------------------------------------------------
# the ground truth is in the audio


def test_beat_grid(song: DemoSong) -> None:
    assert song.tempo_bpm != 120.0
    assert song.beats_per_bar == 4
    beats = song.beats_s
    assert beats[0] == 0.0
    np.testing.assert_allclose(np.diff(beats), 60.0 / song.tempo_bpm, atol=1e-9)
    assert beats[-1] < song.duration_seconds <= beats[-1] + 60.0 / song.tempo_bpm + 1e-6
    np.testing.assert_array_equal(song.downbeats_s, beats[::4])
    # bars do not land on round seconds (a classic source of lucky passes)
    frac = np.abs(song.downbeats_s[1:] - np.round(song.downbeats_s[1:]))
    assert frac.min() > 0.02
    for kind in ("kick", "snare", "hat"):
        times = getattr(song, f"{kind}_s")
        assert len(times) > 10 and np.all(np.diff(times) > 0), kind


def _low_band_envelope_db(x: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Hilbert envelope of the < 150 Hz band in dB, at 1 ms steps → (times_s, level_db)."""
    low = signal.sosfiltfilt(signal.butter(6, 150.0, "lowpass", fs=sample_rate, output="sos"), x)
    env = np.abs(signal.hilbert(low, sp_fft.next_fast_len(len(low)))[: len(low)])
    hop = int(0.001 * sample_rate)
    level = 20.0 * np.log10(env[::hop] + 1e-9)
    return np.arange(len(level)) * hop / sample_rate, level


def test_kicks_are_where_the_ground_truth_says(song: DemoSong) -> None:
    x = song.stems["drums"].astype(np.float64).mean(axis=0)
    t, level = _low_band_envelope_db(x, song.sample_rate)
    lag = 15  # frames (ms): a kick's low end rises > 15 dB within 15 ms
    prev_min = np.concatenate([np.full(lag, np.inf), sliding_window_view(level, lag)[:-1].min(axis=1)])
    rise = level - prev_min
    top = level.max()
    kick_like = (rise > 15.0) & (level > top - 12.0)
    detected = t[np.flatnonzero(kick_like & ~np.concatenate([[False], kick_like[:-1]]))]
    kicks = song.kick_s
    assert len(kicks) >= 30
    errors = np.array([np.min(np.abs(detected - k)) for k in kicks])
    assert errors.max() <= 0.010, (kicks[errors.argmax()], errors.max())
    assert len(detected) == len(kicks)
    # nothing else in the drum stem rises like a kick (the snare build, hats, crash stay out of the lows)
    far = np.min(np.abs(t[:, None] - kicks[None, :]), axis=1) > 0.015
    assert not np.any(far & (rise > 10.0) & (level > top - 20.0))
    # every kick sits on a beat
    assert np.all(np.min(np.abs(kicks[:, None] - song.beats_s[None, :]), axis=1) < 1e-6)


def test_snares_are_on_two_and_four_in_the_drop(song: DemoSong) -> None:
    drop = [s for s in song.sections if s[2] == "drop"][0]
    beat = 60.0 / song.tempo_bpm
    snares = song.snare_s[(song.snare_s >= drop[0]) & (song.snare_s < drop[1])]
    beat_in_bar = np.round(snares / beat).astype(int) % 4
    assert len(snares) == 16 and set(beat_in_bar) == {1, 3}
    # and a snare is audible there: the 1–5 kHz band jumps at each claimed snare
    x = song.stems["drums"].astype(np.float64).mean(axis=0)
    mid = signal.sosfiltfilt(signal.butter(4, (1000.0, 5000.0), "bandpass", fs=song.sample_rate,
                                           output="sos"), x)
    w = int(0.015 * song.sample_rate)
    for s_t in snares:
        i = int(round(s_t * song.sample_rate))
        assert _rms_db(mid[i:i + w]) - _rms_db(mid[i - w - 5:i - 5]) > 6.0, s_t


def test_bass_plays_each_chord_root(song: DemoSong) -> None:
    sr = song.sample_rate
    x = song.stems["bass"].astype(np.float64).mean(axis=0)
    checked = 0
    for start, end, name in song.chords:
        seg = _segment(x, start, end, sr)
        if _rms_db(seg) < _rms_db(x) - 30.0:
            continue  # the last bar is the tail, the bass has stopped
        nfft = 1 << 20
        spectrum = np.abs(np.fft.rfft(seg * np.hanning(len(seg)), nfft))
        freqs = np.fft.rfftfreq(nfft, 1.0 / sr)
        band = (freqs > 25.0) & (freqs < 250.0)
        f_peak = freqs[band][np.argmax(spectrum[band])]
        midi = 69.0 + 12.0 * np.log2(f_peak / 440.0)
        assert abs(midi - round(midi)) < 0.3, (name, f_peak)
        assert round(midi) % 12 == PITCH_CLASS[name[0]], (start, name, f_peak)
        checked += 1
    assert checked >= 16


def test_bass_notes_start_where_claimed(song: DemoSong) -> None:
    x = song.stems["bass"].astype(np.float64).mean(axis=0)
    w = int(0.010 * song.sample_rate)
    onsets = song.onsets_s["bass"]
    assert len(onsets) > 40
    for t0 in onsets[onsets > 0.02]:
        i = int(round(t0 * song.sample_rate))
        assert _rms_db(x[i:i + w]) - _rms_db(x[i - w:i]) > 20.0, t0


def test_sections_change_the_music(song: DemoSong) -> None:
    sr = song.sample_rate
    names = [s[2] for s in song.sections]
    assert names[:2] == ["intro", "drop"]
    assert song.sections[0][0] == 0.0
    assert abs(song.sections[-1][1] - song.duration_seconds) < 1e-6
    for (_, end, _), (start, _, _) in zip(song.sections, song.sections[1:], strict=False):
        assert end == start
    assert all(song.section_prompts.get(n) for n in names)
    intro, drop = song.sections[0], song.sections[1]
    assert np.any(np.abs(song.downbeats_s - drop[0]) < 1e-9), "the drop starts on a bar"
    drums = song.stems["drums"]
    assert _rms_db(_segment(drums, drop[0], drop[1], sr)) - _rms_db(_segment(drums, intro[0], intro[1], sr)) > 10.0
    # the lead sings in the drop
    vocals = song.stems["vocals"]
    assert _rms_db(_segment(vocals, drop[0], drop[1], sr)) > _rms_db(vocals) - 3.0
    # no kick in the intro
    assert not np.any(song.kick_s < drop[0])


def test_vocal_lead_follows_its_notes(song: DemoSong) -> None:
    # the strongest partial of the lead, mid-note, is the claimed pitch (or its octave: formants
    # may favour the 2nd harmonic); vibrato is ±0.3 semitone, so allow half a semitone
    sr = song.sample_rate
    x = song.stems["vocals"].astype(np.float64).mean(axis=0)
    notes = song.notes["vocals"]
    long_notes = notes[(notes[:, 1] - notes[:, 0]) >= 0.45]
    assert len(long_notes) >= 10
    for start, end, pitch, _ in long_notes:
        seg = _segment(x, start + 0.08, min(end, start + 0.45), sr)
        spectrum = np.abs(np.fft.rfft(seg * np.hanning(len(seg)), 1 << 16))
        freqs = np.fft.rfftfreq(1 << 16, 1.0 / sr)
        band = (freqs > 150.0) & (freqs < 2000.0)
        f_peak = freqs[band][np.argmax(spectrum[band])]
        midi = 69.0 + 12.0 * np.log2(f_peak / 440.0)
        assert min(abs(midi - pitch), abs(midi - pitch - 12.0)) < 0.6, (start, pitch, f_peak)


# ---------------------------------------------------------------------------------------------
# files


def test_write_demo_stems_reads_back(song: DemoSong, tmp_path: Path) -> None:
    out = tmp_path / "stems"
    paths = write_demo_stems(song, out)
    assert [p.name for p in paths] == ["Demo Song Drums.wav", "Demo Song Bass.wav",
                                       "Demo Song Other.wav", "Demo Song Vocals.wav"]
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths)  # no temp files
    for name, path in zip(STEM_NAMES, paths, strict=True):
        info = sf.info(str(path))
        assert info.samplerate == 44100 and info.channels == 2 and info.subtype == "PCM_24"
        assert info.frames == song.stems[name].shape[1]
        data, _ = sf.read(str(path), dtype="float32", always_2d=True)
        np.testing.assert_allclose(data.T, song.stems[name], atol=2.0 ** -22)


def test_write_demo_stems_custom_name_and_error(song: DemoSong, tmp_path: Path) -> None:
    paths = write_demo_stems(song, tmp_path, song_name="Night Drive")
    assert paths[0].name == "Night Drive Drums.wav"
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(RenderError, match="a_file"):
        write_demo_stems(song, blocker / "sub")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([p.name for p in paths] + ["a_file"])


def test_ground_truth_json(song: DemoSong, tmp_path: Path) -> None:
    path = write_ground_truth(song, tmp_path / "ground_truth.json")
    assert [p.name for p in tmp_path.iterdir()] == ["ground_truth.json"]
    gt = json.loads(path.read_text(encoding="utf-8"))
    assert gt["tempo_map"] == [[0.0, song.tempo_bpm]]
    assert gt["time_signatures"] == [[0.0, 4, 4]]
    np.testing.assert_allclose(gt["beats"], song.beats_s, atol=1e-6)
    np.testing.assert_allclose(gt["downbeats"], song.downbeats_s, atol=1e-6)
    assert gt["beat_in_bar"][:5] == [1, 2, 3, 4, 1]
    assert gt["sample_rate"] == 44100 and gt["n_samples"] == song.stems["drums"].shape[1]
    for name in STEM_NAMES:
        np.testing.assert_allclose(gt["stems"][name]["onsets"], song.onsets_s[name], atol=1e-6)
    assert gt["stems"]["drums"]["file"] == "Demo Song Drums.wav"
    np.testing.assert_allclose(gt["stems"]["drums"]["onsets_by_class"]["kick"], song.kick_s, atol=1e-6)
    assert [s[2] for s in gt["sections"]] == [s[2] for s in song.sections]
    assert set(gt["section_prompts"]) == {s[2] for s in song.sections}


@pytest.mark.shared_data
def test_ground_truth_uses_the_shared_key_style(song: DemoSong, tmp_path: Path) -> None:
    examples = sorted(SHARED_DATA.glob("songs/*/ground_truth.json"))
    if not examples:
        pytest.skip(f"no shared ground truth under {SHARED_DATA} (only in the development checkout)")
    ref = json.loads(examples[0].read_text(encoding="utf-8"))
    ours = json.loads(write_ground_truth(song, tmp_path / "gt.json").read_text(encoding="utf-8"))
    shared_keys = {"duration_s", "n_samples", "sample_rate", "channels", "bit_depth", "tempo_map",
                   "time_signatures", "beats", "beat_in_bar", "downbeats", "onsets_all", "stems",
                   "time_base"}
    assert shared_keys <= set(ref) and shared_keys <= set(ours)
    ref_stem = next(iter(ref["stems"].values()))
    assert set(ref_stem) - {"onsets_by_class"} <= set(ours["stems"]["bass"])
    ref_classes = set(ref["stems"]["drums"]["onsets_by_class"])
    assert {"kick", "snare", "hihat"} <= ref_classes
    assert {"kick", "snare", "hihat"} <= set(ours["stems"]["drums"]["onsets_by_class"])
