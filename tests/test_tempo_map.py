"""Beat grids from a DAW's exported tempo map (MIDI), checked against rendered songs' ground truth."""

from __future__ import annotations

import json

import mido
import numpy as np
import pytest
from conftest import shared_data, write_midi

from bridge.analysis.tempo_map import beat_grid_from_midi
from bridge.errors import ProjectError


def test_tempo_and_meter_changes(tmp_path):
    # 4 bars of 4/4 at 120 BPM, then 3/4 at 90 BPM
    path = write_midi(tmp_path / "map.mid", [
        (0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(120))),
        (0, mido.MetaMessage("time_signature", numerator=4, denominator=4)),
        (16 * 480, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(90))),
        (16 * 480, mido.MetaMessage("time_signature", numerator=3, denominator=4)),
    ])
    grid = beat_grid_from_midi(path, duration_seconds=8.0 + 6 * 2 / 3 + 0.01)
    expected = np.concatenate([np.arange(16) * 0.5, 8.0 + np.arange(7) * (2 / 3)])
    np.testing.assert_allclose(grid.beats_s, expected, atol=1e-5)  # MIDI tempos are whole microseconds
    np.testing.assert_allclose(grid.downbeats_s, [0, 2, 4, 6, 8, 10, 12], atol=1e-5)
    assert grid.source == "midi"


def test_offset_and_bad_file(tmp_path):
    path = write_midi(tmp_path / "c.mid", [(0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(100)))])
    grid = beat_grid_from_midi(path, duration_seconds=3.0, offset_seconds=0.5)
    assert grid.beats_s[0] == pytest.approx(0.5) and grid.tempo_bpm == pytest.approx(100)
    (tmp_path / "bad.mid").write_bytes(b"MThd garbage")
    with pytest.raises(ProjectError, match="MIDI"):
        beat_grid_from_midi(tmp_path / "bad.mid", duration_seconds=3.0)


@pytest.mark.parametrize("song", [
    "05_pianomidi_debussy_snow_rubato", "03_freedoom_e2m6_concept_of_technology_3-4", "01_gmd_funk_groove1_138",
])
def test_matches_rendered_songs_ground_truth(song):
    folder = shared_data("songs", song)
    truth = json.loads((folder / "ground_truth.json").read_text())
    gt = np.asarray(truth["beats"])
    grid = beat_grid_from_midi(folder / "source.mid", duration_seconds=truth["duration_s"])
    # ground truth times include the synth's fixed render latency: compare after removing it
    shift = gt[0] - grid.beats_s[0]
    assert 0 <= shift < 0.6
    n = len(gt)
    np.testing.assert_allclose(grid.beats_s[:n] + shift, gt, atol=0.01)
    np.testing.assert_allclose(grid.downbeats_s[: len(truth["downbeats"])] + shift, truth["downbeats"], atol=0.01)
    assert grid.beats_per_bar == truth["time_signatures"][0][1]
