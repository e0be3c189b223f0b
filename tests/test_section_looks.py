"""Every section its own look (issue 13 item 4): per-section looks and transitions in the shader
engine, looks chosen from the music, and editing them.

Truth: two tiny ISF shaders written here, one pure red and one pure blue, so every pixel says which
look (or which blend of the two) the engine drew; synthetic songs whose quiet and loud halves are
loud or quiet by construction.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from conftest import require_gl
from preview_project import built, project_dir  # noqa: F401  (fixtures)

from bridge.analysis.pipeline import analyze_stems
from bridge.analysis.types import ANALYSIS_SAMPLE_RATE as SR
from bridge.analysis.types import BeatGrid, SongAnalysis
from bridge.errors import ProjectError, RenderError
from bridge.mapping import evaluate_mappings, resolve_sections
from bridge.project.schema import Project, Section
from bridge.visuals import RenderContext, SectionLook, get_engine
from bridge.visuals.character import LOOK_FAMILIES, auto_section_looks, default_look, song_character

FPS = Fraction(25)
W, H = 32, 18
RED = """/*{"ISFVSN": "2"}*/
void main() { gl_FragColor = vec4(1.0, 0.0, 0.0, 1.0); }"""
BLUE = """/*{"ISFVSN": "2"}*/
void main() { gl_FragColor = vec4(0.0, 0.0, 1.0, 1.0); }"""


@pytest.fixture()
def looks(tmp_path: Path) -> tuple[str, str]:
    red, blue = tmp_path / "red.fs", tmp_path / "blue.fs"
    red.write_text(RED)
    blue.write_text(BLUE)
    return str(red), str(blue)


def grid_120(seconds: float = 8.0) -> BeatGrid:
    beats = np.arange(0.0, seconds, 0.5)
    return BeatGrid(120.0, beats, beats[::4], 4)


def render_song(sections: list[Section], *, seconds: float = 8.0, base_look: str) -> list[np.ndarray]:
    """Every frame of a ``seconds`` song with these project sections, through the real pipeline:
    sections resolved on a 120 BPM grid, section index/mix from evaluate_mappings, the shader engine."""
    require_gl()
    grid = grid_120(seconds)
    resolved = resolve_sections(sections, grid, duration_seconds=seconds)
    analysis = SongAnalysis(duration_seconds=seconds, beat_grid=grid, sections=[])
    params = evaluate_mappings([], analysis, resolved, fps=FPS)
    engine = get_engine("shader", look=base_look)
    engine.start(RenderContext(W, H, FPS, resolved, beats_s=tuple(grid.beats_s),
                               downbeats_s=tuple(grid.downbeats_s)))
    try:
        return [engine.render(k, params.row(k), int(params.section_index[k]), float(params.section_mix[k]))
                for k in range(len(params))]
    finally:
        engine.close()


def colour(frame: np.ndarray) -> tuple[float, float]:
    """Mean red and blue (0–255) of a frame."""
    return float(frame[..., 0].mean()), float(frame[..., 2].mean())


def test_a_cut_switches_on_the_frame_that_holds_the_section_start(looks):
    red, blue = looks
    # 2.01 s lies inside frame 50 (2.00–2.04 s at 25 fps): that frame is the new look's first
    frames = render_song([Section(name="verse", start=0, look=red),
                          Section(name="drop", start=2.01, look=blue, transition="cut")], seconds=4.0,
                         base_look=red)
    assert colour(frames[49]) == (255.0, 0.0)
    assert colour(frames[50]) == (0.0, 255.0)
    assert all(colour(f) == (255.0, 0.0) for f in frames[:50])
    assert all(colour(f) == (0.0, 255.0) for f in frames[50:])


def test_a_crossfade_goes_from_one_look_to_the_other_over_its_beats(looks):
    red, blue = looks
    # 4 beats at 120 BPM: 2 s = 50 frames, from the section start at 2 s (frame 50)
    frames = render_song([Section(name="a", start=0, look=red),
                          Section(name="b", start=2.0, look=blue, transition="crossfade", transition_beats=4)],
                         seconds=6.0, base_look=red)
    reds = [colour(f)[0] for f in frames]
    blues = [colour(f)[1] for f in frames]
    assert all(r == 255.0 for r in reds[:50])
    fade = reds[50:100]
    assert fade[0] == 255.0 and fade[-1] <= 255.0 * 2 / 50 + 1  # linear: ~5 code values per frame
    assert all(a >= b for a, b in zip(fade[:-1], fade[1:], strict=True))  # monotonic
    assert sum(a > b for a, b in zip(fade[:-1], fade[1:], strict=True)) >= 45  # and it really moves
    assert all(abs(r + b - 255.0) <= 1.0 for r, b in zip(reds[50:100], blues[50:100], strict=True))  # a blend
    assert 100 < reds[75] < 155  # half way: half of each
    assert all(colour(f) == (0.0, 255.0) for f in frames[100:])


def test_a_melt_drips_the_old_picture_away_and_ends_fully_in_the_new_look(looks):
    red, blue = looks
    frames = render_song([Section(name="a", start=0, look=red),
                          Section(name="b", start=2.0, look=blue, transition="melt", transition_beats=4)],
                         seconds=6.0, base_look=red)
    assert colour(frames[49]) == (255.0, 0.0)
    assert colour(frames[50])[0] > 240  # the melt starts from the old picture
    # not a crossfade: half way through, some pixels are still (almost) the old red while others
    # show the new blue, and the old picture runs off downwards (GL rows: the top goes first)
    mid = frames[72].astype(int)
    is_red = (mid[..., 0] > 200) & (mid[..., 2] < 55)
    is_blue = (mid[..., 2] > 200) & (mid[..., 0] < 55)
    assert is_red.any() and is_blue.any()
    assert is_blue[: H // 2].mean() > is_blue[H // 2:].mean()  # image rows from the top
    red_share = [float((f[..., 0] > 127).mean()) for f in frames[50:100]]
    assert red_share[0] == 1.0 and red_share[-1] == 0.0
    assert all(colour(f) == (0.0, 255.0) for f in frames[100:])  # fully the new look after it


def test_a_transition_into_the_first_section_draws_nothing(looks):
    """What the section editor and `sections set` now say: the first section's transition does
    nothing. Blue from frame 0 — neither a blend from the engine's red look nor a fade from black."""
    red, blue = looks
    for kind in ("crossfade", "melt"):
        frames = render_song([Section(name="a", start=0, look=blue, transition=kind, transition_beats=8),
                              Section(name="b", start=3.0, look=red, transition="cut")], seconds=4.0, base_look=red)
        assert all(colour(f) == (0.0, 255.0) for f in frames[:75]), kind
        assert all(colour(f) == (255.0, 0.0) for f in frames[75:]), kind


