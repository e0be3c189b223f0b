"""Ableton Link as a transport source, through the optional ``aalink`` package.

Install with ``pip install "stembridge[link]"``. aalink (and the Link library in it) is GPL-3, so it
stays an optional extra: stembridge itself never imports it unless ``--link`` is used.

Link shares tempo, a beat timeline and its phase (beat modulo the quantum) between peers on the
LAN, plus — when peers enable "Start Stop Sync" — whether the session is playing. It carries no song
position. :class:`LinkTimeline` (pure, no aalink) turns the shared timeline into song positions:

* alone, bar 1 is anchored at the quantum boundary at or before the beat where playing started
  (so our bar lines fall on Link's phase 0, as every Link app's do);
* with another source (``--link --ableton-osc``…), that source's song position picks the bar: the
  offset between the song position and Link's beat is snapped to a whole number of quanta when it
  is within 0.1 quantum of one (Live aligns its bars to the Link phase), so the position keeps
  Link's sub-millisecond phase; the other source also says whether the DAW is playing.

aalink's ``Link`` must be created inside a running asyncio loop, and Link itself multicasts on every
interface, so :class:`LinkSource` runs its own loop in its own thread and only starts when asked.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable

from bridge.errors import MissingDependency, TransportError
from bridge.transport.clock import bar_beat
from bridge.transport.state import TransportState

log = logging.getLogger(__name__)

__all__ = ["LinkSource", "LinkTimeline", "import_aalink"]


def import_aalink():
    """The ``aalink`` module, or :class:`MissingDependency` with the install hint."""
    try:
        import aalink
    except ImportError:
        raise MissingDependency("aalink", feature="Ableton Link sync (--link)", extra="link") from None
    return aalink


class LinkTimeline:
    """Song positions from Link's beat timeline (pure; tested without aalink).

    Parameters
    ----------
    quantum_beats : float
        Link quantum in quarter notes (4 = one 4/4 bar; Live's default).
    time_signature : (int, int)
        Meter reported when no position source gives one.
    """

    SNAP_TOLERANCE_QUANTA = 0.1  # offset within this of whole quanta → keep Link's exact phase
    JUMP_BEATS = 0.25  # a reference position further off than this from ours is a locate/loop

    def __init__(self, *, quantum_beats: float = 4.0, time_signature: tuple[int, int] = (4, 4)) -> None:
        if not (math.isfinite(quantum_beats) and quantum_beats > 0):
            raise ValueError(f"quantum_beats={quantum_beats!r} must be a positive number of quarter notes")
        self.quantum_beats = float(quantum_beats)
        self.time_signature = time_signature
        self.offset_beats: float | None = None  # song beats = Link beat + offset
        self._link_playing = False
        self._stopped_beats = 0.0  # where the song stopped (Link alone): shown while stopped
        self._reference: TransportState | None = None

    def set_reference(self, state: TransportState, *, link_beat: float, t: float) -> None:
        """A song position from another source (its state extrapolated to ``t``, when Link was at
        ``link_beat``)."""
        self._reference = state
        if not state.playing:
            return
        ref_beats = state.position_beats + (t - state.received_at) * state.tempo_bpm / 60.0
        raw = ref_beats - link_beat
        q = self.quantum_beats
        snapped = round(raw / q) * q
        offset = snapped if abs(raw - snapped) <= self.SNAP_TOLERANCE_QUANTA * q else raw
        if self.offset_beats is None or abs(offset - self.offset_beats) > self.JUMP_BEATS:
            self.offset_beats = offset

    def state(self, *, link_beat: float, link_tempo_bpm: float, link_playing: bool, t: float) -> TransportState:
        """The song transport at monotonic time ``t``, when Link's timeline was at ``link_beat``."""
        ref = self._reference
        started = link_playing and not self._link_playing
        self._link_playing = link_playing
        if ref is None and started:
            # bar 1 at the quantum boundary at or before now (1 ms slack: we poll just after a start)
            self.offset_beats = -math.floor((link_beat + 0.001) / self.quantum_beats) * self.quantum_beats
        tempo = link_tempo_bpm if math.isfinite(link_tempo_bpm) and link_tempo_bpm > 0 else 120.0
        signature = ref.time_signature if ref is not None else self.time_signature
        if ref is not None and not ref.playing:
            playing, beats, seconds = False, ref.position_beats, ref.position_seconds
        elif ref is None and not link_playing:
            # Link's timeline runs on while the session is stopped; the song position does not.
            playing, beats = False, self._stopped_beats
            seconds = beats * 60.0 / tempo
        else:
            playing = ref.playing if ref is not None else True
            beats = link_beat + (self.offset_beats or 0.0)
            if ref is not None:
                ref_beats = ref.position_beats + (t - ref.received_at) * ref.tempo_bpm / 60.0
                ref_seconds = ref.position_seconds + (t - ref.received_at)
                seconds = ref_seconds + (beats - ref_beats) * 60.0 / tempo
            else:
                seconds = beats * 60.0 / tempo
                self._stopped_beats = beats
        bar, beat = bar_beat(beats, signature)
        return TransportState(
            playing=playing, tempo_bpm=tempo, position_beats=beats, position_seconds=seconds,
            bar=bar, beat=beat, time_signature=signature, source="link", received_at=t,
        )


class LinkSource:
    """Join the Link session and feed ``sink`` a TransportState every ``poll_interval_s``.

    Parameters
    ----------
    sink : callable(TransportState)
        Usually ``TransportClock.update``; called from the Link thread.
    tempo_bpm : float
        Our tempo proposal when we are the first peer (Link keeps the session's tempo otherwise).
    quantum_beats : float
        Link quantum in quarter notes (4 = a 4/4 bar).
    start_stop_sync : bool
        Follow the session's start/stop (peers must enable "Start Stop Sync", e.g. in Live's Link
        preferences); without it, and without a position source, Link never says "playing".
    poll_interval_s : float
        How often the timeline is read (10 ms: a few hundred bytes per state, nothing to Link).

    :meth:`update` (same signature as ``TransportClock.update``) takes another source's states as
    the song position reference, so ``MidiInput(..., link_source)`` / ``OscListener(..., link_source.update)``
    combine with Link. Never start this on a network you may not multicast on.
    """

    def __init__(
        self,
        sink: Callable[[TransportState], None],
        *,
        tempo_bpm: float = 120.0,
        quantum_beats: float = 4.0,
        start_stop_sync: bool = True,
        poll_interval_s: float = 0.01,
        time_fn: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sink = sink
        self.tempo_bpm = float(tempo_bpm)
        self.start_stop_sync = bool(start_stop_sync)
        self.poll_interval_s = float(poll_interval_s)
        self.time_fn = time_fn
        self.timeline = LinkTimeline(quantum_beats=quantum_beats)
        self.num_peers = 0
        self._aalink = None
        self._link = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._lock = threading.Lock()  # timeline is touched by the Link thread and update() callers

    # -- reference position from another source -------------------------------------------------
    def update(self, state: TransportState) -> None:
        """Use ``state`` (from MIDI clock, MTC or an OSC dialect) as the song-position reference."""
        link = self._link
        if link is None:
            return
        t = self.time_fn()
        try:
            beat = float(link.beat)
        except Exception:  # noqa: BLE001 - the Link object is gone (stopping)
            return
        with self._lock:
            self.timeline.set_reference(state, link_beat=beat, t=t)

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> LinkSource:
        if self._thread is not None:
            return self
        self._aalink = import_aalink()
        self._thread = threading.Thread(target=self._run, name="link", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=5.0)
        if self._error is not None:
            self._thread = None
            raise TransportError(f"Ableton Link could not start: {self._error}") from None
        return self

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:
                pass
        thread.join(timeout=3.0)

    def __enter__(self) -> LinkSource:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the Link thread ----------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:  # noqa: BLE001 - reported to start() or logged
            self._error = e
            self._ready.set()
            log.exception("Ableton Link thread stopped")

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        link = self._aalink.Link(self.tempo_bpm, self._loop)
        link.quantum = self.timeline.quantum_beats
        link.start_stop_sync_enabled = self.start_stop_sync
        link.enabled = True
        self._link = link
        self._ready.set()
        try:
            while not self._stop.is_set():
                t = self.time_fn()
                beat, tempo = float(link.beat), float(link.tempo)
                playing = bool(link.playing) if self.start_stop_sync else False
                self.num_peers = int(link.num_peers)
                with self._lock:
                    state = self.timeline.state(link_beat=beat, link_tempo_bpm=tempo, link_playing=playing, t=t)
                try:
                    self.sink(state)
                except Exception:  # noqa: BLE001 - a failing consumer must not stop Link
                    log.exception("the transport sink raised; Link keeps running")
                try:
                    await asyncio.wait_for(self._stop.wait(), timeout=self.poll_interval_s)
                except TimeoutError:
                    pass
        finally:
            self._link = None
            link.enabled = False
