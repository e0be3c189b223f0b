"""Render + H.264 encode throughput per engine (procedural, shader) and size, as a multiple of real time.

Runs the real pipeline on the demo song (analysis cached first, so only rendering is timed) and
reports, in one run:
  - render_x_realtime: song seconds rendered per wall second for render_project (engine + mapping
    evaluation + mixdown + encode + mux) — goal ≥ 1.0;
  - engine_ms_per_frame: the procedural engine alone;
  - encode_fps: the encoder alone on the same frames (the baseline the full render is compared to).

Usage: python benchmarks/render_speed.py [--seconds 10] [--sizes 1280x720 1920x1080] [--engines procedural shader] [--json]
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


def measure(project, project_dir, analysis, root: Path, *, engine_name: str, width: int, height: int,
            fps: Fraction, start: float, seconds: float, look: str | None = None) -> dict:
    """Full render, engine alone and encoder alone on the same frames, for one engine and size."""
    t0 = time.perf_counter()
    render_project(project, project_dir, root / f"out-{engine_name}.mp4", analysis=analysis, width=width,
                   height=height, fps=fps, start_s=start, end_s=start + seconds, engine_name=engine_name,
                   look=look)
    render_s = time.perf_counter() - t0

    n = int(round(seconds * fps))
    start_frame = int(round(start * fps))
    looks = section_looks(project, analysis)
    params = evaluate_mappings(project.mappings, analysis, looks, fps=fps, start_frame=start_frame,
                               n_frames=n, stem_roles={s.name: s.role for s in project.stems})
    engine = get_engine(engine_name, **({"look": look} if look else {}))
    engine.start(RenderContext(width=width, height=height, fps=fps, sections=looks))
    frames = []
    engine.render(start_frame, params.row(0), int(params.section_index[0]), float(params.section_mix[0]))  # warm
    t0 = time.perf_counter()
    for i in range(n):
        frames.append(engine.render(start_frame + i, params.row(i), int(params.section_index[i]),
                                    float(params.section_mix[i])))
    engine_s = time.perf_counter() - t0
    engine.close()

    t0 = time.perf_counter()
    write_video(root / "enc.mp4", iter(frames), n_frames=n, width=width, height=height, fps=fps)
    encode_s = time.perf_counter() - t0
    return {
        "engine": engine_name, "look": look, "width": width, "height": height, "fps": str(fps), "seconds": seconds,
        "render_x_realtime": round(seconds / render_s, 3),
        "render_fps": round(n / render_s, 2),
        "engine_ms_per_frame": round(1000 * engine_s / n, 2),
        "engine_fps": round(n / engine_s, 1),
        "encode_fps": round(n / encode_s, 2),
        "render_vs_encode_only": round(render_s / encode_s, 3),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the rendered range")
    ap.add_argument("--start", type=float, default=12.0, help="start of the range (the drop starts at 15.5 s)")
    ap.add_argument("--sizes", nargs="+", default=["1280x720"], help="e.g. 1280x720 1920x1080")
    ap.add_argument("--engines", nargs="+", default=["procedural", "shader"])
    ap.add_argument("--look", default=None, help="shader engine look (default: the engine's)")
    ap.add_argument("--fps", default="30")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    fps = Fraction(args.fps)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_demo_stems(generate_demo_song(), root / "stems")
        new_project(root / "p", root / "stems")
        project, project_dir = load_project(root / "p")
        analysis = analyze_project(project, project_dir)
        for size in args.sizes:
            width, height = (int(x) for x in size.lower().split("x"))
            for engine_name in args.engines:
                rows.append(measure(project, project_dir, analysis, root, engine_name=engine_name, width=width,
                                    height=height, fps=fps, start=args.start, seconds=args.seconds,
                                    look=args.look if engine_name == "shader" else None))
                if not args.json:
                    r = rows[-1]
                    print(f"{width}×{height} @ {fps} fps, {args.seconds:g} s of the demo, {engine_name}: full render "
                          f"{r['render_fps']:.1f} fps = {r['render_x_realtime']:.2f}× real time; engine alone "
                          f"{r['engine_ms_per_frame']:.1f} ms/frame ({r['engine_fps']:.0f} fps); encode alone "
                          f"{r['encode_fps']:.1f} fps (render = {r['render_vs_encode_only']:.2f}× encode-only)",
                          flush=True)
    if args.json:
        print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