def test_sections_without_a_look_show_the_engine_look_and_gaps_too(looks):
    red, blue = looks
    frames = render_song([Section(name="a", start=0, end=1.0),
                          Section(name="b", start=2.0, look=blue, transition="cut")], seconds=3.0,
                         base_look=red)
    assert colour(frames[10]) == (255.0, 0.0)  # no look of its own: the engine's
    assert colour(frames[30]) == (255.0, 0.0)  # a gap between sections: the engine's
    assert colour(frames[60]) == (0.0, 255.0)


def test_a_loud_section_punches_on_hits_and_a_quiet_one_does_not(tmp_path):
    """hit > 1 zooms the picture on a step of travel (a hit), back to size within HIT_WINDOW_S."""
    require_gl()
    target = tmp_path / "target.fs"
    # a white square of half the frame's height in the middle, on black
    target.write_text("""/*{"ISFVSN": "2"}*/
    void main() { vec2 p = abs(gl_FragCoord.xy - 0.5 * RENDERSIZE) / RENDERSIZE.y;
                  gl_FragColor = vec4(vec3(step(max(p.x, p.y), 0.25)), 1.0); }""")

    def lit(hit: float) -> list[float]:
        engine = get_engine("shader", look=str(target))
        engine.start(RenderContext(96, 96, FPS, (SectionLook(0.0, 10.0, "s", hit=hit),)))
        travel, out = 0.0, []
        for k in range(20):
            travel += 0.12 if k == 5 else 0.0  # one hard hit on frame 5
            out.append(float(engine.render(k, {"travel": travel}, 0, 1.0)[..., 0].mean()))
        engine.close()
        return out

    calm, loud = lit(0.7), lit(1.5)
    assert len(set(calm)) == 1  # no punch: the square never changes
    assert loud[4] == calm[4] and loud[5] > calm[5] * 1.1  # the hit frame zooms in
    assert loud[5] > loud[7] > loud[11] and loud[15:] == calm[15:]  # and settles back exactly



