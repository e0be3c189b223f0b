"""Pure parsers for the OSC transport dialects of Ableton Live, REAPER, Bitwig and Ardour.

Each dialect turns one decoded OSC message (address, arguments) plus its arrival time into a new
:class:`~bridge.transport.state.TransportState`, or ``None`` when the message changes nothing the
app cares about. No sockets here (that is :mod:`bridge.transport.osc_io`), so every parser is tested
by feeding it messages.

``handle()`` never raises on what a DAW (or anything else on the port) sends: wrong argument types
or counts, NaN, garbage strings and unknown addresses are ignored and the state stays sane (finite,
tempo and meter within range). Values are checked one by one; an unexpected exception inside a
parser is still caught (counted in ``internal_errors`` and logged once) because a bug in one
dialect must never stop the transport thread — the tests assert that this count stays zero.

Positions from these DAWs are coarse: AbletonOSC's ``current_song_time`` listener, Ardour's
feedback and our own Live script arrive every ~50-100 ms, and the value was sampled some
milliseconds before it arrives. Extrapolating each raw value from its arrival time would make the
playhead jitter forwards and backwards by that much. So each dialect runs the position through
:class:`PositionLoop`, a first-order phase-locked loop whose slope is fixed by the known rate
(tempo / 60 beats per second, or 1 s/s): each fix moves the estimate a fraction of the way to the
measurement, real jumps (locate, loop wrap) are taken at once, and small backward corrections are
limited to 2 ms per fix so the playhead never visibly steps back.

Conventions: ``position_beats`` counts quarter notes from song start (what Live's song time and
MIDI clock count); where a DAW only reports bars and beats (REAPER, Ardour) the quarter count
assumes the current meter held since bar 1, and a meter the DAW does not send is inferred from
where the beat count wraps. ``position_seconds`` from a dialect that only knows beats assumes the
current tempo held since the start; the clock's tempo map (when the project has one) is the
better answer for that.
"""

from __future__ import annotations

import logging
import math
import re
from collections import deque
from collections.abc import Sequence

from bridge.transport import osc_protocol as P
from bridge.transport.clock import bar_beat
from bridge.transport.markers import AbletonCueCollector, MarkerCollector, ReaperMarkerCollector
from bridge.transport.state import TransportState

log = logging.getLogger(__name__)

__all__ = [
    "AbletonOscDialect",
    "ArdourOscDialect",
    "BitwigOscDialect",
    "OscDialect",
    "PositionLoop",
    "ReaperOscDialect",
    "StembridgeOscDialect",
    "make_dialect",
]


# --- value coercion: every argument is checked, nothing is trusted ------------------------------

