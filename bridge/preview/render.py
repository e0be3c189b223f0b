"""Rendering keyframes on the model worker: a feedback engine from black through its warm-up rows,
a diffusion engine as independent text-to-image frames in a batch."""

from __future__ import annotations

from typing import Any

import numpy as np

from bridge.jobs import CancelToken
from bridge.preview.plan import PreviewPlan


def reset_feedback(engine: Any, plan: PreviewPlan) -> None:
    """Clear a feedback engine's state before a keyframe's warm-up (deterministic keyframes).

    ``start(ctx)`` does it but also rebuilds per-resolution geometry and every section's
    pattern (≈16 ms at 384×216 for the procedural engine, 5× a frame); an engine may offer a
    cheaper ``reset()`` (the procedural engine clears its feedback buffer).
    """
    reset = getattr(engine, "reset", None)
    if callable(reset):
        reset()
        return
    engine.start(plan.render_context())


def render_sequential(engine: Any, plan: PreviewPlan, k: int, token: CancelToken) -> np.ndarray:
    """Keyframe ``k`` of a feedback engine: reset, then the warm-up rows and the keyframe's own."""
    params = plan.params
    first = max(0, k - plan.warmup_frames)
    render_keyframe = getattr(engine, "render_keyframe", None)
    if callable(render_keyframe):  # in a child process (bridge.preview.offload): the rows in one call
        token.raise_if_cancelled("the preview pass")
        frames = range(first, k + 1)
        return render_keyframe(first, [params.row(j) for j in frames], [int(params.section_index[j]) for j in frames],
                               [float(params.section_mix[j]) for j in frames])
    reset_feedback(engine, plan)
    frame = None
    for j in range(first, k + 1):
        token.raise_if_cancelled("the preview pass")
        frame = engine.render(j, params.row(j), int(params.section_index[j]), float(params.section_mix[j]))
    return np.ascontiguousarray(frame)


def render_batch(engine: Any, plan: PreviewPlan, frames: list[int], token: CancelToken) -> list[np.ndarray]:
    """Keyframes ``frames`` of a diffusion engine, each an independent text-to-image frame."""
    from bridge.visuals.lcm import FrameJob

    token.raise_if_cancelled("the preview pass")
    params = plan.params
    jobs = [FrameJob(frame_index=k, params=params.row(k), section_index=int(params.section_index[k]),
                     section_mix=float(params.section_mix[k]), init_rgb=None) for k in frames]
    return [np.ascontiguousarray(f) for f in engine.render_batch(jobs)]
