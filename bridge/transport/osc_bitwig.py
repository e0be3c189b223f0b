"""Bitwig Studio's OSC dialect, through the DrivenByMoss "Open Sound Control" extension."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from bridge.transport import osc_protocol as P
from bridge.transport.osc_dialect_base import OscDialect
from bridge.transport.osc_values import _flag, _signature, _tempo, _text
from bridge.transport.state import TransportState


class BitwigOscDialect(OscDialect):
    """Bitwig Studio through the DrivenByMoss "Open Sound Control" extension.

    DrivenByMoss sends what changed in one bundle per flush, bracketed by ``/update 1`` …
    ``/update 0``; one state is produced per bundle. ``/beat/str`` "M.Q.S:TT" is the position
    (quarter, sixteenth, hundredths of a sixteenth, with DrivenByMoss' integer quarters-per-bar
    ``4·num // den``); ``/time/str`` is only used when no beat string came, since DrivenByMoss
    derives it from the beats at the current tempo anyway.
    """

    source = "bitwig_osc"
    _BEAT_RE = re.compile(r"^\s*(-?\d{1,7})[.:](\d{1,3})[.:](\d{1,3})(?:[.:](\d{1,4}))?\s*$")
    _TIME_RE = re.compile(r"^\s*(\d{1,4})[.:](\d{1,2})[.:](\d{1,2})(?:[.:](\d{1,3}))?\s*$")
    _SIG_RE = re.compile(r"^\s*(\d{1,2})\s*/\s*(\d{1,2})\s*$")

    def __init__(self) -> None:
        super().__init__()
        self._in_batch_since: float | None = None
        self._dirty = False
        self._beat_str_seen = False
        # the beat string counts hundredths of a sixteenth (1/400 quarter); the time string ms
        self._beats.resolution = 0.0025
        self._seconds.resolution = 0.001

    def subscriptions(self) -> list[tuple[str, tuple]]:
        return [(P.BITWIG_REFRESH, ())]

    def handle(self, address: str, args: Sequence[object], timestamp_s: float) -> TransportState | None:
        # Batches: apply every message, emit once when /update 0 closes the bundle.
        if address == P.BITWIG_UPDATE and isinstance(timestamp_s, (int, float)) and math.isfinite(timestamp_s):
            opening = _flag(args[0]) if isinstance(args, (tuple, list)) and args else None
            if opening is None:
                return None
            if opening:
                self._in_batch_since = float(timestamp_s)
                return None
            self._in_batch_since = None
            if not self._dirty:
                return None
            self._dirty = False
            self._state = self._build_state(float(timestamp_s))
            return self._state
        if self._in_batch_since is not None and isinstance(timestamp_s, (int, float)):
            if timestamp_s - self._in_batch_since > 0.5:  # the closing /update was lost
                self._in_batch_since = None
        state = super().handle(address, args, timestamp_s)
        if state is not None and self._in_batch_since is not None:
            self._dirty = True
            return None
        return state

    def _handle(self, address: str, args: tuple, t: float) -> bool:
        value = args[0] if args else None
        if address == P.BITWIG_PLAY:
            playing = _flag(value)
            if playing is None:
                return False
            self._set_playing(t, playing)
            return True
        if address == P.BITWIG_TEMPO_RAW:
            tempo = _tempo(value)
            if tempo is None:
                return False
            self._set_tempo(t, tempo)
            return True
        if address == P.BITWIG_TIME_SIGNATURE:
            m = self._SIG_RE.match(_text(value) or "")
            sig = _signature(int(m.group(1)), int(m.group(2))) if m else None
            if sig is None:
                return False
            self.time_signature = sig
            return True
        if address == P.BITWIG_BEAT_STR:
            m = self._BEAT_RE.match(_text(value) or "")
            if not m:
                return False
            measure, quarter, sixteenth = int(m.group(1)), int(m.group(2)), int(m.group(3))
            hundredths = int(m.group(4) or 0)
            if quarter < 1 or sixteenth < 1 or sixteenth > 4 or hundredths > 99:
                return False
            num, den = self.time_signature
            quarters_per_bar = max(1, 4 * num // den)
            beats = ((measure - 1) * quarters_per_bar + (quarter - 1) + (sixteenth - 1) * 0.25
                     + hundredths / 100.0 * 0.25)
            self._beats.measure(beats, t)
            self._beat_str_seen = True
            return True
        if address == P.BITWIG_TIME_STR and not self._beat_str_seen:
            m = self._TIME_RE.match(_text(value) or "")
            if not m or int(m.group(2)) > 59 or int(m.group(3)) > 59:
                return False
            seconds = (int(m.group(1)) * 3600 + int(m.group(2)) * 60 + int(m.group(3))
                       + int(m.group(4) or 0) / 1000.0)
            self._seconds.measure(seconds, t)
            return True
        return False
