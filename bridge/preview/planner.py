"""Building a generation's plan from the Session's inputs, and ranking its keyframes by the playhead.

:mod:`bridge.preview.plan` defines :class:`~bridge.preview.plan.PreviewPlan` and its keys; this
module builds one from :class:`~bridge.preview.plan.PreviewInputs` (:class:`PlanDrafter`: FrameParams,
section looks, keyframes, engine, size — then :func:`with_keys`) and says which keyframes the
playhead wants first (:func:`rank_keyframes`, :func:`probe_key`). No threads and no locks: the
scheduler's coordinator thread drafts and keys plans, its model worker ranks a pass's keyframes
(:mod:`bridge.preview.scheduler` ties them together).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from bridge.mapping.sections import keyframe_frames
from bridge.preview.evaluator import ParamEvaluator
from bridge.preview.events import MappingProblem
from bridge.preview.plan import (
    PreviewInputs,
    PreviewPlan,
    compute_keys,
    engine_spec_for,
    preview_size,
)

#: While playing, a keyframe behind the playhead ranks as if it were this many times further away.
BEHIND_PENALTY = 3.0


class PlanDrafter:
    """Drafts plans without their keys, keeping what an edit usually leaves as it was: each
    mapping's contribution (:class:`~bridge.preview.evaluator.ParamEvaluator`), the section looks
    and the song's engine settings. For one thread (the scheduler's coordinator)."""

    def __init__(self) -> None:
        self.evaluator = ParamEvaluator()
        self._looks_memo: tuple | None = None  # (analysis, sections, engine key, looks)
        self._song_engine_memo: tuple | None = None  # (analysis, engine settings, (seed, settings))

    def draft(self, gen: int, inputs: PreviewInputs, *, long_side: int, warmup_frames: int,
              lcm_options: Mapping[str, Any]) -> tuple[PreviewPlan, list[MappingProblem], float]:
        """The plan without its keys (``keys=()``): parameters, keyframes, engine, size; with the
        mapping problems found and the time spent evaluating the parameters (ms)."""
        from bridge.export.render import section_looks

        project, analysis = inputs.project, inputs.analysis
        t0 = time.perf_counter()
        fps = project.render.fps_fraction
        looks = inputs.sections
        if looks is None:
            memo = self._looks_memo
            # the shader engine's section looks also follow the engine and its look
            engine_key = (project.engine.seed, project.engine.name, project.engine.look)
            if (memo is not None and memo[0] is analysis and memo[1] == project.sections
                    and memo[2] == engine_key):
                looks = memo[3]
            else:
                looks = section_looks(project, analysis)
                self._looks_memo = (analysis, project.sections, engine_key, looks)
        params, problems = self.evaluator.evaluate(
            project.mappings, analysis, looks, fps=fps, stem_roles={s.name: s.role for s in project.stems})
        evaluate_ms = (time.perf_counter() - t0) * 1000.0
        # computed again on every edit: 0.04 ms, less than a memo saves (benchmarks/preview_latency.py)
        keyframes = keyframe_frames(analysis.beat_grid, fps=fps, n_frames=len(params),
                                    every_beats=project.engine.keyframe_every_beats,
                                    section_starts_s=tuple(s.start_s for s in looks))
        keyframes.flags.writeable = False
        width, height = preview_size(project.render.width, project.render.height, long_side=long_side)
        from bridge.visuals.character import effective_engine

        # as the export does; memoised per analysis and engine block (a plan is built on every edit)
        memo = self._song_engine_memo
        if memo is None or memo[0] is not analysis or memo[1] != project.engine:
            memo = self._song_engine_memo = (analysis, project.engine, effective_engine(project.engine, analysis))
        run_seed, song_settings = memo[2]
        spec = engine_spec_for(project.engine, long_side=long_side, lcm_options=lcm_options,
                               song_settings=song_settings)
        plan = PreviewPlan(generation=gen, edit_time=inputs.edit_time, built_at=time.monotonic(), fps=fps,
                           width=width, height=height, seed=run_seed, params=params, looks=tuple(looks),
                           keyframes=keyframes, keys=(), engine=spec,
                           warmup_frames=0 if spec.batched else warmup_frames)
        return plan, problems, evaluate_ms


def with_keys(draft: PreviewPlan) -> PreviewPlan:
    """The draft with every keyframe's key."""
    keys = compute_keys(draft.params, draft.looks, draft.keyframes, engine=draft.engine, width=draft.width,
                        height=draft.height, seed=draft.seed, warmup_frames=draft.warmup_frames)
    return dataclasses.replace(draft, keys=keys)


def rank_keyframes(plan: PreviewPlan, candidates: np.ndarray, seconds: float, playing: bool, n: int) -> np.ndarray:
    """Indices (into plan.keyframes) of the best ``n`` of ``candidates``: nearest the playhead at
    song time ``seconds``, ahead of it while playing (the keyframe just behind still ranks, it is
    being blended now)."""
    if candidates.size == 0:
        return candidates
    frames = plan.keyframes[candidates].astype(np.float64)
    d = frames - seconds * float(plan.fps)
    score = np.where(d >= 0, d, -d * BEHIND_PENALTY) if playing else np.abs(d)
    n = min(n, candidates.size)
    best = np.argpartition(score, n - 1)[:n] if n < candidates.size else np.arange(candidates.size)
    return candidates[best[np.argsort(score[best], kind="stable")]]


def probe_key(draft: PreviewPlan, old: PreviewPlan | None, seconds: float, playing: bool) -> tuple[int, str] | None:
    """The keyframe at the playhead (song time ``seconds``) as (frame, key), if ``draft`` changed
    it from ``old``; else None.

    Only that keyframe's key is computed, so the worker can start on it before the keys of the
    whole song are (they grow with the song's length; this does not)."""
    i = rank_keyframes(draft, np.arange(draft.keyframes.size), seconds, playing, 1)
    if not i.size:
        return None
    k = int(draft.keyframes[i[0]])
    key = compute_keys(draft.params, draft.looks, draft.keyframes[i[:1]], engine=draft.engine,
                       width=draft.width, height=draft.height, seed=draft.seed,
                       warmup_frames=draft.warmup_frames)[0]
    old_i = None if old is None else old.keyframe_position(k)
    if old_i is not None and old.keys[old_i] == key:
        return None
    return k, key
