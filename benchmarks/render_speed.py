"""Procedural render + H.264 encode throughput at 1280×720@30, as a multiple of real time.

Runs the real pipeline on the demo song (analysis cached first, so only rendering is timed) and
reports, in one run:
  - render_x_realtime: song seconds rendered per wall second for render_project (engine + mapping
    evaluation + mixdown + encode + mux) — goal ≥ 1.0;
  - engine_ms_per_frame: the procedural engine alone;
  - encode_fps: the encoder alone on the same frames (the baseline the full render is compared to).

Usage: python benchmarks/render_speed.py [--seconds 10] [--width 1280 --height 720 --fps 30] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bridge.analysis.project import analyze_project  # noqa: E402
from bridge.demo.song import generate_demo_song, write_demo_stems  # noqa: E402
from bridge.export.render import render_project, section_looks  # noqa: E402
from bridge.export.video import write_video  # noqa: E402
from bridge.mapping import evaluate_mappings  # noqa: E402
from bridge.project import load_project  # noqa: E402
from bridge.project.create import new_project  # noqa: E402
from bridge.visuals import get_engine  # noqa: E402
from bridge.visuals.base import RenderContext  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the rendered range")
    ap.add_argument("--start", type=float, default=12.0, help="start of the range (the drop starts at 15.5 s)")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--fps", default="30")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    fps = Fraction(args.fps)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_demo_stems(generate_demo_song(), root / "stems")
        new_project(root / "p", root / "stems")
        project, project_dir = load_project(root / "p")
        analysis = analyze_project(project, project_dir)

        # 1. full render (what `stembridge render` does after analysis)
        t0 = time.perf_counter()
        render_project(project, project_dir, root / "out.mp4", analysis=analysis, width=args.width,
                       height=args.height, fps=fps, start_s=args.start, end_s=args.start + args.seconds)
        render_s = time.perf_counter() - t0

        # 2. engine alone, same frames
        n = int(round(args.seconds * fps))
        start_frame = int(round(args.start * fps))
        looks = section_looks(project, analysis)
        params = evaluate_mappings(project.mappings, analysis, looks, fps=fps, start_frame=start_frame,
                                   n_frames=n, stem_roles={s.name: s.role for s in project.stems})
        engine = get_engine("procedural")
        engine.start(RenderContext(width=args.width, height=args.height, fps=fps, sections=looks))
        frames = []
        t0 = time.perf_counter()
        for i in range(n):
            frames.append(engine.render(start_frame + i, params.row(i), int(params.section_index[i]),
                                        float(params.section_mix[i])))
        engine_s = time.perf_counter() - t0

        # 3. encoder alone on those frames (baseline)
        t0 = time.perf_counter()
        write_video(root / "enc.mp4", iter(frames), n_frames=n, width=args.width, height=args.height, fps=fps)
        encode_s = time.perf_counter() - t0

    out = {
        "width": args.width, "height": args.height, "fps": str(fps), "seconds": args.seconds,
        "render_x_realtime": round(args.seconds / render_s, 3),
        "render_fps": round(n / render_s, 2),
        "engine_ms_per_frame": round(1000 * engine_s / n, 2),
        "encode_fps": round(n / encode_s, 2),
        "render_vs_encode_only": round(render_s / encode_s, 3),
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{args.width}×{args.height} @ {fps} fps, {args.seconds:g} s of the demo song")
        print(f"  full render : {out['render_fps']:.1f} fps = {out['render_x_realtime']:.2f}× real time (goal ≥ 1×)")
        print(f"  engine only : {out['engine_ms_per_frame']:.1f} ms/frame")
        print(f"  encode only : {out['encode_fps']:.1f} fps (full render takes {out['render_vs_encode_only']:.2f}× the encode-only time)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
