"""Render + H.264 encode throughput per engine (procedural, shader) and size, as a multiple of real time.

Runs the real pipeline on the demo song (analysis done first, so only the export is timed) and
reports, in one run:
  - render_x_realtime: song seconds exported per wall second for what render_project does here
    (prepare_render, then render_segmented: mixdown, mapping evaluation, engine, encode, mux, join;
    a range that starts mid-song pre-rolls) — goal ≥ 2 for the shader engine at 720p30 (issue 13);
  - prepare_s: of that, the time before the first frame (stems loaded and resampled, mixdown,
    mappings evaluated); export_loop_fps: frames per second of the rest (the frame loop, join);
    loop_cpu_ms_per_frame: CPU time of the frame loop (all threads) per exported frame;
  - engine_ms_per_frame: the engine alone (RGB frames, as the export gets them);
  - encode_fps: the encoder alone on the same frames (the baseline the full render is compared to);
  - overlap: (engine alone + encode alone) / (frame loop of the export): below 1 the export loop
    costs more than its parts one after the other, 2 = engine and encoder fully side by side;
  - stages (``--stages``, shader engine): where a frame's time goes, one stage at a time, wall and
    CPU ms per frame: mapping row, look drawn (to the finish), read-back (moderngl's RGB read with
    the GIL held, against the engine's RGBA read without it), RGB flip, CPU RGB→yuv420p, the GPU
    yuv420p pass, x264 encode.

``--encode-speed draft balanced small``: each encode speed (x264 preset, bridge.export.presets.ENCODE_SPEED_PRESETS)
in turn, ``--repeat`` turns each, taking turns so all see the same machine load (the best turn of
each counts); a table per engine and size gives × real time, its ratio to "balanced" (the default)
from the same run, CPU per frame and the export's video data rate (the file size traded for speed).

``--against REF``: this script measuring git revision REF's code (checked out in a temporary
worktree) and this tree's, in child processes taking turns ``--repeat`` times on one demo project
(so both see the same machine load; the best turn of each counts), with the ratio this/REF of each
figure: the before/after of a change, from one run. CPU figures (all threads of the process) are
given beside wall-clock ones: on a machine shared with other work they move less.

Usage: python benchmarks/render_speed.py [--seconds 10] [--sizes 1280x720 1920x1080]
       [--engines procedural shader] [--encode-speed draft balanced small] [--stages] [--against main] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the code measured: this tree, or (a --against child) the revision's worktree
sys.path.insert(0, os.environ.get("RENDER_SPEED_CODE", str(ROOT)))

from bridge.analysis.project import analyze_project  # noqa: E402
from bridge.demo.song import generate_demo_song, write_demo_stems  # noqa: E402
from bridge.export.render import prepare_render, section_looks  # noqa: E402
from bridge.export.segments import render_segmented  # noqa: E402
from bridge.export.video import write_video  # noqa: E402
from bridge.mapping import evaluate_mappings  # noqa: E402
from bridge.project import load_project  # noqa: E402
from bridge.project.create import new_project  # noqa: E402
from bridge.visuals import get_engine  # noqa: E402
from bridge.visuals.base import RenderContext  # noqa: E402


def measure(project, project_dir, analysis, root: Path, *, engine_name: str, width: int, height: int,
            fps: Fraction, start: float, seconds: float, look: str | None = None, encoder: str = "auto",
            encode_speed: str | None = None) -> dict:
    """Full render, engine alone and encoder alone on the same frames, for one engine and size."""
    # what render_project does on one machine, in its two steps
    speed = {} if encode_speed is None else {"encode_speed": encode_speed}  # None: the code's default
    t0, c0 = time.perf_counter(), time.process_time()
    job = prepare_render(project, project_dir, analysis=analysis, width=width, height=height, fps=fps,
                         start_s=start, end_s=start + seconds, engine_name=engine_name, look=look,
                         encoder=encoder, **speed)
    t1, c1 = time.perf_counter(), time.process_time()
    out = render_segmented(job, root / f"out-{engine_name}.mp4")
    t2, c2 = time.perf_counter(), time.process_time()
    prepare_s, loop_s, render_s = t1 - t0, t2 - t1, t2 - t0
    loop_cpu_s = c2 - c1

    n = int(round(seconds * fps))
    start_frame = int(round(start * fps))
    looks = section_looks(project, analysis)
    params = evaluate_mappings(project.mappings, analysis, looks, fps=fps, start_frame=start_frame,
                               n_frames=n, stem_roles={s.name: s.role for s in project.stems})
    engine = get_engine(engine_name, **({"look": look} if look else {}))
    engine.start(RenderContext(width=width, height=height, fps=fps, sections=looks))
    frames = []
    engine.render(start_frame, params.row(0), int(params.section_index[0]), float(params.section_mix[0]))  # warm
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(n):
        frames.append(engine.render(start_frame + i, params.row(i), int(params.section_index[i]),
                                    float(params.section_mix[i])))
    engine_s, engine_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    engine.close()

    t0, c0 = time.perf_counter(), time.process_time()
    preset = {}
    if encode_speed is not None:  # imported here: a --against child may run a revision without it
        from bridge.export.presets import encode_speed_preset

        preset = {"preset": encode_speed_preset(encode_speed)}
    write_video(root / "enc.mp4", iter(frames), n_frames=n, width=width, height=height, fps=fps, encoder=encoder,
                **preset)
    encode_s, encode_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    return {
        "engine": engine_name, "look": look, "encoder": encoder, "encode_speed": encode_speed,
        "width": width, "height": height, "fps": str(fps), "seconds": seconds,
        "video_mbps": round(_video_bits(out) / seconds / 1e6, 2),
        "render_x_realtime": round(seconds / render_s, 3),
        "render_fps": round(n / render_s, 2),
        "prepare_s": round(prepare_s, 2),
        "engine_ms_per_frame": round(1000 * engine_s / n, 2),
        "engine_fps": round(n / engine_s, 1),
        "encode_fps": round(n / encode_s, 2),
        "render_vs_encode_only": round(render_s / encode_s, 3),
        "loop_cpu_ms_per_frame": round(1000 * loop_cpu_s / n, 1),
        "export_loop_fps": round(n / loop_s, 2),
        "engine_cpu_ms_per_frame": round(1000 * engine_cpu_s / n, 2),
        "encode_cpu_ms_per_frame": round(1000 * encode_cpu_s / n, 2),
        "overlap": round((engine_s + encode_s) / loop_s, 2),
    }


def _video_bits(path: Path) -> int:
    """Bits of the file's video stream (its packets, read back with PyAV): the data rate's numerator."""
    import av

    with av.open(str(path)) as container:
        return 8 * sum(packet.size for packet in container.demux(container.streams.video[0]) if packet.size)


def stages(width: int, height: int, fps: Fraction, *, look: str, n: int, root: Path) -> dict:
    """Shader engine: ms per frame (wall, CPU) of each stage of an exported frame, run one at a time."""
    import av
    import cv2
    import numpy as np

    from bridge.export.video import rgb_to_yuv420p
    from bridge.mapping.frame_params import FrameParams
    from bridge.visuals.base import SectionLook
    from bridge.visuals.readback import draw_yuv420, read_framebuffer

    out: dict[str, list[float]] = {}

    def timed(name: str, fn, *, keep: bool = False) -> list:
        # results are dropped unless kept: 60 kept 1080p frames would time the OS handing out fresh
        # pages (the export frees each frame once encoded), not the stage
        results = []
        w, c = time.perf_counter(), time.process_time()
        for k in range(n):
            result = fn(k)
            if keep:
                results.append(result)
        out[name] = [round(1000 * (time.perf_counter() - w) / n, 2), round(1000 * (time.process_time() - c) / n, 2)]
        return results

    names = ("travel", "flash", "hue", "warp", "detail")
    table = FrameParams(names=names, values=np.random.default_rng(0).random((n, len(names))).astype(np.float32),
                        start_frame=1, fps=fps, section_index=np.zeros(n, dtype=np.int32),
                        section_mix=np.ones(n, dtype=np.float32))
    rows = timed("mapping row", table.row, keep=True)
    engine = get_engine("shader", look=look)
    engine.start(RenderContext(width, height, fps, (SectionLook(0.0, 1e6, "a"),)))
    engine.render(0, rows[0], 0, 1.0)  # context, programs, buffers
    gl = engine._gl
    timed("look drawn", lambda k: (engine.advance(k + 1, rows[k], 0, 1.0), gl.finish()))
    fbo, tex = engine._draw_frame(n + 1, rows[-1], 0, 1.0)
    gl.finish()
    timed("read RGB, moderngl (GIL held)", lambda k: fbo.read(components=3, alignment=1))
    timed("read RGBA, ctypes (GIL free)", lambda k: read_framebuffer(fbo, width, height, 4, gil_free=engine._gil_free))
    rgba = read_framebuffer(fbo, width, height, 4, gil_free=engine._gil_free)
    rgb = np.frombuffer(fbo.read(components=3, alignment=1), np.uint8).reshape(height, width, 3)
    timed("flip RGB (numpy copy)", lambda k: np.ascontiguousarray(rgb[::-1]))
    timed("RGBA -> RGB + flip (OpenCV)", lambda k: cv2.flip(cv2.cvtColor(rgba, cv2.COLOR_RGBA2RGB), 0))
    timed("RGB -> yuv420p (OpenCV, CPU)", lambda k: rgb_to_yuv420p(rgb))
    # the encoder gets the look's own frames (x264 codes a repeated frame almost for free)
    yuv = [rgb_to_yuv420p(engine.render(n + 10 + k, rows[k], 0, 1.0)) for k in range(n)]
    fbo, tex = engine._draw_frame(2 * n + 20, rows[-1], 0, 1.0)
    gl.finish()
    for label, read in (("moderngl RGB read", lambda: fbo.read(components=3, alignment=1)),
                        ("ctypes RGBA read", lambda: read_framebuffer(fbo, width, height, 4,
                                                                      gil_free=engine._gil_free))):
        share = _other_thread_share(lambda read=read: [(engine.advance(2 * n + 21 + j, rows[j], 0, 1.0), read())
                                                       for j in range(10)])
        out[f"another thread's progress (% of idle), draw + {label}"] = [round(100 * share, 1), float("nan")]
    engine.yuv_on_gpu = True
    if engine.render_yuv420p(n + 2, rows[-1], 0, 1.0) is not None:
        programs, target = engine._yuv

        def gpu_pass(k: int) -> None:
            draw_yuv420(gl, programs, target, tex, width, height)
            gl.finish()

        timed("RGB -> yuv420p pass (GPU) + finish", gpu_pass)
        timed("read yuv420p, ctypes", lambda k: read_framebuffer(target, width // 4, height * 3 // 2, 4,
                                                                  gil_free=engine._gil_free))
    engine.close()
    container = av.open(str(root / "stages.mp4"), "w")
    stream = container.add_stream("libx264", rate=fps, options={"preset": "superfast", "crf": "20"})
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"

    def encode(k: int) -> None:
        frame = av.VideoFrame.from_ndarray(yuv[k], format="yuv420p")
        frame.pts = k
        container.mux(stream.encode(frame))

    timed("x264 encode (superfast, CRF 20)", encode)
    container.mux(stream.encode(None))
    container.close()
    return {"engine": "shader", "look": look, "width": width, "height": height, "stages_ms_wall_cpu": out}


def _other_thread_share(work) -> float:
    """How much a busy pure-Python thread gets done while ``work()`` runs, as a share of what it
    does while this thread sleeps: near 0 when ``work`` holds the GIL while it waits (every other
    thread, e.g. the export's encoder, stands still); on 2 cores shared with llvmpipe's own
    threads it cannot reach 1 either way."""
    import threading

    count, stop = [0], threading.Event()

    def spin() -> None:
        while not stop.is_set():
            count[0] += 1

    def rate(fn) -> float:
        count[0] = 0
        t0 = time.perf_counter()
        fn()
        return count[0] / (time.perf_counter() - t0)

    thread = threading.Thread(target=spin)
    thread.start()
    try:
        idle = rate(lambda: time.sleep(0.3))
        busy = rate(work)
    finally:
        stop.set()
        thread.join()
    return busy / idle if idle else float("nan")


def run_here(args) -> list[dict]:
    fps = Fraction(args.fps)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.workdir or tmp)
        if not (root / "p").is_dir():  # a --workdir keeps the demo project (and its analysis cache)
            write_demo_stems(generate_demo_song(), root / "stems")
            new_project(root / "p", root / "stems")
        project, project_dir = load_project(root / "p")
        analysis = analyze_project(project, project_dir)
        for size in args.sizes:
            width, height = (int(x) for x in size.lower().split("x"))
            for engine_name in args.engines:
                if args.encode_speed:
                    rows.extend(speed_table(args, project, project_dir, analysis, root, engine_name, width, height, fps))
                    continue
                rows.append(measure(project, project_dir, analysis, root, engine_name=engine_name, width=width,
                                    height=height, fps=fps, start=args.start, seconds=args.seconds,
                                    look=args.look if engine_name == "shader" else None, encoder=args.encoder))
                if not args.json:
                    r = rows[-1]
                    print(f"{width}×{height} @ {fps} fps, {args.seconds:g} s of the demo, {engine_name}, encoder "
                          f"{args.encoder}: full render "
                          f"{r['render_fps']:.1f} fps = {r['render_x_realtime']:.2f}× real time (prepare "
                          f"{r['prepare_s']:.1f} s); engine alone {r['engine_ms_per_frame']:.1f} ms/frame "
                          f"({r['engine_fps']:.0f} fps); encode alone {r['encode_fps']:.1f} fps; frame loop "
                          f"{r['export_loop_fps']:.1f} fps, {r['loop_cpu_ms_per_frame']:.0f} CPU-ms/frame; overlap "
                          f"{r['overlap']:.2f}; video {r['video_mbps']:.2f} Mb/s", flush=True)
            if args.stages and "shader" in args.engines:
                rows.append(stages(width, height, fps, look=args.look or "tunnel", n=min(60, int(args.seconds * fps)),
                                   root=root))
                if not args.json:
                    print(f"  stages, {width}×{height}, look {rows[-1]['look']} (wall / CPU ms per frame):")
                    for name, (wall, cpu) in rows[-1]["stages_ms_wall_cpu"].items():
                        print(f"    {name:52s} {wall:7.2f} {cpu:7.2f}", flush=True)
    return rows


def speed_table(args, project, project_dir, analysis, root: Path, engine_name: str, width: int, height: int,
                fps: Fraction) -> list[dict]:
    """Each of ``args.encode_speed`` in turn, ``args.repeat`` turns each (so every speed sees the same
    machine load); per speed the best turn of each figure, and its ratio to "balanced" of this run."""
    from bridge.export.presets import encode_speed_preset

    for speed in args.encode_speed:
        encode_speed_preset(speed)  # a bad name fails before anything is measured
    higher = ("render_x_realtime", "export_loop_fps", "encode_fps")
    lower = ("loop_cpu_ms_per_frame", "engine_cpu_ms_per_frame", "encode_cpu_ms_per_frame", "video_mbps")
    turns: dict[str, list[dict]] = {speed: [] for speed in args.encode_speed}
    for _ in range(max(1, args.repeat)):
        for speed in args.encode_speed:
            turns[speed].append(measure(project, project_dir, analysis, root, engine_name=engine_name, width=width,
                                        height=height, fps=fps, start=args.start, seconds=args.seconds,
                                        look=args.look if engine_name == "shader" else None, encoder=args.encoder,
                                        encode_speed=speed))
    rows = []
    for speed, runs in turns.items():
        best = {**{k: max(r[k] for r in runs) for k in higher}, **{k: min(r[k] for r in runs) for k in lower}}
        rows.append({"engine": engine_name, "width": width, "height": height, "fps": str(fps),
                     "seconds": args.seconds, "encoder": args.encoder, "encode_speed": speed,
                     "preset": encode_speed_preset(speed), "turns": len(runs), "best": best,
                     "all_x_realtime": [r["render_x_realtime"] for r in runs]})
    base = next((r["best"] for r in rows if r["encode_speed"] == "balanced"), None)
    for row in rows:
        if base is not None:
            row["vs_balanced"] = {k: round(row["best"][k] / base[k], 2) for k in row["best"] if base[k]}
    if not args.json:
        load = os.getloadavg()
        print(f"{width}×{height} @ {fps} fps, {args.seconds:g} s of the demo, {engine_name}, encoder {args.encoder}, "
              f"best of {args.repeat} turns (load average now {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on "
              f"{os.cpu_count()} CPUs):")
        print(f"  {'speed':9s} {'preset':10s} {'× real time':>11s} {'vs balanced':>11s} {'loop CPU-ms/f':>13s} "
              f"{'engine CPU-ms/f':>15s} {'encode CPU-ms/f':>15s} {'video Mb/s':>10s}  turns")
        for row in rows:
            b = row["best"]
            ratio = row.get("vs_balanced", {}).get("render_x_realtime", float("nan"))
            print(f"  {row['encode_speed']:9s} {row['preset']:10s} {b['render_x_realtime']:11.2f} {ratio:11.2f} "
                  f"{b['loop_cpu_ms_per_frame']:13.0f} {b['engine_cpu_ms_per_frame']:15.1f} "
                  f"{b['encode_cpu_ms_per_frame']:15.1f} {b['video_mbps']:10.2f}  "
                  f"{', '.join(f'{x:.2f}' for x in row['all_x_realtime'])}", flush=True)
    return rows


def child(code: Path, args, sizes: list[str], workdir: Path) -> list[dict]:
    """This script, measuring the code in ``code``, in a child process."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--json", "--seconds", str(args.seconds),
           "--start", str(args.start), "--fps", args.fps, "--sizes", *sizes, "--engines", *args.engines,
           "--workdir", str(workdir)]
    if args.look:
        cmd += ["--look", args.look]
    env = {**os.environ, "RENDER_SPEED_CODE": str(code), "PYTHONPATH": str(code)}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{code}: {' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_against(args) -> list[dict]:
    """REF's code and this tree's in child processes, taking turns per size; ratios this/REF."""
    higher = ("render_x_realtime", "export_loop_fps", "engine_fps", "encode_fps")
    lower = ("loop_cpu_ms_per_frame", "engine_cpu_ms_per_frame", "encode_cpu_ms_per_frame", "prepare_s")
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        workdir = Path(tmp) / "work"
        workdir.mkdir()
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), args.against],
                       check=True, capture_output=True)
        try:
            child(ROOT, args, [args.sizes[0]], workdir)  # the demo project and its analysis, once
            for size in args.sizes:
                turns: dict[str, list[list[dict]]] = {"before": [], "after": []}
                for _ in range(args.repeat):
                    turns["before"].append(child(base, args, [size], workdir))
                    turns["after"].append(child(ROOT, args, [size], workdir))
                for i, engine_name in enumerate(args.engines):
                    best = {}
                    for when, runs in turns.items():
                        rows = [r[i] for r in runs]
                        best[when] = {**{k: max(r[k] for r in rows) for k in higher},
                                      **{k: min(r[k] for r in rows) for k in lower}}
                    b, a = best["before"], best["after"]
                    row = {"engine": engine_name, "size": size, "against": args.against, "turns": args.repeat,
                           "before": b, "after": a, "ratio": {k: round(a[k] / b[k], 2) for k in b if b[k]}}
                    out.append(row)
                    if not args.json:
                        print(f"{size} {engine_name:10s} export × real time {b['render_x_realtime']:.2f} → "
                              f"{a['render_x_realtime']:.2f} (×{row['ratio']['render_x_realtime']:.2f}); frame loop "
                              f"{b['export_loop_fps']:.0f} → {a['export_loop_fps']:.0f} fps; CPU "
                              f"{b['loop_cpu_ms_per_frame']:.0f} → {a['loop_cpu_ms_per_frame']:.0f} ms/frame; "
                              f"engine {b['engine_fps']:.0f} → {a['engine_fps']:.0f} fps; encode "
                              f"{b['encode_fps']:.0f} → {a['encode_fps']:.0f} fps; prepare {b['prepare_s']} → "
                              f"{a['prepare_s']} s", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], check=False,
                           capture_output=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the rendered range")
    ap.add_argument("--start", type=float, default=12.0, help="start of the range (the drop starts at 15.5 s)")
    ap.add_argument("--sizes", nargs="+", default=["1280x720"], help="e.g. 640x360 1280x720 1920x1080")
    ap.add_argument("--engines", nargs="+", default=["procedural", "shader"])
    ap.add_argument("--look", default=None, help="shader engine look (default: the song's)")
    ap.add_argument("--fps", default="30")
    ap.add_argument("--encoder", default="auto", help="auto, hardware (the GPU's) or an FFmpeg encoder name")
    ap.add_argument("--encode-speed", nargs="+", type=str.lower, metavar="SPEED",
                    help="measure each encode speed (draft, balanced, small), taking turns; a table per engine and size")
    ap.add_argument("--stages", action="store_true", help="also time each stage of a shader frame")
    ap.add_argument("--against", metavar="REF", help="also run git revision REF, taking turns; print ratios")
    ap.add_argument("--repeat", type=int, default=2,
                    help="turns each of REF and this tree take (--against), or each encode speed (--encode-speed)")
    ap.add_argument("--workdir", help="folder for the demo project, kept between runs (default: a temporary one)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.against and args.encode_speed:
        ap.error("--encode-speed and --against measure different things; give one of them")
    rows = run_against(args) if args.against else run_here(args)
    if args.json:
        print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
