"""Shader engine alone: frames per second per look and size (render + read-back), and × real time.

No song and no encoder: parameters are a synthetic hit pattern (a travel step every 15 frames), so
this runs anywhere the engine does — llvmpipe on a CPU, or a GPU machine without the audio stack.
Compare with benchmarks/render_speed.py for the whole export.

    python benchmarks/shader_speed.py [--sizes 1280x720 1920x1080 3840x2160] [--frames 120] [--fps 60] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bridge.gl import create_gl_context  # noqa: E402
from bridge.visuals import RenderContext, SectionLook, get_engine  # noqa: E402
from bridge.visuals.shader_looks import available_looks  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", nargs="+", default=["1280x720", "1920x1080"])
    ap.add_argument("--looks", nargs="*", help="default: every look")
    ap.add_argument("--frames", type=int, default=90)
    ap.add_argument("--fps", type=int, default=60, help="the video frame rate real time is counted at")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    gl = create_gl_context()
    renderer = gl.info.get("GL_RENDERER", "?")
    gl.release()
    rows = []
    for size in args.sizes:
        width, height = (int(x) for x in size.lower().split("x"))
        for look in args.looks or list(available_looks()):
            engine = get_engine("shader", look=look)
            engine.start(RenderContext(width, height, Fraction(args.fps), (SectionLook(0.0, 1e6, "a"),)))
            params = {"hue": 0.1, "warp": 0.2, "detail": 0.2}
            engine.render(0, {**params, "travel": 0.0}, 0, 1.0)  # context, programs, buffers: not timed
            t0 = time.perf_counter()
            for k in range(args.frames):
                params["travel"] = 0.1 * (k // 15) % 1.0
                params["strength"] = 0.8 if k % 15 == 0 else 0.0
                engine.render(k + 1, params, 0, 1.0)
            dt = time.perf_counter() - t0
            engine.close()
            fps = args.frames / dt
            rows.append({"renderer": renderer, "look": look, "width": width, "height": height,
                         "engine_fps": round(fps, 1), "x_realtime_at_fps": round(fps / args.fps, 2)})
            if not args.json:
                print(f"{renderer[:28]:28s} {width}×{height} {look:13s} {fps:8.1f} fps = "
                      f"{fps / args.fps:6.2f}× real time at {args.fps} fps", flush=True)
    if args.json:
        print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
