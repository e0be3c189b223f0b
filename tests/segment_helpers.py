"""Shared by the segmented-export tests (test_resume.py, test_cluster.py): the truth to compare with.

Renders go through x264 at CRF 0 (lossless), so a decoded frame must equal, bit for bit, the
BT.709 YUV 4:2:0 of the frame the engine drew; the truth is the engine run once, frame 0 to the
end, with no segments, no pre-roll and no encoder (what an uninterrupted render shows).
"""

from __future__ import annotations

import hashlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from bridge.export.render import prepare_render
from bridge.export.video import rgb_to_yuv420p
from bridge.project import load_project, save_project
from bridge.visuals import get_engine


def lossless(project_dir: Path, *, width: int = 160, height: int = 90, engine: str = "procedural"):
    """Set the project's render quality to CRF 0 (lossless), size and engine; returns the saved
    project. The procedural engine by default: its feedback trails (state carried over many frames)
    are what segment pre-roll and resume must rebuild exactly."""
    project, _ = load_project(project_dir)
    project = project.model_copy(update={"render": project.render.model_copy(
        update={"crf": 0, "width": width, "height": height}),
        "engine": project.engine.model_copy(update={"name": engine})})
    save_project(project, project_dir)
    return load_project(project_dir)[0]


def digest(plane: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(plane).tobytes()).hexdigest()


def truth_hashes(project, project_dir: Path, **render_options) -> list[str]:
    """Hashes of the YUV frames an uninterrupted render shows (the engine run straight through)."""
    job = prepare_render(project, project_dir, **render_options)
    engine = get_engine(job.engine_key, **job.engine_settings)
    engine.start(job.context)
    out = []
    try:
        p = job.params
        for i in range(len(p)):
            frame = engine.render(p.start_frame + i, p.row(i), int(p.section_index[i]), float(p.section_mix[i]))
            if p.start_frame + i >= job.range.start_frame:
                out.append(digest(rgb_to_yuv420p(frame)))
    finally:
        engine.close()
    assert len(out) == job.range.n_frames
    return out


def decoded(path: Path) -> dict:
    """What a player gets: YUV frame hashes, their timestamps (in frames), A/V durations."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        fps = Fraction(v.average_rate)
        frames, pts = [], []
        for f in c.decode(v):
            frames.append(digest(f.to_ndarray(format="yuv420p")))
            pts.append(round(f.pts * f.time_base * fps))
    with av.open(str(path)) as c:
        a = c.streams.audio[0]
        samples = sum(f.samples for f in c.decode(a))
        rate = a.rate
    return {"hashes": frames, "pts": pts, "fps": fps, "video_s": float(len(frames) / fps),
            "audio_s": samples / rate}
