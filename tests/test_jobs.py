"""Cancellation tokens and the frame prefetcher."""

from __future__ import annotations

import threading
import time

import pytest

from bridge.errors import Cancelled
from bridge.jobs import CancelToken, prefetch


def test_cancel_token():
    t = CancelToken()
    t.raise_if_cancelled()
    t.cancel()
    with pytest.raises(Cancelled, match="the export"):
        t.raise_if_cancelled("the export")


def test_prefetch_keeps_order_and_runs_ahead_in_another_thread():
    seen_threads = set()

    def gen():
        for i in range(50):
            seen_threads.add(threading.current_thread().name)
            yield i

    assert list(prefetch(gen(), depth=3, name="pf-test")) == list(range(50))
    assert seen_threads == {"pf-test"}


def test_prefetch_reraises_producer_errors():
    def gen():
        yield 1
        raise ValueError("broken frame 2")

    it = prefetch(gen())
    assert next(it) == 1
    with pytest.raises(ValueError, match="broken frame 2"):
        next(it)


def test_prefetch_stops_the_producer_when_the_consumer_stops():
    produced = []

    def gen():
        for i in range(10_000):
            produced.append(i)
            yield i

    it = prefetch(gen(), depth=2)
    assert [next(it) for _ in range(5)] == [0, 1, 2, 3, 4]
    it.close()
    n = len(produced)
    time.sleep(0.2)
    assert len(produced) == n <= 5 + 2 + 2  # bounded look-ahead, nothing produced after close
