"""Segment-parallel export on Ray beside the local render, and what resuming saves, in one run.

On the demo song (analysis cached first, so only rendering is timed), for one engine and size:
  - local_1seg_s: the local render in one segment (no split, no pre-roll): the baseline;
  - local_s: the local render in N segments (what `stembridge render` does); split_join_overhead
    is its excess over the baseline, join_s the lossless join alone (packet copy + AAC encode);
  - resume_s: a local render cancelled at 60 % and run again — the second run's wall time, as a
    share of local_s (the goal: well under the full render);
  - ray_Kw_s: the same N segments on a fresh local Ray cluster with K worker slots (ray.init time
    reported apart as ray_start_s: a real cluster is started once), speed-up = local_s / ray_Kw_s;
  - every video's decoded frames are hashed and must equal the local render's (CRF 0: lossless).

Usage: python benchmarks/cluster_render.py [--seconds 20] [--size 640x360] [--workers 1 2]
       [--segments 8] [--engine procedural] [--json]
On a multi-GPU box or a cloud cluster: --address HOST:PORT measures that cluster instead of local
ones (--workers is then ignored; see the README's "Rendering on a Ray cluster").
"""

from __future__ import annotations

import argparse
import hashlib
import json
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
from bridge.export.render import prepare_render  # noqa: E402
from bridge.export.segments import join_parts, render_segmented, work_folder  # noqa: E402
from bridge.jobs import CancelToken  # noqa: E402
from bridge.project import load_project  # noqa: E402
from bridge.project.create import new_project  # noqa: E402
from bridge.project.schema import RenderSettings  # noqa: E402


def frame_hashes(path: Path) -> list[str]:
    with av.open(str(path)) as c:
        return [hashlib.sha1(f.to_ndarray(format="yuv420p").tobytes()).hexdigest() for f in c.decode(c.streams.video[0])]


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - t0, result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="song seconds rendered (from 0)")
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--segments", type=int, default=8)
    ap.add_argument("--engine", default="procedural")
    ap.add_argument("--address", help="measure a running Ray cluster (HOST:PORT) instead of local ones")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))

    with tempfile.TemporaryDirectory(prefix="cluster-bench-") as tmp:
        root = Path(tmp)
        song = generate_demo_song()
        write_demo_stems(song, root / "stems")
        # CRF 0 (lossless): decoded frames must then be equal whatever the segmentation.
        new_project(root / "project", root / "stems", name="bench",
                    render=RenderSettings(width=width, height=height, fps="30", crf=0))
        project, project_dir = load_project(root / "project")
        analysis = analyze_project(project, project_dir)
        job = prepare_render(project, project_dir, analysis=analysis, end_s=args.seconds, engine_name=args.engine)
        n = args.segments
        row: dict[str, object] = {"engine": args.engine, "size": args.size, "seconds": args.seconds,
                                  "frames": job.range.n_frames, "segments": n}

        row["local_1seg_s"], base = timed(render_segmented, job, root / "one.mp4", n_segments=1)
        row["local_s"], local = timed(render_segmented, job, root / "local.mp4", n_segments=n)
        reference = frame_hashes(local)
        assert frame_hashes(base) == reference, "1-segment and N-segment renders differ"
        row["split_join_overhead"] = row["local_s"] / row["local_1seg_s"] - 1.0

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

        token = CancelToken()
        try:
            render_segmented(job, root / "resume.mp4", n_segments=n, cancel=token,
                             progress=lambda d, t, label="": token.cancel() if d >= 0.6 * t else None)
        except Cancelled:
            pass
        row["resume_s"], resumed = timed(render_segmented, job, root / "resume.mp4", n_segments=n)
        row["resume_share"] = row["resume_s"] / row["local_s"]
        assert frame_hashes(resumed) == reference, "the resumed render differs"

        import ray

        from bridge.export.cluster import render_on_ray

        configs = [("cluster", args.address)] if args.address else [(f"{k}w", k) for k in args.workers]
        for label, spec in configs:
            t0 = time.perf_counter()
            if args.address:
                ray.init(address=spec, logging_level="WARNING", log_to_driver=False)
            else:
                ray.init(num_cpus=spec, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
            row[f"ray_start_{label}_s"] = time.perf_counter() - t0
            try:
                out = root / f"ray-{label}.mp4"
                row[f"ray_{label}_s"], _ = timed(render_on_ray, job, out, n_segments=n)
                row[f"speedup_{label}"] = row["local_s"] / row[f"ray_{label}_s"]
                assert frame_hashes(out) == reference, f"the Ray render ({label}) differs from the local one"
            finally:
                ray.shutdown()
        row["frames_equal"] = True

    if args.json:
        print(json.dumps(row, indent=1))
    else:
        for k, v in row.items():
            print(f"{k:24} {v:.3f}" if isinstance(v, float) else f"{k:24} {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
