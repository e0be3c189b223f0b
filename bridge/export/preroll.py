"""How long a segment pre-rolls before its first frame, and when a cluster relays exact states instead.

A segment of an export starts a fresh engine some frames before its first one, so feedback looks
reach the state a straight render has there. For engines that hand their exact state over
(:data:`bridge.visuals.STATE_ENGINES`) the pre-roll is what the look's own feedback needs to forget
the past at that cut (:func:`state_memory_frames`), capped at :data:`MAX_PREROLL_SECONDS`; where that
is longer than pays on a cluster, a relay brings the exact state (:func:`needs_relay`). The segment
machinery that uses these is :mod:`bridge.export.segments` (split from there: files by concern).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from bridge.export.job import RenderJob


class _Span(Protocol):
    """What :func:`needs_relay` reads of a segment (a :class:`bridge.export.segments.Segment`;
    named structurally so this module, which segments imports, does not import it back)."""

    start_frame: int
    n_frames: int


#: Longest pre-roll a segment of an engine that hands its state over renders before its start.
#: A cut whose feedback needs more (ink's float fluid never forgets bit for bit) gets its start
#: state from the relay on a cluster (:func:`needs_relay`); the cap keeps a guess from costing more
#: than about a default segment's (SEGMENT_SECONDS) render: pre-roll frames are drawn, not read
#: back or encoded (ADVANCE_SHARE).
MAX_PREROLL_SECONDS = 20.0  # two default segments (segments.SEGMENT_SECONDS)
#: What drawing a frame without reading it back or encoding it (a pre-roll frame, the relay) costs,
#: as a share of rendering and encoding it: measured on a 2-core VM at 320x180, one thread
#: (procedural 0.23; shader on llvmpipe: glitch 0.50, ink 0.72; on a GPU the skipped read-back
#: and encoding weigh more, so less). Sizes the choice between pre-roll and relay (:func:`needs_relay`).
ADVANCE_SHARE = {"procedural": 0.25, "shader": 0.5}


def keeps_state(job: RenderJob) -> bool:
    """Whether the job's engine hands its exact state over at segment cuts (see the module doc)."""
    from bridge.visuals import STATE_ENGINES

    return job.engine_key in STATE_ENGINES


def fresh_start_frame(job: RenderJob, start_frame: int) -> int:
    """The frame a fresh engine starts at for a run of frames from ``start_frame``: the first
    prepared frame for the range's first frame (what a straight render of the range does, by
    definition), else :func:`segment_preroll` frames before it."""
    if start_frame <= job.range.start_frame:
        return job.params.start_frame
    return start_frame - segment_preroll(job, start_frame)


def preroll_is_exact(job: RenderJob, start_frame: int) -> bool:
    """Whether a fresh engine's pre-roll before ``start_frame`` is the whole history of the render
    (it starts at the first prepared frame), so the state it reaches is exactly a straight render's."""
    return fresh_start_frame(job, start_frame) <= job.params.start_frame


def state_memory_frames(job: RenderJob, start_frame: int, *, at_most: int | None = None) -> int:
    """Frames a fresh engine must render before ``start_frame`` to reach the state a straight render
    has there, bit for bit, derived from the engine's and the looks' own feedback (the procedural
    engine: :func:`bridge.visuals.procedural.trail_memory_frames`; the shader engine:
    :func:`bridge.visuals.shader.state_memory_frames`); ``start_frame − params.start_frame`` (all
    of the history) when nothing shorter will do; ``at_most`` when given and that is not enough
    (only the last ``at_most`` frames are looked at). Engines without exact state hand-over: the
    job's fixed pre-roll."""
    history = max(0, start_frame - job.params.start_frame)
    if not keeps_state(job):
        return min(job.preroll_frames, history)
    window = history if at_most is None else max(0, min(history, int(at_most)))
    p = job.params
    frames = slice(history - window, history)
    index, mix = p.section_index[frames], p.section_mix[frames]
    if job.engine_key == "procedural":
        from bridge.visuals.procedural import trail_memory_frames

        columns = {name: p.column(name)[frames] for name in ("decay", "strength") if name in p.names}
        return trail_memory_frames(job.context, columns, index, mix, limit=window)
    if job.engine_key == "shader":
        from bridge.visuals.shader import state_memory_frames as shader_memory

        return shader_memory(job.context, job.engine_settings.get("look"), index, mix, limit=window)
    return min(job.preroll_frames, history)


def needs_relay(job: RenderJob, seg: _Span, *, slots: int = 1) -> bool:
    """Whether a cluster task for ``seg`` had better start from the exact state the relay brings
    (:func:`bridge.export.segments.advance_states`) than pre-roll: the engine hands its state over, and the pre-roll that
    reaches the exact state (:func:`state_memory_frames`) is longer than MAX_PREROLL_SECONDS or
    than the segment times max(1, ``slots`` − 1 / a), a = the engine's :data:`ADVANCE_SHARE`.

    Why: the relay adds no work but is one task drawing the whole song, so with ``slots`` task
    slots it renders at most min(slots / (1 + a), 1 / a) times as fast as one; pre-rolls of P
    frames before segments of L frames run at slots / (1 + a·P / L). Pre-rolling is the faster
    when P / L < max(1, slots − 1 / a): on 2 slots only pre-rolls shorter than their segment; on
    16, with the shader engine, pre-rolls up to 14 segments long."""
    if not keeps_state(job):
        return False
    share = ADVANCE_SHARE.get(job.engine_key, 1.0)
    limit = min(preroll_cap_frames(job), int(seg.n_frames * max(1.0, slots - 1.0 / share)))
    return state_memory_frames(job, seg.start_frame, at_most=limit + 1) > limit


def preroll_cap_frames(job: RenderJob) -> int:
    """The longest pre-roll a segment of ``job`` renders: MAX_PREROLL_SECONDS, or the job's own cap."""
    if job.max_segment_preroll_frames is not None:
        return max(0, int(job.max_segment_preroll_frames))
    return int(MAX_PREROLL_SECONDS * float(job.context.fps))


def segment_preroll(job: RenderJob, start_frame: int) -> int:
    """Frames rendered (and dropped) before ``start_frame`` when a run of frames starts there: for an
    engine that hands its state over, what its feedback needs to forget the past
    (:func:`state_memory_frames`), at most MAX_PREROLL_SECONDS; else the job's fixed pre-roll."""
    wanted = job.preroll_frames
    if keeps_state(job):
        wanted = state_memory_frames(job, start_frame, at_most=preroll_cap_frames(job))
    if job.engine_key == "shader":
        from bridge.mapping.sections import feedback_transition_preroll
        from bridge.visuals.shader import HIT_WINDOW_S

        # a cut inside a melt renders the melt from its start (it is feedback of the old picture)
        wanted = max(wanted, feedback_transition_preroll(job.context.sections, job.context.fps, start_frame,
                                                         history_s=HIT_WINDOW_S))
    return max(0, min(wanted, start_frame - job.params.start_frame))
