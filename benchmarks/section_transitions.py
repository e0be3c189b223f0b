"""Shader engine: what section looks and transitions cost per frame, against one look alone.

Two sections (look A, then look B) at the given size; frames are timed inside section B with no
transition (one look drawn: the baseline), inside a crossfade (both looks drawn and blended), inside
a melt (the new look plus the feedback drip) and in a loud section on hits (the zoom punch pass).
Ratios are to the baseline measured in the same run. Synthetic parameters (a travel step every 15
frames), no song, no encoder.

    python benchmarks/section_transitions.py [--size 1280x720] [--looks kaleidoscope tunnel] [--frames 60]
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


def timed(a: str, b: str, width: int, height: int, frames: int, *, transition: str, mix_of, hit: float = 1.0) -> float:
    """Frames per second of ``frames`` frames in the second section (``mix_of(k)``: its section_mix)."""
    fps = Fraction(30)
    sections = (SectionLook(0.0, 1.0, "a", look=a),
                SectionLook(1.0, 1e6, "b", look=b, transition=transition, transition_seconds=1e5, hit=hit))
    engine = get_engine("shader", look=a)
    engine.start(RenderContext(width, height, fps, sections))
    params = {"hue": 0.1, "warp": 0.2, "detail": 0.2, "travel": 0.0}
    engine.render(29, params, 0, 1.0)  # context, programs, buffers: not timed
    engine.render(30, params, 1, mix_of(0))
    t0 = time.perf_counter()
    for k in range(1, frames + 1):
        params["travel"] = 0.12 * (k // 15)
        engine.render(30 + k, params, 1, mix_of(k))
    dt = time.perf_counter() - t0
    engine.close()
    return frames / dt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--looks", nargs=2, default=["kaleidoscope", "tunnel"], metavar=("A", "B"))
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    width, height = (int(x) for x in args.size.lower().split("x"))
    gl = create_gl_context()
    renderer = gl.info.get("GL_RENDERER", "?")
    gl.release()
    a, b, n = args.looks[0], args.looks[1], args.frames
    cases = {
        "one look (no transition)": dict(transition="cut", mix_of=lambda k: 1.0),
        "crossfade": dict(transition="crossfade", mix_of=lambda k: min(0.99, 0.01 + k / (n + 2))),
        "melt": dict(transition="melt", mix_of=lambda k: min(0.99, 0.01 + k / (n + 2))),
        "loud section (hit 1.5, punch)": dict(transition="cut", mix_of=lambda k: 1.0, hit=1.5),
    }
    rows = []
    base = None
    for label, kw in cases.items():
        fps = timed(a, b, width, height, n, **kw)
        base = base or fps
        rows.append({"renderer": renderer, "case": label, "looks": [a, b], "width": width, "height": height,
                     "fps": round(fps, 1), "cost_vs_one_look": round(base / fps, 2)})
        if not args.json:
            print(f"{renderer[:28]:28s} {width}×{height} {a}→{b} {label:32s} {fps:7.1f} fps  "
                  f"×{base / fps:4.2f} the time of one look", flush=True)
    if args.json:
        print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
