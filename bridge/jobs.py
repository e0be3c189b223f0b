"""Cooperative cancellation and progress reporting for long jobs (analysis, separation, export).

Job code checks a :class:`CancelToken` per chunk / per frame and reports progress through a plain
callable, so the same job runs under tqdm in the CLI, a progress bar in the GUI, or nothing in tests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from bridge.errors import Cancelled


class CancelToken:
    """A thread-safe flag: the owner calls :meth:`cancel`, the worker calls :meth:`raise_if_cancelled`."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self, what: str = "the job") -> None:
        if self._event.is_set():
            raise Cancelled(what)


class Progress(Protocol):
    """``progress(done, total, label)``: ``done`` out of ``total`` units (frames, chunks, stems)."""

    def __call__(self, done: int, total: int, label: str = "") -> None: ...


def no_progress(done: int, total: int, label: str = "") -> None:  # noqa: ARG001
    """A :class:`Progress` that ignores everything (tests, batch use)."""


ProgressCallback = Callable[[int, int, str], None]
