"""Segmented, resumable export: render in pieces kept beside the output, then join them losslessly.

A render is cut into segments (at section starts, downbeats or diffusion keyframes near an even
split). Each segment is encoded on its own into ``.OUT.mp4.parts/segment-NNNN.mp4`` (video only,
the same codec parameters for all; ``.mov`` parts for ProRes) and recorded in ``manifest.json`` under a key that hashes
everything the frames depend on (engine, its settings, the mapped parameters, sections, size, fps,
quality). When all segments exist they are joined into ``OUT.mp4`` by copying their H.264 / HEVC / ProRes packets
(no re-encoding: each segment starts with an IDR frame and x264's GOPs are closed) while the AAC
soundtrack is encoded once, in step with the video; then the work folder is removed.

A killed or cancelled export run again with the same key keeps the finished segments and continues
with the first missing one ("resuming at 2:41"). A different key (the project changed) starts over.

Engine state at a segment start: a local render runs its segments back to back with one engine, so
the state carries over exactly. A segment rendered on its own (on a Ray worker, or after a resume)
first renders up to :data:`bridge.export.render.PREROLL_SECONDS` of frames before its start and
throws them away, so feedback trails are rebuilt — but only approximately: the procedural
engine's feedback does not provably forget its past (persistence reaches 0.985 per frame with the
``decay`` parameter, its 1.04 saturation gain keeps saturated colours alive, and uint8 rounding can
keep a difference of one code value alive for as long as a pixel stays lit). Measured (issue 18):
20 s of the demo at 640x360 in 16 segments, the segment starting at frame 488 came out of its
60-frame pre-roll with 4 pixels one code value off, which frame 489 still showed. The shader
engine's feedback looks keep far more: ink's float fluid (then fading 0.99 per frame) came out of the same
pre-roll up to 97 code values off (the demo at 320x180), glitch's up to 16.

So for the engines whose state can be read and restored (:data:`bridge.visuals.STATE_ENGINES`)
the state is handed over exactly: each finished segment's end state is kept (``state-FRAME.npz``
in the work folder), a resume starts from it, and a cluster task's pre-roll is only a guess that
the driver checks — the task reports a digest of the state its pre-roll reached at the segment
start, and a segment whose digest differs from the previous segment's end state is rendered again
from that end state (:func:`bridge.export.cluster.render_on_ray`). Every accepted segment thus
started from the state a straight render has at that frame: equal frames by construction.

How long that guess pre-rolls is the engine's own feedback memory at the cut
(:func:`~bridge.export.preroll.state_memory_frames`): the procedural trails' decay, derived frame by frame from their
persistence, ``decay`` and ``strength`` (:func:`bridge.visuals.procedural.trail_memory_frames`);
for the shader engine the frames since each look's buffers were last cleared (a section that cuts
to another look clears them) or, sooner, the look's ``STATE_MEMORY_SECONDS`` (0 for looks without
feedback: only the hit envelope's frames; none for a float buffer, which never reaches the same
bits again: ink) — :func:`bridge.visuals.shader.state_memory_frames`. A segment whose memory is
longer than pays on the cluster (:func:`~bridge.export.preroll.needs_relay`: on 2 task slots, longer than the segment;
never more than :data:`~bridge.export.preroll.MAX_PREROLL_SECONDS`) does not guess on a cluster: a relay task advances one engine through the song without reading frames back or encoding them and
hands each such segment the exact state at its start (:func:`~bridge.export.preroll.needs_relay`, :func:`advance_states`).
The diffusion engine keeps the pre-roll:
its img2img chain never fully forgets its past, so its segments match a sequential render only
approximately: :data:`LCM_SEGMENT_BOUND` (tested with the tiny test model).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bridge.errors import RenderError
from bridge.export.job import apply_fade
from bridge.export.join import check_output_path, join_parts
from bridge.export.preroll import (
    fresh_start_frame,
    keeps_state,
    preroll_cap_frames,
    state_memory_frames,
)
from bridge.fsutil import atomic_write_text
from bridge.jobs import CancelToken, ProgressCallback, no_progress

if TYPE_CHECKING:
    from bridge.export.job import RenderJob

log = logging.getLogger(__name__)

#: Default segment length for a local render: a kill loses at most this much work.
SEGMENT_SECONDS = 10.0
MANIFEST_NAME = "manifest.json"
#: Bumped when the part files or the manifest change meaning (old work folders are then redone).
FORMAT_VERSION = 2  # 2: engine states kept at segment ends (a version-1 folder has none: redone)
#: Largest mean absolute difference (0–255, per frame) between a diffusion (lcm) export rendered in
#: segments and the same export rendered straight through: each segment's pre-roll rebuilds the
#: img2img chain from its own start; segments are cut at keyframes, where hits re-anchor the chain.
#: Measured with the tiny test model (tests/test_lcm.py: 4 s of the demo, 4 segments, 15 fps): 0.0,
#: the segmented frames equal the straight ones; an unrelated seed differs by ~47. The bound leaves
#: room for chains that a cut lands inside of (a long stretch without hits).
LCM_SEGMENT_BOUND = 4.0



@dataclass(frozen=True)
class Segment:
    """Frames ``start_frame … start_frame + n_frames − 1`` of the song (absolute frame indices)."""

    index: int
    start_frame: int
    n_frames: int

    @property
    def end_frame(self) -> int:
        return self.start_frame + self.n_frames


def plan_segments(start_frame: int, n_frames: int, fps: Fraction, *, n_segments: int | None = None,
                  boundaries: Sequence[int] = (), segment_seconds: float = SEGMENT_SECONDS,
                  prefer: Callable[[int], bool] | None = None) -> tuple[Segment, ...]:
    """Cut frames [start_frame, start_frame + n_frames) into segments.

    ``n_segments`` (default: one per ``segment_seconds``) pieces of about equal length; each cut
    moves to the nearest of ``boundaries`` (section starts, downbeats, keyframes) within half a
    segment, so a segment starts where the picture changes anyway. ``prefer``: the nearest of the
    boundaries it accepts, when there is one within the half segment (a cut where the engine's
    feedback forgets its past soon: :func:`open_work_folder`).
    """
    if n_segments is not None and (not isinstance(n_segments, int) or n_segments < 1):
        raise RenderError(f"--segments {n_segments!r} is not a positive whole number; use e.g. --segments 8.")
    n = n_segments or max(1, round(n_frames / (segment_seconds * float(fps))))
    n = max(1, min(n, n_frames))
    end = start_frame + n_frames
    length = n_frames / n
    bounds = sorted(set(int(b) for b in boundaries))
    cuts: list[int] = []
    prev = start_frame
    for k in range(1, n):
        target = start_frame + round(k * length)
        near = [b for b in bounds if prev < b < end and abs(b - target) <= length / 2]
        if prefer is not None:
            near = [b for b in near if prefer(b)] or near
        cut = min(near, key=lambda b: (abs(b - target), b)) if near else target
        if prev < cut < end:
            cuts.append(cut)
            prev = cut
    edges = [start_frame, *cuts, end]
    return tuple(Segment(i, a, b - a) for i, (a, b) in enumerate(zip(edges[:-1], edges[1:], strict=True)))


def job_key(job: RenderJob) -> str:
    """A hash of everything the video frames depend on (not the audio: it is muxed at the join)."""
    from bridge import __version__

    ctx = job.context
    desc = {
        "format": FORMAT_VERSION, "version": __version__, "engine": job.engine_key,
        "engine_settings": job.engine_settings,
        "size": [ctx.width, ctx.height], "fps": str(ctx.fps), "seed": ctx.seed, "mode": ctx.mode,
        "sections": [asdict(s) for s in ctx.sections], "crf": job.settings.crf,
        "codec": job.settings.video_codec, "bitrate": job.settings.video_bitrate, "encoder": job.settings.encoder,
        # segments are joined without re-encoding: a resumed export must not mix x264 presets in one file
        "encode_speed": job.settings.encode_speed,
        "range": [job.range.start_frame, job.range.n_frames], "preroll": job.preroll_frames,
        "params_start": job.params.start_frame, "names": list(job.params.names),
        "audio_sample_rate": ctx.audio_sample_rate, "fades": [job.fade_in_s, job.fade_out_s],
    }
    h = hashlib.sha256(json.dumps(desc, sort_keys=True, default=str).encode())
    for arr in (job.params.values, job.params.section_index, job.params.section_mix,
                np.asarray(ctx.beats_s, dtype=np.float64), np.asarray(ctx.downbeats_s, dtype=np.float64)):
        h.update(np.ascontiguousarray(arr).tobytes())
    for name in sorted(ctx.audio):  # the shader engine's audio inputs
        h.update(name.encode())
        h.update(np.ascontiguousarray(ctx.audio[name]).tobytes())
    return h.hexdigest()[:32]


def state_digest(state: dict[str, np.ndarray] | None) -> str | None:
    """A hash of an engine state (:meth:`get_state`): names, dtypes, shapes and bytes; None for None."""
    if state is None:
        return None
    h = hashlib.sha256()
    for name in sorted(state):
        arr = np.ascontiguousarray(state[name])
        h.update(f"{name}|{arr.dtype.str}|{arr.shape}|".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def work_folder(out_path: str | os.PathLike[str]) -> Path:
    """Where the segments of ``out_path`` are kept: ``.NAME.parts`` beside it (hidden)."""
    out = Path(out_path)
    return out.parent / f".{out.name}.parts"


def format_time(seconds: float) -> str:
    """2:41 / 1:02:03 — how a player shows a position."""
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def part_suffix(codec: str) -> str:
    """The part files' extension: MP4 for H.264 / HEVC, MOV for ProRes (MP4 cannot hold it)."""
    from bridge.export.presets import get_codec

    return get_codec(codec).default_suffix


