"""Preview scheduler: incremental FrameParams, keyframes that changed, one model worker, frame_at.

Pipeline (DESIGN.md "Threads")::

    Session edit ──▶ update(inputs) ──▶ coordinator thread
                                         │ 1. FrameParams for the whole song, re-evaluating only the
                                         │    mappings whose inputs changed (ParamEvaluator)
                                         │ 2. keyframes (every keyframe_every_beats on the beat grid,
                                         │    plus section starts); the keyframe at the playhead is
                                         │    keyed first and sent to the worker at once if its key
                                         │    changed (the *probe*); the running pass is cancelled
                                         │ 3. then every keyframe's key, while the model runs; the new
                                         │    plan is swapped in (frame_at modulates with the new
                                         │    parameters from here on)
                                         │ 4. after edits pause for ``debounce_s``: ONE pass over the
                                         │    keyframes whose keys are not in memory
                                         ▼
                                       model worker thread (the only thread that touches engines,
                                         hence torch): probe first, then the pass, nearest the
                                         playhead first (ahead of it while playing), re-ranked
                                         after every keyframe; disk hits are loaded, misses rendered
                                         (a feedback engine's in a child process by default, off
                                         frame_at's GIL: bridge.preview.offload)

Modules: events (what the Session forwards), evaluator (FrameParams, incrementally), plan (a
generation's plan and keyframe keys), planner (building a plan from the inputs, ranking keyframes by
the playhead), render (the keyframe engine on the worker), offload (its child process), compose +
frames (frame_at), cache (the frames), this one (the threads that tie them).

``frame_at(t)`` runs on the caller's thread (GUI timer, CLI loop) and shares no lock with the
worker except the frame cache's dictionary lock, which is never held while rendering.

Keyframe anchors: a feedback engine (procedural) renders a keyframe from black after
``warmup_frames`` warm-up frames (so its trails exist), hence its key includes those rows; the LCM
engine renders keyframes as independent text-to-image frames through ``render_batch`` (anchor
"t2i"), so an edit never cascades down an img2img chain.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bridge.errors import BridgeError, Cancelled
from bridge.jobs import CancelToken
from bridge.preview.cache import FrameCache
from bridge.preview.events import (
    KeyframeRendered,
    ParamsUpdated,
    PreviewError,
    PreviewPassFinished,
    PreviewPassStarted,
    PreviewStatus,
)
from bridge.preview.frames import FrameSource
from bridge.preview.plan import DEFAULT_PREVIEW_LONG_SIDE, PreviewInputs, PreviewPlan, _diff_plans
from bridge.preview.planner import PlanDrafter, probe_key, rank_keyframes, with_keys
from bridge.preview.render import EngineFactory, KeyframeEngines, render_batch, render_sequential

log = logging.getLogger(__name__)

#: Quiet time after the last edit before a regeneration pass starts (coalesces slider drags).
DEFAULT_DEBOUNCE_S = 0.075
#: Warm-up frames rendered before a keyframe of a feedback engine (its trails decay by ~0.92 per
#: frame, so 4 frames give the echoes ~70 % of their steady-state strength for 4× less work than 16).
DEFAULT_WARMUP_FRAMES = 4
#: The coordinator waits at most this long for the idle worker to pick up a probe (see _replan).
PROBE_HANDOVER_S = 0.002


@dataclass
class _Pass:
    pass_id: int
    plan: PreviewPlan
    pending: dict[int, str]   # keyframe frame index → key, not yet in memory
    token: CancelToken = field(default_factory=CancelToken)
    rendered: int = 0
    loaded: int = 0
    finished: bool = False


class PreviewScheduler:
    """Keeps the preview frame cache warm for the latest inputs; answers ``frame_at(t)``.

    Parameters
    ----------
    cache : FrameCache
    emit : callable(event)
        Receives the events above (from the scheduler's threads); must not block.
    playhead : callable() -> (seconds, playing)
        Where the transport is now (``TransportClock.now()``), read by the worker per keyframe.
    engine_factory : callable(name, settings) -> Engine
        Builds the keyframe engine (default: :func:`bridge.visuals.get_engine`); only ever called and
        used on the model worker thread.
    long_side : preview resolution (pixels on the long edge).
    debounce_s : quiet time after the last update before a regeneration pass starts.
    warmup_frames : warm-up frames before each keyframe of a sequential (feedback) engine.
    probe : render the playhead's keyframe at once after an edit (before the debounced pass).
    lcm_options : extra LCM engine settings (e.g. ``{"device": "cpu", "tiny_vae": False}``).
    keyframe_process : render the keyframes of a feedback engine (procedural, shader) in a child
        process, off the GIL that ``frame_at`` needs (:mod:`bridge.preview.offload`); default: yes
        with the default engine factory.
    fallback_working_scale : the procedural fallback of ``frame_at`` works at this fraction of the
        preview size (0.25 ≈ 2 ms a frame at 384×216) so a frame is always there in time.
    """

    def __init__(self, *, cache: FrameCache, emit: Callable[[object], None] = lambda e: None,
                 playhead: Callable[[], tuple[float, bool]] = lambda: (0.0, False),
                 engine_factory: EngineFactory | None = None, long_side: int = DEFAULT_PREVIEW_LONG_SIDE,
                 debounce_s: float = DEFAULT_DEBOUNCE_S, warmup_frames: int = DEFAULT_WARMUP_FRAMES,
                 probe: bool = True, lcm_options: Mapping[str, Any] | None = None,
                 fallback_working_scale: float = 0.25, keyframe_process: bool | None = None,
                 start: bool = True) -> None:
        if long_side < 16:
            raise ValueError(f"long_side {long_side} must be at least 16 pixels")
        if debounce_s < 0 or warmup_frames < 0:
            raise ValueError("debounce_s and warmup_frames must be >= 0")
        self.cache = cache
        self._emit = emit
        self._playhead = playhead
        #: the keyframe engine, owned by the model worker thread
        self.engines = KeyframeEngines(engine_factory, emit=emit, keyframe_process=keyframe_process)
        self.long_side = int(long_side)
        self.debounce_s = float(debounce_s)
        self.warmup_frames = int(warmup_frames)
        self.probe = probe
        self.lcm_options = dict(lcm_options or {})
        self.fallback_working_scale = fallback_working_scale
        self.drafter = PlanDrafter()  # coordinator-owned

        self._cond = threading.Condition()
        self._stop = False
        self._inputs: PreviewInputs | None = None
        self._inputs_gen = 0
        self._planned_gen = 0
        self._plan: PreviewPlan | None = None
        self._newest_gen = 0  # generation of the newest parameters handed to the worker
        self._probe_taken = threading.Event()
        self._pass_due: float | None = None
        self._planning = False
        self._pass: _Pass | None = None
        self._pass_counter = 0
        self._probe_item: tuple[PreviewPlan, int, str] | None = None
        self._in_flight: tuple[str, ...] = ()
        self._latency_recorded_gen = 0
        self._latency_lock = threading.Lock()
        self._last_edit_to_frame_ms: float | None = None
        self._last_render_ms: float | None = None
        self.frames = FrameSource(cache, long_side=self.long_side, fallback_working_scale=fallback_working_scale)
        self._idle = threading.Event()
        self._idle.set()
        self._threads: list[threading.Thread] = []
        if start:
            self.start()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._threads:
            return
        for name, target in (("stembridge-preview-coordinator", self._coordinator_loop),
                             ("stembridge-model-worker", self._worker_loop)):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, *, timeout_s: float = 10.0) -> None:
        with self._cond:
            self._stop = True
            if self._pass is not None:
                self._pass.token.cancel()
            self._cond.notify_all()
        self.engines.cancel()
        for t in self._threads:
            t.join(timeout_s)
        self._threads = []
        self.engines.close()

    # -- inputs ------------------------------------------------------------------------------
    def update(self, inputs: PreviewInputs) -> int:
        """Hand over new inputs (cheap; the work happens on the coordinator). Returns its generation."""
        with self._cond:
            self._inputs = inputs
            self._inputs_gen += 1
            self._idle.clear()
            self._cond.notify_all()
            return self._inputs_gen

    @property
    def plan(self) -> PreviewPlan | None:
        return self._plan

    def wait_idle(self, timeout_s: float | None = None) -> bool:
        """Block until every update is planned and its pass has finished (tests, CLI, benchmarks)."""
        return self._idle.wait(timeout_s)

    def wakeup(self) -> None:
        """The playhead moved: re-rank the pending keyframes (called by the Session on seeks)."""
        with self._cond:
            self._cond.notify_all()

    # -- coordinator -------------------------------------------------------------------------
    def _coordinator_loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stop:
                        return
                    if self._inputs_gen > self._planned_gen:
                        break
                    now = time.monotonic()
                    if self._pass_due is not None and now >= self._pass_due:
                        break
                    self._cond.wait(None if self._pass_due is None else self._pass_due - now)
                gen, inputs = self._inputs_gen, self._inputs
                new_inputs = gen > self._planned_gen
                self._planned_gen = gen
                self._planning = new_inputs
            if new_inputs and inputs is not None:
                try:
                    self._replan(gen, inputs)
                finally:
                    with self._cond:
                        self._planning = False
                        self._maybe_idle()
            else:
                self._start_pass()

    def _probe_for(self, draft: PreviewPlan, old: PreviewPlan | None) -> tuple[PreviewPlan, int, str] | None:
        """The keyframe at the playhead if the edit changed it, as (the draft plan, frame, key)."""
        if not (self.probe and draft.keyframes.size):
            return None
        seconds, playing = self._playhead()
        found = probe_key(draft, old, seconds, playing)
        return None if found is None else (draft, *found)

    def _replan(self, gen: int, inputs: PreviewInputs) -> None:
        old = self._plan
        try:
            draft, problems, evaluate_ms = self.drafter.draft(
                gen, inputs, long_side=self.long_side, warmup_frames=self.warmup_frames,
                lcm_options=self.lcm_options)
            probe = self._probe_for(draft, old)
        except BridgeError as e:
            self._emit(PreviewError(f"the preview could not be updated: {e}"))
            return
        except Exception as e:  # noqa: BLE001 - a bug here must not kill the preview thread
            log.exception("building the preview plan failed")
            self._emit(PreviewError(f"the preview could not be updated ({type(e).__name__}: {e})"))
            return
        # frame_at's procedural fallback follows the new parameters before the worker starts on them.
        self.frames.follow(draft)
        with self._cond:
            # The probe goes to the worker first; the running pass is stale whatever the keys say.
            self._probe_item = probe
            self._newest_gen = gen
            self._cancel_pass()
            self._cond.notify_all()
            hand_over = probe is not None and not self._in_flight
            if hand_over:
                self._probe_taken.clear()
        if hand_over:
            # Block briefly so the idle worker gets the GIL and starts on the probe now; the rest of
            # the plan (every keyframe's key, the diff) is then worked out while the model runs
            # instead of before it (without this the worker waits for this thread's time slice).
            self._probe_taken.wait(PROBE_HANDOVER_S)
        try:
            plan = with_keys(draft)
        except Exception as e:  # noqa: BLE001 - as above
            log.exception("building the preview plan failed")
            self._emit(PreviewError(f"the preview could not be updated ({type(e).__name__}: {e})"))
            return
        with self._cond:
            # Published even if newer inputs arrived meanwhile: newer parameters beat none.
            if self._plan is None or self._plan.generation < gen:
                self._plan = plan
            self._cancel_pass()
            wanted = set(plan.keys)
            if self._in_flight and not set(self._in_flight) <= wanted:
                self.engines.cancel()  # the frame being rendered is stale: stop it within one model step
            self._pass_due = time.monotonic() + self.debounce_s
            self._cond.notify_all()
        changed_frames, changed_keyframes = _diff_plans(old, plan)
        for p in problems:
            self._emit(p)
        self._emit(ParamsUpdated(gen, plan.n_frames, changed_frames, tuple(changed_keyframes), evaluate_ms))
        if probe is None and plan.edit_time is not None:
            self._record_latency(plan, time.monotonic(), only_if_cached=True)

    def _cancel_pass(self) -> None:
        """Under the lock: the running pass is for older inputs; stop it and report it cancelled."""
        stale = self._pass
        if stale is not None and not stale.finished:
            stale.token.cancel()
            stale.finished = True
            self._emit(PreviewPassFinished(stale.pass_id, stale.plan.generation, stale.rendered,
                                           stale.loaded, cancelled=True))
        self._pass = None

    def _start_pass(self) -> None:
        with self._cond:
            self._pass_due = None
            plan = self._plan
            if plan is None or self._stop:
                self._maybe_idle()
                return
            pending = {int(k): key for k, key in zip(plan.keyframes.tolist(), plan.keys, strict=True)
                       if not self.cache.in_memory(key)}
            self._pass_counter += 1
            self._pass = _Pass(self._pass_counter, plan, pending)
            # Emitted under the lock: the worker cannot report a keyframe of this pass before it.
            self._emit(PreviewPassStarted(self._pass_counter, plan.generation, tuple(sorted(pending))))
            self._cond.notify_all()
            self._maybe_finish_pass()
            self._maybe_idle()

    def _maybe_finish_pass(self) -> None:
        p = self._pass
        if p is not None and not p.finished and not p.pending:
            p.finished = True
            self._emit(PreviewPassFinished(p.pass_id, p.plan.generation, p.rendered, p.loaded, cancelled=False))

    def _maybe_idle(self) -> None:
        busy = (self._inputs_gen > self._planned_gen or self._planning or self._pass_due is not None
                or self._probe_item is not None
                or (self._pass is not None and not self._pass.finished) or bool(self._in_flight))
        if not busy:
            self._idle.set()

    # -- worker ------------------------------------------------------------------------------
    def _next_items(self) -> tuple[str, PreviewPlan, list[tuple[int, str]], _Pass | None] | None:
        """Under the lock: the probe, else the best pending keyframes of the pass; None = stop."""
        while True:
            if self._stop:
                return None
            if self._probe_item is not None:
                plan, k, key = self._probe_item
                self._probe_item = None
                self._probe_taken.set()
                if plan.generation == self._newest_gen:
                    return "probe", plan, [(k, key)], None
                continue
            p = self._pass
            if p is not None and not p.finished and p.pending:
                seconds, playing = self._playhead()
                frames = np.fromiter(p.pending, dtype=np.int64, count=len(p.pending))
                cand = np.searchsorted(p.plan.keyframes, frames)  # positions (every pending frame is a keyframe)
                n = self._batch_size() if p.plan.engine.batched else 1
                best = rank_keyframes(p.plan, cand, seconds, playing, n)
                items = [(int(p.plan.keyframes[i]), p.plan.keys[i]) for i in best]
                return "pass", p.plan, items, p
            self._maybe_idle()
            self._cond.wait()

    def _batch_size(self) -> int:
        return max(1, int(getattr(self.engines.engine, "max_batch", 1) or 1))

    def _worker_loop(self) -> None:
        while True:
            with self._cond:
                got = self._next_items()
                if got is None:
                    return
                kind, plan, items, p = got
                self._in_flight = tuple(key for _, key in items)
            try:
                self._work(kind, plan, items, p)
            except Exception as e:  # noqa: BLE001 - the worker must survive anything
                log.exception("preview worker failed")
                self._emit(PreviewError(f"rendering preview keyframes failed ({type(e).__name__}: {e})"))
                with self._cond:
                    if p is not None:
                        for k, _ in items:
                            p.pending.pop(k, None)
            finally:
                with self._cond:
                    self._in_flight = ()
                    if p is not None:
                        self._maybe_finish_pass()
                    self._maybe_idle()

    def _done(self, plan: PreviewPlan, p: _Pass | None, k: int, key: str, *, probe: bool, from_cache: bool,
              render_ms: float) -> None:
        now = time.monotonic()
        self.frames.rendered(plan, k, key)
        latency = self._record_latency(plan, now)
        with self._cond:
            if p is not None:
                p.pending.pop(k, None)
                if from_cache:
                    p.loaded += 1
                else:
                    p.rendered += 1
        if not from_cache:
            self._last_render_ms = render_ms
        self._emit(KeyframeRendered(k, plan.generation, None if p is None else p.pass_id, probe, from_cache,
                                    render_ms, latency, now))

    def _record_latency(self, plan: PreviewPlan, now: float, *, only_if_cached: bool = False) -> float | None:
        """Edit → frame: the first keyframe of a generation that is ready (once per generation)."""
        if plan.edit_time is None or plan.generation != self._newest_gen:
            return None
        if only_if_cached:
            seconds, playing = self._playhead()
            i = rank_keyframes(plan, np.arange(plan.keyframes.size), seconds, playing, 1)
            if not i.size or not self.cache.in_memory(plan.keys[i[0]]):
                return None
        with self._latency_lock:
            if plan.generation <= self._latency_recorded_gen:
                return None
            self._latency_recorded_gen = plan.generation
            self._last_edit_to_frame_ms = (now - plan.edit_time) * 1000.0
            return self._last_edit_to_frame_ms

    def _work(self, kind: str, plan: PreviewPlan, items: list[tuple[int, str]], p: _Pass | None) -> None:
        token = p.token if p is not None else CancelToken()
        todo = []
        for k, key in items:
            if self.cache.get(key) is not None:  # in memory, or on disk (then loaded into memory)
                self._done(plan, p, k, key, probe=kind == "probe", from_cache=True, render_ms=0.0)
            else:
                todo.append((k, key))
        if not todo:
            return
        # None: it failed to load or start (reported once; retried on the next edit)
        engine = self.engines.ensure(plan)
        if engine is None:
            with self._cond:
                if p is not None:
                    for k, _ in todo:
                        p.pending.pop(k, None)
            return
        t0 = time.perf_counter()
        try:
            if plan.engine.batched:
                frames = render_batch(engine, plan, [k for k, _ in todo], token)
            else:
                frames = [render_sequential(engine, plan, k, token) for k, _ in todo[:1]]
                todo = todo[:1]
        except Cancelled:
            self.engines.restart_next_time()  # an engine-level cancel sticks until the next start()
            return
        except BridgeError as e:
            self._emit(PreviewError(f"keyframe(s) {[k for k, _ in todo]} failed to render: {e}"))
            with self._cond:
                if p is not None:
                    for k, _ in todo:
                        p.pending.pop(k, None)
            self.engines.restart_next_time()
            return
        render_ms = (time.perf_counter() - t0) * 1000.0 / max(1, len(todo))
        for (k, key), frame in zip(todo, frames, strict=True):
            self.cache.put(key, frame, persist=False)
            self._done(plan, p, k, key, probe=kind == "probe", from_cache=False, render_ms=render_ms)
        for _, key in todo:  # disk copies after the frames are reported (off the edit → frame path)
            self.cache.persist(key)

    @property
    def keyframe_process(self) -> bool:
        """Whether feedback-engine keyframes render in a child process (see :class:`KeyframeEngines`)."""
        return self.engines.keyframe_process

    @keyframe_process.setter
    def keyframe_process(self, value: bool) -> None:
        self.engines.keyframe_process = bool(value)  # takes effect at the next keyframe

    # -- frame_at ----------------------------------------------------------------------------
    def frame_at(self, t_seconds: float) -> np.ndarray:
        """The best frame for song time ``t_seconds`` now (RGB uint8 (h, w, 3) at preview size;
        read-only when it comes straight from the cache). Never waits for the model worker."""
        return self.frames.frame_at(self._plan, t_seconds)

    @property
    def last_frame_source(self) -> str:
        """What the last frame_at returned: "exact", "blend", "stale", "fallback" or "blank"."""
        return self.frames.last_frame_source

    # -- status ------------------------------------------------------------------------------
    def status(self) -> PreviewStatus:
        plan = self._plan
        with self._cond:
            p = self._pass
            active = p is not None and not p.finished
            if plan is None:
                total = done = pending = 0
            else:
                total = int(plan.keyframes.size)
                if p is not None and p.plan is plan and not p.finished:
                    pending = len(p.pending)
                else:
                    pending = sum(1 for key in plan.keys if not self.cache.in_memory(key))
                done = total - pending
            return PreviewStatus(
                generation=0 if plan is None else plan.generation, keyframes_total=total, keyframes_done=done,
                keyframes_pending=pending, pass_active=active, last_edit_to_frame_ms=self._last_edit_to_frame_ms,
                last_render_ms=self._last_render_ms, frame_sources=self.frames.sources(),
            )
