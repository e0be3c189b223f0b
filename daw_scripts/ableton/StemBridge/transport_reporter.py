"""Reads Live's song transport and sends it as /stembridge/transport, and its locators as
/stembridge/cue_points. No Live imports here.

Live runs Remote Scripts on its main thread and hangs if a script starts threads or blocks, so
this class only reacts: Live calls the property listeners on changes, and the surface calls
:meth:`TransportReporter.tick` from ``update_display`` (about every 100 ms). Each call reads a
handful of song properties, packs one datagram and hands it to ``send`` (a non-blocking UDP
socket in the surface). Kept free of Live modules so it is tested against a stand-in ``song``.
"""

from . import config
from .osc_encode import encode_message

# Song properties with a listener. current_song_time fires continuously while playing, so it only
# triggers a send when the song time jumped (locate, loop wrap) or moved while stopped; the
# periodic tick carries the steady progress.
LISTENED_PROPERTIES = (
    "is_playing",
    "tempo",
    "signature_numerator",
    "signature_denominator",
    "loop",
    "loop_start",
    "loop_length",
    "current_song_time",
)

# A song time further than this (beats) from where the last message extrapolates is a jump.
JUMP_BEATS = 0.1


class TransportReporter:
    """Sends the transport on every change and every ``interval_s``.

    song: Live's ``Song`` (or a stand-in with the same properties and add_/remove_*_listener).
    send: callable(bytes) -> bool, must not block.
    now: callable() -> seconds, monotonic.
    log: callable(str) for Live's Log.txt, or None.
    """

    def __init__(self, song, send, now, log=None, interval_s=config.SEND_INTERVAL_S):
        self._song = song
        self._send = send
        self._now = now
        self._log = log
        self._interval_s = interval_s
        self._listeners = {}
        self._sequence = 0
        self._last = None  # (sent_at, song_time, tempo, playing) of the last message sent
        self._cues_sent_at = None
        self.sent = 0
        self.dropped = 0

    def attach(self):
        for prop in LISTENED_PROPERTIES:
            callback = self._make_listener(prop)
            getattr(self._song, f"add_{prop}_listener")(callback)
            self._listeners[prop] = callback
        try:  # the locator list (a set that Live is still loading may refuse it: the tick resends)
            self._song.add_cue_points_listener(self.send_cues)
            self._listeners["cue_points"] = self.send_cues
        except (RuntimeError, AttributeError):
            pass
        self.send_now()
        self.send_cues()

    def detach(self):
        for prop, callback in self._listeners.items():
            try:
                getattr(self._song, f"remove_{prop}_listener")(callback)
            except (RuntimeError, AttributeError, ValueError):
                pass  # the song is already gone (Live closing a set)
        self._listeners = {}

    def _make_listener(self, prop):
        def listener():
            self._on_change(prop)
        return listener

    def _on_change(self, prop):
        if prop != "current_song_time":
            self.send_now()
            return
        if self._last is None:
            self.send_now()
            return
        sent_at, song_time, tempo, playing = self._last
        now_time = self._song.current_song_time
        expected = song_time + ((self._now() - sent_at) * tempo / 60.0 if playing else 0.0)
        limit = JUMP_BEATS if self._song.is_playing else 1e-6
        if abs(now_time - expected) > limit:
            self.send_now()

    def tick(self):
        """Called from the surface's update_display (~every 100 ms)."""
        if self._last is None or self._now() - self._last[0] >= 0.5 * self._interval_s:
            self.send_now()
        if self._cues_sent_at is None or self._now() - self._cues_sent_at >= config.CUE_INTERVAL_S:
            self.send_cues()

    def cue_message(self):
        """The /stembridge/cue_points datagram: name, time (beats) per locator."""
        args = []
        for cue in list(self._song.cue_points)[:config.MAX_CUES]:
            args += [str(cue.name), float(cue.time)]
        return encode_message(config.CUE_ADDRESS, "," + "sd" * (len(args) // 2), tuple(args))

    def send_cues(self):
        self._cues_sent_at = self._now()
        try:
            datagram = self.cue_message()
        except Exception as e:  # a locator Live refuses to read mid-load: the next tick tries again
            self._note(f"StemBridge: could not read the locators ({e})")
            return
        if not self._send(datagram):
            self.dropped += 1

    def message(self):
        """The /stembridge/transport datagram for the song as it is now."""
        song = self._song
        self._sequence = (self._sequence + 1) & 0x7FFFFFFF
        args = (
            config.PROTOCOL_VERSION,
            self._sequence,
            1 if song.is_playing else 0,
            float(song.tempo),
            float(song.current_song_time),
            int(song.signature_numerator),
            int(song.signature_denominator),
            1 if song.loop else 0,
            float(song.loop_start),
            float(song.loop_length),
        )
        return encode_message(config.ADDRESS, config.TYPETAGS, args)

    def send_now(self):
        song = self._song
        try:
            datagram = self.message()
        except Exception as e:  # a property Live refuses to read mid-load: skip this one
            self._note(f"StemBridge: could not read the transport ({e})")
            return
        self._last = (self._now(), float(song.current_song_time), float(song.tempo), bool(song.is_playing))
        if self._send(datagram):
            self.sent += 1
        else:
            self.dropped += 1
            if self.dropped == 1:
                self._note(f"StemBridge: could not send to {config.HOST}:{config.PORT} (is stembridge running?)")

    def _note(self, text):
        if self._log is not None:
            self._log(text)
