"""Segment-parallel export on Ray: the speed-up per worker against a one-thread local render, in one run.

On the demo song (analysis cached first, so only rendering is timed), for one engine and size, each
render held to an explicit number of CPU threads (:func:`bridge.export.threads.limit_cpu_threads`:
OpenCV, llvmpipe, x264 and BLAS pools; rendering and encoding one after the other at one thread):
  - local_1thread_s: the local render in one segment and one thread, in a fresh process: the
    baseline, what one worker's CPU does without any splitting;
  - local_1thread_nseg_s: the same in N segments, pre-roll included (local renders run their
    segments back to back with one engine, so no pre-roll is rendered: this shows the cost of the
    work folder and the join alone);
  - local_all_s: the local render as `stembridge render` runs it: N segments, every core, render and
    encode overlapping; speedup_local_all = local_1thread_s / local_all_s;
  - join_s: the lossless join alone (packet copy + AAC encode);
  - ray_Kw_s: the N segments on a fresh local Ray cluster of K workers × C CPUs (C threads per
    task; ray.init and starting the workers reported apart as ray_start_Kw_s: a real cluster starts
    once), speedup_Kw = local_1thread_s / ray_Kw_s, per_worker_Kw = speedup_Kw / K (1.0 = perfect);
  - split_join_overhead = ray_1w_s / local_1thread_s − 1: what the cluster path adds at equal
    compute (pre-roll per segment, object store, task scheduling, the join);
  - ray_Kw_redone: segments whose pre-roll did not reach the straight render's feedback state
    exactly, rendered again from the previous segment's end state (bridge.export.cluster), of
    ray_Kw_cuts; ray_Kw_relayed: segments that started from the exact state the relay task brought
    (their feedback outlives a pre-roll: bridge.export.segments.needs_relay) instead of pre-rolling;
  - resume_share: a local render cancelled at 60 % and run again, the second run as a share of
    local_all_s;
  - *_cores: CPU seconds / wall seconds of each render (the workers' processes for Ray): the cores it
    actually got. On a machine busy with other work these fall short of the threads allowed, and
    the speed-up with them;
  - every video's decoded frames are hashed and must equal the baseline's (CRF 0: lossless); for
    the lcm engine, within LCM_SEGMENT_BOUND per frame (see bridge.export.segments).

Usage: python benchmarks/cluster_render.py [--seconds 20] [--size 640x360] [--workers 1 2]
       [--cpus-per-worker 1] [--segments 8] [--engine procedural] [--repeat 1] [--json]
--repeat R runs the local and Ray renders R times, interleaved, and keeps each one's fastest.
The K workers are K × C logical CPUs of this machine: a speed-up needs that many idle cores (check
`uptime` first; other processes' load shows up as a lower per-worker figure).
On a multi-GPU box or a cloud cluster: --address HOST:PORT measures that cluster instead of local
ones (--workers is then ignored; see the README's "Rendering on a Ray cluster").
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import av  # noqa: E402

from bridge.analysis.project import analyze_project  # noqa: E402
from bridge.demo.song import generate_demo_song, write_demo_stems  # noqa: E402
from bridge.errors import Cancelled  # noqa: E402
from bridge.export.join import join_parts  # noqa: E402
from bridge.export.render import prepare_render  # noqa: E402
from bridge.export.segments import render_segmented, work_folder  # noqa: E402
from bridge.jobs import CancelToken  # noqa: E402
from bridge.project import load_project  # noqa: E402
from bridge.project.create import new_project  # noqa: E402
from bridge.project.schema import RenderSettings  # noqa: E402


def frame_hashes(path: Path) -> list[str]:
    with av.open(str(path)) as c:
        return [hashlib.sha1(f.to_ndarray(format="yuv420p").tobytes()).hexdigest() for f in c.decode(c.streams.video[0])]


def check_same(path: Path, base: Path, reference: list[str], what: str, *, engine: str) -> None:
    """Decoded frames equal the baseline's; for the diffusion engine (its img2img chain restarts at
    each segment's pre-roll) within LCM_SEGMENT_BOUND per frame, as bridge.export.segments documents."""
    if engine != "lcm":
        got = frame_hashes(path)
        if got != reference:
            raise AssertionError(f"{what} differs from the baseline: {_where_frames_differ(path, base)}")
        return
    import numpy as np

    from bridge.export.segments import LCM_SEGMENT_BOUND

    def frames(p: Path) -> list:
        with av.open(str(p)) as c:
            return [f.to_ndarray(format="rgb24").astype(np.float32) for f in c.decode(c.streams.video[0])]

    got, want = frames(path), frames(base)
    assert len(got) == len(want), f"{what}: {len(got)} frames, the baseline {len(want)}"
    worst = max(float(np.abs(a - b).mean()) for a, b in zip(got, want, strict=True))
    assert worst <= LCM_SEGMENT_BOUND, f"{what} differs from the baseline by {worst:.2f} > {LCM_SEGMENT_BOUND}"


