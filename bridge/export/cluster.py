"""Segment-parallel export on a Ray cluster (``stembridge render --ray auto|HOST:PORT``).

The driver (the machine with the project) resolves the project into a
:class:`~bridge.export.render.RenderJob` — mapped parameters, sections, engine settings and, for
the shader engine, the stems' audio — and puts it once into Ray's object store. Each segment of the
plan (:func:`bridge.export.segments.plan_segments`, cut at sections / downbeats / keyframes) is a
Ray task, a pure function of (job, segment): it starts the engine, renders the pre-roll and the
segment, encodes it with the same codec parameters as every other segment and returns the file's
bytes. Workers need stembridge installed (and the diffusion model for the lcm engine), never the
project's files. The driver writes each returned segment into the work folder beside the output as
it arrives (so a killed driver resumes with them), then joins them without re-encoding and muxes
the audio once.

Exact frames at the cuts (issue 18): a task cannot know the feedback state a straight render has at
its segment's start, so for an engine whose state can be read (:data:`bridge.visuals.STATE_ENGINES`)
its pre-roll is a guess the driver checks. The task returns, with the segment, a digest of the
state its pre-roll reached and the state it ended with; the driver accepts segments in order, and
one whose start digest differs from the accepted previous segment's end state is rendered again,
starting from that end state (no pre-roll). The pre-roll is as long as the engine's feedback needs
at that cut (:func:`bridge.export.preroll.state_memory_frames`), so it rarely misses. Where that is
longer than pays on this many task slots (:func:`bridge.export.preroll.needs_relay`: on 2 slots,
longer than the segment; ink's float fluid never forgets; glitch needs ~12 s; procedural trails up
to 10 s), those segments wait instead for a **relay** task, which advances one engine
through the song without reading frames back or encoding them (a Ray generator task) and yields the
exact state at each of their starts; each is submitted as soon as its state arrives, and the
driver's digest check still verifies it. The relay is serial, but costs only the engine's drawing
(the procedural engine 0.23 of a frame's render and encode, the shader's ink 0.72 on llvmpipe at
320x180; far less on a GPU, where read-back and encoding dominate). Accepted segments and their end
states go into the work folder, so a resumed render starts from them.

Each task asks for ``cpus_per_task`` CPUs (default one; plus one GPU for the diffusion engine when
the cluster has GPUs) and renders with exactly that many threads: OpenCV, llvmpipe, x264 and the
BLAS pools are sized to the allotment in the worker before the engine starts
(:func:`bridge.export.threads.limit_cpu_threads`). Without that, every task would use all of its
machine's cores, and N tasks on one machine could not be faster than one. A task whose
worker dies is retried (``max_retries``) on any worker; an error in the render itself (a bad
setting) is not retried and is reported as it would be locally.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bridge.errors import BridgeError, Cancelled, MissingDependency, RenderError
from bridge.fsutil import atomic_write_bytes
from bridge.jobs import CancelToken, ProgressCallback, no_progress

if TYPE_CHECKING:
    from bridge.export.job import RenderJob
    from bridge.export.segments import Segment

log = logging.getLogger(__name__)

#: Times a segment is re-run after its worker died (node lost, process killed, out of memory).
MAX_RETRIES = 3
#: Seconds between progress reports from a running task.
REPORT_INTERVAL_S = 0.5


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise MissingDependency("ray", feature="Rendering on a Ray cluster (--ray)", extra="cluster") from exc
    return ray


def connect(address: str) -> bool:
    """Connect this process to Ray. Returns True when this call started the connection.

    ``auto``: a cluster already running on this machine (``ray start --head``), else a new local
    one with a worker per CPU core. ``HOST:PORT``: the head's GCS address (``ray start --head``
    prints it). A process already connected (``ray.init`` done by the caller) is left as it is.
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    address = (address or "").strip()
    if not address:
        raise RenderError("--ray needs 'auto' or a cluster's HOST:PORT (as `ray start --head` prints it).")
    kwargs = {"logging_level": logging.WARNING, "log_to_driver": False}
    if address == "auto":
        try:
            ray.init(address="auto", **kwargs)
        except ConnectionError:
            ray.init(include_dashboard=False, **kwargs)  # no cluster yet: this machine's cores
        return True
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise RenderError(f"--ray {address!r} is not HOST:PORT; use e.g. --ray 10.0.0.5:6379 or --ray auto.")
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, TimeoutError, RuntimeError) as exc:
        raise RenderError(f"Cannot reach the Ray cluster at {address}: {exc}. Check that `ray start --head` "
                          "runs there and that the port is open from this machine.") from exc
    return True


