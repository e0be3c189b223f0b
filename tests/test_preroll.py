"""How long a segment's pre-roll must be for its engine to reach, bit for bit, the state a straight
render has at the cut (issue 18), and the relay for feedback that outlives any pre-roll.

The truth is always the engine run straight from the first prepared frame (``engine.render`` frame
by frame, ``get_state`` at the cut); a pre-roll "lands" when a fresh engine run from
``cut − pre-roll`` holds exactly that state there (the digest the cluster driver compares).
Material: the synthetic 8-s project (tests/preview_project.py) at 160x90.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from preview_project import built, project_dir  # noqa: F401  (fixtures)
from segment_helpers import lossless

from bridge.errors import RenderError
from bridge.export.preroll import segment_preroll, state_memory_frames
from bridge.export.render import prepare_render
from bridge.export.segments import advance_states, state_digest
from bridge.visuals import get_engine
from bridge.visuals.isf import parse_isf
from bridge.visuals.shader_looks import look_memory_seconds


def straight_states(job, cuts: list[int]) -> dict[int, str]:
    """Digests of the state a render from the first prepared frame has at the start of each cut."""
    p = job.params
    engine = get_engine(job.engine_key, **job.engine_settings)
    engine.start(job.context)
    out: dict[int, str] = {}
    try:
        for i in range(max(cuts) - p.start_frame):
            engine.render(p.start_frame + i, p.row(i), int(p.section_index[i]), float(p.section_mix[i]))
            if p.start_frame + i + 1 in cuts:
                out[p.start_frame + i + 1] = state_digest(engine.get_state())
    finally:
        engine.close()
    return out


def lands(job, cut: int, preroll: int) -> bool:
    """Whether a fresh engine pre-rolled ``preroll`` frames holds the straight state at ``cut``."""
    (state,) = advance_states(job, cut - preroll, None, [cut])
    return state_digest(state) == straight_states(job, [cut])[cut]


def shader_project(project_dir: Path, sections=None, look: str = "ink"):  # noqa: F811
    from bridge.project import load_project, save_project

    project = lossless(project_dir, engine="shader")
    update = {"engine": project.engine.model_copy(update={"look": look})}
    if sections is not None:
        update["sections"] = sections
    save_project(project.model_copy(update=update), project_dir)
    return load_project(project_dir)[0]


def test_procedural_preroll_from_its_trail_memory_lands_exactly(project_dir: Path) -> None:  # noqa: F811
    """The procedural engine's pre-roll, derived from its per-frame persistence, decay and strength,
    reaches the straight state at every cut tried; 3 frames (far too few) does not."""
    project = lossless(project_dir)
    job = prepare_render(project, project_dir)
    cuts = [100, 140, 200]
    truth = straight_states(job, cuts)
    for cut in cuts:
        memory = state_memory_frames(job, cut)
        assert 0 < memory < cut, (cut, memory)  # shorter than the whole history, or it would prove nothing
        assert segment_preroll(job, cut) == memory
        (state,) = advance_states(job, cut - memory, None, [cut])
        assert state_digest(state) == truth[cut], (cut, memory)
    assert not lands(job, 140, 3)


def test_ink_never_forgets_but_a_section_start_resets_it(project_dir: Path) -> None:  # noqa: F811
    """Ink's float fluid fades by a factor per step of travel and never reaches the same bits again: its memory is
    the whole history. A section that cuts to ink from a look without feedback clears the fluid, so a
    cut 1 s into that section needs only the frames since the section start (plus the hit
    envelope's), and a pre-roll that starts 3 frames after the section start does not land."""
    from conftest import require_gl

    from bridge.project import Section

    require_gl()
    assert look_memory_seconds("ink") is None
    assert look_memory_seconds("tunnel") == 0.0
    assert look_memory_seconds("glitch") == pytest.approx(12.0)  # its header's STATE_MEMORY_SECONDS

    project = shader_project(project_dir)
    job = prepare_render(project, project_dir, end_s=6.0)
    assert state_memory_frames(job, 150) == 150 - job.params.start_frame  # the whole history

    project = shader_project(project_dir, [Section(name="a", start=0.0, end=4.0, look="tunnel"),
                                           Section(name="b", start=4.0, look="ink", transition="cut")])
    job = prepare_render(project, project_dir, end_s=6.0)
    first_ink = int(job.params.section_index.tolist().index(1)) + job.params.start_frame
    cut = first_ink + 30
    memory = state_memory_frames(job, cut)
    assert cut - first_ink < memory < cut - first_ink + 12, (first_ink, memory)  # + the hit envelope
    assert lands(job, cut, memory)
    assert not lands(job, cut, cut - first_ink - 3)


def test_the_relay_brings_the_straight_states(project_dir: Path) -> None:  # noqa: F811
    """The relay advances the engine without reading frames back; the states it yields at the cuts
    are the straight render's, bit for bit (ink: float buffers, the hit envelope, the last picture)."""
    from conftest import require_gl

    require_gl()
    project = shader_project(project_dir)
    job = prepare_render(project, project_dir, end_s=4.0)
    cuts = [40, 41, 90]
    relay = [state_digest(s) for s in advance_states(job, job.params.start_frame, None, cuts)]
    truth = straight_states(job, cuts)
    assert relay == [truth[c] for c in cuts]
    assert len(set(relay)) == 3


def test_a_bad_state_memory_in_a_look_header_names_the_value() -> None:
    source = """/*{ "ISFVSN": "2", "STATE_MEMORY_SECONDS": "%s",
        "PASSES": [{"TARGET": "fb", "PERSISTENT": true}, {}] }*/ void main() {}"""
    with pytest.raises(RenderError, match=r"STATE_MEMORY_SECONDS 'long' must be a number of seconds"):
        parse_isf(source % "long")
    ok = parse_isf(source.replace('"%s"', "3.5"))
    assert ok.memory_seconds == 3.5


def test_cuts_move_to_where_the_feedback_has_just_been_cleared(project_dir: Path) -> None:  # noqa: F811
    """Ink until 6.5 s, then a hard cut to tunnel (no feedback). Cut in three, the plain plan cuts on
    the downbeat at 6 s, inside ink, where only the whole history (or the relay) gives the exact
    state. The plan prefers the frame after the section start: tunnel was drawn on the frame before
    it and ink's fluid is no longer part of the state, so 9 frames of pre-roll land exactly."""
    from conftest import require_gl

    from bridge.export.preroll import needs_relay
    from bridge.export.segments import open_work_folder, plan_segments, work_folder
    from bridge.project import Section

    require_gl()
    project = shader_project(project_dir, [Section(name="a", start=0.0, end=6.5, look="ink"),
                                           Section(name="b", start=6.5, look="tunnel", transition="cut")])
    job = prepare_render(project, project_dir)
    plain = plan_segments(job.range.start_frame, job.range.n_frames, job.context.fps, n_segments=3,
                          boundaries=job.boundaries)
    assert plain[2].start_frame == 180 and needs_relay(job, plain[2])  # the downbeat at 6 s, in ink
    out = project_dir / "out.mp4"
    with open_work_folder(job, out, n_segments=3, resume=False) as work:
        plan = work.plan
    (work_folder(out) / "manifest.json").unlink()
    assert plan[2].start_frame == 196, plan  # 6.5 s is frame 195, the section's first
    assert not any(needs_relay(job, s) for s in plan)
    preroll = segment_preroll(job, 196)
    assert preroll <= 12 and lands(job, 196, preroll)
    assert segment_preroll(job, 195) == 195  # on the section's first frame ink is still in the state:
    assert not lands(job, 195, 12)  # the whole history is needed


def test_more_task_slots_make_longer_pre_rolls_pay(project_dir: Path) -> None:  # noqa: F811
    """glitch remembers 12 s (its header): a 2-s segment at 4 s would need its whole 4-s history
    as pre-roll. On 2 task slots that segment waits for the relay; on 16 the pre-roll pays (the
    relay, one task drawing the whole song, would bound the speed-up at 1 / 0.5 = 2)."""
    from bridge.export.preroll import needs_relay
    from bridge.export.segments import Segment

    project = shader_project(project_dir, look="glitch")
    job = prepare_render(project, project_dir)
    seg = Segment(2, 120, 60)
    assert state_memory_frames(job, 120) == 120
    assert needs_relay(job, seg, slots=2)
    assert not needs_relay(job, seg, slots=16)
    assert segment_preroll(job, 120) == 120  # from the song start: exact without a guess
