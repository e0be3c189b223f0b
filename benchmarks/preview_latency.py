"""Live-preview latency: edit → updated frame at the playhead, frame_at under load, scrub hit rate.

Runs the real Session on the demo song (35 s, 124 BPM; analysis cached first) and reports, in one
run:

  - edit_to_frame_ms_procedural: a mapping edit → the keyframe at the playhead re-rendered and in
    the cache (procedural engine, 384×216 preview, 4 warm-up frames), median of --edits edits —
    goal ≤ 50 ms. Also evaluate_ms (the coordinator's FrameParams re-evaluation after the edit).
  - lcm_overhead_pct: the same with the tiny random LCM of tests/lcm_tiny.py (a keyframe per bar,
    TAESD decode, CPU): (edit→frame − model time) / model time — goal ≤ 5 %. Model time is the
    baseline taken in the same run: the same keyframe rendered by a separate engine with the same
    settings, called directly with nothing else running, after the same idle gap as each edit.
    At a 128×72 preview (the tiny model then renders in tens of ms, as a real one does on a GPU,
    so the fixed cost per edit weighs as it would there) and at the app's default 384×216
    (…_default_preview). Also the overhead in ms.
  - frame_at_p99_ms: frame_at at 60 calls/s for 6 s (360 calls), playing through the song, while the model worker
    re-renders every keyframe (procedural: the worker competes for the GIL and the cores) — goal
    ≤ 5 ms; with the worker idle as the baseline in the same run, and frame_at_cpu_p99_ms (the
    calling thread's CPU time, free of preemption by other processes).
  - scrub_hit_rate: share of frame_at calls served from cached keyframes (exact or blended) when
    scrubbing back over bars already rendered.

Usage: python benchmarks/preview_latency.py [--edits 10] [--lcm-edits 9] [--no-lcm] [--json]
"""

from __future__ import annotations

import argparse
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
from bridge.preview.scheduler import DEFAULT_PREVIEW_LONG_SIDE  # noqa: E402
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
    session.scheduler.debounce_s = 5.0
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
    from bridge.preview.scheduler import default_engine_factory
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
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99)),
            "max_ms": float(np.max(times)), "cpu_p99_ms": float(np.percentile(cpu_times, 99)),
            "calls": len(times), "worker_busy_share": busy_samples / max(1, len(times))}


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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--edits", type=int, default=10)
    ap.add_argument("--no-lcm", action="store_true", help="skip the tiny-LCM measurement")
    ap.add_argument("--lcm-edits", type=int, default=30, help="edits (and baseline runs) at 128 px; a fifth at 384")
    ap.add_argument("--torch-threads", type=int, default=1, help="torch intra-op threads for the tiny LCM")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out: dict[str, object] = {}
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
            r = edit_latency(s, edits=args.edits, playhead_s=12.0)
            out["edit_to_frame_ms_procedural"] = round(r["edit_to_frame_ms"], 2)
            out["evaluate_ms"] = round(r["evaluate_ms"], 2)
            out["procedural_keyframe_ms"] = round(r["render_ms"], 2)
            idle = frame_at_timings(s, seconds=6.0, start_s=4.0, busy=False)
            busy = frame_at_timings(s, seconds=6.0, start_s=4.0, busy=True)
            out["frame_at_p99_ms"] = round(busy["p99_ms"], 3)
            out["frame_at_p50_ms"] = round(busy["p50_ms"], 3)
            out["frame_at_max_ms"] = round(busy["max_ms"], 3)
            # CPU time of the calling thread: what frame_at costs, without the time the OS gave
            # the core to other processes (wall p99 on a loaded 2-core machine is mostly that).
            out["frame_at_cpu_p99_ms"] = round(busy["cpu_p99_ms"], 3)
            out["frame_at_worker_busy_share"] = round(busy["worker_busy_share"], 3)
            out["frame_at_p99_ms_worker_idle"] = round(idle["p99_ms"], 3)
            out["scrub_hit_rate"] = round(scrub_hit_rate(s, from_s=20.0, to_s=4.0), 4)
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
                            busy = frame_at_timings(s, seconds=3.0, start_s=4.0, busy=True)
                            out["frame_at_p99_ms_lcm_busy"] = round(busy["p99_ms"], 3)
                out["lcm_note"] = ("tiny random LCM (tests/lcm_tiny.py), CPU, TAESD decode; model time = the "
                                   "same keyframe rendered by a separate engine alone, median")
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:32s} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