def test_a_hit_that_carries_travel_past_a_whole_turn_punches_like_any_other(tmp_path):
    """travel reaches the engine wrapped to [0, 1) (bridge/mapping/evaluate.py integrate_rate): a hit
    of 0.12 from 0.95 arrives as 0.95 -> 0.07 and must zoom as far as the same hit from 0.30 (on main,
    2026-12-04, it read as a step back and did not punch at all)."""
    require_gl()
    target = tmp_path / "target.fs"
    target.write_text("""/*{"ISFVSN": "2"}*/
    void main() { vec2 p = abs(gl_FragCoord.xy - 0.5 * RENDERSIZE) / RENDERSIZE.y;
                  gl_FragColor = vec4(vec3(step(max(p.x, p.y), 0.25)), 1.0); }""")

    def lit(before: float, after: float) -> list[float]:
        engine = get_engine("shader", look=str(target))
        engine.start(RenderContext(96, 96, FPS, (SectionLook(0.0, 10.0, "s", hit=1.5),)))
        out = [float(engine.render(k, {"travel": before if k < 5 else after}, 0, 1.0)[..., 0].mean())
               for k in range(10)]
        engine.close()
        return out

    plain, wrapped = lit(0.30, 0.42), lit(0.95, 0.07)
    assert plain[5] > plain[4] * 1.1  # the hit frame zooms in
    assert wrapped == pytest.approx(plain)

def synthetic_song(parts: list[tuple[float, float]], *, tempo_bpm: float = 120.0, bright: bool = False,
                   seed: int = 0) -> SongAnalysis:
    """A drum loop (noise clicks on the beat) and a chord pad, in parts of (seconds, level dB)."""
    rng = np.random.default_rng(seed)
    seconds = sum(d for d, _ in parts)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    beat = 60.0 / tempo_bpm
    clicks = np.exp(-(t % beat) / 0.03) * rng.standard_normal(n) * (0.6 if bright else 0.3)
    pad = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)) / 3
    if bright:
        pad = pad + 0.5 * rng.standard_normal(n) * np.exp(-(t % (beat / 2)) / 0.02)
    gain = np.zeros(n)
    start = 0.0
    for d, db in parts:
        gain[(t >= start) & (t < start + d)] = 10 ** (db / 20)
        start += d
    drums = (clicks * gain).astype(np.float32)
    keys = (0.4 * pad * gain).astype(np.float32)
    return analyze_stems([("drums", "drums", drums), ("keys", "synth", keys)], duration_seconds=seconds)


@pytest.fixture(scope="module")
def quiet_then_loud() -> SongAnalysis:
    return synthetic_song([(8.0, -18.0), (8.0, -4.0)])


def test_a_quiet_and_a_loud_section_get_different_related_looks(quiet_then_loud):
    sections = (SectionLook(0.0, 8.0, "verse"), SectionLook(8.0, 16.0, "drop"))
    base = default_look(quiet_then_loud)
    verse, drop = auto_section_looks(sections, quiet_then_loud, base)
    assert verse.look != drop.look
    assert drop.hit > verse.hit >= 1.0  # the drop hits harder
    assert {verse.look, drop.look} <= set(LOOK_FAMILIES[base])  # related looks, from the base's family
    assert verse.look == base and drop.look == LOOK_FAMILIES[base][2]  # the verse is typical, the drop hard
    # deterministic, and the producer's own look is kept
    assert auto_section_looks(sections, quiet_then_loud, base) == (verse, drop)
    mine = (sections[0], dataclasses.replace(sections[1], look="ink"))
    assert auto_section_looks(mine, quiet_then_loud, base)[1].look == "ink"
    # a quiet intro before a verse and a louder chorus: the intro keeps the base look (a calmer look
    # there made the intro's hits look weaker than they sound), the chorus gets the hard relative
    song = synthetic_song([(4.0, -30.0), (8.0, -12.0), (8.0, -6.0)])
    intro, verse, chorus = auto_section_looks(
        (SectionLook(0.0, 4.0, "intro"), SectionLook(4.0, 12.0, "verse"), SectionLook(12.0, 20.0, "chorus")),
        song, base)
    assert (intro.look, verse.look, chorus.look) == (base, base, LOOK_FAMILIES[base][2])
    assert intro.hit == verse.hit == 1.0 < chorus.hit  # quiet hits are no weaker to the ear