def _where_frames_differ(path: Path, base: Path) -> str:
    """Which frames differ and by how much (what a determinism failure needs to be tracked down)."""
    import numpy as np

    def planes(p: Path) -> list:
        with av.open(str(p)) as c:
            return [f.to_ndarray(format="yuv420p").astype(np.int16) for f in c.decode(c.streams.video[0])]

    got, want = planes(path), planes(base)
    if len(got) != len(want):
        return f"{len(got)} frames, the baseline {len(want)}"
    diffs = [(k, int(np.abs(a - b).max()), float(np.mean(a != b))) for k, (a, b) in enumerate(zip(got, want, strict=True))]
    bad = [d for d in diffs if d[1]]
    head = ", ".join(f"frame {k}: max {m}, {100 * share:.2f}% of samples" for k, m, share in bad[:6])
    return f"{len(bad)} of {len(diffs)} frames differ (first: {head})"


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - t0, result


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
    return usage.ru_utime + usage.ru_stime


def _render_limited(job, out: str, n_segments: int, n_threads: int) -> tuple[float, float]:
    """In a fresh process: size its thread pools (before any GL context or encoder), render; the
    wall time and the CPU time it took."""
    from bridge.export.threads import limit_cpu_threads

    limit_cpu_threads(n_threads)
    t0, c0 = time.perf_counter(), _cpu_s()
    render_segmented(job, out, n_segments=n_segments, resume=False)
    return time.perf_counter() - t0, _cpu_s() - c0


def render_in_fresh_process(job, out: Path, *, n_segments: int, n_threads: int) -> tuple[float, float]:
    """A local render in a spawned process, so its thread limits hold from the start (llvmpipe
    sizes its pool once per process); the process start is not timed. (wall s, CPU s)."""
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(_render_limited, job, str(out), n_segments, n_threads).result()


def processes_cpu_s(pids: set[int]) -> float | None:
    """CPU seconds used so far by these processes (the Ray workers), or None without psutil."""
    try:
        import psutil
    except ImportError:
        return None
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system
    return total


def _warm(seconds: float) -> int:
    import av  # noqa: F401 - what a segment task imports first
    import cv2  # noqa: F401

    import bridge.export.segments  # noqa: F401

    time.sleep(seconds)
    return os.getpid()


