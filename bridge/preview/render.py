"""Rendering keyframes on the model worker: a feedback engine from black through its warm-up rows,
a diffusion engine as independent text-to-image frames in a batch."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from bridge.jobs import CancelToken
from bridge.preview.events import PreviewError
from bridge.preview.offload import KeyframeProcess
from bridge.preview.plan import EngineSpec, PreviewPlan
from bridge.visuals.base import RenderContext

log = logging.getLogger(__name__)

EngineFactory = Callable[[str, Mapping[str, Any]], Any]


def default_engine_factory(name: str, settings: Mapping[str, Any]) -> Any:
    from bridge.visuals import get_engine

    return get_engine(name, **dict(settings))


class KeyframeEngines:
    """The preview's keyframe engine, built, started, swapped and closed on the model worker thread
    (``cancel`` alone may be called from another thread).

    keyframe_process: render the keyframes of a feedback engine (procedural, shader) in a child
    process, off the GIL that ``frame_at`` needs (:mod:`bridge.preview.offload`); None = yes with
    the default factory (a custom factory's engines may not exist in another process). Diffusion
    engines stay on the worker thread (torch, the GPU, and one model kept warm).
    """

    def __init__(self, factory: EngineFactory | None, *, emit: Callable[[object], None],
                 keyframe_process: bool | None = None) -> None:
        self.keyframe_process = factory is None if keyframe_process is None else bool(keyframe_process)
        self._factory = factory or default_engine_factory
        self._emit = emit
        self.engine: Any = None
        self._spec: EngineSpec | None = None
        self._ctx: RenderContext | None = None
        self._failed: tuple[EngineSpec, int] | None = None

    def ensure(self, plan: PreviewPlan) -> Any:
        """The engine for ``plan``, started with its context; None if it cannot load or start (then
        reported once, as a PreviewError, and tried again for the next plan)."""
        spec = plan.engine
        if self._failed == (spec, plan.generation):
            return None
        use_process = self.keyframe_process and not spec.batched
        in_process = isinstance(self.engine, KeyframeProcess)
        if self.engine is not None and (self._spec != spec or in_process != use_process):
            if use_process and in_process:
                try:  # the same child, another engine or seed: no new process
                    self.engine.configure(spec.name, dict(spec.settings))
                    self._spec, self._ctx, self._failed = spec, None, None
                except Exception as e:  # noqa: BLE001 - BridgeError, or a broken engine: same report
                    return self._unavailable(spec, plan, f"is not available for the preview: {e}")
            else:
                self.close()
        if self.engine is None:
            try:
                if use_process:
                    self.engine = KeyframeProcess(spec.name, dict(spec.settings))
                else:
                    self.engine = self._factory(spec.name, dict(spec.settings))
            except Exception as e:  # noqa: BLE001 - BridgeError, or a broken engine: same report
                return self._unavailable(spec, plan, f"is not available for the preview: {e}")
            self._spec, self._ctx, self._failed = spec, None, None
        ctx = plan.render_context()
        if self._ctx != ctx:
            try:
                self.engine.start(ctx)
            except Exception as e:  # noqa: BLE001
                return self._unavailable(spec, plan, f"could not start: {e}")
            self._ctx = ctx
        return self.engine

    def _unavailable(self, spec: EngineSpec, plan: PreviewPlan, why: str) -> None:
        self._failed = (spec, plan.generation)
        self.close()
        self._emit(PreviewError(f"the {spec.name} engine {why}"))

    def restart_next_time(self) -> None:
        """Start the engine again before its next frame (after a cancel or a failed frame)."""
        self._ctx = None

    def cancel(self) -> None:
        """Stop the frame in progress within one model step (engines that can; any thread)."""
        cancel = getattr(self.engine, "cancel", None)
        if callable(cancel):
            cancel()

    def close(self) -> None:
        if self.engine is not None:
            try:
                self.engine.close()
            except Exception:  # noqa: BLE001 - closing must not raise
                log.exception("closing the preview engine failed")
        self.engine, self._spec, self._ctx = None, None, None


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