def test_two_songs_of_different_character_get_different_base_looks(quiet_then_loud):
    slow = synthetic_song([(10.0, -20.0)], tempo_bpm=70.0, seed=1)
    fast = synthetic_song([(10.0, -6.0)], tempo_bpm=150.0, bright=True, seed=2)
    assert song_character(slow).tempo_bpm < 100 < song_character(fast).tempo_bpm
    assert default_look(slow) != default_look(fast)
    assert set(LOOK_FAMILIES[default_look(slow)]).isdisjoint({default_look(fast)})


def test_section_look_and_transition_are_validated_and_old_projects_load():
    old = Project.model_validate({"sections": [{"name": "a", "start": 0.0, "transition_beats": 2}]})
    assert old.sections[0].look is None and old.sections[0].transition == "crossfade"
    assert Section(start=0, look="tunnel", transition="melt").look == "tunnel"
    assert Section(start=0, look="/somewhere/mine.fs").look == "/somewhere/mine.fs"  # checked at render
    # a look missing on this machine does not stop the project from opening (nothing saved is lost);
    # choosing it (app, CLI) and rendering it say what is wrong and what to choose instead
    assert Section(start=0, look="tunel").look == "tunel"
    from bridge.visuals.shader_looks import check_look_name

    with pytest.raises(ValueError, match=r"look 'tunel' is unknown; use one of the shipped looks \(.*tunnel"):
        check_look_name("tunel")
    assert check_look_name("tunnel") == "tunnel"
    with pytest.raises(ValueError, match="transition"):
        Section(start=0, transition="wipe")


def test_a_missing_section_look_file_fails_before_any_frame_naming_the_section(tmp_path, looks):
    require_gl()
    red, _ = looks
    engine = get_engine("shader", look=red)
    sections = (SectionLook(0.0, 1.0, "a"), SectionLook(1.0, 2.0, "Drop", look=str(tmp_path / "gone.fs")))
    with pytest.raises(RenderError, match=r"section 2 \(Drop\): look .*gone.fs.* is unknown"):
        engine.start(RenderContext(W, H, FPS, sections))


def test_section_look_edits_are_undoable_through_the_session(tmp_path):
    from conftest import click_track, write_wav

    from bridge.session import Session

    stems = tmp_path / "stems"
    audio, _ = click_track(120.0, 4.0, 22050)
    write_wav(stems / "Drums.wav", audio, 22050)
    with Session.new(tmp_path / "p", stems, analyse=False, preview=False, watch=False, autosave=False) as session:
        session.add_section(0.0, name="verse")
        session.add_section(2.0, name="drop")
        session.update_section(1, look="starfield", transition="cut")
        assert (session.project.sections[1].look, session.project.sections[1].transition) == ("starfield", "cut")
        with pytest.raises(ProjectError, match="look 'nope' is unknown"):
            session.update_section(1, look="nope")
        session.undo()
        assert (session.project.sections[1].look, session.project.sections[1].transition) == (None, "crossfade")
        session.redo()
        assert session.project.sections[1].look == "starfield"


def _open_two_sections(tmp_path, starts: list[tuple], *, tempo_bpm: float = 120.0, analyse: bool = False):
    """A click-track project (``tempo_bpm``) with sections (name, start[, unit]) in this list order,
    opened in a SessionAdapter without preview or audio, analysed only if asked (the caller closes it)."""
    pytest.importorskip("PySide6")
    from conftest import click_track, write_wav

    from bridge.project.create import new_project
    from bridge.project.schema import Section as S
    from bridge.project.store import save_project
    from gui.session_adapter import SessionAdapter

    audio, _ = click_track(tempo_bpm, 4.0 if not analyse else 12.0, 22050)
    write_wav(tmp_path / "stems" / "Drums.wav", audio, 22050)
    result = new_project(tmp_path / "p", tmp_path / "stems")
    sections = [S(name=n, start=t, unit=rest[0] if rest else "seconds") for n, t, *rest in starts]
    save_project(result.project.model_copy(update={"sections": sections}), result.project_dir)
    adapter = SessionAdapter()
    adapter.open(result.project_dir, analyse=analyse, preview=False, watch=False, autosave=False, audio=False)
    return adapter


