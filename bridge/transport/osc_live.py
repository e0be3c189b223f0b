"""Ableton Live's OSC dialects: AbletonOSC (client mode, we subscribe) and ``/stembridge/transport``
from our own Live remote script."""

from __future__ import annotations

import math

from bridge.transport import osc_protocol as P
from bridge.transport.markers import AbletonCueCollector
from bridge.transport.osc_dialect_base import OscDialect
from bridge.transport.osc_values import _beats, _flag, _integer, _last, _signature, _tempo


class AbletonOscDialect(OscDialect):
    """AbletonOSC in client mode: we subscribe, Live pushes ``/live/song/get/<property> <value>``.

    ``current_song_time`` (beats) is the position fix; ``/live/song/get/beat <int>`` only helps
    when no song-time fix came for 0.5 s (a client that subscribed to beats only).
    ``/live/startup`` (AbletonOSC reloaded) drops every listener in Live: it sets
    ``resubscribe_requested``. Loop settings are kept on the dialect (``loop_on``,
    ``loop_start_beats``, ``loop_length_beats``); they are not part of TransportState.
    """

    source = "ableton_osc"

    def __init__(self) -> None:
        super().__init__()
        self.loop_on = False
        self.loop_start_beats = 0.0
        self.loop_length_beats = 0.0
        self._last_song_time_at = -math.inf
        self.markers = AbletonCueCollector()

    def subscriptions(self) -> list[tuple[str, tuple]]:
        return P.ableton_subscriptions()

    def _handle(self, address: str, args: tuple, t: float) -> bool:
        if address == P.ABLETON_STARTUP:
            self.resubscribe_requested = True
            return False
        value = _last(args)
        if address == P.ABLETON_SONG_TIME:
            beats = _beats(value)
            if beats is None:
                return False
            self._beats.measure(beats, t)
            self._last_song_time_at = t
            return True
        if address in (P.ABLETON_BEAT, P.ABLETON_BEAT_LEGACY):
            beat = _integer(value)
            if beat is None or abs(beat) > P.MAX_ABS_POSITION_BEATS or t - self._last_song_time_at < 0.5:
                return False
            self._beats.measure(float(beat), t)
            return True
        if address == P.ABLETON_IS_PLAYING:
            playing = _flag(value)
            if playing is None:
                return False
            self._set_playing(t, playing)
            return True
        if address == P.ABLETON_TEMPO:
            tempo = _tempo(value)
            if tempo is None:
                return False
            self._set_tempo(t, tempo)
            return True
        if address in (P.ABLETON_SIG_NUMERATOR, P.ABLETON_SIG_DENOMINATOR):
            num, den = self.time_signature
            v = _integer(value)
            sig = _signature(v, den) if address == P.ABLETON_SIG_NUMERATOR else _signature(num, v)
            if sig is None:
                return False
            self.time_signature = sig
            return True
        if address == P.ABLETON_LOOP:
            on = _flag(value)
            if on is not None:
                self.loop_on = on
        elif address == P.ABLETON_LOOP_START:
            v = _beats(value)
            if v is not None:
                self.loop_start_beats = v
        elif address == P.ABLETON_LOOP_LENGTH:
            v = _beats(value)
            if v is not None and v >= 0:
                self.loop_length_beats = v
        return False


class StembridgeOscDialect(OscDialect):
    """``/stembridge/transport``, sent by our Live remote script (daw_scripts/ableton/StemBridge).

    The argument list is ``osc_protocol.STEMBRIDGE_TRANSPORT_ARGS``; extra trailing arguments
    (newer protocol versions) are ignored. A message whose sequence number is up to 64 behind the
    last one within a second is a reordered duplicate and dropped; a bigger step back is the script
    restarting and accepted.
    """

    source = "stembridge_osc"

    def __init__(self) -> None:
        super().__init__()
        self.markers = AbletonCueCollector(address=P.STEMBRIDGE_CUE_POINTS_ADDRESS, ask=False)
        self.loop_on = False
        self.loop_start_beats = 0.0
        self.loop_length_beats = 0.0
        self._last_sequence: int | None = None
        self._last_sequence_at = -math.inf

    def _handle(self, address: str, args: tuple, t: float) -> bool:
        if address != P.STEMBRIDGE_TRANSPORT_ADDRESS or len(args) < len(P.STEMBRIDGE_TRANSPORT_ARGS):
            return False
        f = dict(zip((name for name, _ in P.STEMBRIDGE_TRANSPORT_ARGS), args, strict=False))
        version = _integer(f["protocol_version"])
        sequence = _integer(f["sequence"])
        playing = _flag(f["playing"])
        tempo = _tempo(f["tempo_bpm"])
        song_time = _beats(f["song_time_beats"])
        sig = _signature(_integer(f["signature_numerator"]), _integer(f["signature_denominator"]))
        if version is None or version < 1 or sequence is None or playing is None or tempo is None or song_time is None:
            return False
        if self._last_sequence is not None and t - self._last_sequence_at < 1.0:
            behind = (self._last_sequence - sequence) % 2**31
            if 0 <= behind <= 64:
                return False
        self._last_sequence, self._last_sequence_at = sequence, t
        if sig is not None:
            self.time_signature = sig
        loop_on = _flag(f["loop_on"])
        loop_start, loop_length = _beats(f["loop_start_beats"]), _beats(f["loop_length_beats"])
        if loop_on is not None and loop_start is not None and loop_length is not None and loop_length >= 0:
            self.loop_on, self.loop_start_beats, self.loop_length_beats = loop_on, loop_start, loop_length
        self._set_tempo(t, tempo)
        self._set_playing(t, playing)
        self._beats.measure(song_time, t)
        return True
