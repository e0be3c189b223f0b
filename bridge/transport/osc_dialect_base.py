"""The base of every OSC transport dialect (:class:`OscDialect`): the transport as last heard, two
position loops (beats and song seconds), and the TransportState built from them. See
:mod:`bridge.transport.osc_dialects` for the conventions all dialects share."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

from bridge.transport import osc_protocol as P
from bridge.transport.clock import bar_beat
from bridge.transport.markers import MarkerCollector
from bridge.transport.osc_position import PositionLoop
from bridge.transport.state import TransportState

log = logging.getLogger(__name__)


class OscDialect:
    """Base of all dialects: holds the transport as last heard and turns it into TransportStates.

    Subclasses implement ``_handle(address, args, t)`` and return True when the state changed.
    ``subscriptions()`` lists the (address, args) the I/O layer sends to the DAW to start its
    feedback (and re-sends when the DAW went silent or asked for it via ``resubscribe_requested``).
    """

    source = "free"

    def __init__(self) -> None:
        self.playing = False
        self.tempo_bpm = 120.0
        self.time_signature: tuple[int, int] = (4, 4)
        self.internal_errors = 0
        self.resubscribe_requested = False
        self._beats = PositionLoop()  # quarter notes
        self._seconds = PositionLoop()  # song seconds
        self._beats.rate_per_s = self.tempo_bpm / 60.0
        self._seconds.rate_per_s = 1.0
        self._state = TransportState(source=self.source)
        #: The DAW's markers / cue points as they arrive (None: this dialect reports none); see
        #: :mod:`bridge.transport.markers`. Marker messages never change the transport state.
        self.markers: MarkerCollector | None = None

    # public ----------------------------------------------------------------------------------
    @property
    def state(self) -> TransportState:
        """The last state produced (position as of its ``received_at``)."""
        return self._state

    def subscriptions(self) -> list[tuple[str, tuple]]:
        return []

    def handle(self, address: str, args: Sequence[object], timestamp_s: float) -> TransportState | None:
        """Apply one OSC message received at ``timestamp_s`` (time.monotonic() seconds).

        Returns the new state, or None when the message was unknown, malformed or changed nothing.
        Never raises.
        """
        try:
            if not isinstance(address, str) or not isinstance(timestamp_s, (int, float)):
                return None
            t = float(timestamp_s)
            if not math.isfinite(t):
                return None
            if not isinstance(args, (tuple, list)):
                args = (args,) if args is not None else ()
            if self.markers is not None and self.markers.handle(address, tuple(args), t):
                return None
            if not self._handle(address, tuple(args), t):
                return None
            self._state = self._build_state(t)
            return self._state
        except Exception:  # noqa: BLE001 - see module docstring: never let a parser bug kill the thread
            if self.internal_errors == 0:
                log.warning("%s: ignored a message that broke the parser (%r); further ones are counted",
                            type(self).__name__, address, exc_info=True)
            self.internal_errors += 1
            return None

    # for subclasses --------------------------------------------------------------------------
    def _handle(self, address: str, args: tuple, t: float) -> bool:
        raise NotImplementedError

    def _set_tempo(self, t: float, tempo_bpm: float) -> None:
        if abs(tempo_bpm / self.tempo_bpm - 1.0) > 0.01:
            # A real tempo change, or a first tempo replacing the 120 BPM guess: the position
            # extrapolated since the last fix used the old tempo, so the next fix is taken as is
            # rather than worked off 2 ms at a time.
            self._beats.relock()
        self.tempo_bpm = tempo_bpm
        self._beats.set_rate(t, tempo_bpm / 60.0 * self._seconds.rate_per_s)

    def _set_play_rate(self, t: float, rate: float) -> None:
        self._seconds.set_rate(t, rate)
        self._beats.set_rate(t, self.tempo_bpm / 60.0 * rate)

    def _set_playing(self, t: float, playing: bool) -> None:
        self.playing = playing
        self._beats.set_playing(t, playing)
        self._seconds.set_playing(t, playing)

    def _build_state(self, t: float) -> TransportState:
        beats = self._beats.position_at(t)
        seconds = self._seconds.position_at(t)
        spb = 60.0 / self.tempo_bpm
        if beats is None and seconds is None:
            beats = seconds = 0.0
        elif beats is None:
            beats = seconds / spb
        elif seconds is None:
            seconds = beats * spb
        # A fix inside the limits can still convert to one outside them (500 000 bars at 1 BPM is
        # 1.2e8 s): hold every state inside the protocol's range, as each fix is checked against it.
        beats = min(max(beats, -P.MAX_ABS_POSITION_BEATS), P.MAX_ABS_POSITION_BEATS)
        seconds = min(max(seconds, -P.MAX_ABS_POSITION_SECONDS), P.MAX_ABS_POSITION_SECONDS)
        bar, beat = bar_beat(beats, self.time_signature)
        loop = self._beats if self._beats.has_position else self._seconds
        return TransportState(
            playing=self.playing,
            tempo_bpm=self.tempo_bpm,
            position_beats=beats,
            position_seconds=seconds,
            bar=bar,
            beat=beat,
            time_signature=self.time_signature,
            source=self.source,
            received_at=t,
            clock_ratio=loop.clock_ratio,
        )
