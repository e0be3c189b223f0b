"""Every song its own look: with all defaults, two different songs must not look alike, and one
song must look the same every time (preview, export and a re-render agree)."""

from __future__ import annotations

from fractions import Fraction

import cv2
import numpy as np
import pytest

from bridge.analysis.pipeline import analyze_stems
from bridge.analysis.types import ANALYSIS_SAMPLE_RATE as SR
from bridge.demo.band import Segment, render_band_song
from bridge.project.schema import EngineSettings
from bridge.visuals import RenderContext, get_engine
from bridge.visuals.character import effective_engine, song_character, song_seed


def analyse(song):
    stems = [(n, {"keys": "synth"}.get(n, n), a.mean(axis=0).astype(np.float32)) for n, a in song.stems.items()]
    return analyze_stems(stems, duration_seconds=song.duration_s)


def structure(img: np.ndarray) -> np.ndarray:
    g = cv2.resize(img.mean(axis=2), (24, 14), interpolation=cv2.INTER_AREA).ravel()
    g = g - g.mean()
    return g / (np.linalg.norm(g) + 1e-9)


@pytest.fixture(scope="module")
def two_songs():
    a = render_band_song([Segment(6, 4, 4, 96)], style="rock", seed=201, sample_rate=SR)
    b = render_band_song([Segment(8, 4, 4, 150)], style="four", seed=202, sample_rate=SR)
    return analyse(a), analyse(b)


def test_the_seed_comes_from_the_song_and_is_stable(two_songs):
    a, b = two_songs
    assert song_seed(a) == song_seed(a)
    assert song_seed(a) != song_seed(b)
    assert effective_engine(EngineSettings(), a)[0] == song_seed(a)
    assert effective_engine(EngineSettings(seed=7), a)[0] == 7  # the producer's seed wins
    # `render --engine shader` on a procedural project: the song still gets its look and palette
    from bridge.visuals.character import default_look

    assert "look" not in effective_engine(EngineSettings(), a)[1]
    assert effective_engine(EngineSettings(), a, "shader")[1]["look"] == default_look(a)
    ch = song_character(a)
    assert ch.tempo_bpm == pytest.approx(96, rel=0.04) and 0 <= ch.key < 12


def test_two_songs_with_all_defaults_do_not_look_alike_on_the_shader_engine(two_songs):
    """The shader engine's default look comes from the song (tempo, brightness, key); the
    procedural engine's seeded variations stay one family of pictures (measured: structure
    correlation 0.85 between these two songs), which is why the shader engine carries this."""
    from bridge.errors import RenderError
    from bridge.gl import create_gl_context

    try:
        create_gl_context().release()
    except RenderError as e:
        pytest.skip(f"no OpenGL 3.3 context here: {e}")
    frames, chosen = [], []
    for analysis in two_songs:
        seed, extra = effective_engine(EngineSettings(name="shader"), analysis)
        chosen.append(extra["look"])
        engine = get_engine("shader", **extra)
        engine.start(RenderContext(96, 54, Fraction(30), (), seed=seed))
        for k in range(30):
            frame = engine.render(k, {"travel": 0.01 * k}, 0, 1.0)
        engine.close()
        frames.append(frame.astype(float))
    assert chosen[0] != chosen[1]
    corr = float(structure(frames[0]) @ structure(frames[1]))
    assert corr < 0.8, (chosen, corr)


def test_a_saved_project_without_a_look_still_gets_the_songs_look(two_songs):
    """A saved project holds ``look: null``: that is no choice, so the song's look applies (the
    export once passed the null through and every song rendered the same tunnel)."""
    import json

    from bridge.visuals.character import default_look, with_song_settings

    saved = json.loads(json.dumps(EngineSettings(name="shader").model_dump(mode="json")))
    reloaded = EngineSettings.model_validate(saved)
    settings = reloaded.model_dump(exclude={"name"}, exclude_unset=True)
    assert "look" in settings and settings["look"] is None  # what the export reads from a saved file
    _, song = effective_engine(reloaded, two_songs[1])
    assert with_song_settings(settings, song)["look"] == default_look(two_songs[1])
    chosen = EngineSettings(name="shader", look="ink").model_dump(exclude={"name"})
    assert with_song_settings(chosen, song)["look"] == "ink"  # the producer's choice wins


def test_songs_of_different_character_get_different_looks():
    """Fast/mid/slow × minor/major × bright/dark × loud/quiet: seven kinds of song, seven looks
    (the table used to send almost every song to three looks: nothing crossed 2500 Hz)."""
    from bridge.visuals.character import SongCharacter, default_look

    def look(tempo_bpm, minor, brightness_hz, energy):
        return default_look(None, SongCharacter(tempo_bpm=tempo_bpm, key=0, minor=minor,
                                                brightness_hz=brightness_hz, energy=energy))

    kinds = [look(174, True, 1500, 0.2), look(174, False, 2200, 0.2), look(150, False, 1200, 0.2),
             look(120, False, 1500, 0.2), look(120, True, 1500, 0.2), look(80, False, 1500, 0.3),
             look(80, True, 1500, 0.05)]
    assert len(set(kinds)) == 7, kinds


@pytest.mark.parametrize("notated_bpm", [170.0, 150.0])
def test_the_speed_class_follows_the_song_not_the_grids_octave(notated_bpm):
    """A song whose grid takes the other tempo octave (a 170 BPM song read at 85, an 85 BPM song
    read at 170) still gets the look of its notated speed class: the class is checked against the
    constructed tempo, not against what the analysis reports."""
    from bridge.visuals.character import FAST_BPM, MID_BPM, default_look, perceived_bpm

    song = render_band_song([Segment(8, 4, 4, notated_bpm)], style="rock", seed=211, sample_rate=SR)
    analysis = analyse(song)
    wrong_octave = notated_bpm / 2.0 if notated_bpm >= FAST_BPM else notated_bpm * 2.0
    heard = perceived_bpm(analysis, wrong_octave)
    fast_looks, slow_looks = {"glitch", "starfield", "grid"}, {"ink", "minimal"}
    ch = song_character(analysis)
    from dataclasses import replace

    look = default_look(analysis, replace(ch, tempo_bpm=wrong_octave))
    if notated_bpm >= FAST_BPM:
        assert heard >= FAST_BPM and look in fast_looks, (heard, look)
    else:
        assert heard < MID_BPM and look in slow_looks, (heard, look)


def test_the_seed_stays_when_the_producer_doubles_or_halves_the_tempo(two_songs):
    import dataclasses

    for analysis in two_songs:
        grid = analysis.beat_grid
        for factor in (2.0, 0.5):
            moved = dataclasses.replace(analysis, beat_grid=dataclasses.replace(grid, tempo_bpm=grid.tempo_bpm * factor))
            assert song_seed(moved) == song_seed(analysis)