def _number(value: object) -> float | None:
    """A finite float from an OSC argument (int, float, bool or numeric string), else None."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    try:
        if isinstance(value, (int, float)):
            v = float(value)
        elif isinstance(value, str) and len(value) < 64:
            v = float(value.strip())
        else:
            return None
    except (ValueError, OverflowError):
        return None
    return v if math.isfinite(v) else None


def _integer(value: object) -> int | None:
    v = _number(value)
    if v is None or abs(v) > 2**53 or v != math.floor(v):
        return None
    return int(v)


def _flag(value: object) -> bool | None:
    """OSC booleans arrive as T/F, 0/1 ints or floats, or (some bridges) 'true'/'false'."""
    if isinstance(value, str):
        s = value.strip().lower()
        if s in ("1", "true", "on", "yes"):
            return True
        if s in ("0", "false", "off", "no"):
            return False
        return None
    v = _number(value)
    return None if v is None else v != 0.0


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and len(value) < 256 else None


def _tempo(value: object) -> float | None:
    v = _number(value)
    return v if v is not None and P.MIN_TEMPO_BPM <= v <= P.MAX_TEMPO_BPM else None


def _beats(value: object) -> float | None:
    v = _number(value)
    return v if v is not None and abs(v) <= P.MAX_ABS_POSITION_BEATS else None


def _signature(num: int | None, den: int | None) -> tuple[int, int] | None:
    if num is None or den is None:
        return None
    if not 1 <= num <= P.MAX_SIGNATURE_NUMERATOR or den not in P.SIGNATURE_DENOMINATORS:
        return None
    return (num, den)


def _last(args: Sequence[object]) -> object:
    """AbletonOSC object getters prefix ids (track, clip…); song getters send the bare value."""
    return args[-1] if args else None


# --- position smoothing -----------------------------------------------------------------------

class PositionLoop:
    """Position estimate from a coarse, block-quantised stream of song positions.

    A DAW reports the position of the start of the audio block it is processing (or last
    processed), and the message then takes some time to arrive: every fix is at or *behind* the
    true position at its arrival time, by anything from 0 to about one block (plus delivery delay).
    Averaging the fixes therefore lags by about half a block (5.8 ms at 512 samples / 44.1 kHz).
    Instead this fits the **upper envelope** of (arrival time, position) over a sliding window:

    * the slope is the nominal rate (``rate_per_s``: tempo/60 beats per second, or the play rate
      in seconds per second) times ``clock_ratio``, the DAW's sample clock against ours (a DAW's
      audio clock runs up to ~0.5 % off the system clock), estimated by a least-squares line
      through the window and smoothed across windows (it survives jumps and tempo changes: it is a
      property of the audio interface);
    * the offset is the largest of the fixes' positions carried to now along that slope (the fix
      that arrived least late), plus the expected gap between the sample maximum and the true
      envelope, ``span / (n + 1)`` for ``n`` fixes whose lateness spreads uniformly over ``span``
      (learned from full windows): so even the first fix after a jump is unbiased on average.

    A fix further off than ``jump_s`` seconds of song time is a jump (locate, loop wrap, a restart)
    and restarts the window there; a tempo change of more than 1 % (``relock()``) does the same. A
    small rate change (``set_rate``) keeps the window, each fix's lateness preserved. The reported
    position never steps back by more than ``max_step_back_s`` per fix (the rest is worked off over
    the next fixes) so the playhead does not visibly jump backwards; forward corrections are taken
    at once. ``gain`` is the weight of each window's clock-ratio measurement.
    """

    #: bounds of a believable DAW-clock / system-clock ratio; measurements outside are ignored
    MAX_CLOCK_DEVIATION = 0.02

    def __init__(self, *, gain: float = 0.1, jump_s: float = 0.15, max_step_back_s: float = 0.002,
                 window: int = 32, window_s: float = 4.0) -> None:
        self.gain = gain
        self.jump_s = jump_s
        self.max_step_back_s = max_step_back_s
        self.window = int(window)
        self.window_s = float(window_s)
        self.rate_per_s = 0.0  # nominal position units per second while playing
        self.playing = False
        self.clock_ratio = 1.0  # DAW clock / our clock, estimated while playing
        self.span_s: float | None = None  # learned spread of the fixes' lateness (wall seconds)
        self._fixes: deque[tuple[float, float]] = deque()  # (arrival t, value) on the current rate
        self._anchor_t: float | None = None  # the reported line: position _anchor_pos at _anchor_t
        self._anchor_pos = 0.0
        self._relock = True  # next fix restarts the window (first fix, or transport just started)

    @property
    def has_position(self) -> bool:
        return self._anchor_t is not None

    @property
    def slope_per_s(self) -> float:
        """Position units per second of our clock while playing (nominal rate × clock ratio)."""
        return self.rate_per_s * self.clock_ratio

    def position_at(self, t: float) -> float | None:
        if self._anchor_t is None:
            return None
        if not self.playing:
            return self._anchor_pos
        return self._anchor_pos + self.slope_per_s * (t - self._anchor_t)

    def _rebase(self, t: float) -> None:
        pos = self.position_at(t)
        if pos is not None:
            self._anchor_t, self._anchor_pos = t, pos

    def set_rate(self, t: float, rate_per_s: float) -> None:
        """Change the rate from time ``t`` on (positions before ``t`` keep the old rate)."""
        if rate_per_s != self.rate_per_s:
            self._rebase(t)
            d = (rate_per_s - self.rate_per_s) * self.clock_ratio
            # keep each fix's lateness: move it onto the new slope through time t
            self._fixes = deque((tk, vk + d * (tk - t)) for tk, vk in self._fixes)
            self.rate_per_s = rate_per_s

    def set_playing(self, t: float, playing: bool) -> None:
        if playing != self.playing:
            self._rebase(t)
            self.playing = playing
            self._fixes.clear()
            if playing:
                self._relock = True

    def reset(self) -> None:
        self._anchor_t = None
        self._fixes.clear()
        self._relock = True

    def relock(self) -> None:
        """Restart the window at the next fix (the rate was wrong until now, so the old fixes no
        longer line up with the new ones)."""
        self._relock = True

    def _envelope(self, t: float, *, learn: bool = False) -> float:
        """The upper-envelope position at ``t`` from the fixes in the window (``learn``: update
        the lateness span from it)."""
        slope = self.slope_per_s
        n = len(self._fixes)
        at_t = [vk + slope * (t - tk) for tk, vk in self._fixes]
        top = max(at_t)
        if learn and n >= 8 and self.rate_per_s > 0.0:
            spread = (top - min(at_t)) / self.rate_per_s
            span = spread * (n + 1) / (n - 1)  # unbiased width of a uniform spread
            self.span_s = span if self.span_s is None else self.span_s + 0.1 * (span - self.span_s)
        if self.span_s is not None and self.span_s > 1e-6:  # (exact fixes: nothing to add)
            top += self.span_s * self.rate_per_s / (n + 1)
        return top

    def _update_clock_ratio(self) -> None:
        fixes = self._fixes
        n = len(fixes)
        if n < 8 or self.rate_per_s <= 0.0 or fixes[-1][0] - fixes[0][0] < 1.0:
            return
        t0 = fixes[0][0]
        mt = sum(tk - t0 for tk, _ in fixes) / n
        mv = sum(vk for _, vk in fixes) / n
        sxx = sum((tk - t0 - mt) ** 2 for tk, _ in fixes)
        sxy = sum((tk - t0 - mt) * (vk - mv) for tk, vk in fixes)
        ratio = sxy / sxx / self.rate_per_s
        if abs(ratio - 1.0) <= self.MAX_CLOCK_DEVIATION:
            self.clock_ratio += self.gain * (ratio - self.clock_ratio)

    def measure(self, value: float, t: float) -> float:
        """Feed one fix (``value`` was the DAW's position at or before ``t``); returns the
        reported position at ``t``."""
        reported = self.position_at(t)
        fixes = self._fixes
        if reported is None or self._relock or not self.playing or self.rate_per_s <= 0.0:
            fixes.clear()
            jumped = True
        else:
            jumped = abs(value - self._envelope(t)) > self.jump_s * self.rate_per_s if fixes else False
            if jumped:
                fixes.clear()
        self._relock = not self.playing  # while stopped every fix is exact (nothing moves)
        if not self.playing or self.rate_per_s <= 0.0:
            self._anchor_t, self._anchor_pos = t, value
            return value
        fixes.append((t, value))
        while len(fixes) > self.window or (len(fixes) > 2 and t - fixes[0][0] > self.window_s):
            fixes.popleft()
        self._update_clock_ratio()
        estimate = self._envelope(t, learn=True)
        if not jumped and reported is not None:
            estimate = max(estimate, reported - self.max_step_back_s * self.rate_per_s)
        self._anchor_t, self._anchor_pos = t, estimate
        return estimate


class _MeterFromBars:
    """Beats per bar and beat rate from (song seconds, bar, beat) fixes of a DAW that sends neither.

    REAPER's and Ardour's feedback give bars and beats but no meter (and Ardour no tempo). The beat
    rate is the slope of one least-squares line of beat count over song seconds through the last
    ``window_s`` of fixes (each fix pairs the DAW's seconds and bar/beat of one instant, so only the
    DAW's display rounding is noise, and it averages out over the window); beats per bar is where
    the beat count wraps: for fixes (bar b, beat x) → (b + 1, y) Δs apart, ``x + rate·Δs − y`` is
    the bar length in beats.
    """

    def __init__(self, *, window_s: float = 3.0) -> None:
        self.window_s = window_s
        self._fixes: deque[tuple[float, int, float]] = deque()
        self.beats_per_bar: int | None = None
        self.beats_per_second: float | None = None
        self._off_line = 0  # consecutive fixes off the fitted line (see _check_tempo_change)

    def reset_window(self) -> None:
        self._fixes.clear()

    def add(self, seconds: float, bar: int, beat: float) -> None:
        if self._fixes:
            s0, b0, x0 = self._fixes[-1]
            ds = seconds - s0
            if ds == 0.0 and bar == b0 and beat == x0:
                return  # the same DAW instant twice (e.g. time and samples of one update)
            # Not one continuous play: a locate, loop wrap or a long gap starts a new window.
            if ds <= 0.0 or ds > 1.0 or bar < b0 or bar > b0 + 1 or (bar == b0 and beat < x0):
                self._fixes.clear()
                self._off_line = 0
            else:
                if bar == b0 + 1 and self.beats_per_second:
                    bpb = x0 + self.beats_per_second * ds - beat
                    if 0.5 < bpb < P.MAX_SIGNATURE_NUMERATOR + 0.5 and abs(bpb - round(bpb)) < 0.15:
                        self.beats_per_bar = int(round(bpb))
                self._check_tempo_change(ds, bar - b0, beat - x0)
        self._fixes.append((seconds, bar, beat))
        while self._fixes and seconds - self._fixes[0][0] > self.window_s:
            self._fixes.popleft()
        self._update_rate()

    def _check_tempo_change(self, ds: float, bars: int, dbeat: float) -> None:
        """Two fixes in a row off the line by more than the DAW's rounding: the tempo changed
        (Ardour sends none). Keep only the fixes since, and measure the rate from them at once
        instead of letting the window's old fixes drag it for ``window_s``."""
        rate = self.beats_per_second
        if rate is None or (bars and self.beats_per_bar is None):
            return
        off = dbeat + bars * (self.beats_per_bar or 0) - rate * ds
        if abs(off) <= max(0.02, 0.05 * rate * ds):
            self._off_line = 0
            return
        self._off_line += 1
        if self._off_line >= 2:
            while len(self._fixes) > 1:
                self._fixes.popleft()
            self.beats_per_second = None  # the next fit is taken as is
            self._off_line = 0

    def _segments(self) -> list[list[tuple[float, float]]]:
        """The window as runs of (seconds, continuous beat count); a bar change splits a run while
        the bar length is unknown."""
        runs: list[list[tuple[float, float]]] = []
        prev = None
        for seconds, bar, beat in self._fixes:
            if prev is not None and bar == prev[1]:
                runs[-1].append((seconds, runs[-1][-1][1] + beat - prev[2]))
            elif prev is not None and bar == prev[1] + 1 and self.beats_per_bar is not None:
                runs[-1].append((seconds, runs[-1][-1][1] + self.beats_per_bar - prev[2] + beat))
            else:
                runs.append([(seconds, beat)])
            prev = (seconds, bar, beat)
        return [r for r in runs if len(r) >= 2]

    @staticmethod
    def _fit(runs: list[list[tuple[float, float]]]) -> tuple[float, float] | None:
        """Common slope of beats over seconds, one intercept per run (least squares); (slope, Σs²)."""
        sxy = sxx = 0.0
        for run in runs:
            ms = sum(p[0] for p in run) / len(run)
            mb = sum(p[1] for p in run) / len(run)
            sxy += sum((p[0] - ms) * (p[1] - mb) for p in run)
            sxx += sum((p[0] - ms) ** 2 for p in run)
        return (sxy / sxx, sxx) if sxx > 0.0 else None

    def _update_rate(self) -> None:
        # A line through all fixes of the window (not fix-to-fix slopes): the DAW's rounding of
        # each value (1/100 beat in REAPER's string, 1 ms in Ardour's) then averages out over the
        # window's length. Fixes more than 0.02 beat (and 4 × the median residual) off the line —
        # a seconds value paired with the wrong update by a stalled reader — are dropped and the
        # line fitted again.
        runs = self._segments()
        fit = self._fit(runs)
        if fit is None:
            return
        slope = fit[0]
        residuals = []
        for run in runs:
            ms = sum(p[0] for p in run) / len(run)
            mb = sum(p[1] for p in run) / len(run)
            residuals.append([abs((b - mb) - slope * (s - ms)) for s, b in run])
        flat = sorted(r for rs in residuals for r in rs)
        limit = max(0.02, 4.0 * flat[len(flat) // 2])
        kept = [[p for p, r in zip(run, rs, strict=True) if r <= limit] for run, rs in zip(runs, residuals, strict=True)]
        fit = self._fit([k for k in kept if len(k) >= 2]) or fit
        rate, sxx = fit
        if sxx >= 0.02 or self.beats_per_second is None:  # ≥ ~0.5 s of fixes
            if P.MIN_TEMPO_BPM <= rate * 60.0 <= P.MAX_TEMPO_BPM:
                self.beats_per_second = rate


# --- the dialects -----------------------------------------------------------------------------

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


_REAPER_BEATS_RE = re.compile(r"^\s*(-?\d{1,7})\.(\d{1,3})(?:\.(\d{1,4}))?\s*$")
_ARDOUR_BBT_RE = re.compile(r"^\s*(-?\d{1,7})\|(\d{1,3})\|(\d{1,5})\s*$")
_CLOCK_RE = re.compile(r"^\s*([+-])?\s*(\d{1,4}):(\d{1,2}):(\d{1,2})(?:([.:])(\d{1,3}))?\s*$")


def _parse_reaper_beats(text: str | None) -> tuple[int, float] | None:
    """REAPER's "measures.beats" string, e.g. "5.3.50" = bar 5, beat 3.5 (hundredths of a beat)."""
    m = _REAPER_BEATS_RE.match(text) if text is not None else None
    if not m:
        return None
    bar, beat = int(m.group(1)), int(m.group(2))
    frac_digits = m.group(3) or "0"
    if beat < 1:
        return None
    return bar, beat + int(frac_digits) / 10 ** len(frac_digits)


def _parse_clock(text: str | None) -> tuple[float, int, int, str] | None:
    """"HH:MM:SS.mmm" or "HH:MM:SS:FF", optionally signed → (sign ±1, whole seconds, last field, separator)."""
    m = _CLOCK_RE.match(text) if text is not None else None
    if not m:
        return None
    h, mi, s = int(m.group(2)), int(m.group(3)), int(m.group(4))
    if mi > 59 or s > 59:
        return None
    sign = -1.0 if m.group(1) == "-" else 1.0
    return sign, h * 3600 + mi * 60 + s, int(m.group(6) or 0), m.group(5) or ""


class _BarsAndSecondsDialect(OscDialect):
    """Shared by REAPER and Ardour: positions as song seconds plus bar/beat, meter inferred.

    A DAW update sends its seconds and bar/beat back to back (within ``pair_window_s``). Each
    bar/beat fix is paired with the best seconds fix of the same update (Ardour sends timecode,
    bars, time and samples in that order; ``quality`` ranks them) and the pair feeds the
    tempo/meter estimate when the next update's bar/beat fix arrives.
    """

    pair_window_s = 0.03
    seconds_may_precede_bars = True  # REAPER: order not documented; Ardour: bars always first

    def __init__(self) -> None:
        super().__init__()
        self._meter = _MeterFromBars()
        self._last_seconds_fix: tuple[float, float, int] | None = None  # (arrival t, seconds, quality)
        self._pending: list | None = None  # [t, bar, beat, seconds or None, quality] of this update
        self._offset_bounds: tuple[float, float, float] | None = None  # see _refine_quarters
        self._have_explicit_tempo = False

    def _quarters(self, bar: int, beat: float) -> float:
        bpb = self._meter.beats_per_bar or self.time_signature[0]
        den = self.time_signature[1]
        return ((bar - 1) * bpb + (beat - 1.0)) * 4.0 / den

    def _seconds_fix(self, seconds: float, t: float, *, quality: int = 2) -> None:
        last = self._last_seconds_fix
        if last is not None and 0.0 <= t - last[0] <= self.pair_window_s and quality > last[2]:
            # A better value for the same DAW instant (Ardour's time or samples after its
            # timecode): it replaces the rough one instead of being smoothed against it.
            self._seconds.relock()
        self._seconds.measure(seconds, t)
        self._last_seconds_fix = (t, seconds, quality)
        p = self._pending
        if p is not None and abs(t - p[0]) <= self.pair_window_s and quality >= p[4]:
            p[3], p[4] = seconds, quality

    def _refine_quarters(self, quarters: float, resolution_q: float, t: float) -> float:
        """A bar/beat fix truncated to ``resolution_q`` quarters (REAPER: 1/100 beat, ~5 ms),
        made exact with the seconds fix of the same update: at one tempo, quarters − seconds·
        tempo/60 is the same for every update, and each truncated fix bounds it to an interval of
        one resolution step; the intersection of successive intervals narrows to the true value.
        An empty intersection (tempo change, jump) starts again from the fix at hand."""
        last = self._last_seconds_fix
        if last is None or not 0.0 <= t - last[0] <= self.pair_window_s or not self._have_explicit_tempo:
            self._offset_bounds = None
            return quarters
        k = self.tempo_bpm / 60.0
        lo, hi = quarters - last[1] * k, quarters + resolution_q - last[1] * k
        bounds = self._offset_bounds
        if bounds is not None and bounds[2] == k:
            lo2, hi2 = max(lo, bounds[0]), min(hi, bounds[1])
            if lo2 < hi2 + 1e-9:
                lo, hi = lo2, max(lo2, hi2)
        self._offset_bounds = (lo, hi, k)
        return last[1] * k + 0.5 * (lo + hi)

    def _bbt_fix(self, bar: int, beat: float, t: float, *, resolution: float | None = None) -> None:
        """``resolution``: the step of ``beat`` when the DAW truncates it (meter beats)."""
        self._flush_pair(t)
        last = self._last_seconds_fix
        if self.seconds_may_precede_bars and last is not None and abs(t - last[0]) <= self.pair_window_s:
            self._pending = [t, bar, beat, last[1], last[2]]
        else:
            self._pending = [t, bar, beat, None, 0]
        bpb = self._meter.beats_per_bar
        if bpb is not None and bpb != self.time_signature[0]:
            sig = _signature(bpb, self.time_signature[1])
            if sig is not None:
                self.time_signature = sig
        quarters = self._quarters(bar, beat)
        if resolution is not None and self.playing:
            quarters = self._refine_quarters(quarters, resolution * 4.0 / self.time_signature[1], t)
        self._beats.measure(quarters, t)

    def _flush_pair(self, t: float) -> None:
        pending, self._pending = self._pending, None
        if pending is None or pending[3] is None:
            return
        if not self.playing:
            self._meter.reset_window()
            return
        self._meter.add(pending[3], pending[1], pending[2])
        rate = self._meter.beats_per_second
        if rate is not None and not self._have_explicit_tempo:
            tempo = rate * 60.0 * 4.0 / self.time_signature[1]
            if abs(tempo - self.tempo_bpm) > 0.005:
                self._set_tempo(t, tempo)


class ReaperOscDialect(_BarsAndSecondsDialect):
    """REAPER's native OSC feedback (Default.ReaperOSC names, see ``osc_protocol.REAPER_*``).

    ``/time`` seconds and ``/beat/str`` bars/beats are the position; ``/tempo/raw`` the tempo
    (derived from time and beats until REAPER sends it, which it does on changes and on surface
    refresh); playing = ``/play`` on and ``/pause`` off.
    """

    source = "reaper_osc"

    def __init__(self) -> None:
        super().__init__()
        self._play = False
        self._pause = False
        self.markers = ReaperMarkerCollector()

    def _handle(self, address: str, args: tuple, t: float) -> bool:
        value = args[0] if args else None
        if address == P.REAPER_TIME:
            seconds = _number(value)
            if seconds is None or abs(seconds) > P.MAX_ABS_POSITION_SECONDS:
                return False
            self._seconds_fix(seconds, t)
            return True
        if address == P.REAPER_BEAT_STR:
            text = _text(value)
            parsed = _parse_reaper_beats(text)
            if parsed is None:
                return False
            fields = (text or "").strip().split(".")
            digits = len(fields[2]) if len(fields) > 2 and fields[2].isdigit() else 0
            # REAPER truncates the hundredths (as its display does): the beat lies in [x, x + 1/100)
            self._bbt_fix(parsed[0], parsed[1], t, resolution=10.0 ** -digits if digits else None)
            return True
        if address == P.REAPER_TEMPO_RAW:
            tempo = _tempo(value)
            if tempo is None:
                return False
            self._have_explicit_tempo = True
            self._set_tempo(t, tempo)
            return True
        if address == P.REAPER_PLAYRATE_RAW:
            rate = _number(value)
            if rate is None or not 0.1 <= rate <= 10.0:
                return False
            self._set_play_rate(t, rate)
            return True
        if address in (P.REAPER_PLAY, P.REAPER_PAUSE, P.REAPER_STOP):
            on = _flag(value) if args else True  # a bare trigger means "on"
            if on is None:
                return False
            if address == P.REAPER_PLAY:
                self._play = on
            elif address == P.REAPER_PAUSE:
                self._pause = on
            elif on:  # /stop 1
                self._play = self._pause = False
            self._set_playing(t, self._play and not self._pause)
            return True
        return False


class ArdourOscDialect(_BarsAndSecondsDialect):
    """Ardour's OSC surface feedback after ``/set_surface`` (see ``osc_protocol.ARDOUR_*``).

    Seconds: ``/position/samples`` once the sample rate is known (exact; the rate is learned from
    a samples/time pair ≥ 1 s into the song), else ``/position/time`` "HH:MM:SS.mmm", else
    ``/position/smpte`` "HH:MM:SS:FF" (its frame rate is not sent: 30 fps is assumed, so it is
    only used when neither of the others came for a second). A better value for the same update
    replaces a rougher one outright. Bars/beats:
    ``/position/bbt`` "BBB|bb|tttt" (1920 ticks per beat). Ardour sends no tempo and no meter: both
    are derived from the seconds and bar/beat fixes of each update.
    """

    source = "ardour_osc"
    seconds_may_precede_bars = False  # osc_global_observer.cc: smpte, bbt, time, samples
    _SAMPLE_RATES = (22050, 32000, 44100, 48000, 88200, 96000, 176400, 192000)
    SMPTE_FPS = 30  # /position/smpte does not say its frame rate; only a fallback (see above)

    def __init__(self, *, reply_port: int = 0) -> None:
        super().__init__()
        self.reply_port = int(reply_port)  # 0: Ardour replies to the port /set_surface came from
        self.sample_rate: int | None = None
        self._time_fix: tuple[float, float] | None = None  # (arrival t, seconds) from /position/time
        self._samples_fix: tuple[float, int] | None = None  # (arrival t, samples)

    def subscriptions(self) -> list[tuple[str, tuple]]:
        return [P.ardour_set_surface(reply_port=self.reply_port)]

    def _recent(self, fix: tuple[float, object] | None, t: float, within_s: float) -> bool:
        return fix is not None and 0.0 <= t - fix[0] <= within_s

    def _learn_sample_rate(self) -> None:
        if self.sample_rate is not None or self._time_fix is None or self._samples_fix is None:
            return
        (ta, seconds), (tb, samples) = self._time_fix, self._samples_fix
        if abs(ta - tb) > self.pair_window_s or seconds < 1.0:
            return
        for rate in self._SAMPLE_RATES:
            if abs(samples / seconds / rate - 1.0) < 0.002:  # ms rounding after ≥ 1 s is < 0.1 %
                self.sample_rate = rate

    def _handle(self, address: str, args: tuple, t: float) -> bool:
        value = args[0] if args else None
        if address == P.ARDOUR_POSITION_SAMPLES:
            samples = _integer(value)
            if samples is None or abs(samples) > 2**48:
                return False
            self._samples_fix = (t, samples)
            self._learn_sample_rate()
            if self.sample_rate is None:
                return False
            self._seconds_fix(samples / self.sample_rate, t, quality=3)
            return True
        if address == P.ARDOUR_POSITION_TIME:
            parsed = _parse_clock(_text(value))
            if parsed is None or parsed[3] == ":":
                return False
            sign, whole, millis, _ = parsed
            seconds = sign * (whole + millis / 1000.0)
            self._time_fix = (t, seconds)
            if self.sample_rate is not None and self._recent(self._samples_fix, t, 0.5):
                return False  # the sample count of each update is the exact fix
            self._seconds_fix(seconds, t)
            return True
        if address == P.ARDOUR_POSITION_SMPTE:
            parsed = _parse_clock(_text(value))
            if (parsed is None or parsed[3] == "." or self._recent(self._time_fix, t, 1.0)
                    or self._recent(self._samples_fix, t, 1.0)):
                return False
            sign, whole, frames, _ = parsed
            if frames > 29:
                return False
            self._seconds_fix(sign * (whole + frames / self.SMPTE_FPS), t, quality=1)
            return True
        if address == P.ARDOUR_POSITION_BBT:
            m = _ARDOUR_BBT_RE.match(_text(value) or "")
            if not m:
                return False
            bar, beat, ticks = int(m.group(1)), int(m.group(2)), int(m.group(3))
            if beat < 1 or ticks >= P.ARDOUR_TICKS_PER_BEAT:
                return False
            self._bbt_fix(bar, beat + ticks / P.ARDOUR_TICKS_PER_BEAT, t)
            return True
        if address in (P.ARDOUR_TRANSPORT_PLAY, P.ARDOUR_TRANSPORT_STOP):
            on = _flag(value)
            if not on:  # "/transport_play 0" alone can mean ffwd/rewind: wait for stop or speed
                return False
            self._set_playing(t, address == P.ARDOUR_TRANSPORT_PLAY)
            return True
        if address in P.ARDOUR_TRANSPORT_SPEED:
            speed = _number(value)
            if speed is None or abs(speed) > 100.0:
                return False
            if speed != 0.0:
                self._set_play_rate(t, speed)
            self._set_playing(t, speed != 0.0)
            return True
        return False


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


_DIALECTS: dict[str, type[OscDialect]] = {
    "ableton": AbletonOscDialect,
    "stembridge": StembridgeOscDialect,
    "reaper": ReaperOscDialect,
    "bitwig": BitwigOscDialect,
    "ardour": ArdourOscDialect,
}


def make_dialect(name: str, **options: object) -> OscDialect:
    """A fresh dialect parser by short name: ableton, stembridge, reaper, bitwig, ardour.

    ``options`` go to the dialect's constructor (ardour: ``reply_port``).
    """
    if name not in _DIALECTS:
        raise ValueError(f"unknown OSC dialect {name!r}; expected one of {sorted(_DIALECTS)}")
    return _DIALECTS[name](**options)
