"""Rhythm corrections (tempo, ×2/÷2, meter, downbeat, tap tempo): saved in the project, undoable in
the Session, and the resulting beat grid checked against the click track's known beats."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mir_eval
import numpy as np
import pytest
from conftest import click_track, write_wav

from bridge.analysis.corrections import TapTempo
from bridge.cli import main
from bridge.project import load_project
from bridge.project.schema import RhythmCorrection, meter_beats_per_bar

SR = 22050
TEMPO_BPM = 167.0
SECONDS = 10.0
FIRST_BEAT_S = 0.31


def beat_f(ref, est) -> float:
    ref = np.asarray(ref, dtype=np.float64)
    est = np.asarray(est, dtype=np.float64)
    keep = lambda t: t[(t >= 0.05) & (t <= SECONDS - 0.1)]  # noqa: E731
    return float(mir_eval.beat.f_measure(keep(ref), keep(est), f_measure_threshold=0.07))


@pytest.fixture(scope="module")
def click_project(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A 167 BPM 4/4 click-track project (drums stem), analysed once so the stem cache is warm."""
    from bridge.project.create import new_project

    root = tmp_path_factory.mktemp("clicks")
    audio, beats = click_track(TEMPO_BPM, SECONDS, SR, beats_per_bar=4, first_beat_s=FIRST_BEAT_S)
    write_wav(root / "stems" / "Song Drums.wav", audio, SR)
    new_project(root / "proj", root / "stems")
    assert main(["analyze", str(root / "proj"), "-q"]) == 0
    return root / "proj", beats


@pytest.fixture
def project(click_project, tmp_path) -> tuple[Path, np.ndarray]:
    src, beats = click_project
    shutil.copytree(src.parent, tmp_path / "song")  # stems are stored relative to the project
    return tmp_path / "song" / "proj", beats


def analyze_json(capsys, project_dir: Path, *options: str) -> dict:
    capsys.readouterr()
    assert main(["analyze", str(project_dir), "--json", "-q", *options]) == 0
    return json.loads(capsys.readouterr().out)


def no_stem_analysis(monkeypatch) -> None:
    """A correction must re-run only the song-level tracking: computing stem features fails the test."""
    import bridge.analysis.pipeline as pipeline

    def fail(*a, **k):
        raise AssertionError("stem features were computed again for a rhythm correction")

    monkeypatch.setattr(pipeline, "features_for_stem", fail)


def test_cli_tempo_meter_downbeat_give_the_true_grid_and_are_saved(project, capsys, monkeypatch):
    project_dir, beats = project
    no_stem_analysis(monkeypatch)
    downbeat = float(beats[4])  # bar 2's first beat (the click track's louder clicks are every 4th)
    out = analyze_json(capsys, project_dir, "--tempo", "167", "--meter", "4/4", "--downbeat", f"{downbeat:.4f}")
    assert out["tempo_bpm"] == pytest.approx(167.0)
    assert out["beats_per_bar"] == 4 and out["tempo_source"] == "corrected"
    assert out["rhythm_correction"]["meter"] == "4/4"
    assert beat_f(beats, out["beats"]) >= 0.98
    assert beat_f(beats[::4], out["downbeats"]) >= 0.95
    saved = json.loads((project_dir / "stembridge.json").read_text())["rhythm"]
    assert saved == {"tempo_bpm": 167.0, "tempo_factor": 1.0, "meter": "4/4",
                     "first_downbeat_seconds": pytest.approx(downbeat, abs=1e-4), "beat_model": None}
    # the correction holds for later commands without the options
    again = analyze_json(capsys, project_dir)
    assert again["beats"] == out["beats"]


def test_tempo_alone_lets_the_tracker_place_beats_and_bars(project, capsys):
    project_dir, beats = project
    out = analyze_json(capsys, project_dir, "--tempo", "167")
    assert out["tempo_bpm"] == pytest.approx(167.0)
    assert beat_f(beats, out["beats"]) >= 0.95


def test_double_tempo_fixes_a_half_speed_reading_and_reset_clears_it(project, capsys):
    project_dir, beats = project
    half = analyze_json(capsys, project_dir, "--tempo", "83.5")  # the wrong, half-speed reading
    assert half["tempo_bpm"] == pytest.approx(83.5)
    assert beat_f(beats, half["beats"]) < 0.8
    fixed = analyze_json(capsys, project_dir, "--double-tempo")
    assert fixed["tempo_bpm"] == pytest.approx(167.0)
    assert beat_f(beats, fixed["beats"]) >= 0.95
    assert load_project(project_dir)[0].rhythm == RhythmCorrection(tempo_bpm=83.5, tempo_factor=2.0)
    halved = analyze_json(capsys, project_dir, "--half-tempo")
    assert halved["tempo_bpm"] == pytest.approx(83.5)
    analyze_json(capsys, project_dir, "--reset-rhythm")
    assert not load_project(project_dir)[0].rhythm.is_set


