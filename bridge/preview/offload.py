"""Keyframes of a feedback engine rendered in a child process, off the GIL of the app's threads.

The procedural and shader engines render keyframes with Python between their native calls; on the
model worker thread that Python competes with ``frame_at`` (the GUI timer's thread) for the GIL, and
``frame_at``'s p99 under load missed its 5 ms goal (benchmarks/preview_latency.py measures both
paths in one run). Here the worker thread only hands a keyframe's rows to one child process and
waits on a pipe (the GIL released) for the picture. Measured on a shared 2-core machine at load
7–16: edit → frame 23 ms vs 27–68 ms in-thread; frame_at's wall p99 stayed above 5 ms either way,
as it did with the worker idle (8–20 ms there: the OS's scheduling, not the GIL), its CPU-time
p99 1.9–2.5 ms.

The child is one ``multiprocessing`` process (started from a fork server, never forked from the
threaded app) on one pipe: the worker thread sends a call and waits for its answer, with no thread
in between (a ``concurrent.futures`` pool hops over two more threads of the app per call, each an
OS wake-up: under load that made edit → frame 1.6× slower than rendering in-thread). Calls are
plain data (the render context, the rows); the engine is built and started in the child from the
same factory and settings, and an engine's exception comes back as itself. Determinism is the
engine's: a keyframe rendered there equals one rendered here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from bridge.errors import RenderError
from bridge.visuals.base import RenderContext

log = logging.getLogger(__name__)

#: Scheduling niceness added to the child. 0: on the shared 2-core machine at load 8–14, nice 10
#: doubled edit → frame (the keyframe the producer waits for: 92 vs 46 ms) and its effect on frame_at's
#: p99 was lost in the noise (benchmarks/preview_latency.py --keyframe-nice N to measure it again).
KEYFRAME_NICE = 0

# -- in the child ----------------------------------------------------------------------------------
_CHILD: dict[str, Any] = {}


def _child_main(conn: Any, nice: int) -> None:
    """The child's loop: (function, args) in, ("ok", result) or ("error", exception) out; None or a
    closed pipe ends it."""
    if nice and hasattr(os, "nice"):
        try:
            os.nice(nice)
        except OSError:  # not allowed here: the child runs at the app's priority
            pass
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        fn, args = msg
        try:
            answer: tuple[str, Any] = ("ok", fn(*args))
        except Exception as e:  # noqa: BLE001 - handed back to the caller, who raises it
            answer = ("error", e)
        try:
            conn.send(answer)
        except Exception as e:  # noqa: BLE001 - an exception that does not pickle: its text then
            conn.send(("error", RenderError(f"{type(answer[1]).__name__}: {answer[1]} ({e})")))


def _child_build(name: str, settings: tuple) -> None:
    from bridge.visuals import get_engine

    old = _CHILD.pop("engine", None)
    if old is not None:
        old.close()
    _CHILD.clear()
    _CHILD["engine"] = get_engine(name, **dict(settings))


def _child_start(ctx: RenderContext) -> None:
    _CHILD["engine"].start(ctx)
    _CHILD["ctx"] = ctx


def _child_keyframe(first: int, rows: list[dict[str, float]], sections: list[int], mixes: list[float]) -> np.ndarray:
    """Frames first … first+len(rows)−1 from black; the last one's picture."""
    engine = _CHILD["engine"]
    reset = getattr(engine, "reset", None)
    if callable(reset):
        reset()
    else:
        engine.start(_CHILD["ctx"])
    frame = None
    for n, (row, sec, mix) in enumerate(zip(rows, sections, mixes, strict=True)):
        frame = engine.render(first + n, row, sec, mix)
    return np.ascontiguousarray(frame)


# -- in the app ------------------------------------------------------------------------------------
def _mp_context() -> Any:
    """``forkserver`` where there is one (Linux, macOS): its server is spawned once per app, with the
    engines imported (≈0.5 s), and each keyframe process after that is a fork of it (milliseconds);
    never a fork of this threaded process. ``spawn`` elsewhere (Windows)."""
    import multiprocessing

    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["bridge.visuals.procedural", "bridge.visuals.shader"])
        return ctx
    return multiprocessing.get_context("spawn")


class KeyframeProcess:
    """An engine stand-in for the preview worker: ``render_keyframe`` renders in a child process.

    Parameters
    ----------
    name, settings : the engine and its factory settings (as :func:`bridge.visuals.get_engine` takes).
    nice : added to the child's scheduling niceness (0 = the app's priority; None = KEYFRAME_NICE).
    """

    def __init__(self, name: str, settings: Mapping[str, Any], *, nice: int | None = None) -> None:
        ctx = _mp_context()
        self._conn, child_conn = ctx.Pipe()
        self._proc = ctx.Process(target=_child_main, args=(child_conn, KEYFRAME_NICE if nice is None else nice),
                                 name="stembridge-keyframes", daemon=True)
        self._proc.start()
        child_conn.close()
        self.pid = self._proc.pid
        self._started = False
        try:
            self.configure(name, settings)
        except BaseException:
            self.close()
            raise

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            self._conn.send((fn, args))
            status, value = self._conn.recv()  # waits on the pipe: the GIL is free for frame_at meanwhile
        except (EOFError, OSError) as e:
            raise RenderError(f"the preview's keyframe process stopped (exit code {self._proc.exitcode}); "
                              "the next edit starts a new one") from e
        if status == "error":
            raise value
        return value

    def configure(self, name: str, settings: Mapping[str, Any]) -> None:
        """Another engine or settings in the same child (it stays up: spawning costs ≈0.5 s)."""
        self.name = name
        self._started = False
        self._call(_child_build, name, tuple(sorted(settings.items())))

    def start(self, ctx: RenderContext) -> None:
        self._call(_child_start, ctx)
        self._started = True

    def render_keyframe(self, first: int, rows: list[dict[str, float]], sections: list[int],
                        mixes: list[float]) -> np.ndarray:
        """Frames ``first`` … ``first + len(rows) − 1`` from black (the warm-up, then the keyframe);
        the keyframe's picture, uint8 (h, w, 3)."""
        if not self._started:
            raise RenderError("KeyframeProcess.render_keyframe was called before start(ctx); call start first")
        return self._call(_child_keyframe, first, rows, sections, mixes)

    def close(self) -> None:
        try:
            self._conn.send(None)
        except OSError:
            pass  # gone already
        self._conn.close()
        self._proc.join(timeout=1.0)  # a keyframe in progress finishes first (≤ 0.1 s)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(timeout=1.0)
