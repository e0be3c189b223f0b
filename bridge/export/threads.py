"""How many CPU threads one render may use: explicit, so that a Ray task uses what it asked for.

A render has four thread pools, each sized to every core of the machine by default: OpenCV's
(the procedural engine), Mesa llvmpipe's rasterizer threads (the shader engine without a GPU),
libx264's frame threads (the encoder) and the BLAS / OpenMP pools (numpy, torch). A Ray task that
asks for one CPU but then runs all four at full width takes the whole machine, so two such tasks
cannot run faster than one. :func:`limit_cpu_threads` sizes all four to the task's allotment, in
the process that renders, before the engine and the encoder are made.

The budget is process state because the pools are (cv2.setNumThreads, the BLAS pools, the GL
driver are per process). ``0`` (the default) leaves every pool at its own default: all cores.
A budget of 1 also renders and encodes one after the other instead of overlapping them in two
threads (:func:`bridge.export.segments.encode_segments`).

llvmpipe reads ``LP_NUM_THREADS`` once, when the first GL context of a process is made, and keeps
its rasterizer threads for the life of the process: the limit must come before the first context.
Ray tasks therefore get the variables of :func:`thread_env` in their ``runtime_env``: Ray starts
separate worker processes for each distinct environment, so a worker never carries another
allotment's GL driver.
"""

from __future__ import annotations

import os
import sys

#: The environment variables read by thread pools that are sized when a library loads.
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                   "LP_NUM_THREADS")

_budget = 0
_blas_limit = None  # threadpoolctl's handle, to restore the original pool sizes
_env_before: dict[str, str | None] | None = None  # the variables as they were before the first limit


def cpu_threads() -> int:
    """The thread budget of this process: 0 = every pool at its default (all cores), else N."""
    return _budget


def thread_env(n_threads: int) -> dict[str, str]:
    """The environment variables that size the pools of a process started with them (empty for 0)."""
    if not n_threads:
        return {}
    env = dict.fromkeys(THREAD_ENV_VARS, str(n_threads))
    # llvmpipe: 0 rasterizes in the calling thread; N > 1 adds N rasterizer threads beside it
    env["LP_NUM_THREADS"] = "0" if n_threads == 1 else str(n_threads)
    return env


def limit_cpu_threads(n_threads: int) -> int:
    """Size every render thread pool in this process to ``n_threads`` (0: back to the defaults).

    Returns the budget set. Call it before the engine starts (the GL context reads the variable
    once, see the module doc).
    """
    global _budget, _blas_limit, _env_before
    if isinstance(n_threads, bool) or not isinstance(n_threads, int) or n_threads < 0:
        raise ValueError(f"a thread budget of {n_threads!r} is not a whole number ≥ 0; use e.g. 1, 2, or 0 "
                         "for every core")
    import cv2

    _budget = n_threads
    if _env_before is None:
        _env_before = {name: os.environ.get(name) for name in THREAD_ENV_VARS}
    for name, value in _env_before.items():  # back to the process's own settings, then the limit
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    os.environ.update(thread_env(n_threads))
    cv2.setNumThreads(n_threads or -1)  # -1: OpenCV's default, all cores
    # BLAS / OpenMP pools already loaded (numpy's, torch's) are resized at run time by threadpoolctl
    # (the scikit-learn project's tool for exactly this; the variables above only reach pools not
    # loaded yet).
    from threadpoolctl import threadpool_limits

    if _blas_limit is not None:
        _blas_limit.restore_original_limits()
        _blas_limit = None
    if n_threads:
        _blas_limit = threadpool_limits(limits=n_threads)
    if "torch" in sys.modules and n_threads:
        sys.modules["torch"].set_num_threads(n_threads)
    return _budget