@pytest.mark.parametrize(("options", "words"), [
    (["--meter", "4/0"], ["'4/0'", "unit", "e.g. 4/4"]),
    (["--meter", "four"], ["'four'", "e.g. 4/4"]),
    (["--tempo", "-3"], ["-3", "e.g. --tempo 167"]),
    (["--tempo", "fast"], ["'fast'", "e.g. --tempo 167"]),
    (["--downbeat", "-1"], ["-1", "e.g. --downbeat 1.23"]),
    (["--tempo", "167", "--downbeat", "20"], ["--downbeat 20", "song's end (10.00 s)", "e.g. --downbeat 1.23"]),
])
def test_bad_values_name_the_value_and_the_fix(project, capsys, options, words):
    project_dir, _ = project
    before = (project_dir / "stembridge.json").read_text()
    capsys.readouterr()
    assert main(["analyze", str(project_dir), "-q", *options]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    for w in words:
        assert w in err
    assert (project_dir / "stembridge.json").read_text() == before


def test_compound_meters_count_dotted_beats():
    assert [meter_beats_per_bar(m) for m in ("4/4", "3/4", "6/8", "12/8", "9/8", "3/8", "7/8")] == [4, 3, 2, 4, 3, 3, 7]
    with pytest.raises(ValueError, match="4/0"):
        RhythmCorrection(meter="4/0")
    with pytest.raises(ValueError, match="power of two"):
        RhythmCorrection(tempo_factor=3)


def test_six_eight_click_track_gets_two_dotted_beats_per_bar(tmp_path, capsys):
    """6/8 at 60 dotted-quarter BPM: eighth-note clicks, accents on each dotted beat, bar = 2 beats."""
    from bridge.project.create import new_project

    eighths, _ = click_track(180.0, SECONDS, SR, beats_per_bar=3, first_beat_s=0.5)
    write_wav(tmp_path / "stems" / "Song Drums.wav", eighths, SR)
    new_project(tmp_path / "proj", tmp_path / "stems")
    dotted = np.arange(0.5, SECONDS - 0.05, 1.0)  # the truth: one beat per dotted quarter
    out = analyze_json(capsys, tmp_path / "proj", "--tempo", "60", "--meter", "6/8", "--downbeat", "0.5")
    assert out["beats_per_bar"] == 2
    assert out["tempo_bpm"] == pytest.approx(60.0) and out["quarter_tempo_bpm"] == pytest.approx(90.0)
    assert beat_f(dotted, out["beats"]) >= 0.98
    assert beat_f(dotted[::2], out["downbeats"]) >= 0.98
    from bridge.analysis.project import analyze_project

    grid = analyze_project(*load_project(tmp_path / "proj")).beat_grid
    if hasattr(grid, "meter_label"):  # grids that carry their beat division say 6/8, not 2/4
        assert grid.meter_label == "6/8"


def test_a_seven_eight_correction_counts_eighths_and_quarters(tmp_path, capsys):
    """7/8 at 210 eighths a minute (an eighth 2/7 s): the producer's tempo is in the beats they tap
    (eighths), bars of seven, and the grid reads 7/8 (not 7/4) and counts a quarter as two of its
    beats, so a DAW's position in quarters lands on the right eighth."""
    from bridge.analysis.project import analyze_project
    from bridge.project.create import new_project

    eighth_s = 60.0 / 210.0
    clicks, _ = click_track(210.0, SECONDS, SR, beats_per_bar=7, first_beat_s=0.5)
    write_wav(tmp_path / "stems" / "Song Drums.wav", clicks, SR)
    new_project(tmp_path / "proj", tmp_path / "stems")
    truth = np.arange(0.5, SECONDS - 0.05, eighth_s)
    out = analyze_json(capsys, tmp_path / "proj", "--tempo", "210", "--meter", "7/8", "--downbeat", "0.5")
    assert out["beats_per_bar"] == 7
    assert out["tempo_bpm"] == pytest.approx(210.0) and out["quarter_tempo_bpm"] == pytest.approx(105.0)
    assert beat_f(truth, out["beats"]) >= 0.98 and beat_f(truth[::7], out["downbeats"]) >= 0.98
    grid = analyze_project(*load_project(tmp_path / "proj")).beat_grid
    assert grid.meter_label == "7/8"
    # bar 1 starts at 0.5 s; 3.5 quarters (seven eighths) later is the next bar line
    assert grid.quarters_to_seconds(grid.seconds_to_quarters(0.5) + 3.5) == pytest.approx(0.5 + 7 * eighth_s, abs=0.01)


def test_tap_tempo_is_the_median_interval():
    tap = TapTempo()
    t0 = 100.0
    period = 60.0 / 128.0
    times = t0 + np.arange(8) * period
    times[4] += 0.06  # one late tap
    results = [tap.tap(t) for t in times]
    assert results[:2] == [None, None]
    assert results[-1] == pytest.approx(128.0, rel=0.01)
    assert tap.tap(times[-1] + 5.0) is None  # a pause starts a new count


def test_session_corrections_are_undoable_saved_and_rerun_only_the_grid(project, monkeypatch):
    from bridge.session import Session

    project_dir, beats = project
    with Session.open(project_dir, preview=False, watch=False, autosave=False) as s:
        assert s.wait_for_analysis(30)
        no_stem_analysis(monkeypatch)
        s.set_tempo_bpm(83.5)
        s.double_tempo()
        s.set_meter("4/4")
        s.seek(float(beats[8]))
        s.set_downbeat()  # "downbeat here": at the playhead
        assert s.wait_for_analysis(30)
        grid = s.analysis.beat_grid
        assert grid.source == "corrected" and grid.tempo_bpm == pytest.approx(167.0)
        assert beat_f(beats, grid.beats_s) >= 0.98
        assert beat_f(beats[::4], grid.downbeats_s) >= 0.95
        assert s.tempo_readout() == (pytest.approx(167.0), "corrected")
        assert s.undo_label == "set downbeat"
        s.undo()
        assert s.project.rhythm.first_downbeat_seconds is None
        s.redo()
        s.save()
        saved = load_project(project_dir)[0].rhythm
        assert saved.tempo_bpm == 83.5 and saved.tempo_factor == 2.0 and saved.meter == "4/4"
        assert saved.first_downbeat_seconds == pytest.approx(beats[8], abs=1e-3)
        # tap tempo: one undo step for the whole run of taps
        n_undo = len(s._undo)
        for k in range(6):
            s.tap_tempo(at_s=50.0 + k * 60.0 / 167.0)
        assert s.project.rhythm.tempo_bpm == pytest.approx(167.0, abs=0.05)
        assert len(s._undo) == n_undo + 1
        s.reset_rhythm()
        assert not s.project.rhythm.is_set


def test_the_transport_line_shows_a_changing_songs_tempo_at_the_playhead(project):
    """A DAW tempo map (MIDI, as a DAW exports it) of 8 beats at 90 then 135 BPM, set as the 10-s
    song's grid through the Session: its one readout is the tempo of most of its beats, and at the
    playhead it is the map's tempo there (90 in the first 8 beats, 135 after), as a DAW shows it."""
    import mido

    from bridge.session import Session

    project_dir, _ = project
    mid = mido.MidiFile(type=0, ticks_per_beat=480)
    mid.tracks.append(mido.MidiTrack([
        mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0),
        mido.MetaMessage("set_tempo", tempo=int(mido.bpm2tempo(90.0)), time=0),
        mido.MetaMessage("set_tempo", tempo=int(mido.bpm2tempo(135.0)), time=8 * 480),
    ]))
    mid.save(str(project_dir / "map.mid"))
    change_s = 8 * 60.0 / 90.0  # 5.33 s; the song ends at 10 s
    with Session.open(project_dir, preview=False, watch=False, autosave=False) as s:
        assert s.wait_for_analysis(30)
        s.set_tempo(source="midi_file", midi_file="map.mid", beats_per_bar=4, first_downbeat_seconds=0.0,
                    tempo_bpm=None)
        assert s.wait_for_analysis(30)
        assert s.analysis.beat_grid.source == "midi"
        # the grid's one tempo: that of most of its beats (10.5 of the 18 are at 135), not a mean
        assert s.tempo_readout() == (pytest.approx(135.0, rel=1e-3), "midi")
        assert s.tempo_readout(change_s / 2) == (pytest.approx(90.0, rel=1e-3), "midi")
        assert s.tempo_readout(change_s + 4.0) == (pytest.approx(135.0, rel=1e-3), "midi")


