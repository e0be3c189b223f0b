"""Keyframes of a feedback engine rendered in a child process, off the GIL of the app's threads.

The procedural and shader engines render keyframes with Python between their native calls; on the
model worker thread that Python competes with ``frame_at`` (the GUI timer's thread) for the GIL, and
``frame_at``'s p99 under load missed its 5 ms goal (benchmarks/preview_latency.py measures both
paths in one run). Here the worker thread only hands a keyframe's rows to one child process and
waits on a pipe (the GIL released) for the picture.

The child is a plain ``concurrent.futures`` process pool of one worker (started from a fork server,
never forked from the threaded app): jobs are plain data (the render context, the rows), the engine is built and
started in the child from the same factory and settings, and an engine's exception comes back as
itself. Determinism is the engine's: a keyframe rendered here equals one rendered in-thread.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
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


def _child_init(nice: int) -> None:
    if nice and hasattr(os, "nice"):
        try:
            os.nice(nice)
        except OSError:  # not allowed here: the child runs at the app's priority
            pass


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
        self._pool = ProcessPoolExecutor(max_workers=1, mp_context=_mp_context(), initializer=_child_init,
                                         initargs=(KEYFRAME_NICE if nice is None else nice,))
        self._started = False
        try:
            self.configure(name, settings)
        except BaseException:
            self.close()
            raise

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            # waits on a pipe: the GIL is free for frame_at meanwhile
            return self._pool.submit(fn, *args).result()
        except BrokenProcessPool as e:
            raise RenderError(f"the preview's keyframe process stopped ({e}); the next edit starts a new one") from e

    def configure(self, name: str, settings: Mapping[str, Any]) -> None:
        """Another engine or settings in the same child (it stays up: spawning costs ≈0.5 s)."""
        self.name = name
        self._started = False
        self._call(_child_build, name, tuple(sorted(settings.items())))

    def pid(self) -> int:
        """The child's process id."""
        return self._call(os.getpid)

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
        self._pool.shutdown(wait=False, cancel_futures=True)
