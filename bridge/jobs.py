"""Cooperative cancellation and progress reporting for long jobs (analysis, separation, export).

Job code checks a :class:`CancelToken` per chunk / per frame and reports progress through a plain
callable, so the same job runs under tqdm in the CLI, a progress bar in the GUI, or nothing in tests.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol, TypeVar

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
T = TypeVar("T")


def prefetch(iterable: Iterable[T], *, depth: int = 4, name: str = "prefetch") -> Iterator[T]:
    """Iterate ``iterable`` in a background thread, ``depth`` items ahead of the consumer.

    Used to overlap frame rendering (numpy/OpenCV, GIL released) with encoding (FFmpeg threads):
    the two then cost about max(render, encode) per frame instead of their sum. An exception in
    the producer is re-raised in the consumer; when the consumer stops early (break, exception,
    cancel), the producer is told to stop and is joined.
    """
    q: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in iterable:
                while not stop.is_set():
                    try:
                        q.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(("done", None))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            q.put(("error", e))

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            kind, value = q.get()
            if kind == "item":
                yield value  # type: ignore[misc]
            elif kind == "error":
                raise value  # type: ignore[misc]
            else:
                return
    finally:
        stop.set()
        while thread.is_alive():  # drain so a producer blocked on put() can see the stop flag
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)