def test_double_tempo_without_a_tempo_doubles_the_detected_one(project, capsys):
    project_dir, _ = project
    detected = analyze_json(capsys, project_dir)["tempo_bpm"]
    doubled = analyze_json(capsys, project_dir, "--double-tempo")
    assert doubled["tempo_bpm"] == pytest.approx(2 * detected, rel=0.01)
    assert np.median(np.diff(doubled["beats"])) == pytest.approx(30.0 / detected, rel=0.02)


def test_downbeat_here_moves_an_off_phase_grid_onto_the_producers_beat():
    """Beats tracked a sixteenth late (syncopated drums): the producer's downbeat moves them all."""
    from bridge.analysis.corrections import _bars_from
    from bridge.analysis.types import BeatGrid

    period = 60.0 / 140.0
    truth = np.arange(0.5, 20.0, period)
    late = BeatGrid(tempo_bpm=140.0, beats_s=truth + period / 4, downbeats_s=(truth + period / 4)[2::4],
                    beats_per_bar=4)
    fixed = _bars_from(late, float(truth[4]), duration_seconds=20.0)
    assert beat_f(truth, fixed.beats_s) == 1.0
    np.testing.assert_allclose(fixed.downbeats_s[:3], truth[0:12:4], atol=1e-9)
    # within a few ms it is the same beat: the beats stay, only the bars are counted from it
    close = BeatGrid(tempo_bpm=140.0, beats_s=truth + 0.01, downbeats_s=(truth + 0.01)[1::4], beats_per_bar=4)
    kept = _bars_from(close, float(truth[6]), duration_seconds=20.0)
    np.testing.assert_array_equal(kept.beats_s, close.beats_s)
    np.testing.assert_allclose(kept.downbeats_s[:2], truth[2:10:4] + 0.01, atol=1e-9)