class WorkFolder:
    """The parts folder of one output: manifest, finished segments, a lock against a second writer."""

    def __init__(self, out_path: Path, *, key: str, plan: tuple[Segment, ...], resume: bool = True,
                 log_message: Callable[[str], None] = lambda m: None, suffix: str = ".mp4") -> None:
        self.out = Path(out_path)
        self.suffix = suffix
        self.path = work_folder(self.out)
        self.key = key
        self._lock_fh = None
        try:
            self.path.mkdir(exist_ok=True)
        except OSError as e:  # a read-only or someone else's folder: a traceback reached the producer
            raise RenderError(f"cannot make the export's work folder {self.path} ({e.strerror or e}); the "
                              "parts are kept beside the video, so export to a folder you can write to.") from None
        self._lock()
        self._remove_partials()
        manifest = self._read_manifest()
        if resume and manifest is not None and manifest.get("key") == key:
            self.plan = tuple(Segment(i, int(a), int(n)) for i, (a, n) in enumerate(manifest["segments"]))
            self.done = {int(i) for i in manifest.get("done", [])
                         if 0 <= int(i) < len(self.plan) and self.part_path(self.plan[int(i)]).is_file()}
            if self.plan != plan and log_message:
                log_message(f"keeping the earlier run's {len(self.plan)} segments (the work folder's plan)")
        else:
            if manifest is not None:
                log.info("work folder %s is for another render (or --no-resume): starting over", self.path)
            for part in (*self.path.glob("segment-*.mp4"), *self.path.glob("segment-*.mov"),
                         *self.path.glob("state-*.npz")):
                part.unlink(missing_ok=True)
            self.plan, self.done = plan, set()
            self._write_manifest()

    # -- state ----------------------------------------------------------------------------------

    def part_path(self, seg: Segment) -> Path:
        return self.path / f"segment-{seg.index:04d}{self.suffix}"

    def is_done(self, seg: Segment) -> bool:
        return seg.index in self.done

    def mark_done(self, seg: Segment) -> None:
        self.done.add(seg.index)
        self._write_manifest()
        # a kept state serves the segment that starts there: once that one is done, it is not needed
        for s in self.plan:
            if s.index in self.done:
                self.state_path(s.start_frame).unlink(missing_ok=True)

    def state_path(self, frame: int) -> Path:
        return self.path / f"state-{frame:08d}.npz"

    def save_state(self, frame: int, state: dict[str, np.ndarray] | None) -> None:
        """Keep the engine state at the start of ``frame`` (a segment's end), written atomically."""
        if state is None:
            return
        import io

        from bridge.fsutil import atomic_write_bytes

        buf = io.BytesIO()
        np.savez(buf, **{name: np.ascontiguousarray(arr) for name, arr in state.items()})
        atomic_write_bytes(self.state_path(frame), buf.getvalue())

    def load_state(self, frame: int) -> dict[str, np.ndarray] | None:
        """The kept engine state at ``frame``, or None (never kept, or unreadable)."""
        try:
            with np.load(self.state_path(frame), allow_pickle=False) as data:
                return {name: data[name] for name in data.files}
        except (OSError, ValueError):
            return None

    def latest_state(self, frame: int, *, not_before: int) -> tuple[int, dict[str, np.ndarray]] | None:
        """The kept state nearest before (or at) ``frame``, from ``not_before`` on: (its frame, state)."""
        frames = sorted((int(p.stem.split("-")[1]) for p in self.path.glob("state-*.npz")
                         if p.stem.split("-")[1].isdigit()), reverse=True)
        for f in frames:
            if not_before <= f <= frame:
                state = self.load_state(f)
                if state is not None:
                    return f, state
        return None

    def _read_manifest(self) -> dict | None:
        try:
            data = json.loads((self.path / MANIFEST_NAME).read_text(encoding="utf-8"))
            return data if isinstance(data, dict) and isinstance(data.get("segments"), list) else None
        except (OSError, ValueError):
            return None

    def _write_manifest(self) -> None:
        atomic_write_text(self.path / MANIFEST_NAME, json.dumps({
            "key": self.key, "output": self.out.name,
            "segments": [[s.start_frame, s.n_frames] for s in self.plan],
            "done": sorted(self.done),
        }, indent=1))

    # -- housekeeping ---------------------------------------------------------------------------

    def _lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory lock; two renders of one output are the user's call
            return
        fh = open(self.path / "lock", "a+")  # noqa: SIM115 - held for the folder's lifetime
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            raise RenderError(f"Another render is writing '{self.out}' right now (its work folder "
                              f"'{self.path}' is locked); wait for it or choose another output.") from None
        self._lock_fh = fh

    def _remove_partials(self) -> None:
        """Temporary files a killed process left: half-written segments, and half-written outputs."""
        for p in self.path.glob(".*.partial*"):
            p.unlink(missing_ok=True)
        for p in self.out.parent.glob(f".{self.out.name}.*.partial{self.out.suffix}"):
            with contextlib.suppress(OSError):
                p.unlink()

    def release(self) -> None:
        if self._lock_fh is not None:
            self._lock_fh.close()
            self._lock_fh = None

    def remove(self) -> None:
        """Delete the folder (after a successful join)."""
        import shutil

        self.release()
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> WorkFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def open_work_folder(job: RenderJob, out_path: str | os.PathLike[str], *, n_segments: int | None = None,
                     resume: bool = True, log_message: Callable[[str], None] = lambda m: None) -> WorkFolder:
    out = check_output_path(out_path, job.settings.video_codec)
    boundaries, prefer = tuple(job.boundaries), None
    if keeps_state(job):
        # cuts where a pre-roll no longer than the segment reaches the exact state: no relay, no
        # guess that misses. A section that cuts to another look clears the shader's feedback on
        # its first frame, so the frame after each boundary is a candidate too.
        n = n_segments or max(1, round(job.range.n_frames / (SEGMENT_SECONDS * float(job.context.fps))))
        allowed = min(job.range.n_frames // max(1, n), preroll_cap_frames(job))
        boundaries = tuple(sorted({*boundaries, *(b + 1 for b in boundaries)}))
        memo: dict[int, bool] = {}

        def prefer(frame: int) -> bool:
            if frame not in memo:
                memo[frame] = state_memory_frames(job, frame, at_most=allowed + 1) <= allowed
            return memo[frame]

    plan = plan_segments(job.range.start_frame, job.range.n_frames, job.context.fps, n_segments=n_segments,
                         boundaries=boundaries, prefer=prefer)
    return WorkFolder(out, key=job_key(job), plan=plan, resume=resume, log_message=log_message,
                      suffix=part_suffix(job.settings.video_codec))


# -- rendering ----------------------------------------------------------------------------------

def engine_frames(engine: object, job: RenderJob, start_frame: int, n_frames: int, *, preroll: int,
                  cancel: CancelToken | None = None, start_state: dict[str, np.ndarray] | None = None,
                  states: dict[int, dict[str, np.ndarray]] | None = None,
                  capture: frozenset[int] = frozenset()) -> Iterator[np.ndarray]:
    """Frames ``start_frame …`` from a started engine, after ``preroll`` frames rendered and dropped.

    ``start_state``: the engine's state (``set_state``) at the first pre-roll frame
    (``start_frame − preroll``); None: the engine as ``start`` left it. ``states``: filled with the
    engine's state at the start of each frame in ``capture`` (``start_frame + n_frames``: after the
    last), each before the frame before it is yielded; engines without ``get_state`` fill nothing.

    For a yuv420p codec, an engine that converts on its own (the shader engine, on the GPU:
    ``render_yuv420p``) hands over yuv420p planes (:meth:`VideoWriter.write` takes either), except
    on faded frames (the fade is applied to RGB); pre-roll frames of an engine with ``advance`` are
    drawn but not read back."""
    from bridge.export.presets import get_codec

    params = job.params
    planar = getattr(engine, "render_yuv420p", None)
    advance = getattr(engine, "advance", None)
    if get_codec(job.settings.video_codec).pix_fmt != "yuv420p":
        planar = None
    get_state = getattr(engine, "get_state", None) if states is not None else None

    def keep(frame: int) -> None:
        if get_state is not None and frame in capture:
            states[frame] = get_state()  # type: ignore[index]

    if start_state is not None:
        engine.set_state(start_state)  # type: ignore[attr-defined]
    keep(start_frame - preroll)
    for frame in range(start_frame - preroll, start_frame + n_frames):
        i = frame - params.start_frame
        if not 0 <= i < len(params):
            raise RenderError(f"frame {frame} is outside the prepared parameters "
                              f"({params.start_frame}…{params.start_frame + len(params) - 1}); re-run the render.")
        args = (frame, params.row(i), int(params.section_index[i]), float(params.section_mix[i]))
        if frame < start_frame and advance is not None:
            advance(*args)  # a pre-roll frame: its picture is thrown away, so it is not read back
            keep(frame + 1)
            if cancel is not None:
                cancel.raise_if_cancelled("the render")
            continue
        gain = job.frame_gain(frame) if frame >= start_frame else 1.0
        image = planar(*args) if planar is not None and gain >= 1.0 else None
        if image is None:
            image = apply_fade(engine.render(*args), gain)
        keep(frame + 1)
        if frame >= start_frame:
            yield image
        elif cancel is not None:
            cancel.raise_if_cancelled("the render")


def advance_states(job: RenderJob, from_frame: int, start_state: dict[str, np.ndarray] | None,
                   to_frames: Sequence[int]) -> Iterator[dict[str, np.ndarray]]:
    """The engine states at the start of each of ``to_frames`` (ascending), one after the other:
    a fresh engine set to ``start_state`` (the state at ``from_frame``; None: a fresh engine's, exact
    only at the first prepared frame) draws the frames in between without reading them back
    (``advance``, where the engine has it) or encoding them. The cluster's relay (:func:`~bridge.export.preroll.needs_relay`)."""
    p = job.params
    ends = [int(f) for f in to_frames]
    if any(b < a for a, b in zip([from_frame, *ends[:-1]], ends, strict=True)) or not (
            p.start_frame <= from_frame and (not ends or ends[-1] <= p.start_frame + len(p))):
        raise ValueError(f"cannot advance from frame {from_frame} through {ends}: the prepared frames are "
                         f"{p.start_frame}…{p.start_frame + len(p) - 1}, and the frames must ascend")
    if not ends:
        return
    engine = start_engine(job)
    try:
        if start_state is not None:
            engine.set_state(start_state)
        step = getattr(engine, "advance", None) or engine.render
        for begin, end in zip([from_frame, *ends[:-1]], ends, strict=True):
            for frame in range(begin, end):
                i = frame - p.start_frame
                step(frame, p.row(i), int(p.section_index[i]), float(p.section_mix[i]))
            yield engine.get_state()
    finally:
        engine.close()


def start_engine(job: RenderJob):
    from bridge.visuals import get_engine

    engine = get_engine(job.engine_key, **job.engine_settings)
    engine.start(job.context)
    return engine


def encode_segments(job: RenderJob, segments: Sequence[Segment], part_path: Callable[[Segment], Path], *,
                    on_done: Callable[[Segment], None] = lambda s: None,
                    progress: Callable[[Segment, int], None] = lambda s, d: None,
                    cancel: CancelToken | None = None,
                    start: tuple[int, dict[str, np.ndarray] | None] | None = None,
                    states: dict[int, dict[str, np.ndarray]] | None = None) -> None:
    """Render consecutive ``segments`` with one engine (pre-roll before the first) into their part files.

    ``start``: (frame, state): the engine starts at that frame (at or before the first segment; the
    frames up to the segment are rendered and dropped) in that state (None: a fresh engine's) — the
    exact state there makes the frames exact. None: a fresh engine from :func:`~bridge.export.preroll.fresh_start_frame`. ``states`` (engines with ``get_state``): filled with the state at the first segment's
    start and at each segment's end (keyed by frame), the end's before ``on_done(seg)``.
    Each part is written atomically (a temporary name, renamed when complete), so a part file that
    exists is whole.
    """
    from bridge.export.presets import encode_speed_preset
    from bridge.export.threads import cpu_threads
    from bridge.export.video import write_video
    from bridge.jobs import prefetch

    if not segments:
        return
    for a, b in zip(segments[:-1], segments[1:], strict=True):
        if a.end_frame != b.start_frame:
            raise ValueError("encode_segments needs consecutive segments")
    first = segments[0]
    total = sum(s.n_frames for s in segments)
    if start is None:
        from_frame, start_state = fresh_start_frame(job, first.start_frame), None
    else:
        from_frame, start_state = start
        if not job.params.start_frame <= from_frame <= first.start_frame:
            raise ValueError(f"a run of segments from frame {first.start_frame} cannot start at frame {from_frame}")
    capture = frozenset({first.start_frame, *(s.end_frame for s in segments)})
    engine = start_engine(job)
    frames = engine_frames(engine, job, first.start_frame, total, preroll=first.start_frame - from_frame,
                           cancel=cancel, start_state=start_state, states=states, capture=capture)
    if cpu_threads() != 1:  # render and encode overlap in two threads, unless held to one thread
        frames = prefetch(frames, depth=4, name="render-frames")
    try:
        for seg in segments:
            write_video(part_path(seg), frames, n_frames=seg.n_frames, width=job.context.width,
                        height=job.context.height, fps=job.context.fps, audio=None, crf=job.settings.crf,
                        codec=job.settings.video_codec, bitrate=job.settings.video_bitrate,
                        encoder=job.settings.encoder, preset=encode_speed_preset(job.settings.encode_speed),
                        progress=lambda done, _total, _label, seg=seg: progress(seg, done), cancel=cancel)
            on_done(seg)
    finally:
        frames.close()  # stops and joins the render thread before the engine goes
        engine.close()


def _runs(segments: Sequence[Segment]) -> list[list[Segment]]:
    """Consecutive stretches of ``segments`` (each one rendered with one engine)."""
    runs: list[list[Segment]] = []
    for seg in segments:
        if runs and runs[-1][-1].end_frame == seg.start_frame:
            runs[-1].append(seg)
        else:
            runs.append([seg])
    return runs


def render_segmented(job: RenderJob, out_path: str | os.PathLike[str], *, n_segments: int | None = None,
                     resume: bool = True, progress: ProgressCallback = no_progress,
                     cancel: CancelToken | None = None,
                     log_message: Callable[[str], None] = lambda m: None) -> Path:
    """Render ``job`` to ``out_path`` on this machine, resuming from kept segments (see the module doc)."""
    cancel = cancel or CancelToken()
    fps = job.context.fps
    with open_work_folder(job, out_path, n_segments=n_segments, resume=resume, log_message=log_message) as work:
        plan = work.plan
        todo = [s for s in plan if not work.is_done(s)]
        total = job.range.n_frames
        kept = sum(s.n_frames for s in plan if work.is_done(s))
        if kept and todo:
            log_message(f"resuming at {format_time(float(todo[0].start_frame / fps))}: {len(plan) - len(todo)} of "
                        f"{len(plan)} segments kept from the interrupted export")
        done_frames = kept
        progress(done_frames, total, "resuming" if kept else "rendering")

        def seg_progress(seg: Segment, done: int) -> None:
            progress(done_frames + done, total, f"segment {seg.index + 1}/{len(plan)}")

        def seg_done(seg: Segment) -> None:
            nonlocal done_frames
            work.mark_done(seg)
            done_frames += seg.n_frames

        states: dict[int, dict[str, np.ndarray]] = {}

        def seg_done_keeping_state(seg: Segment) -> None:
            work.save_state(seg.end_frame, states.pop(seg.end_frame, None))  # before it counts as done
            seg_done(seg)

        for run in _runs(todo):
            states.clear()
            start = None
            if keeps_state(job):
                # exactly where a straight render is at the run's start: from the nearest kept state
                # (the previous segment's end, normally), else from the first prepared frame
                start = work.latest_state(run[0].start_frame, not_before=job.params.start_frame) \
                    or (job.params.start_frame, None)
            encode_segments(job, run, work.part_path, on_done=seg_done_keeping_state, progress=seg_progress,
                            cancel=cancel, start=start, states=states if keeps_state(job) else None)
        cancel.raise_if_cancelled("the video export")
        progress(total, total, "joining")
        out = join_parts([work.part_path(s) for s in plan], out_path, fps=fps, n_frames=total, audio=job.audio,
                         audio_sample_rate=job.settings.sample_rate)
        work.remove()
    return out