def test_the_section_editor_sets_a_look_and_a_transition_undoably(tmp_path, qtbot):
    adapter = _open_two_sections(tmp_path, [("a", 0.0), ("b", 2.0)])
    from gui.panels.sections import AUTO_LOOK, COLUMNS, SectionEditor

    try:
        editor = SectionEditor(adapter)
        qtbot.addWidget(editor)
        editor.refresh()
        look = editor.table.cellWidget(1, COLUMNS.index("Look"))
        kind = editor.table.cellWidget(1, COLUMNS.index("Transition"))
        assert look.currentText() == AUTO_LOOK and kind.currentText() == "crossfade"
        look.setCurrentText("glitch")
        kind.setCurrentText("melt")
        s = adapter.session
        assert (s.project.sections[1].look, s.project.sections[1].transition) == ("glitch", "melt")
        s.undo()
        s.undo()
        assert (s.project.sections[1].look, s.project.sections[1].transition) == (None, "crossfade")
    finally:
        adapter.close()


def test_the_first_sections_transition_controls_are_off_and_say_why(tmp_path, qtbot):
    """A transition into the section that plays first has nothing to come from, so it did nothing
    while the editor offered it like any other. Its Transition and Beats are disabled with a tooltip
    pointing to the export's fade-in; which row that is follows the start times, not the list order."""
    adapter = _open_two_sections(tmp_path, [("b", 2.0), ("a", 0.0)])
    from gui.panels.sections import COLUMNS, SectionEditor

    try:
        editor = SectionEditor(adapter)
        qtbot.addWidget(editor)
        editor.refresh()

        def controls(row: int):
            return [editor.table.cellWidget(row, COLUMNS.index(c)) for c in ("Transition", "Beats")]

        assert [w.isEnabled() for w in controls(0)] == [True, True]  # b, at 2 s, transitions from a
        for w in controls(1):  # a, at 0 s, plays first
            assert not w.isEnabled()
            assert "first section" in w.toolTip() and "fade-in" in w.toolTip()
        editor.table.cellWidget(1, COLUMNS.index("Start")).setValue(3.0)  # a now plays after b
        s = adapter.session
        assert [sec.start for sec in s.project.sections] == [2.0, 3.0]
        qtbot.waitUntil(lambda: not controls(0)[0].isEnabled(), timeout=5_000)
        assert [w.isEnabled() for w in controls(0)] == [False, False]
        assert [w.isEnabled() for w in controls(1)] == [True, True]
    finally:
        adapter.close()


def test_the_first_section_follows_the_beat_grid_when_the_analysis_arrives(tmp_path, qtbot):
    """A starts at 5 s, B at beat 8. Before the analysis a start in beats is read at 120 BPM (B at
    4 s: B plays first); the song is an 80 BPM click (B at 6 s: A plays first). The editor's rows
    follow when the grid arrives (they kept B's controls off). Truth: the click's tempo."""
    adapter = _open_two_sections(tmp_path, [("A", 5.0), ("B", 8.0, "beats")], tempo_bpm=80.0, analyse=True)
    from gui.panels.sections import COLUMNS, SectionEditor

    try:
        editor = SectionEditor(adapter)
        qtbot.addWidget(editor)
        editor.refresh()

        def enabled(row: int) -> bool:
            return editor.table.cellWidget(row, COLUMNS.index("Transition")).isEnabled()

        qtbot.waitUntil(lambda: adapter.session.analysis is not None, timeout=60_000)
        assert adapter.session.analysis.tempo_bpm == pytest.approx(80.0, rel=0.02)
        qtbot.waitUntil(lambda: not enabled(0) and enabled(1), timeout=10_000)
    finally:
        adapter.close()


