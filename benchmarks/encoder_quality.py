"""Video encoders side by side on the same frames: speed, data rate and picture quality (PSNR).

The frames are the shipped shader looks at the chosen size (a few looks in turn, driven by a smooth
synthetic beat so there is motion, flashes and cuts, as in an export); every configuration is
encoded by the export's own writer (``bridge.export.video.VideoWriter``: the options a user's
``render --encoder NAME --crf N`` gets), decoded again with PyAV, and compared with the frames it
was given, plane by plane (PSNR of Y, and of Y+U+V together).

What it answers: how fast each encoder that opens here codes this size, and which NVENC ``--crf``
gives the picture x264 gives at the export's default (CRF 20) — the offset
``bridge.export.presets.NVENC_CQ_OFFSET`` should hold. Encoders that do not open here (no GPU, no
driver) are listed as skipped; on a machine without one this compares x264 and x265 only.

    python benchmarks/encoder_quality.py [--size 1920x1080] [--fps 60] [--frames 240] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import av  # noqa: E402

from bridge.errors import RenderError  # noqa: E402
from bridge.export.presets import constant_quality_options, encoders_available, get_codec  # noqa: E402
from bridge.export.video import DEFAULT_PRESET, VideoWriter, rgb_to_yuv420p  # noqa: E402
from bridge.visuals import RenderContext, SectionLook, get_engine  # noqa: E402

#: (encoder, CRF values, codec); None in CRF values = the bit-rate mode hardware encoders had before
#: constant quality (0.15 bit per pixel per frame).
CONFIGS = (
    ("libx264", (20, 23), "h264"),
    ("h264_nvenc", (None, 16, 20, 24, 28), "h264"),
    ("libx265", (24,), "hevc"),
    ("hevc_nvenc", (None, 20, 24, 28), "hevc"),
)
LOOKS = ("tunnel", "starfield", "ink", "kaleidoscope")


def source_frames(width: int, height: int, fps: int, n_frames: int, looks: list[str]) -> list[np.ndarray]:
    """yuv420p planes of ``n_frames`` shader frames: each look in turn, a beat of flashes at 2 Hz."""
    per_look = max(1, n_frames // len(looks))
    out: list[np.ndarray] = []
    for look in looks:
        engine = get_engine("shader", look=look)
        engine.start(RenderContext(width, height, Fraction(fps), (SectionLook(0.0, 1e6, look),)))
        for _ in range(per_look):
            t = len(out) / fps
            beat = (t * 2.0) % 1.0
            params = {"travel": 0.25 * t, "strength": math.exp(-6.0 * beat), "flash": math.exp(-10.0 * beat),
                      "hue": 0.5 + 0.5 * math.sin(0.3 * t), "warp": 0.3 + 0.2 * math.sin(1.1 * t),
                      "detail": 0.4 + 0.3 * math.sin(0.7 * t), "pulse": math.exp(-4.0 * beat)}
            out.append(rgb_to_yuv420p(engine.render(len(out), params, 0, 1.0)))
            if len(out) >= n_frames:
                break
        engine.close()
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2))
    return 99.0 if mse == 0 else 10.0 * math.log10(255.0 ** 2 / mse)


def measure(frames: list[np.ndarray], path: Path, *, encoder: str, codec: str, crf: int | None,
            width: int, height: int, fps: int) -> dict:
    bitrate = None if crf is not None else int(0.15 * width * height * fps)
    t0 = time.perf_counter()
    with VideoWriter(path, width=width, height=height, fps=Fraction(fps), codec=codec, crf=crf,
                     bitrate=bitrate, encoder=encoder) as writer:
        for frame in frames:
            writer.write(frame)
    encode_s = time.perf_counter() - t0
    luma = height * width
    psnr_y, psnr_all = [], []
    with av.open(str(path)) as container:
        for k, decoded in enumerate(container.decode(video=0)):
            planes = decoded.to_ndarray(format="yuv420p")
            psnr_y.append(psnr(planes.ravel()[:luma], frames[k].ravel()[:luma]))
            psnr_all.append(psnr(planes, frames[k]))
    seconds = len(frames) / fps
    options = constant_quality_options(encoder, crf, DEFAULT_PRESET) if crf is not None else None
    return {"encoder": encoder, "crf": crf, "options": options or {"b": bitrate},
            "frames_decoded": len(psnr_y), "mbit_per_s": round(path.stat().st_size * 8 / seconds / 1e6, 2),
            "psnr_y_db": round(float(np.mean(psnr_y)), 2), "psnr_yuv_db": round(float(np.mean(psnr_all)), 2),
            "psnr_y_worst_db": round(float(np.min(psnr_y)), 2),
            "encode_fps": round(len(frames) / encode_s, 1), "x_realtime": round(seconds / encode_s, 2)}


def matching_crf(rows: list[dict], encoder: str, target_db: float) -> float | None:
    """The ``--crf`` of ``encoder`` whose PSNR-Y equals ``target_db`` (linear between measured ones)."""
    points = sorted((r["crf"], r["psnr_y_db"]) for r in rows if r["encoder"] == encoder and r["crf"] is not None)
    for (c0, p0), (c1, p1) in zip(points, points[1:], strict=False):
        if min(p0, p1) <= target_db <= max(p0, p1) and p0 != p1:
            return round(c0 + (target_db - p0) * (c1 - c0) / (p1 - p0), 1)
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--fps", type=int, default=60)
    ap.add_argument("--frames", type=int, default=240)
    ap.add_argument("--looks", nargs="+", default=list(LOOKS))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    width, height = (int(x) for x in args.size.lower().split("x"))
    t0 = time.perf_counter()
    frames = source_frames(width, height, args.fps, args.frames, args.looks)
    print(f"{len(frames)} frames of {', '.join(args.looks)} at {width}×{height} drawn in "
          f"{time.perf_counter() - t0:.1f} s", file=sys.stderr)
    rows, skipped = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for encoder, crfs, codec in CONFIGS:
            if encoder not in encoders_available(get_codec(codec), width, height, args.fps):
                skipped.append(encoder)
                continue
            for crf in crfs:
                try:
                    row = measure(frames, Path(tmp) / f"{encoder}_{crf}.mp4", encoder=encoder, codec=codec,
                                  crf=crf, width=width, height=height, fps=args.fps)
                except RenderError as err:
                    skipped.append(f"{encoder} crf {crf}: {err}")
                    continue
                rows.append(row)
                if not args.json:
                    mode = f"crf {crf:>2}" if crf is not None else "bit rate"
                    print(f"{encoder:11s} {mode:9s} {row['mbit_per_s']:7.2f} Mb/s  PSNR Y {row['psnr_y_db']:6.2f} dB "
                          f"(worst {row['psnr_y_worst_db']:6.2f}, YUV {row['psnr_yuv_db']:6.2f})  "
                          f"{row['encode_fps']:7.1f} fps = {row['x_realtime']:6.2f}× real time", flush=True)
    summary = {}
    for hw, sw, sw_crf in (("h264_nvenc", "libx264", 20), ("hevc_nvenc", "libx265", 24)):
        ref = next((r for r in rows if r["encoder"] == sw and r["crf"] == sw_crf), None)
        if ref is not None and any(r["encoder"] == hw for r in rows):
            crf = matching_crf(rows, hw, ref["psnr_y_db"])
            summary[hw] = {"reference": f"{sw} crf {sw_crf}", "reference_psnr_y_db": ref["psnr_y_db"],
                           "crf_with_same_psnr": crf,
                           "offset_for_NVENC_CQ_OFFSET": None if crf is None else round(sw_crf - crf)}
    if args.json:
        print(json.dumps({"size": args.size, "fps": args.fps, "frames": len(frames), "rows": rows,
                          "skipped": skipped, "summary": summary}))
    else:
        for name in skipped:
            print(f"skipped: {name}")
        for hw, s in summary.items():
            print(f"{hw}: same PSNR-Y as {s['reference']} ({s['reference_psnr_y_db']} dB) at --crf "
                  f"{s['crf_with_same_psnr']} → NVENC_CQ_OFFSET {s['offset_for_NVENC_CQ_OFFSET']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
