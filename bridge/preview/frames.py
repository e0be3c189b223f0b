"""``frame_at``: the picture for an instant, at playback rate, never waiting on the model worker.

A keyframe in the cache is returned as it is ("exact"); between keyframes the neighbours are moved
and colour-corrected to the instant (:func:`bridge.preview.compose.compose_frame`, "blend"); a
keyframe not yet rendered for the newest plan stands in with the last picture rendered there
("stale"); with nothing cached, a procedural engine at a fraction of the preview size draws the
frame ("fallback"); before any plan, black ("blank").
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bridge.preview.cache import FrameCache
from bridge.preview.compose import compose_frame
from bridge.preview.plan import PreviewPlan

log = logging.getLogger(__name__)


@dataclass
class _Fallback:
    engine: Any
    plan: PreviewPlan
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_frame_index: int = -1
    last_frame: np.ndarray | None = None


class FrameSource:
    """What ``PreviewScheduler.frame_at`` reads: the cache, the last good frame per keyframe, the
    procedural fallback. Called from the caller's thread (GUI timer, CLI loop); shares no lock with
    the worker but the cache's dictionary lock."""

    def __init__(self, cache: FrameCache, *, long_side: int, fallback_working_scale: float) -> None:
        self.cache = cache
        self.long_side = long_side
        self.fallback_working_scale = fallback_working_scale
        self._fallback: _Fallback | None = None
        self._frame_sources = {"exact": 0, "blend": 0, "stale": 0, "fallback": 0, "blank": 0}
        #: keyframe frame index → (key, parameter row, generation) of the newest frame rendered there.
        self._last_good: dict[int, tuple[str, np.ndarray, int]] = {}
        #: What the last frame_at returned: "exact", "blend", "stale", "fallback" or "blank".
        self.last_frame_source = "blank"
        #: the last composed frame: (plan, frame index, [(keyframe, image)…], frame).
        self._composed: tuple[PreviewPlan, int, list[tuple[int, np.ndarray]], np.ndarray] | None = None
        #: composed frames served again from ``_composed`` / composed (benchmarks/preview_latency.py).
        self.recomposed_hits = 0
        self.composed = 0

    def follow(self, draft: PreviewPlan) -> None:
        """A new plan's parameters (before its keys): the fallback draws with them from now on."""
        fb = self._fallback
        if fb is None or fb.plan.render_context() != draft.render_context():
            self._fallback = self._make_fallback(draft)
        else:  # same engine and context, new parameters
            self._fallback = _Fallback(engine=fb.engine, plan=draft, lock=fb.lock)

    def rendered(self, plan: PreviewPlan, k: int, key: str) -> None:
        """Keyframe ``k`` of ``plan`` is in the cache under ``key`` (from the worker thread)."""
        last = self._last_good.get(k)
        if last is None or last[2] <= plan.generation:  # a late frame of an older plan must not win
            self._last_good[k] = (key, plan.params.values[k], plan.generation)

    def sources(self) -> dict[str, int]:
        return dict(self._frame_sources)

    def _make_fallback(self, plan: PreviewPlan) -> _Fallback | None:
        try:
            from bridge.visuals.procedural import ProceduralEngine

            engine = ProceduralEngine(working_scale=self.fallback_working_scale)
            engine.start(plan.render_context())
            return _Fallback(engine=engine, plan=plan)
        except Exception as e:  # noqa: BLE001 - frame_at then shows the cached frames or black
            log.warning("procedural fallback unavailable: %s", e)
            return None

    def frame_at(self, plan: PreviewPlan | None, t_seconds: float) -> np.ndarray:
        """The best frame of ``plan`` for song time ``t_seconds`` now (RGB uint8 (h, w, 3) at
        preview size; read-only when it comes straight from the cache). Never waits on rendering."""
        if plan is None or plan.n_frames == 0:
            fb = self._fallback  # the first plan's parameters are there before its keys
            if plan is None and fb is not None and fb.plan.n_frames:
                j = int(math.floor(float(t_seconds) * float(fb.plan.fps) + 1e-6))
                return self._fallback_frame(fb.plan, min(max(j, 0), fb.plan.n_frames - 1))
            self._count("blank")
            return self._blank_frame(plan)
        n = plan.n_frames
        j = int(math.floor(float(t_seconds) * float(plan.fps) + 1e-6))
        j = min(max(j, 0), n - 1)
        kf = plan.keyframes
        i = int(np.searchsorted(kf, j, side="right")) - 1
        if i >= 0 and kf[i] == j:
            hit = self.cache.peek(plan.keys[i])
            if hit is not None:
                self._count("exact")
                return hit
        sec = plan.params.section_index
        mixing = plan.params.section_mix[j] < 1.0
        neighbours = []
        stale = False
        for idx in (i, i + 1):
            if not 0 <= idx < kf.size:
                continue
            k = int(kf[idx])
            if not (sec[k] == sec[j] or mixing) or (k == j and idx == i + 1):
                continue
            img = self.cache.peek(plan.keys[idx])
            row = plan.params.values[k]
            if img is None:
                # Not rendered for this plan yet: the last frame rendered at this keyframe (an
                # earlier edit's), corrected from the row it was rendered with. After an edit the
                # picture keeps its look and follows the new parameters until the new one is ready.
                last = self._last_good.get(k)
                if last is not None:
                    img = self.cache.peek(last[0])
                    row = last[1]
                    stale = img is not None
            if img is not None and img.shape[:2] == (plan.height, plan.width):
                neighbours.append((k, img, row))
            if k == j:
                break  # j is this keyframe: it alone is the frame
        if neighbours:
            self._count("stale" if stale else "blend")
            # A 60 Hz display asks twice for each frame of a 30 fps song: the second time, the same
            # plan, frame and keyframe images give the same picture, so it is not composed again.
            last = self._composed
            if (last is not None and last[0] is plan and last[1] == j and len(last[2]) == len(neighbours)
                    and all(a[0] == b[0] and a[1] is b[1] for a, b in zip(last[2], neighbours, strict=True))):
                self.recomposed_hits += 1
                return last[3]
            out = compose_frame(plan, j, neighbours)
            self.composed += 1
            out.flags.writeable = False
            self._composed = (plan, j, [(k, img) for k, img, _ in neighbours], out)
            return out
        return self._fallback_frame(plan, j)

    def _count(self, source: str) -> None:
        self._frame_sources[source] += 1  # statistics only: a lost increment under contention is fine
        self.last_frame_source = source

    def _fallback_frame(self, plan: PreviewPlan, j: int) -> np.ndarray:
        fb = self._fallback
        if fb is None:
            self._count("blank")
            return self._blank_frame(plan)
        j = min(j, fb.plan.n_frames - 1)
        if not fb.lock.acquire(blocking=False):
            # Another caller is rendering the fallback: show its previous frame rather than wait.
            self._count("fallback")
            return fb.last_frame if fb.last_frame is not None else self._blank_frame(plan)
        try:
            if fb.last_frame_index != j or fb.last_frame is None:
                p = fb.plan.params
                frame = fb.engine.render(j, p.row(j), int(p.section_index[j]), float(p.section_mix[j]))
                frame.flags.writeable = False
                fb.last_frame, fb.last_frame_index = frame, j
            self._count("fallback")
            return fb.last_frame
        finally:
            fb.lock.release()

    def _blank_frame(self, plan: PreviewPlan | None) -> np.ndarray:
        # made each time: 3 µs, and only before the first plan (benchmarks/preview_latency.py)
        w, h = (plan.width, plan.height) if plan is not None else (self.long_side, max(16, self.long_side * 9 // 16))
        blank = np.zeros((h, w, 3), dtype=np.uint8)
        blank.flags.writeable = False
        return blank