@dataclass(frozen=True)
class SegmentResult:
    """What a segment task returns: the encoded segment, and the engine states at its two ends
    (engines with ``get_state``; None otherwise)."""

    data: bytes
    #: :func:`bridge.export.segments.state_digest` of the state the segment started from.
    start_digest: str | None
    #: The state after its last frame (what the next segment must start from).
    end_state: dict | None


def render_segment_bytes(job: RenderJob, index: int, start_frame: int, n_frames: int, *,
                         report: Callable[[int, int], None] = lambda i, d: None,
                         fault_marker: str | None = None, n_threads: int = 0,
                         start_state: dict | None = None) -> SegmentResult:
    """One segment as an encoded video-only MP4 (bytes): what a Ray task runs. Pure in its inputs.

    ``n_threads``: the task's CPU allotment; this process's render thread pools are sized to it
    first (0: left as they are). ``start_state``: the engine's exact state at ``start_frame`` (no
    pre-roll); None: a pre-roll from a fresh engine (:func:`bridge.export.preroll.segment_preroll`).

    ``fault_marker`` (tests): if that file does not exist yet, create it and kill this process half
    way through the segment — a worker lost mid-render, which Ray then retries.
    """
    import tempfile

    from bridge.export.segments import Segment, encode_segments, state_digest
    from bridge.export.threads import limit_cpu_threads

    if n_threads:
        limit_cpu_threads(n_threads)
    seg = Segment(index, start_frame, n_frames)
    die = fault_marker is not None and not os.path.exists(fault_marker)
    last = [0.0]

    def progress(_seg: Segment, done: int) -> None:
        if die and done >= max(1, n_frames // 2):
            Path(fault_marker).touch()  # type: ignore[arg-type]
            os.kill(os.getpid(), 9)  # SIGKILL: no cleanup, as when a node is lost
        now = time.monotonic()
        if now - last[0] >= REPORT_INTERVAL_S or done == n_frames:
            last[0] = now
            report(index, done)

    with tempfile.TemporaryDirectory(prefix="stembridge-seg-") as tmp:
        from bridge.export.segments import part_suffix

        path = Path(tmp) / f"segment-{index:04d}{part_suffix(job.settings.video_codec)}"
        states: dict[int, dict] = {}
        encode_segments(job, [seg], lambda _s: path, progress=progress, states=states,
                        start=None if start_state is None else (start_frame, start_state))
        return SegmentResult(path.read_bytes(), state_digest(states.get(seg.start_frame)),
                             states.get(seg.end_frame))


_REMOTE: dict[str, Any] = {}


def _remote_parts() -> tuple[Any, Any]:
    """The Ray task and the progress board actor class (defined once, after ray is imported)."""
    if not _REMOTE:
        ray = import_ray()

        @ray.remote
        def render_segment_task(job, index, start_frame, n_frames, board, fault_marker, n_threads, start_state):
            def report(i: int, done: int) -> None:
                board.report.remote(i, done)  # fire and forget

            return render_segment_bytes(job, index, start_frame, n_frames, report=report,
                                        fault_marker=fault_marker, n_threads=n_threads, start_state=start_state)

        @ray.remote(num_cpus=0)
        class ProgressBoard:
            def __init__(self) -> None:
                self.done: dict[int, int] = {}

            def report(self, index: int, done: int) -> None:
                self.done[index] = done

            def snapshot(self) -> dict[int, int]:
                return dict(self.done)

        @ray.remote
        def relay_task(job, from_frame, start_state, to_frames, n_threads):
            """The relay: the exact engine state at each of ``to_frames``, yielded as it gets there."""
            from bridge.export.segments import advance_states
            from bridge.export.threads import limit_cpu_threads

            if n_threads:
                limit_cpu_threads(n_threads)
            yield from advance_states(job, from_frame, start_state, to_frames)

        _REMOTE.update(task=render_segment_task, board=ProgressBoard, relay=relay_task)
    return _REMOTE["task"], _REMOTE["board"]


def task_options(cpus_per_task: int, *, use_gpu: bool = False, max_retries: int = MAX_RETRIES) -> dict[str, Any]:
    """The Ray options of a segment task: its CPUs (and GPU), retries, and the thread variables.

    The variables go in the task's ``runtime_env``, so Ray runs it in worker processes started with
    them (one pool of workers per distinct environment): llvmpipe sizes its rasterizer threads once
    per process, before any task code could change them (see :mod:`bridge.export.threads`).
    """
    from bridge.export.threads import thread_env

    return {"max_retries": max_retries, "retry_exceptions": False, "num_cpus": cpus_per_task,
            "num_gpus": 1 if use_gpu else 0, "runtime_env": {"env_vars": thread_env(cpus_per_task)}}


def _label(plan: tuple[Segment, ...], done: set[int], running: dict[int, int]) -> str:
    parts = [f"{len(done)}/{len(plan)} segments done"]
    if running:
        parts.append("running " + " ".join(
            f"#{i + 1}:{100 * d // max(1, plan[i].n_frames)}%" for i, d in sorted(running.items())))
    return ", ".join(parts)


def render_on_ray(job: RenderJob, out_path: str | os.PathLike[str], *, address: str = "auto",
                  n_segments: int | None = None, resume: bool = True, progress: ProgressCallback = no_progress,
                  cancel: CancelToken | None = None, log_message: Callable[[str], None] = lambda m: None,
                  max_retries: int = MAX_RETRIES, cpus_per_task: int = 1,
                  _fault_marker: str | os.PathLike[str] | None = None) -> Path:
    """Render ``job`` to ``out_path`` with one Ray task per segment; resumable like a local render.

    ``n_segments``: default two per task slot (the cluster's CPUs / ``cpus_per_task``, or its
    GPUs for the diffusion engine), at least one per ~10 s. ``cpus_per_task``: CPUs each task
    asks Ray for, and the threads its render and encoder use.
    Cancelling stops the running tasks; finished segments stay for a resume.
    """
    from bridge.export.join import join_parts
    from bridge.export.preroll import keeps_state, needs_relay, preroll_is_exact
    from bridge.export.segments import SEGMENT_SECONDS, format_time, open_work_folder, state_digest

    if isinstance(cpus_per_task, bool) or not isinstance(cpus_per_task, int) or cpus_per_task < 1:
        raise RenderError(f"--ray-cpus {cpus_per_task!r} is not a whole number ≥ 1; use e.g. --ray-cpus 1 (one CPU "
                          "and one thread per segment task) or --ray-cpus 4.")
    cancel = cancel or CancelToken()
    ray = import_ray()
    started = connect(address)
    try:
        resources = ray.cluster_resources()
        use_gpu = job.engine_key == "lcm" and resources.get("GPU", 0) >= 1
        cpus = resources.get("CPU", 1)
        if cpus_per_task > cpus:
            raise RenderError(f"--ray-cpus {cpus_per_task} asks for more CPUs per task than the Ray cluster has "
                              f"({cpus:g}); use --ray-cpus {max(1, int(cpus))} or fewer.")
        slots = max(1, int(resources.get("GPU", 1) if use_gpu else cpus // cpus_per_task))
        if n_segments is None:
            n_segments = max(2 * slots, round(job.range.n_frames / (SEGMENT_SECONDS * float(job.context.fps))))
        if job.engine_key == "lcm" and not use_gpu:
            log_message("the Ray cluster has no GPU: the diffusion segments render on CPUs")
        with open_work_folder(job, out_path, n_segments=n_segments, resume=resume, log_message=log_message) as work:
            plan = work.plan
            todo = [s for s in plan if not work.is_done(s)]
            total = job.range.n_frames
            if len(todo) < len(plan):
                first = todo[0].start_frame if todo else job.range.start_frame + total
                log_message(f"resuming at {format_time(float(first / job.context.fps))}: "
                            f"{len(plan) - len(todo)} of {len(plan)} segments kept from the interrupted export")
            log_message(f"rendering {len(todo)} segments on Ray ({slots} {'GPU' if use_gpu else 'task'} slots, "
                        f"{cpus_per_task} CPU{'s' if cpus_per_task > 1 else ''} per task)")
            task, board_cls = _remote_parts()
            relay_task = _REMOTE["relay"]
            board = board_cls.remote()
            job_ref = ray.put(job.without_audio())  # once into the object store; tasks share it
            options = task_options(cpus_per_task, use_gpu=use_gpu, max_retries=max_retries)
            marker = None if _fault_marker is None else str(_fault_marker)
            exact_states = keeps_state(job)
            # end states of accepted segments, by frame: the kept one a resumed segment starts from
            ends: dict[int, dict] = {}

            def submit(seg: Segment, start_state: dict | None = None) -> Any:
                return task.options(**options).remote(job_ref, seg.index, seg.start_frame, seg.n_frames, board,
                                                      marker, cpus_per_task, start_state)

            pending: dict[Any, Segment] = {}
            for s in todo:
                kept = work.load_state(s.start_frame) if exact_states and s.index - 1 in work.done else None
                if kept is not None:
                    ends[s.start_frame] = kept
            exact_start = {s.index for s in todo if s.start_frame in ends}  # started from an exact state
            # segments whose feedback outlives any pre-roll wait for the relay's exact state at their start
            relay = [s for s in todo if s.index not in exact_start and needs_relay(job, s, slots=slots)]
            relay_gen = None
            if relay:
                first = todo[0]
                from_frame, from_state = ((first.start_frame, ends[first.start_frame]) if first.start_frame in ends
                                          else (job.params.start_frame, None))
                relay_gen = relay_task.options(**options).remote(
                    job_ref, from_frame, from_state, [s.start_frame for s in relay], cpus_per_task)
                log_message(f"{len(relay)} of {len(todo)} segments start from the exact engine state a relay task "
                            "brings (their feedback outlives a pre-roll); the others pre-roll")
            relayed = {s.index for s in relay}
            relay_next = 0  # the relay's next state is for relay[relay_next]
            for s in todo:
                if s not in relay:
                    pending[submit(s, ends.get(s.start_frame))] = s
            finished: dict[int, Any] = {}  # index → SegmentResult, written but not yet accepted

            def accept() -> None:
                """Accept finished segments in plan order while each started from the state the
                previous one ended with; a segment that did not is submitted again from that state."""
                for seg in plan:
                    if work.is_done(seg):
                        continue
                    result = finished.get(seg.index)
                    if result is None:
                        return  # the segments after it wait for its end state
                    # checked unless it started from an exact kept state or pre-rolled from the song's
                    # start; a relayed start is always checked (a relay is exact by design, and this
                    # check is what proves it, even where a pre-roll would have been exact too)
                    if exact_states and seg.index not in exact_start and (
                            seg.index in relayed or not preroll_is_exact(job, seg.start_frame)):
                        before = ends.get(seg.start_frame)
                        if before is None and seg.index - 1 in work.done:
                            raise RenderError(f"The work folder '{work.path}' lacks the engine state at frame "
                                              f"{seg.start_frame} that segment {seg.index + 1} must start from; "
                                              "render again with --no-resume.")
                        if before is None:
                            return  # the previous segment is not accepted yet
                        if state_digest(before) != result.start_digest:
                            why = ("the relay's state at its start differs from that" if seg.index in relayed
                                   else "its pre-roll did not rebuild the feedback exactly")
                            log_message(f"segment {seg.index + 1}: {why}; rendering it again from segment "
                                        f"{seg.index}'s end state")
                            del finished[seg.index]
                            exact_start.add(seg.index)
                            pending[submit(seg, before)] = seg
                            return
                    del finished[seg.index]
                    if exact_states:
                        work.save_state(seg.end_frame, result.end_state)  # before the segment counts as done
                        if result.end_state is not None:
                            ends[seg.end_frame] = result.end_state
                    work.mark_done(seg)

            done_frames = sum(s.n_frames for s in plan if work.is_done(s))
            running: dict[int, int] = {}
            shown = done_frames  # a segment rendered again must not move the progress back
            progress(done_frames, total, _label(plan, work.done, running))
            try:
                while pending or relay_next < len(relay):
                    cancel.raise_if_cancelled("the video export")
                    waitables = [*pending, *([relay_gen] if relay_next < len(relay) else [])]
                    ready, _ = ray.wait(waitables, num_returns=len(waitables), timeout=0.25)
                    if relay_gen in ready:
                        ready.remove(relay_gen)
                        while relay_next < len(relay) and relay_gen_ready(ray, relay_gen):
                            seg = relay[relay_next]
                            relay_next += 1
                            try:
                                state_ref = next(relay_gen)
                            except StopIteration:
                                raise RenderError(f"The relay task ended before the engine state at frame "
                                                  f"{seg.start_frame}; render again to resume.") from None
                            pending[submit(seg, state_ref)] = seg  # Ray hands the task the state
                    for ref in ready:
                        seg = pending.pop(ref)
                        result = _result(ray, ref, seg, retries=max_retries)
                        atomic_write_bytes(work.part_path(seg), result.data)
                        finished[seg.index] = result
                        running.pop(seg.index, None)
                    if ready:
                        accept()
                        done_frames = sum(s.n_frames for s in plan if work.is_done(s) or s.index in finished)
                    try:
                        snap = ray.get(board.snapshot.remote(), timeout=5)
                    except Exception:  # noqa: BLE001 - progress is best effort
                        snap = {}
                    running = {i: d for i, d in snap.items() if i not in work.done and i not in finished}
                    shown = max(shown, min(total, done_frames + sum(running.values())))
                    progress(shown, total, _label(plan, work.done, running))
            except BaseException:
                for ref in [*pending, *([relay_gen] if relay_gen is not None else [])]:
                    with contextlib.suppress(Exception):  # stop what still runs; finished segments stay
                        ray.cancel(ref, force=True)
                raise
            finally:
                ray.kill(board)
            if len(work.done) != len(plan):  # cannot happen: every result is accepted or sent again
                raise RenderError(f"{len(plan) - len(work.done)} segments were rendered but not accepted; "
                                  "render again to resume.")
            progress(total, total, "joining")
            out = join_parts([work.part_path(s) for s in plan], out_path, fps=job.context.fps, n_frames=total,
                             audio=job.audio, audio_sample_rate=job.settings.sample_rate)
            work.remove()
            return out
    finally:
        if started:
            ray.shutdown()


def relay_gen_ready(ray: Any, gen: Any) -> bool:
    """Whether the relay generator's next state is in the object store (next() would not block)."""
    ready, _ = ray.wait([gen], timeout=0)
    return bool(ready)


def _result(ray: Any, ref: Any, seg: Segment, *, retries: int) -> SegmentResult:
    """A finished task's bytes; its error as the user would see it locally."""
    try:
        return ray.get(ref)
    except ray.exceptions.TaskCancelledError:
        raise Cancelled("the video export") from None
    except ray.exceptions.RayTaskError as err:
        cause = getattr(err, "cause", None)
        if isinstance(cause, BridgeError):
            raise cause from None
        raise RenderError(f"Segment {seg.index + 1} (frames {seg.start_frame}–{seg.end_frame - 1}) failed on the "
                          f"cluster: {cause or err}") from err
    except ray.exceptions.RayError as err:  # worker or node lost more than max_retries times
        raise RenderError(f"Segment {seg.index + 1} could not be rendered on the cluster after {retries} "
                          f"retries: {err}. Finished segments are kept; run the render again to resume.") from err