@pytest.mark.slow
def test_double_tempo_on_a_swung_song_keeps_four_four_and_moves_the_swing_up_a_level():
    """Swung 16ths at 104 BPM, doubled by the producer, are swung 8ths at 208 in 4/4: the tracker
    alone, at the new tempo, read them straight here (and as 12/8 on a swung song, see the next
    test). ÷2 of the doubled reading restores the first one. Truth: the rendered song's beats and swing."""
    from bridge.analysis.corrections import corrected_beat_grid
    from bridge.analysis.features import compute_stem_features
    from bridge.analysis.types import ANALYSIS_SAMPLE_RATE
    from bridge.demo.band import Segment, render_band_song

    song = render_band_song([Segment(12, 4, 4, 104)], style="push", seed=115, swing=0.2,
                            sample_rate=ANALYSIS_SAMPLE_RATE, jitter_ms=2.0)
    feats = {name: compute_stem_features(audio.mean(axis=0), name=name, role={"keys": "piano"}.get(name, name))
             for name, audio in song.stems.items()}
    truth_8ths = np.sort(np.concatenate([song.beats_s, song.beats_s[:-1] + np.diff(song.beats_s) / 2]))

    def grid(**correction):
        return corrected_beat_grid(RhythmCorrection(**correction), feats, duration_seconds=song.duration_s)

    doubled = grid(tempo_factor=2.0)
    assert doubled.tempo_bpm == pytest.approx(208.0, rel=0.03)
    assert doubled.time_signature == (4, 4)
    keep = lambda t: t[(t >= 1.0) & (t <= song.duration_s - 0.5)]  # noqa: E731
    assert mir_eval.beat.f_measure(keep(truth_8ths), keep(doubled.beats_s)) >= 0.9
    # the render delays the off-beat 16th to 0.35 of a 104-BPM beat: 0.7 of a 208-BPM beat
    assert doubled.swing_level == 8
    assert doubled.swing_ratio / (1.0 + doubled.swing_ratio) == pytest.approx(0.70, abs=0.06)
    restored = grid()  # ×2 then ÷2: the factor is 1 again, the detected reading
    assert restored.swing_level == 16 and restored.time_signature == (4, 4)
    assert mir_eval.beat.f_measure(keep(song.beats_s), keep(restored.beats_s)) >= 0.9


SWING_SONG = Path(__file__).resolve().parents[2] / "shared" / "data" / "songs" / "10_freedoom_dm03_dynamite_swing_111"


@pytest.mark.slow
@pytest.mark.skipif(not (SWING_SONG / "ground_truth.json").exists(),
                    reason=f"the swing song is not here ({SWING_SONG}); it comes with the shared data set")
def test_double_tempo_on_the_swing_song_is_not_twelve_eight(tmp_path, capsys):
    """The swing song (4/4 at 111 BPM, swung 16ths per its ground truth) doubled by the producer read
    "12/8" while the grid kept 4 beats a bar; it is 4/4 with swung 8ths at 222."""
    truth = json.loads((SWING_SONG / "ground_truth.json").read_text())
    assert truth["time_signatures"] == [[0.0, 4, 4]]
    from bridge.project.create import new_project

    new_project(tmp_path / "proj", SWING_SONG)
    detected = analyze_json(capsys, tmp_path / "proj")
    doubled = analyze_json(capsys, tmp_path / "proj", "--double-tempo")
    assert detected["time_signature"] == "4/4" and detected["swing_level"] == 16
    assert doubled["tempo_bpm"] == pytest.approx(2 * truth["tempo_map"][0][1], rel=0.02)
    assert doubled["time_signature"] == "4/4"
    assert doubled["swing_level"] == 8
