"""Live-preview latency: edit → updated frame at the playhead, frame_at under load, scrub hit rate.

Runs the real Session on the demo song (35 s, 124 BPM; analysis cached first) and reports, in one
run:

  - edit_to_frame_ms_procedural: a mapping edit → the keyframe at the playhead re-rendered and in
    the cache (procedural engine, 384×216 preview, 4 warm-up frames), median of --edits edits —
    goal ≤ 50 ms; keyframes in the child process (the default) and, in the same run, on the worker
    thread (…_keyframes_in_thread). Also evaluate_ms (the coordinator's FrameParams re-evaluation).
  - lcm_overhead_pct: the same with the tiny random LCM of tests/lcm_tiny.py (a keyframe per bar,
    TAESD decode, CPU): (edit→frame − model time) / model time — goal ≤ 5 %. Model time is the
    baseline taken in the same run: the same keyframe rendered by a separate engine with the same
    settings, called directly with nothing else running, after the same idle gap as each edit.
    At a 128×72 preview (the tiny model then renders in tens of ms, as a real one does on a GPU,
    so the fixed cost per edit weighs as it would there) and at the app's default 384×216
    (…_default_preview). Also the overhead in ms.
  - frame_at_p99_ms: frame_at at 60 calls/s, playing through the song, while the model worker
    re-renders every keyframe — goal ≤ 5 ms. --rounds rounds of 2 s each, alternating: the worker
    idle (…_worker_idle: the floor the machine allows now), keyframes on the worker thread sharing
    the GIL with frame_at (…_keyframes_in_thread), keyframes in the child process (the default,
    bridge/preview/offload.py); each with frame_at_cpu_p99_ms (the calling thread's CPU time, free
    of preemption by other processes) and the machine's load average beside them.
  - scrub_hit_rate: share of frame_at calls served from cached keyframes (exact or blended) when
    scrubbing back over bars already rendered.
  - caches: for each cache the preview keeps (and those it dropped, kept = no), the work a hit
    spares (timed without the cache), its hit rate on this workload and the ms saved per edit or
    per frame_at call; a cache that saves < 0.05 ms per edit or < 0.01 ms per frame_at call does
    not pay for its code. Dropped after this table (2026-12, demo song, shared 2-core machine):
    the keyframes memo (0.04 ms), the key-head lru_cache (0.004 ms), reusing the previous plan's
    keys (hit on 0.7 % of keyframes: 0.004 ms), the evaluator's per-mapping-object parts (0.03 ms,
    measured A/B before it went: the content memo does the same), the keyframe → position dict
    (0.007 ms; np.searchsorted) and the blank frame (0.003 ms). Kept: the evaluator's content memo
    (3–9 ms), stem/grid tokens (0.3–3 ms), per-column table (0.1–0.4 ms), frame grid + section
    timeline (0.07–0.14 ms), the looks and song-engine memos (0.4 + 0.3 ms with the shader engine;
    nothing with the procedural one), the engine code version (0.04 ms; kept because the code
    running is the one imported, whatever the file says now), frame_at's motion cache (0.06 ms a
    call) and last composed frame (0.1 ms a call).

Usage: python benchmarks/preview_latency.py [--edits 10] [--rounds 2] [--lcm-edits 30] [--no-lcm]
       [--keyframe-nice N] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from bridge.analysis.project import analyze_project  # noqa: E402
from bridge.demo.song import generate_demo_song, write_demo_stems  # noqa: E402
from bridge.preview.plan import DEFAULT_PREVIEW_LONG_SIDE  # noqa: E402
from bridge.project import load_project, save_project  # noqa: E402
from bridge.project.create import new_project  # noqa: E402
from bridge.session import KeyframeRendered, ParamsUpdated, Session  # noqa: E402


def _wait_event(session: Session, predicate, timeout_s: float = 60.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for e in session.poll_events():
            if predicate(e):
                return e
        time.sleep(0.0005)
    raise TimeoutError("no such event")


def edit_latency(session: Session, *, edits: int, playhead_s: float,
                 between: Callable[[], None] | None = None) -> dict[str, float]:
    """Median edit → frame (ms) over ``edits`` distinct edits of a mapping every frame depends on;
    ``between`` runs after each edit's idle gap (the model baseline, so that both are sampled
    under the same machine conditions, alternately).

    The keyframe at the playhead is rendered at once after an edit (the scheduler's probe); the
    pass over the other keyframes waits for the debounce, which is lengthened here so that the
    worker is idle when each edit comes (no pass in flight) and the run stays short.
    """
    session.seek(playhead_s)
    assert session.wait_idle(600)
    debounce = session.scheduler.debounce_s
    # (longer than any model call: a pass keyframe in flight when an edit comes would delay its probe)
    session.scheduler.debounce_s = 3600.0
    # The bar oscillator → rotation mapping: changing it changes every frame's row, so the keyframe at
    # the playhead is always among the changed ones. The edits cycle through offset and amount
    # (slider drags: the shaped signal is reused) and release_ms (the signal is computed again),
    # each to a value never seen before (a seen one would be a cache hit, not a render).
    index = next(i for i, m in enumerate(session.project.mappings)
                 if m.source.split(".")[0] in ("beat", "bar") and m.target in ("zoom", "rotation"))
    frame_ms, model_ms, params = [], [], []
    plan = session.scheduler.plan
    playhead_keyframe = int(plan.keyframes[np.argmin(np.abs(plan.keyframes - playhead_s * float(plan.fps)))])
    for k in range(edits):
        session.poll_events()
        t0 = time.monotonic()
        n = next(_EDIT_NUMBER)  # across calls too: the Session saves its edits when it closes
        change = ({"offset": 0.00137 * n}, {"amount": 0.006 + 0.0001 * n},
                  {"attack_ms": 5.0 + 7.0 * n, "release_ms": 60.0 + 40.0 * n})[k % 3]
        session.update_mapping(index, **change)
        gen = None
        done = None
        deadline = time.monotonic() + 60
        while done is None and time.monotonic() < deadline:
            time.sleep(POLL_S)
            for e in session.poll_events():
                if isinstance(e, ParamsUpdated) and gen is None:
                    gen = e.generation
                    params.append(e)
                    if playhead_keyframe not in e.changed_keyframes:
                        raise RuntimeError(f"the edit {change} left the keyframe at the playhead as it was")
                if isinstance(e, KeyframeRendered) and e.edit_to_frame_ms is not None and e.generation == gen:
                    done = e
        if done is None:
            raise TimeoutError("the edit never reached the playhead")
        frame_ms.append((done.done_at - t0) * 1000)  # stamped by the worker: no polling delay
        model_ms.append(done.render_ms)
        time.sleep(IDLE_S)
        if between is not None:
            between()
    session.scheduler.debounce_s = debounce
    session.update_mapping(index, offset=0.004)  # restart the pass with the normal debounce
    assert session.wait_idle(600)
    return {"edit_to_frame_ms": float(np.median(frame_ms)), "samples_ms": frame_ms,
            "outside_render_ms": float(np.median(np.array(frame_ms) - np.array(model_ms))),
            "evaluate_ms": float(np.median([e.evaluate_ms for e in params])),
            "render_ms": float(np.median(model_ms))}


def model_baseline(session: Session, *, playhead_s: float) -> tuple[Callable[[], None], list[float], Callable[[], None]]:
    """(run_once, times_ms, close): the model alone on the keyframe at the playhead — the same
    engine and settings, built apart from the Session and called directly; each run waits the
    same idle gap as an edit first (so both start equally cold)."""
    from bridge.preview.render import default_engine_factory
    from bridge.visuals.lcm import FrameJob

    plan = session.scheduler.plan
    engine = default_engine_factory(plan.engine.name, dict(plan.engine.settings))
    engine.start(plan.render_context())
    k = int(plan.keyframes[np.argmin(np.abs(plan.keyframes - playhead_s * float(plan.fps)))])
    p = plan.params
    job = FrameJob(frame_index=k, params=p.row(k), section_index=int(p.section_index[k]),
                   section_mix=float(p.section_mix[k]), init_rgb=None)
    engine.render_batch([job])  # warm-up
    times: list[float] = []

    def run_once() -> None:
        time.sleep(IDLE_S)
        t0 = time.perf_counter()
        engine.render_batch([job])
        times.append((time.perf_counter() - t0) * 1000)

    return run_once, times, engine.close


_EDIT_NUMBER = itertools.count(1)

#: The benchmark drains events as the app does (gui.session_adapter ticks at 40 Hz); a faster
#: poll would take the GIL from the coordinator and the worker thousands of times a second.
POLL_S = 1 / 40
#: Quiet time between two measured edits (and before each baseline model call).
IDLE_S = 0.1


def frame_at_timings(session: Session, *, seconds: float, start_s: float, busy: bool) -> dict[str, float]:
    """frame_at latencies (ms) at 60 calls/s for ``seconds``; with ``busy`` every keyframe is
    invalidated first (a new seed) so the worker renders the whole time."""
    def invalidate() -> None:
        session.set_engine(seed=(session.project.engine.seed + 1) % 1000)

    if busy:
        invalidate()
        _wait_event(session, lambda e: isinstance(e, KeyframeRendered) and not e.from_cache)
    times, cpu_times, busy_samples = [], [], 0
    t_end = time.monotonic() + seconds
    k = 0
    while time.monotonic() < t_end:
        t = start_s + k / 60.0
        a, c = time.perf_counter(), time.thread_time()
        session.frame_at(t)
        times.append((time.perf_counter() - a) * 1000)
        cpu_times.append((time.thread_time() - c) * 1000)
        st = session.scheduler.status()
        busy_samples += st.pass_active
        if busy and not st.pass_active and st.keyframes_pending == 0:
            invalidate()  # keep the worker rendering for the whole measurement
        k += 1
        time.sleep(max(0.0, 1 / 60 - (time.perf_counter() - a)))
    return {"times": times, "cpu_times": cpu_times, "busy_samples": busy_samples}


def _pool(runs: list[dict[str, object]]) -> dict[str, float]:
    """Percentiles over the calls of several frame_at_timings runs."""
    times = np.concatenate([r["times"] for r in runs])
    cpu = np.concatenate([r["cpu_times"] for r in runs])
    busy = sum(r["busy_samples"] for r in runs)
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99)),
            "max_ms": float(np.max(times)), "cpu_p99_ms": float(np.percentile(cpu, 99)),
            "calls": int(times.size), "worker_busy_share": busy / max(1, times.size)}


def scrub_hit_rate(session: Session, *, from_s: float, to_s: float) -> float:
    assert session.wait_idle(600)
    before = dict(session.scheduler.status().frame_sources)
    fps = float(session.project.render.fps_fraction)
    for j in range(int(from_s * fps), int(to_s * fps), -1):
        session.frame_at(j / fps)
    after = session.scheduler.status().frame_sources
    d = {k: after[k] - before.get(k, 0) for k in after}
    total = sum(d.values())
    return (d["exact"] + d["blend"]) / total if total else 0.0


def _median_ms(fn: Callable[[], object], repeats: int = 15) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times))


def cache_report(session: Session) -> list[dict[str, object]]:
    """What each of the preview's caches saves, measured on the live plan: for each, the work it
    spares when it hits (timed here by doing that work without it), how often it hits on the
    benchmark's workload, and so the ms saved per edit (coordinator: evaluate + plan + keys) or per
    frame_at call. A cache that saves < 0.05 ms per edit (0.3 % of an edit → frame) or < 0.01 ms per
    frame_at call does not pay for its code.

    The evaluator's caches are measured by ablation: the same sequence of edits evaluated with one
    cache emptied before every call, against all of them kept.
    """
    import weakref

    from bridge.export.render import section_looks
    from bridge.mapping.sections import keyframe_frames
    from bridge.preview import compose
    from bridge.preview import plan as plan_mod
    from bridge.preview.evaluator import ParamEvaluator, _hash_arrays
    from bridge.visuals.character import effective_engine

    sched = session.scheduler
    plan = sched.plan
    project, analysis = session.project, session.analysis
    roles = {s.name: s.role for s in project.stems}
    fps = project.render.fps_fraction
    rows: list[dict[str, object]] = []

    def row(name: str, where: str, miss_ms: float, hits_per_use: float, note: str, *, kept: bool = True) -> None:
        rows.append({"cache": name, "where": where, "miss_ms": round(miss_ms, 4), "kept": kept,
                     "hit_rate": round(hits_per_use, 3), "saved_ms": round(miss_ms * hits_per_use, 4), "note": note})

    # -- ParamEvaluator, by ablation over the benchmark's kind of edits (a slider drag on an
    #    oscillator mapping and on a stem mapping: offset, amount, release) ----------------------------
    osc = next(i for i, m in enumerate(project.mappings) if m.source.split(".")[0] in ("beat", "bar"))
    stem = next(i for i, m in enumerate(project.mappings) if m.source.split(".")[0] not in ("beat", "bar", "mix"))
    edits = []
    mappings = list(project.mappings)
    for n in range(12):
        i = (osc, stem)[n % 2]
        change = ({"offset": 0.00113 * n}, {"amount": 0.2 + 0.003 * n}, {"release_ms": 80.0 + 11.0 * n})[n // 2 % 3]
        mappings = list(mappings)
        mappings[i] = mappings[i].model_copy(update=change)
        edits.append(mappings)

    def evaluate_edits(clear: Callable[[ParamEvaluator], None] | None) -> float:
        e = ParamEvaluator()
        e.evaluate(project.mappings, analysis, plan.looks, fps=fps, stem_roles=roles)
        times = []
        for ms in edits:
            if clear is not None:
                clear(e)
            t0 = time.perf_counter()
            e.evaluate(ms, analysis, plan.looks, fps=fps, stem_roles=roles)
            times.append((time.perf_counter() - t0) * 1000)
        return float(np.median(times))

    def no_tokens(e: ParamEvaluator) -> None:
        e._stem_tokens, e._grid_tokens = weakref.WeakKeyDictionary(), weakref.WeakKeyDictionary()

    def no_memo(e: ParamEvaluator) -> None:
        e._memo.clear()

    def no_last_table(e: ParamEvaluator) -> None:
        e._last_table = None

    def no_edges(e: ParamEvaluator) -> None:
        e._edges_key = None  # also drops the section timeline (it is per frame grid)

    def none(e: ParamEvaluator) -> None:
        e.__init__()

    base = min(evaluate_edits(None) for _ in range(3))
    for name, clear, note in (
            ("evaluator.stem/grid tokens", no_tokens, "content hash of the stems' curves / beat grid a mapping reads"),
            ("evaluator.memo (contribution, signal)", no_memo, "unchanged mappings, undo, slider drags"),
            ("evaluator.last_table (per column)", no_last_table, "only the edited column summed again"),
            ("evaluator.edges + section timeline", no_edges, "frame times and section index/mix per frame"),
            ("evaluator: all of the above", none, "= evaluate_mappings from scratch")):
        without = min(evaluate_edits(clear) for _ in range(2))
        row(name, "edit", without - base, 1.0, note)

    # -- the coordinator's memos and the key helpers (hit on every mapping edit) ---------------------
    # the shader engine (a new project's default) resolves looks from the music: the costlier case
    for engine_name in ("procedural", "shader"):
        row(f"scheduler.looks memo ({engine_name})", "edit", _median_ms(
            lambda n=engine_name: section_looks(project, analysis, engine_name=n), 5), 1.0,
            "section_looks(project, analysis)", kept=engine_name == "shader")
        row(f"scheduler.song engine memo ({engine_name})", "edit", _median_ms(
            lambda n=engine_name: effective_engine(project.engine, analysis, n), 5), 1.0,
            "visuals.character.effective_engine", kept=engine_name == "shader")
    grid = analysis.beat_grid
    starts = tuple(s.start_s for s in plan.looks)
    row("scheduler.keyframes memo", "edit", _median_ms(lambda: keyframe_frames(
        grid, fps=fps, n_frames=plan.n_frames, every_beats=project.engine.keyframe_every_beats,
        section_starts_s=starts)), 1.0, "mapping.sections.keyframe_frames", kept=False)

    def code_version() -> str:
        plan_mod._CODE_VERSIONS.pop(plan.engine.name, None)
        return plan_mod.engine_code_version(plan.engine.name)

    row("plan.engine code version", "edit", _median_ms(code_version), 1.0,
        "find_spec + read + hash the engine's file; kept: the code running is the one imported, not the file now")
    row("plan.key head (lru_cache)", "edit", _median_ms(lambda: plan_mod._key_head(
        plan.engine, plan.width, plan.height, plan.fps, plan.seed)), 1.0, "hash of the key's shared head fields",
        kept=False)
    # compute_keys' reuse of the previous plan's keys: the share of keyframes whose rows an edit kept
    # (stem mappings change only where their stem plays), times the cost of hashing a keyframe.
    full = _median_ms(lambda: plan_mod.compute_keys(
        plan.params, plan.looks, plan.keyframes, engine=plan.engine, width=plan.width, height=plan.height,
        seed=plan.seed, warmup_frames=plan.warmup_frames), 5)
    e = ParamEvaluator()
    reused = []
    prev_params, _ = e.evaluate(project.mappings, analysis, plan.looks, fps=fps, stem_roles=roles)
    prev = dataclasses.replace(plan, params=prev_params)
    for ms in edits:
        params, _ = e.evaluate(ms, analysis, plan.looks, fps=fps, stem_roles=roles)
        keys = plan_mod.compute_keys(params, plan.looks, plan.keyframes, engine=plan.engine, width=plan.width,
                                     height=plan.height, seed=plan.seed, warmup_frames=plan.warmup_frames)
        reused.append(np.mean([a == b for a, b in zip(keys, prev.keys, strict=True)]) if prev.keys else 0.0)
        prev = dataclasses.replace(plan, params=params, keys=keys)
    row("plan.keys reused from the previous plan", "edit", full, float(np.mean(reused[1:])),
        "keyframes whose rows (and warm-up rows) an edit left as they were", kept=False)

    # -- frame_at's ---------------------------------------------------------------------------------
    fresh = dataclasses.replace(plan, motion_cache={})
    i = max(0, plan.keyframes.size // 2 - 1)
    interval = int(plan.keyframes[i + 1] - plan.keyframes[i])

    def motion() -> None:
        fresh.motion_cache.clear()
        compose.segment_motion(fresh, i)

    # without it each in-between frame builds its interval's prefix again: hits = all but the first
    row("plan.motion cache (per interval)", "frame_at", _median_ms(motion), 1.0 - 1.0 / max(1, interval),
        f"feedback motion of a {interval}-frame interval")
    src = sched.frames
    total = src.recomposed_hits + src.composed
    img = np.zeros((plan.height, plan.width, 3), dtype=np.uint8)
    j = int(plan.keyframes[i]) + interval // 2
    row("frames.last composed frame", "frame_at",
        _median_ms(lambda: compose.compose_frame(plan, j, [(int(plan.keyframes[i]), img),
                                                            (int(plan.keyframes[i + 1]), img)])),
        src.recomposed_hits / total if total else 0.0, "a 60 Hz display asks twice per 30 fps frame")
    row("plan.key_index (cached_property)", "frame_at",
        _median_ms(lambda: {int(k): n for n, k in enumerate(plan.keyframes.tolist())}), 1.0,
        "keyframe → position (now np.searchsorted: no state)", kept=False)
    row("frames.blank frame", "frame_at", _median_ms(lambda: np.zeros((plan.height, plan.width, 3), np.uint8)),
        0.0, "only before the first plan", kept=False)
    stems = [analysis.stems[k] for k in sorted(analysis.stems)] if isinstance(analysis.stems, dict) else []
    if stems:
        f = stems[0]
        names = sorted(f.curves)
        rows[0]["note"] += f" (one stem: {_median_ms(lambda: _hash_arrays(*(f.curves[n] for n in names))):.3f} ms)"
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--edits", type=int, default=10)
    ap.add_argument("--no-lcm", action="store_true", help="skip the tiny-LCM measurement")
    ap.add_argument("--lcm-edits", type=int, default=30, help="edits (and baseline runs) at 128 px; a fifth at 384")
    ap.add_argument("--torch-threads", type=int, default=1, help="torch intra-op threads for the tiny LCM")
    ap.add_argument("--rounds", type=int, default=6, help="frame_at rounds (2 s each: idle, in-thread, process)")
    ap.add_argument("--keyframe-nice", type=int, default=None,
                    help="niceness of the keyframe process (default: bridge.preview.offload.KEYFRAME_NICE)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out: dict[str, object] = {}
    from bridge.preview import offload

    if args.keyframe_nice is not None:
        offload.KEYFRAME_NICE = args.keyframe_nice
    out["keyframe_nice"] = offload.KEYFRAME_NICE
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_demo_stems(generate_demo_song(), root / "stems")
        new_project(root / "p", root / "stems")
        project, project_dir = load_project(root / "p")
        # The procedural engine (a new project gets the shader engine where OpenGL works): the
        # feedback engine whose keyframes compete with frame_at for the GIL.
        project = project.model_copy(update={"engine": project.engine.model_copy(update={"name": "procedural"})})
        save_project(project, project_dir)
        analyze_project(project, project_dir)  # warm the analysis cache: only the preview is timed

        with Session.open(project_dir, watch=False, autosave=False) as s:
            assert s.wait_idle(600)
            s.scheduler.keyframe_process = False
            r_thread = edit_latency(s, edits=max(3, args.edits // 2), playhead_s=12.0)
            s.scheduler.keyframe_process = True
            r = edit_latency(s, edits=args.edits, playhead_s=12.0)
            out["edit_to_frame_ms_procedural"] = round(r["edit_to_frame_ms"], 2)
            out["edit_to_frame_ms_procedural_keyframes_in_thread"] = round(r_thread["edit_to_frame_ms"], 2)
            out["evaluate_ms"] = round(r["evaluate_ms"], 2)
            out["procedural_keyframe_ms"] = round(r["render_ms"], 2)
            # The keyframes rendered in a child process (the default) and, as the baseline in the
            # same run, on the worker thread (sharing the GIL with frame_at); alternating rounds, so
            # both see the same machine load; the worker idle as the floor the machine allows.
            runs: dict[str, list[dict[str, object]]] = {"idle": [], "process": [], "thread": []}
            for _ in range(args.rounds):
                runs["idle"].append(frame_at_timings(s, seconds=2.0, start_s=4.0, busy=False))
                for mode in ("thread", "process"):
                    s.scheduler.keyframe_process = mode == "process"
                    runs[mode].append(frame_at_timings(s, seconds=2.0, start_s=4.0, busy=True))
            s.scheduler.keyframe_process = True
            pooled = {mode: _pool(r) for mode, r in runs.items()}
            busy, idle = pooled["process"], pooled["idle"]
            out["frame_at_p99_ms"] = round(busy["p99_ms"], 3)
            out["frame_at_p50_ms"] = round(busy["p50_ms"], 3)
            out["frame_at_max_ms"] = round(busy["max_ms"], 3)
            # CPU time of the calling thread: what frame_at costs, without the time the OS gave
            # the core to other processes (wall p99 on a loaded 2-core machine is mostly that).
            out["frame_at_cpu_p99_ms"] = round(busy["cpu_p99_ms"], 3)
            out["frame_at_worker_busy_share"] = round(busy["worker_busy_share"], 3)
            out["frame_at_p99_ms_keyframes_in_thread"] = round(pooled["thread"]["p99_ms"], 3)
            out["frame_at_cpu_p99_ms_keyframes_in_thread"] = round(pooled["thread"]["cpu_p99_ms"], 3)
            out["frame_at_p99_ms_worker_idle"] = round(idle["p99_ms"], 3)
            out["frame_at_cpu_p99_ms_worker_idle"] = round(idle["cpu_p99_ms"], 3)
            out["machine_load_1min"] = round(os.getloadavg()[0], 2)
            out["scrub_hit_rate"] = round(scrub_hit_rate(s, from_s=20.0, to_s=4.0), 4)
            out["caches"] = cache_report(s)
            out["keyframes"] = int(s.scheduler.plan.keyframes.size)
            out["preview_size"] = [s.scheduler.plan.width, s.scheduler.plan.height]

        if args.no_lcm:
            out["lcm_overhead_pct"] = None
            out["lcm_note"] = "skipped (--no-lcm)"
        else:
            try:
                import torch

                # One intra-op thread: on a small, busy CPU torch's pool spins (100× slower frames).
                torch.set_num_threads(args.torch_threads)
                from lcm_tiny import build_tiny_lcm

                model = build_tiny_lcm(root / "tiny-lcm")
            except ImportError as e:
                out["lcm_overhead_pct"] = None
                out["lcm_note"] = f"not measured: {e}"
            else:
                project, _ = load_project(project_dir)
                # A keyframe per bar: the first full pass stays short with a CPU model.
                save_project(project.model_copy(update={"engine": project.engine.model_copy(
                    update={"name": "lcm", "model": str(model), "keyframe_every_beats": 4.0})}), project_dir)
                # 128 px: the tiny model renders in tens of ms, as a real one does on a GPU, so the
                # scheduler's fixed cost per edit weighs as much as it would there (the goal's
                # figure). 384 px: the app's default preview size, where the same tiny model takes
                # most of a second on this CPU.
                for long_side, suffix in ((128, ""), (DEFAULT_PREVIEW_LONG_SIDE, "_default_preview")):
                    shutil.rmtree(project_dir / ".stembridge" / "cache" / "preview", ignore_errors=True)
                    with Session.open(project_dir, watch=False, autosave=False, preview_long_side=long_side,
                                      lcm_options={"device": "cpu", "tiny_vae": str(model) + "-taesd"}) as s:
                        assert s.wait_idle(600)
                        s.seek(12.0)
                        assert s.wait_idle(600)
                        run_once, baseline, close = model_baseline(s, playhead_s=12.0)
                        edits = args.lcm_edits if not suffix else max(3, args.lcm_edits // 5)
                        r = edit_latency(s, edits=edits, playhead_s=12.0, between=run_once)
                        close()
                        model_ms = float(np.median(baseline))
                        # Paired: each edit against the baseline run right after it (the machine's
                        # speed drifts by more than the overhead over a run).
                        overhead = float(np.median(np.array(r["samples_ms"]) - np.array(baseline)))
                        if os.environ.get("STEMBRIDGE_BENCH_SAMPLES"):
                            print("edits", np.round(r["samples_ms"], 2), "\nmodel", np.round(baseline, 2), file=sys.stderr)
                        out[f"edit_to_frame_ms_lcm{suffix}"] = round(r["edit_to_frame_ms"], 2)
                        out[f"lcm_model_ms{suffix}"] = round(model_ms, 2)
                        out[f"lcm_overhead_ms{suffix}"] = round(overhead, 2)
                        out[f"lcm_overhead_pct{suffix}"] = round(100.0 * overhead / model_ms, 1)
                        # The same split per edit, exactly: edit → frame minus the worker's own time
                        # inside render_batch (what the Session and scheduler add around the model
                        # call), and the worker's render time against the model alone (what the
                        # threads beside it cost the model through the GIL; as noisy as model_ms).
                        out[f"lcm_outside_render_ms{suffix}"] = round(r["outside_render_ms"], 2)
                        out[f"lcm_worker_render_ms{suffix}"] = round(r["render_ms"], 2)
                        out[f"lcm_preview_size{suffix}"] = [s.scheduler.plan.width, s.scheduler.plan.height]
                        if not suffix:
                            busy = _pool([frame_at_timings(s, seconds=3.0, start_s=4.0, busy=True)])
                            out["frame_at_p99_ms_lcm_busy"] = round(busy["p99_ms"], 3)
                out["lcm_note"] = ("tiny random LCM (tests/lcm_tiny.py), CPU, TAESD decode; model time = the "
                                   "same keyframe rendered by a separate engine alone, median")
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            if k == "caches":
                continue
            print(f"{k:32s} {v}")
        print(f"\n{'cache':42s} {'where':8s} {'miss ms':>8s} {'hit rate':>8s} {'saved ms':>8s} {'kept':5s} what a hit spares")
        for r in out["caches"]:
            print(f"{r['cache']:42s} {r['where']:8s} {r['miss_ms']:8.3f} {r['hit_rate']:8.3f} {r['saved_ms']:8.3f} "
                  f"{'yes' if r['kept'] else 'no':5s} {r['note']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