def test_sections_set_says_a_transition_on_the_first_section_does_nothing(tmp_path, capsys):
    """`sections set` on the section that plays first (here listed second, in beats) keeps the
    transition and says on stderr that nothing comes before it, naming the fade-in; others say nothing."""
    from bridge.cli import main
    from bridge.project import Project, Section, TempoSettings, load_project, save_project

    save_project(Project(name="song", tempo=TempoSettings(source="constant", tempo_bpm=120.0),
                         sections=[Section(name="Drop", start=16.0, unit="beats", seed=2),
                                   Section(name="Intro", start=4.0, unit="seconds", seed=1)]), tmp_path)
    assert main(["sections", "set", str(tmp_path), "1", "--transition", "melt"]) == 0  # beat 16 = 8 s: second
    assert capsys.readouterr().err == ""
    assert main(["sections", "set", str(tmp_path), "2", "--transition", "melt", "--beats", "8"]) == 0
    err = capsys.readouterr().err
    assert "section 2 plays first" in err and "does nothing" in err and "render --fade-in" in err
    assert main(["sections", "set", str(tmp_path), "2", "--name", "Intro!"]) == 0  # not the transition: no note
    assert capsys.readouterr().err == ""
    saved = load_project(tmp_path)[0].sections
    assert [(s.transition, s.transition_beats) for s in saved] == [("melt", 4.0), ("melt", 8.0)]


def test_a_melt_across_segment_cuts_renders_as_the_straight_run(project_dir):  # noqa: F811
    """A segment that starts inside a melt (or a crossfade) is drawn exactly as a render from the
    song start: its pre-roll reaches back to the melt's start (a fixed 2 s does not: the melt is
    feedback of the old picture); outside it, the short pre-roll of stateless looks is enough.
    Material: the synthetic 8 s, 120 BPM project, two stateless
    shipped looks, the verse melting in over 8 beats (4–8 s) and hitting harder (hit 1.5)."""

    from bridge.export.preroll import segment_preroll
    from bridge.export.render import PREROLL_SECONDS
    from bridge.visuals.shader import HIT_TRAVEL_STEP

    require_gl()
    job = _melt_job(project_dir, "kaleidoscope", "tunnel")
    sections = tuple(dataclasses.replace(s, hit=1.5) for s in job.context.sections)
    job = dataclasses.replace(job, context=dataclasses.replace(job.context, sections=sections))
    assert [(s.look, s.transition) for s in sections] == [("kaleidoscope", "crossfade"), ("tunnel", "melt")]
    p = job.params

    def run(first: int, last: int) -> list[np.ndarray]:
        engine = get_engine(job.engine_key, **job.engine_settings)
        engine.start(job.context)
        try:
            return [engine.render(f, p.row(f), int(p.section_index[f]), float(p.section_mix[f]))
                    for f in range(first, last)]
        finally:
            engine.close()

    straight = run(0, len(p))
    fixed = int(PREROLL_SECONDS * job.context.fps)
    for start in (125, 210):  # in the melt's first second, and 3 s into it
        preroll = segment_preroll(job, start)
        assert preroll >= start - 119  # back to the frame before the melt (it starts on frame 120)
        alone = run(start - preroll, len(p))[preroll:]
        assert all(np.array_equal(a, b) for a, b in zip(straight[start:], alone, strict=True)), start
    short = run(210 - fixed, 230)[fixed:]
    assert any(not np.array_equal(a, b) for a, b in zip(straight[210:230], short, strict=True))
    # outside the melt two stateless looks need only the hit envelope's frames, not 2 s: two frames
    # after a hit in the loud verse, a segment equals the straight render, and without a pre-roll
    # (no hit history: no punch) it does not
    travel = p.column("travel")
    hit = next(f for f in range(fixed, 110) if travel[f] - travel[f - 1] > 0.5 * HIT_TRAVEL_STEP)
    preroll = segment_preroll(job, hit + 2)
    assert preroll < fixed
    alone = run(hit + 2 - preroll, 120)[preroll:]
    assert all(np.array_equal(a, b) for a, b in zip(straight[hit + 2:120], alone, strict=True))
    assert not np.array_equal(run(hit + 2, hit + 3)[0], straight[hit + 2])


