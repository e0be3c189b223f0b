"""The detected tempo's other readings (``BeatGrid.other_readings``): where the tracker counts the
wrong octave of a beat, the true tempo is among the two readings it offers, and taking one (CLI,
Session) gives the song's true beats.

Truth: synthetic band songs (:mod:`bridge.demo.band`) whose beats are known by construction, scored
with mir_eval. A driving rock beat at 168 BPM (kick on 1 and the "and" of 2, snare on 2 and 4) is
read at 84 today; a half-time groove at 78 at 156. Seeds and tempi differ from
benchmarks/rhythm_accuracy.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mir_eval
import numpy as np
import pytest
from conftest import write_wav

from bridge.analysis.beats import track_beats
from bridge.analysis.features import compute_stem_features
from bridge.analysis.types import ANALYSIS_SAMPLE_RATE as SR
from bridge.cli import main
from bridge.demo.band import Segment, render_band_song
from bridge.errors import ProjectError

DRIVE = dict(segments=[Segment(12, 4, 4, 168.0)], style="drive", seed=901)


def _f(ref, est) -> float:
    return float(mir_eval.beat.f_measure(mir_eval.beat.trim_beats(np.asarray(ref)),
                                         mir_eval.beat.trim_beats(np.asarray(est))))


def _role(name: str) -> str:
    return {"keys": "piano"}.get(name, name)


@pytest.mark.slow
@pytest.mark.parametrize("style, bpm, numerator, denominator, bars, seed", [
    ("drive", 168.0, 4, 4, 12, 901),     # read at half tempo today
    ("drive", 152.0, 4, 4, 12, 902),     # read at half tempo today
    ("halftime", 78.0, 4, 4, 8, 904),    # read at double tempo today
    ("rock", 188.0, 4, 4, 14, 905),
    ("waltz", 120.0, 3, 4, 12, 907),
    ("rock", 66.0, 4, 4, 8, 908),
])
def test_the_true_tempo_is_the_detected_one_or_an_other_reading(style, bpm, numerator, denominator, bars, seed):
    song = render_band_song([Segment(bars, numerator, denominator, bpm)], style=style, seed=seed, sample_rate=SR)
    feats = {name: compute_stem_features(audio.mean(axis=0), name=name, role=_role(name))
             for name, audio in song.stems.items()}
    grid = track_beats(feats, duration_seconds=song.duration_s)
    offered = [grid.tempo_bpm, *(grid.tempo_bpm * f for f in grid.other_readings)]
    assert 1 <= len(offered) <= 3
    assert any(abs(t / bpm - 1.0) <= 0.04 for t in offered), (bpm, offered)
    # the readings are other tempi, not the detected one again
    assert all(abs(f - 1.0) > 0.2 for f in grid.other_readings)


@pytest.fixture(scope="module")
def drive_project(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """The 168 BPM driving rock song as a project of three stems, analysed once (warm stem cache)."""
    from bridge.project.create import new_project

    root = tmp_path_factory.mktemp("drive")
    song = render_band_song(**DRIVE, sample_rate=44100)
    for name, audio in song.stems.items():
        write_wav(root / "stems" / f"{name}.wav", audio, 44100)
    new_project(root / "proj", root / "stems", name="drive")
    assert main(["analyze", str(root / "proj"), "-q"]) == 0
    return root / "proj", np.asarray(song.beats_s)


@pytest.fixture
def project(drive_project, tmp_path) -> tuple[Path, np.ndarray]:
    src, beats = drive_project
    shutil.copytree(src.parent, tmp_path / "song")
    return tmp_path / "song" / "proj", beats


def _analyze_json(capsys, project_dir: Path, *options: str) -> dict:
    capsys.readouterr()
    assert main(["analyze", str(project_dir), "--json", "-q", *options]) == 0
    return json.loads(capsys.readouterr().out)


def _true_reading(readings: list, true_bpm: float):
    hits = [r for r in readings if abs(r["tempo_bpm"] / true_bpm - 1.0) <= 0.04]
    return hits[0] if hits else None


@pytest.mark.slow
def test_the_cli_offers_the_true_tempo_and_its_option_gives_the_true_beats(project, capsys):
    proj, beats = project
    out = _analyze_json(capsys, proj)
    if abs(out["tempo_bpm"] / 168.0 - 1.0) <= 0.04:
        pytest.skip("the tracker reads this song at its true tempo now: nothing to correct")
    assert _f(beats, out["beats"]) < 0.8
    reading = _true_reading(out["other_readings"], 168.0)
    assert reading is not None, out["other_readings"]
    fixed = _analyze_json(capsys, proj, *reading["option"].split())
    assert fixed["tempo_bpm"] == pytest.approx(168.0, rel=0.04)
    assert _f(beats, fixed["beats"]) >= 0.9
    assert fixed["other_readings"] == []  # a corrected tempo offers no more readings
    # the text output names the reading and the option too
    capsys.readouterr()
    assert main(["analyze", str(proj), "--reset-rhythm", "-q"]) == 0
    assert f"({reading['option']})" in capsys.readouterr().out


@pytest.mark.slow
def test_taking_a_reading_in_the_session_gives_the_true_beats_and_is_undoable(project):
    from bridge.session import Session

    proj, beats = project
    with Session.open(proj, preview=False, watch=False, autosave=False) as s:
        assert s.wait_for_analysis(30)
        detected = s.analysis.beat_grid
        if abs(detected.tempo_bpm / 168.0 - 1.0) <= 0.04:
            pytest.skip("the tracker reads this song at its true tempo now: nothing to correct")
        readings = s.other_tempo_readings()
        true = [f for bpm, f in readings if abs(bpm / 168.0 - 1.0) <= 0.04]
        assert true, readings
        with pytest.raises(ProjectError, match="not an other reading"):
            s.use_tempo_reading(1.25)
        s.use_tempo_reading(true[0])
        assert s.wait_for_analysis(30)
        grid = s.analysis.beat_grid
        assert grid.tempo_bpm == pytest.approx(168.0, rel=0.04)
        assert _f(beats, grid.beats_s) >= 0.9
        assert s.other_tempo_readings() == []
        s.undo()
        assert s.wait_for_analysis(30)
        assert s.analysis.beat_grid.tempo_bpm == pytest.approx(detected.tempo_bpm, rel=1e-6)
        assert not s.project.rhythm.is_set