def start_workers(ray, n_workers: int, cpus_per_task: int) -> set[int]:
    """Start (and import stembridge in) the workers the segment tasks will use, so the timed render
    does not include process start: one task per slot, held long enough that each takes its own."""
    from bridge.export.cluster import task_options

    warm = ray.remote(_warm).options(**task_options(cpus_per_task))
    pids = set(ray.get([warm.remote(1.0) for _ in range(n_workers)]))
    if len(pids) != n_workers:
        print(f"warning: {n_workers} warm-up tasks ran in {len(pids)} worker processes", file=sys.stderr)
    return pids


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="song seconds rendered (from 0)")
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="local Ray clusters of K workers")
    ap.add_argument("--cpus-per-worker", type=int, default=1, help="CPUs (and threads) per Ray task")
    ap.add_argument("--segments", type=int, default=8)
    ap.add_argument("--engine", default="procedural")
    ap.add_argument("--look", help="shader engine look (default: the song's); ink's long feedback "
                                   "shows what the exact state hand-over costs")
    ap.add_argument("--no-resume", action="store_true", help="skip the cancel-and-resume measurement")
    ap.add_argument("--no-relay", action="store_true", help="no relay: every segment pre-rolls (as long as its "
                                                            "look needs, up to MAX_PREROLL_SECONDS), checked and "
                                                            "redone where it missed; compares the two ways")
    ap.add_argument("--repeat", type=int, default=1, help="run every timed render R times, keep the fastest")
    ap.add_argument("--address", help="measure a running Ray cluster (HOST:PORT) instead of local ones")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    if args.no_relay:  # the driver decides which segments wait for the relay: here, none
        import bridge.export.preroll as preroll

        preroll.needs_relay = lambda job, seg, **_: False
    cpus = args.cpus_per_worker

    with tempfile.TemporaryDirectory(prefix="cluster-bench-") as tmp:
        root = Path(tmp)
        song = generate_demo_song()
        write_demo_stems(song, root / "stems")
        # CRF 0 (lossless): decoded frames must then be equal whatever the segmentation and threads.
        new_project(root / "project", root / "stems", name="bench",
                    render=RenderSettings(width=width, height=height, fps="30", crf=0))
        project, project_dir = load_project(root / "project")
        analysis = analyze_project(project, project_dir)
        job = prepare_render(project, project_dir, analysis=analysis, end_s=args.seconds, engine_name=args.engine,
                             look=args.look)
        n = args.segments
        row: dict[str, object] = {"engine": args.engine, "look": args.look, "relay": not args.no_relay,
                                  "size": args.size, "seconds": args.seconds,
                                  "frames": job.range.n_frames, "segments": n, "cpus_per_worker": cpus,
                                  "machine_cpus": os.cpu_count(), "load_avg_1min": os.getloadavg()[0]}

        base = root / "base.mp4"
        reference: list[str] = []

        def best(key: str, wall_s: float, cpu_s: float | None = None) -> None:
            """Keep the fastest of the repeats (the one least disturbed by other load), with its cores."""
            if key not in row or wall_s < row[key]:
                row[key] = wall_s
                if cpu_s is not None:
                    row[key[:-2] + "_cores"] = cpu_s / wall_s
                    row[key[:-2] + "_cpu_s"] = cpu_s  # the work done: flat in K when nothing is wasted

        def run_local() -> None:
            wall, cpu = render_in_fresh_process(job, base, n_segments=1, n_threads=1)
            best("local_1thread_s", wall, cpu)
            reference[:] = reference or frame_hashes(base)
            check_same(base, base, reference, "a repeated baseline", engine=args.engine)
            wall, cpu = render_in_fresh_process(job, root / "nseg.mp4", n_segments=n, n_threads=1)
            best("local_1thread_nseg_s", wall)
            check_same(root / "nseg.mp4", base, reference, "the N-segment render", engine=args.engine)
            wall, cpu = render_in_fresh_process(job, root / "all.mp4", n_segments=n, n_threads=0)
            best("local_all_s", wall, cpu)
            check_same(root / "all.mp4", base, reference, "the all-cores render", engine=args.engine)

        import ray

        from bridge.export.cluster import render_on_ray

        def run_ray() -> None:
            configs = [("cluster", None)] if args.address else [(f"{k}w", k) for k in args.workers]
            for label, k in configs:
                t0 = time.perf_counter()
                if args.address:
                    ray.init(address=args.address, logging_level="WARNING", log_to_driver=False)
                    k = max(1, int(ray.cluster_resources().get("CPU", 1)) // cpus)
                    row["cluster_workers"] = k
                else:
                    ray.init(num_cpus=k * cpus, include_dashboard=False, logging_level="WARNING",
                             log_to_driver=False)
                pids = start_workers(ray, k, cpus)
                row[f"ray_start_{label}_s"] = time.perf_counter() - t0
                try:
                    out = root / f"ray-{label}.mp4"
                    out.unlink(missing_ok=True)
                    cpu0 = processes_cpu_s(pids)
                    messages: list[str] = []
                    wall, _ = timed(render_on_ray, job, out, n_segments=n, cpus_per_task=cpus,
                                    log_message=messages.append)
                    # segments whose pre-roll missed the exact feedback state, rendered again from it
                    row[f"ray_{label}_redone"] = sum("rendering it again" in m for m in messages)
                    # segments that waited for the relay's exact state instead of pre-rolling
                    row[f"ray_{label}_relayed"] = sum(int(m.split()[0]) for m in messages
                                                      if "a relay task brings" in m)
                    row[f"ray_{label}_cuts"] = n - 1
                    cpu1 = processes_cpu_s(pids)  # the workers' CPU time, not the driver's
                    best(f"ray_{label}_s", wall, None if cpu0 is None or cpu1 is None else cpu1 - cpu0)
                    workers[label] = k
                    check_same(out, base, reference, f"the Ray render ({label})", engine=args.engine)
                finally:
                    ray.shutdown()

        workers: dict[str, int] = {}
        for _ in range(args.repeat):  # interleaved, so every configuration sees the same kind of load
            run_local()
            run_ray()
        row["speedup_local_all"] = row["local_1thread_s"] / row["local_all_s"]
        for label, k in workers.items():
            row[f"speedup_{label}"] = row["local_1thread_s"] / row[f"ray_{label}_s"]
            row[f"per_worker_{label}"] = row[f"speedup_{label}"] / k
        if "ray_1w_s" in row:
            row["split_join_overhead"] = row["ray_1w_s"] / row["local_1thread_s"] - 1.0
        row["load_avg_1min_end"] = os.getloadavg()[0]

        # the join alone: copy the parts of a render at the moment it starts joining, then join them
        kept = root / "kept-parts"

        def keep_parts(done: int, total: int, label: str = "") -> None:
            if label == "joining":
                shutil.copytree(work_folder(root / "parts.mp4"), kept)

        render_segmented(job, root / "parts.mp4", n_segments=n, progress=keep_parts)
        parts = sorted(kept.glob("segment-*.mp4"))
        assert len(parts) == n, f"expected {n} kept segments, found {len(parts)}"
        row["join_s"], _ = timed(join_parts, parts, root / "joined.mp4", fps=job.context.fps,
                                 n_frames=job.range.n_frames, audio=job.audio,
                                 audio_sample_rate=job.settings.sample_rate)

        if not args.no_resume:
            token = CancelToken()
            try:
                render_segmented(job, root / "resume.mp4", n_segments=n, cancel=token,
                                 progress=lambda d, t, label="": token.cancel() if d >= 0.6 * t else None)
            except Cancelled:
                pass
            row["resume_s"], resumed = timed(render_segmented, job, root / "resume.mp4", n_segments=n)
            row["resume_share"] = row["resume_s"] / row["local_all_s"]  # as share of the all-cores render
            check_same(resumed, base, reference, "the resumed render", engine=args.engine)

        row["frames_equal"] = True

    if args.json:
        print(json.dumps(row, indent=1))
    else:
        for k, v in row.items():
            print(f"{k:24} {v:.3f}" if isinstance(v, float) else f"{k:24} {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
