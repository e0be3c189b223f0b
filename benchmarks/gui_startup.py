"""App responsiveness: launch-to-first-paint and timeline repaint time.

* ``first_paint_s``: wall time from spawning ``python`` to the main window's first paint event, in a
  fresh subprocess (imports included; goal ≤ 1.5 s). The project opens after that paint, as in
  ``stembridge gui``.
* ``timeline_repaint_ms``: median time of one full timeline repaint (1600×800, offscreen) on a
  synthetic 5-minute, 8-stem analysis, over whole-song, zoomed and scrolled views, every repaint
  with a new view (goal ≤ 16 ms); ``timeline_playhead_repaint_ms``: the same view, playhead moved.

``python benchmarks/gui_startup.py [--json] [--runs N]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import sys, time
from PySide6.QtCore import QEvent, QObject, QTimer
from gui.app import create_app
from gui.main_window import MainWindow

class FirstPaint(QObject):
    def eventFilter(self, obj, event):
        if event.type() == QEvent.Type.Paint:
            print(f"PAINT {time.time():.6f}", flush=True)
            QTimer.singleShot(0, app.quit)
            obj.removeEventFilter(self)
        return False

app = create_app()
w = MainWindow()
f = FirstPaint()
w.timeline.installEventFilter(f)
w.show()
app.exec()
heavy = [m for m in ("torch", "diffusers", "demucs", "transformers") if m in sys.modules]
print("HEAVY " + ",".join(heavy), flush=True)
"""


def first_paint_s(*, runs: int = 3) -> tuple[float, list[str]]:
    import tempfile

    scratch = tempfile.mkdtemp(prefix="stembridge-bench-")  # settings and logs stay out of the user's
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen"),
           "XDG_CONFIG_HOME": scratch, "STEMBRIDGE_LOG_DIR": scratch}
    times, heavy = [], []
    for _ in range(runs):
        t0 = time.time()
        r = subprocess.run([sys.executable, "-c", CHILD], cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=120)
        lines = r.stdout.splitlines()
        paint = [float(x.split()[1]) for x in lines if x.startswith("PAINT")]
        if r.returncode != 0 or not paint:
            raise RuntimeError(f"the app did not paint: {r.stderr[-2000:]}")
        times.append(paint[0] - t0)
        heavy = [x.split(" ", 1)[1] for x in lines if x.startswith("HEAVY ") and x.strip() != "HEAVY"]
    return statistics.median(times), heavy


def synthetic_analysis(*, minutes: float = 5.0, n_stems: int = 8, seed: int = 0):
    """A SongAnalysis with ``n_stems`` random-but-plausible stems at 128 BPM (no audio needed)."""
    import numpy as np

    from bridge.analysis.types import BeatGrid, SongAnalysis, StemFeatures

    rng = np.random.default_rng(seed)
    duration = minutes * 60.0
    rate = 86.1328125
    n = int(duration * rate)
    t = np.arange(n) / rate
    beats = np.arange(0.0, duration, 60.0 / 128.0)
    stems = {}
    roles = ("drums", "bass", "vocals", "guitar", "piano", "other", "drums", "other")
    for i in range(n_stems):
        env = np.exp(-((t * 128 / 60 * (1 + i % 3)) % 1.0) * 6.0)
        curve = (0.2 + 0.8 * env) * (0.5 + 0.5 * np.sin(2 * np.pi * t / (30 + 7 * i))) + 0.05 * rng.random(n)
        curves = {k: curve.astype(np.float32) for k in ("rms", "low", "mid", "high", "onset", "centroid")}
        curves["chroma"] = rng.random((12, n)).astype(np.float32)
        onsets = np.sort(rng.uniform(0, duration, 600))
        stems[f"Stem {i + 1}"] = StemFeatures(name=f"Stem {i + 1}", role=roles[i], frame_rate_hz=rate, curves=curves,
                                              onsets_s=onsets, duration_seconds=duration)
    grid = BeatGrid(tempo_bpm=128.0, beats_s=beats, downbeats_s=beats[::4], beats_per_bar=4)
    sections = [(a, min(a + 30.0, duration)) for a in np.arange(0.0, duration, 30.0)]
    return SongAnalysis(duration_seconds=duration, beat_grid=grid, sections=sections, stems=stems)


def timeline_repaint_ms(*, repeats: int = 20) -> dict[str, float]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from bridge.project.schema import StemSpec
    from gui.app import create_app
    from gui.widgets.timeline import TimelineWidget

    app = create_app()
    analysis = synthetic_analysis()
    specs = [StemSpec(name=f.name, path=f"{f.name}.wav", role=f.role) for f in analysis.stems.values()]
    w = TimelineWidget()
    w.resize(1600, 800)
    w.show()
    t0 = time.perf_counter()
    w.set_lanes_from_analysis(analysis, specs)
    build_ms = (time.perf_counter() - t0) * 1000
    w.set_sections([(a, b, f"Part {i + 1}", "neon tunnel, deep blue fog") for i, (a, b) in enumerate(analysis.sections)])
    app.processEvents()
    samples = []
    views = [(0.0, 300.0), (60.0, 20.0), (150.0, 4.0)]
    for k in range(repeats):
        for start, span in views:
            w.view_span_s = span
            w.scroll_to(start + k * 0.05 * span)
            w.set_playhead(start + 0.5 * span + k * 0.01)
            t = time.perf_counter()
            w.repaint()  # synchronous paint into the backing store
            samples.append((time.perf_counter() - t) * 1000)
    playhead_only = []
    for k in range(3 * repeats):  # the common case while playing: the view stays, the playhead moves
        w.set_playhead(150.5 + k * 0.02)
        t = time.perf_counter()
        w.repaint()
        playhead_only.append((time.perf_counter() - t) * 1000)
    w.close()
    return {"timeline_repaint_ms": statistics.median(samples), "timeline_repaint_p95_ms":
            sorted(samples)[int(0.95 * (len(samples) - 1))],
            "timeline_playhead_repaint_ms": statistics.median(playhead_only), "lanes_build_ms": build_ms}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--runs", type=int, default=3, help="launches to time (median)")
    args = ap.parse_args(argv)
    paint_s, heavy = first_paint_s(runs=args.runs)
    result = {"first_paint_s": round(paint_s, 3), **{k: round(v, 3) for k, v in timeline_repaint_ms().items()},
              "heavy_modules_at_startup": heavy, "goals": {"first_paint_s": 1.5, "timeline_repaint_ms": 16.0}}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"launch → first paint: {result['first_paint_s']:.2f} s (goal ≤ 1.5 s)")
        print(f"timeline repaint, 5 min × 8 stems: median {result['timeline_repaint_ms']:.2f} ms, "
              f"p95 {result['timeline_repaint_p95_ms']:.2f} ms (goal ≤ 16 ms); playhead-only "
              f"{result['timeline_playhead_repaint_ms']:.2f} ms; lanes built in "
              f"{result['lanes_build_ms']:.0f} ms")
        print(f"heavy modules imported at startup: {heavy or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