def test_a_shader_run_continued_from_another_engines_state_equals_the_straight_run(project_dir):  # noqa: F811
    """Issue 18: feedback looks (ink's float fluid, glitch's mosh buffer) keep their past far longer
    than a segment's 2 s pre-roll (ink: up to 97 code values off after it, the demo at 320x180), so
    segment exports hand the engine's state over instead (get_state / set_state). A fresh engine
    given the state of the straight run at a cut — before the melt, inside it, after it — draws
    the following frames bit for bit as the straight run; after the 2 s pre-roll it does not."""

    from bridge.export.render import PREROLL_SECONDS
    from bridge.export.segments import engine_frames, start_engine, state_digest

    require_gl()
    job = _melt_job(project_dir, "ink", "glitch")
    n = len(job.params)
    cuts = (100, 150, 235)  # before the melt (frames 120–240), inside it, at its end

    def frames(start: int, count: int, *, preroll: int = 0, state=None, states=None) -> list[np.ndarray]:
        engine = start_engine(job)
        try:
            return [f.copy() for f in engine_frames(engine, job, start, count, preroll=preroll, start_state=state,
                                                    states=states, capture=frozenset(cuts))]
        finally:
            engine.close()

    states: dict = {}
    straight = frames(0, n, states=states)
    assert sorted(states) == list(cuts) and "melt" in states[150] and "melt" not in states[100]
    for cut in cuts:
        again: dict = {}
        alone = frames(cut, n - cut, state=states[cut], states=again)
        assert state_digest(again[cut]) == state_digest(states[cut])  # set, then got: the same state
        assert all(np.array_equal(a, b) for a, b in zip(straight[cut:], alone, strict=True)), cut
    fixed = int(PREROLL_SECONDS * job.context.fps)
    guessed = frames(100, 10, preroll=fixed)
    assert any(not np.array_equal(a, b) for a, b in zip(straight[100:110], guessed, strict=True))


def _melt_job(folder, first: str, second: str):
    """The lossless shader project with look ``first`` in its first section and ``second`` melting
    into the next over 8 beats, saved and prepared as an export would be."""
    from segment_helpers import lossless

    from bridge.export.render import prepare_render
    from bridge.project import load_project, save_project

    project = lossless(folder)
    project = project.model_copy(update={
        "engine": project.engine.model_copy(update={"name": "shader"}),
        "sections": [project.sections[0].model_copy(update={"look": first}),
                     project.sections[1].model_copy(update={"look": second, "transition": "melt",
                                                            "transition_beats": 8})]})
    save_project(project, folder)
    project, _ = load_project(folder)
    return prepare_render(project, folder)


def test_sections_set_names_the_option_a_bad_value_came_from(tmp_path, capsys):
    """`sections set 1 --beats 100` said 'transition_beats: …', a field name the producer never typed."""
    from bridge.cli import main
    from bridge.project import Project, Section, load_project, save_project

    save_project(Project(name="song", sections=[Section(name="Intro", start=0.0, seed=1)]), tmp_path)
    before = (tmp_path / "stembridge.json").read_bytes()
    assert main(["sections", "set", str(tmp_path), "1", "--beats", "100"]) == 2
    assert capsys.readouterr().err.strip() == (
        "stembridge: error: section 1 was not changed: --beats 100.0: Input should be less than or equal to 64")
    assert (tmp_path / "stembridge.json").read_bytes() == before
    assert load_project(tmp_path)[0].sections[0].transition_beats != 100


def test_remove_is_off_until_a_section_is_picked_and_removes_that_one(tmp_path, qtbot):
    """Remove with no row picked did nothing and said nothing. It is off (with a tooltip saying
    what to do) until a row is picked; then it removes that row's section, undoably."""
    adapter = _open_two_sections(tmp_path, [("verse", 0.0), ("drop", 2.0)])
    from PySide6.QtCore import Qt

    from gui.panels.sections import COLUMNS, SectionEditor

    try:
        editor = SectionEditor(adapter)
        qtbot.addWidget(editor)
        editor.show()
        editor.activateWindow()  # a click moves the focus (and so the current row) in an active window
        qtbot.waitUntil(editor.isActiveWindow, timeout=5_000)
        editor.refresh()
        assert not editor.remove.isEnabled() and "Click a section's row" in editor.remove.toolTip()
        qtbot.mouseClick(editor.table.cellWidget(1, COLUMNS.index("Name")), Qt.MouseButton.LeftButton)
        assert editor.remove.isEnabled() and "drop" in editor.remove.toolTip()
        qtbot.mouseClick(editor.remove, Qt.MouseButton.LeftButton)
        s = adapter.session
        assert [sec.name for sec in s.project.sections] == ["verse"]
        s.undo()
        assert [sec.name for sec in s.project.sections] == ["verse", "drop"]
    finally:
        adapter.close()
