"""Fast versions of ``benchmarks/reliability.py``: the same seeded corpora (``fuzz_corpus``), a few
thousand inputs instead of 10⁶, and a SIGKILL during a save. The benchmark runs the full sizes."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from fuzz_corpus import SAVER_SCRIPT, run_midi_fuzz, run_osc_fuzz, state_problems

from bridge.transport.state import TransportState

DIALECTS = ("ableton", "stembridge", "reaper", "bitwig", "ardour")
REPO = Path(__file__).resolve().parents[1]


def test_the_sanity_check_can_fail():
    """state_problems must reject what the parsers must never produce, or the fuzz tests prove nothing."""
    good = TransportState(tempo_bpm=120.0, position_beats=4.0, position_seconds=2.0, bar=2, beat=1.0)
    assert state_problems(good) == []
    assert state_problems(TransportState(tempo_bpm=float("nan")))
    assert state_problems(TransportState(tempo_bpm=5000.0))
    assert state_problems(TransportState(position_seconds=3.1e7))
    assert state_problems(TransportState(time_signature=(4, 3)))


@pytest.mark.parametrize("name", DIALECTS)
def test_a_seeded_osc_corpus_never_escapes_and_leaves_a_sane_state(name, caplog):
    caplog.set_level(logging.ERROR)  # the listener's one "malformed datagram" warning per run
    res = run_osc_fuzz(name, seed=7, n=3000)
    assert res.inputs == 3000 and res.states > 0, "the corpus must reach the parser's state changes"
    assert res.failures == 0, res.first


def test_a_seeded_midi_corpus_never_escapes_and_leaves_sane_states():
    results = run_midi_fuzz(seed=7, n=5000, chunk=500)
    for name, res in results.items():
        assert res.states > 0, name
        assert res.failures == 0, (name, res.first)


@pytest.mark.parametrize("trial", range(2))
def test_sigkill_during_saves_never_loses_the_project(tmp_path, trial):
    """A process saving a project over and over is killed at a random moment: the file under the final
    name always loads (the old or a new version), and saving again works."""
    import random

    from bridge.project import Project, load_project, save_project

    save_project(Project(name="original"), tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", SAVER_SCRIPT, str(tmp_path), "200"], stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(random.Random(trial).uniform(0.05, 0.4))  # where in the save loop it dies is the point
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    project, _ = load_project(tmp_path)
    assert project.name == "original" or project.name.startswith("take ")
    save_project(project.model_copy(update={"name": "after"}), tmp_path)
    assert load_project(tmp_path)[0].name == "after"


def _pulsed_tone(seconds: float, freq_hz: float, sr: int = 44100) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * freq_hz * t) * (0.5 + 0.5 * (np.mod(t, 0.5) < 0.1))
    return np.tile(x.astype(np.float32), (2, 1))


def test_stems_of_different_lengths_analyse_without_a_traceback(tmp_path):
    """Found by benchmarks/reliability.py (bad audio: mismatched lengths): a 3 s and a 1.3 s stem made
    the ACF refinement return a beat period of -17 frames and the beat tracker raised ValueError
    (argmax of an empty sequence). Now the shorter stem is padded (documented) and beats come out
    in order at a positive tempo (3 s is too short to ask for the right one)."""
    from conftest import write_wav

    from bridge.analysis.project import analyze_project
    from bridge.project.create import new_project

    write_wav(tmp_path / "stems" / "Song Drums.wav", _pulsed_tone(3.0, 110.0), 44100, subtype="PCM_16")
    write_wav(tmp_path / "stems" / "Song Bass.wav", _pulsed_tone(1.3, 55.0), 44100, subtype="PCM_16")
    result = new_project(tmp_path / "song", tmp_path / "stems")
    analysis = analyze_project(result.project, result.project_dir, use_cache=False)
    grid = analysis.beat_grid
    assert analysis.duration_seconds == pytest.approx(3.0, abs=0.01)
    assert np.isfinite(grid.tempo_bpm) and grid.tempo_bpm > 0 and grid.beats_s.size >= 2
    assert np.all(np.diff(grid.beats_s) > 0) and 0.0 <= grid.beats_s[0] and grid.beats_s[-1] <= 3.0


@pytest.mark.parametrize("kind", ["empty", "text", "nan"])
def test_new_with_one_bad_file_says_why_on_one_line(tmp_path, kind, capsys):
    """The bad-audio rows of the benchmark, through the command line: exit 2, one line that names the
    file and the fix, no traceback (before: "No usable stems in …:" and the reason on a second line)."""
    from conftest import write_wav

    from bridge.cli import main

    path = tmp_path / "stems" / "Ünïcødé Drums.wav"
    path.parent.mkdir()
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("lyrics, not audio\n" * 20)
    else:
        x = _pulsed_tone(1.0, 110.0)
        x[:, 100] = np.nan
        write_wav(path, x, 44100, subtype="FLOAT")
    rc = main(["new", str(tmp_path / "song"), "--stems", str(path.parent), "--no-analyze", "-q"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert str(path) in err and ("Re-export" in err or "Re-bounce" in err)
    assert not (tmp_path / "song" / "stembridge.json").exists()


@pytest.mark.parametrize(("args", "says"), [
    (["--tempo", "0"], "--tempo 0.0: Input should be greater than 20"),
    (["--width", "33"], "--width: 33 is odd; H.264 (yuv420p) needs even frame sizes, use 34"),
    (["--height", "0"], "--height 0: Input should be greater than or equal to 16"),
])
def test_new_with_a_bad_option_names_it_on_one_line(tmp_path, args, says, capsys):
    """`--tempo 0` used to be taken as 'detect the tempo' without a word, `--height 0` as the default
    size, and an odd size printed pydantic's report (type codes, a link to its docs) over four lines."""
    from bridge.cli import main

    (tmp_path / "stems").mkdir()
    rc = main(["new", str(tmp_path / "song"), "--stems", str(tmp_path / "stems"), "--no-analyze", "-q", *args])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err == f"stembridge: error: {says}"
    assert not (tmp_path / "song" / "stembridge.json").exists()


@pytest.mark.parametrize(("options", "says"), [
    ({"width": 33}, "--width: 33 is odd; H.264 (yuv420p) needs even frame sizes, use 34"),
    ({"width": 0}, "--width 0: Input should be greater than or equal to 16"),
    ({"crf": 99}, "--crf 99: Input should be less than or equal to 51"),
])
def test_render_with_a_bad_option_names_it_on_one_line(options, says):
    """`render --width 0` rendered at the project's width without a word; an odd width said
    'width\\n  Value error, … [type=value_error, …]\\n    For further information visit …'."""
    from bridge.errors import RenderError
    from bridge.export.render import render_settings
    from bridge.project import Project

    with pytest.raises(RenderError) as e:
        render_settings(Project(name="song"), **options)
    assert str(e.value) == says
