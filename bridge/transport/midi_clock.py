"""MIDI beat clock (0xF8 at 24 per quarter note, Start/Continue/Stop, Song Position Pointer).

Pure parser: feed it the bytes of MIDI messages with the driver's timestamp (monotonic seconds),
get a :class:`~bridge.transport.state.TransportState` back when something changed. It never opens
a port (that is :mod:`bridge.transport.midi_io`) and never raises on malformed input: garbage is
ignored and the state stays finite and in range.

Position is counted (exact): the Nth clock after Start is tick N−1, after a Song Position Pointer
of P sixteenths the next clock is tick 6·P. Timing comes from a delay-locked loop on the tick
timestamps (:class:`DelayLockedLoop`): a least-squares fit while it locks, then a fixed narrow
bandwidth, re-locking when the tempo really changes. Each state is stamped with the loop's
smoothed time of its tick, so timestamp jitter is filtered out of the position too.

Semantics (MIDI 1.0 spec, System Real-Time): Start = song position 0 *at the next clock*;
Continue = resume from the current song position at the next clock; Stop keeps the position for
Continue; SPP (F2 lsb msb) counts MIDI beats = 16th notes. Logic sends SPP + Continue on every start
except from 1.1.1.1, where it sends Start: both paths end up here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from bridge.transport.clock import BeatGrid, bar_beat
from bridge.transport.state import TransportState

PPQN = 24  #: MIDI clocks per quarter note
CLOCKS_PER_SPP_UNIT = 6  #: a Song Position Pointer unit is a 16th note
MIN_TEMPO_BPM = 20.0
#: A clock stamped earlier than the previous one by more than this is a new time line (the previous
#: stamp was bogus or the port clock was reset), not a reordering within the driver.
REORDER_TOLERANCE_S = 0.05
MAX_TEMPO_BPM = 999.0

TIMING_CLOCK, START, CONTINUE, STOP, SONG_POSITION = 0xF8, 0xFA, 0xFB, 0xFC, 0xF2
QUARTER_FRAME, SYSEX_START, SYSEX_END = 0xF1, 0xF0, 0xF7

# data bytes that follow each system-common status (F4/F5 are undefined and carry none)
_SYSTEM_COMMON_LENGTH = {0xF1: 1, 0xF2: 2, 0xF3: 1, 0xF4: 0, 0xF5: 0, 0xF6: 0}


class MidiTokenizer:
    """Byte stream → complete MIDI messages (tuples of ints), the way a MIDI receiver does it.

    Real-time bytes (F8–FF) are emitted at once even in the middle of another message; a status
    byte aborts an unfinished SysEx (truncated SysEx is dropped); channel messages use running
    status; data bytes with no status are ignored; SysEx longer than ``max_sysex_bytes`` is
    dropped (we only read the 10-byte MTC full frame). State carries across ``feed`` calls, so a
    message split over two calls is still assembled.
    """

    def __init__(self, *, max_sysex_bytes: int = 64) -> None:
        self.max_sysex_bytes = max_sysex_bytes
        self._status: int | None = None
        self._need = 0
        self._data: list[int] = []
        self._sysex: list[int] | None = None
        self._sysex_overflow = False

    def reset(self) -> None:
        self.__init__(max_sysex_bytes=self.max_sysex_bytes)  # type: ignore[misc]

    def feed(self, data: bytes | bytearray | Sequence[int]) -> list[tuple[int, ...]]:
        out: list[tuple[int, ...]] = []
        try:
            items = list(data)
        except TypeError:
            return out
        for item in items:
            try:
                b = int(item)
            except (TypeError, ValueError, OverflowError):
                continue
            if not 0 <= b <= 0xFF:
                continue
            if b >= 0xF8:  # real-time: may interleave anything, changes nothing
                out.append((b,))
            elif b == SYSEX_START:
                self._sysex, self._sysex_overflow = [b], False
                self._status = None
            elif b == SYSEX_END:
                if self._sysex is not None and not self._sysex_overflow:
                    out.append((*self._sysex, b))
                self._sysex = None
            elif b >= 0x80:  # any other status ends a SysEx (truncated: dropped)
                self._sysex = None
                self._data = []
                if b >= 0xF0:
                    need = _SYSTEM_COMMON_LENGTH[b]
                    if need == 0:
                        out.append((b,))
                        self._status = None
                    else:
                        self._status, self._need = b, need
                else:
                    self._status, self._need = b, (1 if 0xC0 <= b < 0xE0 else 2)
            elif self._sysex is not None:
                if len(self._sysex) < self.max_sysex_bytes:
                    self._sysex.append(b)
                else:
                    self._sysex_overflow = True
            elif self._status is not None:
                self._data.append(b)
                if len(self._data) == self._need:
                    out.append((self._status, *self._data))
                    self._data = []
                    if self._status >= 0xF0:  # no running status for system common
                        self._status = None
            # else: a stray data byte with no status, ignored
        return out


def _expanding_gains(k: int) -> tuple[float, float]:
    """Phase and period gains of the degree-1 expanding-memory filter at sample index k ≥ 1.

    Identical to refitting a least-squares line to all k+1 samples (Morrison, "Introduction to
    Sequential Smoothing and Prediction", expanding-memory polynomial filter): the fastest unbiased
    lock a loop can have, which is why acquisition uses it before the fixed-bandwidth DLL.
    """
    return 2.0 * (2 * k + 1) / ((k + 1) * (k + 2)), 6.0 / ((k + 1) * (k + 2))


class DelayLockedLoop:
    """Second-order delay-locked loop on periodic event timestamps (seconds).

    Adriaensen's DLL ("Using a DLL to filter time", 2005): per event ``e = t − t_pred``,
    phase += b·e, period += c·e, with ω = 2π·B·T, b = √2·ω, c = ω² for bandwidth B (Hz). Locking
    starts with the expanding-memory gains (a growing least-squares fit: exact after 2 events,
    then averaging), which narrow until they reach the DLL's; that is the "fast lock then narrow
    bandwidth" of Kushview Element's MIDI clock, done with optimal gains. Robustness:

    * innovations are clipped to ±3σ (σ: running RMS of innovations) once locked, so one late
      event barely moves the loop;
    * a two-sided CUSUM on the normalised innovations detects a real period change (tempo step)
      and drops the loop back to a short memory (``relock_gear``) to re-lock in a few events.

    ``update(t, steps=n)`` accepts an event known to be n periods after the previous one (dropped
    ticks). ``period_s`` is clamped to ``[min_period_s, max_period_s]``.
    """

    def __init__(
        self,
        *,
        nominal_period_s: float,
        min_period_s: float,
        max_period_s: float,
        bandwidth_hz: float = 0.1,
        initial_jitter_s: float = 1e-3,
        jitter_floor_s: float = 1e-4,
        cusum_threshold: float = 8.0,
        cusum_clip: float = 4.0,
        relock_gear: int = 3,
        alert_threshold: float | None = None,
        alert_events: int = 96,
    ) -> None:
        self.min_period_s = min_period_s
        self.max_period_s = max_period_s
        self.nominal_period_s = nominal_period_s
        self.bandwidth_hz = bandwidth_hz
        self.initial_jitter_s = initial_jitter_s
        self.jitter_floor_s = jitter_floor_s
        self.cusum_threshold = cusum_threshold
        self.cusum_clip = cusum_clip
        self.alert_threshold = cusum_threshold if alert_threshold is None else alert_threshold
        self.alert_events = alert_events
        self._since_relock = 1 << 30
        self.relock_gear = relock_gear
        self.relocks = 0  #: how many tempo changes the CUSUM detected (diagnostics)
        self.reset()

    def reset(self, *, nominal_period_s: float | None = None, prior_gear: int = 0) -> None:
        """Forget the phase; the period restarts at the nominal one.

        ``prior_gear`` > 0 trusts the nominal period as if measured over that many intervals (MTC:
        quarter frames run at a rate known from the frame rate), else the next two events measure it.
        """
        if nominal_period_s is not None:
            self.nominal_period_s = nominal_period_s
        self.period_s = min(max(self.nominal_period_s, self.min_period_s), self.max_period_s)
        self.phase_s: float | None = None  # smoothed time of the last event
        self.gear = max(0, int(prior_gear))  # intervals in memory (0: period not measured yet)
        self._averaging = self.gear  # events left whose phase is averaged at the trusted period
        self._averaged = 0
        self.jitter_s = self.initial_jitter_s
        self._cusum_pos = self._cusum_neg = 0.0

    def restart_phase(self, *, max_gear: int = 12) -> None:
        """Keep the period, re-acquire the phase at the next event (after a pause or a jump)."""
        self.phase_s = None
        self.gear = min(self.gear, max_gear)
        self._averaging = 0
        self._cusum_pos = self._cusum_neg = 0.0

    def reseed(self, t: float, *, period_s: float, gear: int = 2) -> float:
        """Set phase and period directly (a decision made outside the loop, e.g. a tempo jump)."""
        self.phase_s = t
        self.period_s = min(max(period_s, self.min_period_s), self.max_period_s)
        self.gear = gear
        self._averaging = 0
        self._cusum_pos = self._cusum_neg = 0.0
        return t

    @property
    def locked(self) -> bool:
        return self.phase_s is not None and self.gear >= 8

    @property
    def settled(self) -> bool:
        """Locked with a long memory and no period change detected for ``alert_events`` events."""
        return self.phase_s is not None and self.gear >= 24 and self._since_relock >= self.alert_events

    def coast(self, steps: int = 1) -> float:
        """Take an event whose timestamp is not to be trusted as on time (it came in a batch);
        negative ``steps`` take back events counted too many."""
        if self.phase_s is None:
            return math.nan  # nothing to coast from; callers use the result only when locked
        self.phase_s += steps * self.period_s
        return self.phase_s

    def predict(self, steps: int = 1) -> float | None:
        """Expected time of the event ``steps`` periods after the last one."""
        return None if self.phase_s is None else self.phase_s + steps * self.period_s

    def update(self, t: float, *, steps: int = 1) -> float:
        """Feed one event time; returns its smoothed time."""
        if self.phase_s is None:
            self.phase_s = t
            self._averaged = 1
            return t
        steps = max(1, int(steps))
        e = t - (self.phase_s + steps * self.period_s)
        if self._averaging > 0:
            if abs(e) <= 0.35 * self.period_s:
                # trusted period: the best phase is the running mean of the offsets
                self._averaging -= 1
                self._averaged += 1
                self.phase_s += steps * self.period_s + e / self._averaged
                return self.phase_s
            # far off the trusted period (another speed): measure the period from here on
            self._averaging, self.gear = 0, 0
        k = self.gear + 1
        g, h = _expanding_gains(k)
        # ω per event; capped so that a slow event rate cannot make the loop overshoot (b < 0.5)
        omega = min(2.0 * math.pi * self.bandwidth_hz * self.period_s, 0.35)
        b, c = math.sqrt(2.0) * omega, omega * omega
        if g < b:
            # the least-squares memory has narrowed to the DLL's bandwidth: run as a fixed DLL
            g, h, k = b, c, self.gear
        if self.gear >= 4:
            z = e / self.jitter_s
            zc = min(max(z, -self.cusum_clip), self.cusum_clip)  # one outlier alone cannot trip it
            self._cusum_pos = max(0.0, self._cusum_pos + zc - 0.5)
            self._cusum_neg = max(0.0, self._cusum_neg - zc - 0.5)
            self._since_relock += 1
            # once the tempo has moved, expect it to move again (rubato): watch more closely
            threshold = self.alert_threshold if self._since_relock < self.alert_events else self.cusum_threshold
            if max(self._cusum_pos, self._cusum_neg) > threshold:
                # the period really changed: shorten the memory and take the error at face value
                self.relocks += 1
                self._since_relock = 0
                k = min(self.relock_gear, self.gear)
                g, h = _expanding_gains(k)
                self._cusum_pos = self._cusum_neg = 0.0
            else:
                e_rms = 3.0 * self.jitter_s
                e = min(max(e, -e_rms), e_rms)
            self.jitter_s = max(self.jitter_floor_s,
                                math.sqrt(0.95 * self.jitter_s**2 + 0.05 * min(e * e, 9 * self.jitter_s**2)))
        self.phase_s = self.phase_s + steps * self.period_s + g * e
        self.period_s = min(max(self.period_s + h * e / steps, self.min_period_s), self.max_period_s)
        self.gear = k
        return self.phase_s


class MidiClockParser:
    """MIDI clock + transport messages → TransportState (source ``"midi_clock"``).

    Parameters
    ----------
    time_signature : (numerator, denominator)
        For bar/beat (MIDI clock carries no meter); ignored when ``tempo_map`` is given.
    tempo_map : BeatGrid, optional
        The project's map: position_seconds = map(beats). Without it, seconds are accumulated from
        the tick times while playing (exact after Start at bar 1) and estimated as
        beats·60/tempo after a jump.
    initial_tempo_bpm : float
        Reported until two clocks have been seen.
    bandwidth_hz : float
        Bandwidth of the narrow (tempo) loop once locked; 0.1 Hz follows tempo ramps and keeps the
        tempo within a few hundredths of a BPM at constant tempo.
    phase_bandwidth_hz : float
        Bandwidth of the loop that stamps the ticks: wider, so the phase follows rubato tempo maps
        within about a millisecond while still averaging the timestamp jitter.
    infer_dropped_ticks : bool
        Count a gap of ≈2 or 3 periods as lost clocks. Undone when the next clock follows at once
        (it was a late clock in a burst) or when three such gaps come in a row (the tempo fell).
    """

    source = "midi_clock"

    def __init__(
        self,
        *,
        time_signature: tuple[int, int] = (4, 4),
        tempo_map: BeatGrid | None = None,
        initial_tempo_bpm: float = 120.0,
        bandwidth_hz: float = 0.1,
        phase_bandwidth_hz: float = 2.0,
        infer_dropped_ticks: bool = True,
    ) -> None:
        self.time_signature = (int(time_signature[0]), int(time_signature[1]))
        self.tempo_map = tempo_map
        self.infer_dropped_ticks = infer_dropped_ticks
        initial_tempo_bpm = min(max(float(initial_tempo_bpm), MIN_TEMPO_BPM), MAX_TEMPO_BPM)
        period = 60.0 / (PPQN * initial_tempo_bpm)
        bounds = {"min_period_s": 60.0 / (PPQN * MAX_TEMPO_BPM), "max_period_s": 60.0 / (PPQN * MIN_TEMPO_BPM)}
        # The tempo loop re-locks only on overwhelming evidence (a false re-lock would show a tempo
        # glitch of ~1 BPM); the phase loop re-locks readily (a false one costs ~1 ms for a few ticks).
        self._tempo_dll = DelayLockedLoop(nominal_period_s=period, bandwidth_hz=bandwidth_hz,
                                          cusum_threshold=12.0, cusum_clip=6.5, relock_gear=6,
                                          alert_threshold=5.0, **bounds)
        self._phase_dll = DelayLockedLoop(nominal_period_s=period, bandwidth_hz=phase_bandwidth_hz,
                                          cusum_threshold=3.0, cusum_clip=3.0, **bounds)
        self._initial_tempo_bpm = initial_tempo_bpm
        self._tok = MidiTokenizer()
        self.reset()

    def reset(self) -> None:
        """Back to stopped at bar 1, tempo unknown."""
        self._tok.reset()
        self._tempo_dll.reset()
        self._phase_dll.reset()
        self._next_tick = 0  # song position (ticks) of the next clock to arrive
        self._running = False  # Start/Continue seen: clocks advance the position
        self._playing = False  # at least one clock since Start/Continue
        self._last_clock_t: float | None = None
        self._slow_gaps: list[float] = []  # intervals read as lost clocks, awaiting confirmation
        self._slow_steps: list[int] = []
        self._jumped = True  # position set by Start/SPP: seconds must be re-derived
        self._last_pos_ticks = 0.0
        self._last_seconds = 0.0
        self._last_x = 0.0
        self._emitted_tempo = float("nan")
        self._state = TransportState(tempo_bpm=self._initial_tempo_bpm, source=self.source,
                                     time_signature=self.time_signature)

    @property
    def state(self) -> TransportState:
        """The last state produced."""
        return self._state

    @property
    def tempo_bpm(self) -> float:
        if self._tempo_dll.gear == 0:
            return self._state.tempo_bpm
        return min(max(60.0 / (PPQN * self._tempo_dll.period_s), MIN_TEMPO_BPM), MAX_TEMPO_BPM)

    # -- input ----------------------------------------------------------------------------------
    def feed(self, message_bytes: bytes | bytearray | Sequence[int], timestamp_s: float) -> TransportState | None:
        """Parse one message (or several, or a fragment) received at ``timestamp_s`` (monotonic s).

        Returns the newest state if anything changed, else None. Unrelated messages are ignored.
        """
        try:
            t = float(timestamp_s)
        except (TypeError, ValueError, OverflowError):
            return None
        if not math.isfinite(t):
            return None
        result = None
        for msg in self._tok.feed(message_bytes):
            status = msg[0]
            if status == TIMING_CLOCK:
                state = self._on_clock(t)
            elif status == START:
                state = self._on_start(t)
            elif status == CONTINUE:
                state = self._on_continue(t)
            elif status == STOP:
                state = self._on_stop(t)
            elif status == SONG_POSITION and len(msg) == 3:
                state = self._on_song_position(msg[1] | (msg[2] << 7), t)
            else:
                continue
            if state is not None:
                result = state
        return result

    # -- handlers -------------------------------------------------------------------------------
    def _clear_drops(self) -> None:
        self._slow_gaps = []
        self._slow_steps = []

    def _on_clock(self, t: float) -> TransportState | None:
        last = self._last_clock_t
        phase, tempo = self._phase_dll, self._tempo_dll
        if last is not None and t < last - REORDER_TOLERANCE_S:
            # Time went back by more than a reordering: the previous stamp was bogus (a far-future
            # value) or the port's clock was reset. Trust the new time line, keep the tempo, and
            # re-find the phase — clamping to the outlier would pin every later clock to it.
            phase.restart_phase()
            tempo.restart_phase(max_gear=tempo.gear)
            self._clear_drops()
            last = None
        elif last is not None and t < last:
            t = last  # a reordered timestamp (within a few ms) counts as simultaneous
        self._last_clock_t = t
        period = phase.period_s
        gap = None if last is None else t - last
        if gap is not None and gap > max(4.5 * period, 0.3) and phase.phase_s is not None:
            # clocks paused (transport stopped, cable pulled): keep the tempo, re-find the phase
            phase.restart_phase()
            tempo.restart_phase(max_gear=tempo.gear)
            self._clear_drops()
        steps = 1
        slow = self._slow_gaps  # consecutive intervals read as "clocks were lost in between"
        if slow and gap is not None:
            ref = sum(slow) / len(slow)
            if gap < 0.5 * period:
                # a burst: the clock read as "after a loss" was a late one and this is its
                # neighbour. With 2 steps counted this one is already counted (same position,
                # same time: nothing new); with 3, one of the two "lost" clocks is this one.
                extra = self._slow_steps[-1] - 2
                if extra:
                    self._next_tick -= extra
                    phase.coast(-extra)  # the loops' phase belongs to the last counted clock
                    tempo.coast(-extra)
                self._clear_drops()
                return None
            if abs(gap - ref) < 0.25 * ref:
                if len(slow) >= 2:
                    # a third slow interval in a row: the tempo dropped, nothing was lost. Recount.
                    self._next_tick -= sum(n - 1 for n in self._slow_steps)
                    new_period = (sum(slow) + gap) / (len(slow) + 1)
                    self._clear_drops()
                    x = phase.reseed(t, period_s=new_period, gear=3)
                    tempo.reseed(t, period_s=new_period, gear=3)
                    return self._tick_state(x, steps=1)
            else:
                self._clear_drops()  # back to the normal spacing: the clocks were lost indeed
        if gap is not None and gap < 0.3 * period and phase.gear >= 2 and phase.phase_s is not None:
            # delivered in a batch right behind the previous clock: its timestamp says when the
            # driver handed it over, not when it was sent. Count it, time it by the loops' beat.
            x = phase.coast()
            tempo.coast()
            return self._tick_state(x, steps=1)
        if (self.infer_dropped_ticks and self._playing and phase.locked and gap is not None
                and phase.phase_s is not None and phase.jitter_s < 0.08 * period):
            # only on a clean link: with jitter near a period, a long gap is just jitter
            r = (t - phase.phase_s) / period
            n = round(r)
            if 2 <= n <= 3 and abs(r - n) <= 0.3:
                steps = n
                self._slow_gaps.append(gap)
                self._slow_steps.append(n)
        x = phase.update(t, steps=steps)
        x_narrow = tempo.update(t, steps=steps)
        if tempo.settled and abs(x_narrow - x) < 2.0 * phase.jitter_s:
            # steady tempo: the narrow loop has averaged far more ticks, so its phase is the
            # better stamp; the wide loop stays in charge while the tempo moves (or they disagree)
            x = x_narrow
        return self._tick_state(x, steps=steps)

    def _tick_state(self, x: float, *, steps: int) -> TransportState | None:
        tempo_bpm = self.tempo_bpm
        if not self._running:
            # stopped: clocks only tell the tempo; report it when it moved visibly
            if abs(tempo_bpm - self._emitted_tempo) < 0.01:
                return None
            return self._emit(self._state.position_beats * PPQN, playing=False, t=self._state.received_at,
                              seconds=self._state.position_seconds)
        if not self._playing:
            self._playing = True  # the first clock after Start/Continue is the current position
            pos = self._next_tick
            if self._jumped:
                seconds = self._seconds_after_jump(pos)
            else:
                seconds = self._last_seconds + (pos - self._last_pos_ticks) * 60.0 / (PPQN * tempo_bpm)
            self._jumped = False
        else:
            pos = self._next_tick + steps - 1
            if self._jumped:
                seconds = self._seconds_after_jump(pos)
                self._jumped = False
            else:
                seconds = self._last_seconds + (x - self._last_x)
        self._next_tick = pos + 1
        self._last_pos_ticks, self._last_seconds, self._last_x = float(pos), seconds, x
        return self._emit(pos, playing=True, t=x, seconds=seconds)

    def _restart_clock_phase(self) -> None:
        """After Start / Continue the clocks are a new stream: keep the tempo, re-find the phase.
        (Without this a quick Stop → Start, under the pause threshold, fed the loops a gap of many
        periods as one step and the seconds ran ~4× fast for the rest of the take.)"""
        self._phase_dll.restart_phase()
        self._tempo_dll.restart_phase(max_gear=self._tempo_dll.gear)

    def _on_start(self, t: float) -> TransportState | None:
        self._restart_clock_phase()
        self._next_tick = 0
        self._running, self._playing, self._jumped = True, False, True
        self._clear_drops()
        return self._emit(0, playing=False, t=t, seconds=self._seconds_after_jump(0))

    def _on_continue(self, t: float) -> TransportState | None:
        if self._running and self._playing:
            return None  # Continue while playing means nothing
        self._running, self._playing = True, False
        self._restart_clock_phase()
        self._clear_drops()
        if self._jumped:
            seconds = self._seconds_after_jump(self._next_tick)
        else:
            seconds = self._last_seconds + (self._next_tick - self._last_pos_ticks) * 60.0 / (PPQN * self.tempo_bpm)
        return self._emit(self._next_tick, playing=False, t=t, seconds=seconds)

    def _on_stop(self, t: float) -> TransportState | None:
        was_playing = self._playing
        self._running = self._playing = False
        self._clear_drops()
        if was_playing and self._phase_dll.phase_s is not None:
            # the DAW stopped between two clocks: show where it stopped (≤ one tick past the last)
            period = self._phase_dll.period_s
            frac = min(max((t - self._phase_dll.phase_s) / period, 0.0), 1.0)
            pos = self._last_pos_ticks + frac
            return self._emit(pos, playing=False, t=t, seconds=self._last_seconds + frac * period)
        return self._emit(self._state.position_beats * PPQN, playing=False, t=t,
                          seconds=self._state.position_seconds)

    def _on_song_position(self, sixteenths: int, t: float) -> TransportState | None:
        self._next_tick = CLOCKS_PER_SPP_UNIT * sixteenths
        self._jumped = True
        self._clear_drops()
        if self._playing:
            # a jump mid-play: the next clock is at the new position; now we are just before it
            nxt = self._phase_dll.predict()
            period = self._phase_dll.period_s
            frac = 0.0 if nxt is None else min(max((nxt - t) / period, 0.0), 1.0)
            pos = self._next_tick - frac
            return self._emit(pos, playing=True, t=t, seconds=self._seconds_after_jump(pos))
        return self._emit(self._next_tick, playing=False, t=t, seconds=self._seconds_after_jump(self._next_tick))

    # -- output ---------------------------------------------------------------------------------
    def _seconds_after_jump(self, pos_ticks: float) -> float:
        if self.tempo_map is not None:
            return float(self.tempo_map.quarters_to_seconds(pos_ticks / PPQN))
        return pos_ticks * 60.0 / (PPQN * self.tempo_bpm)  # constant-tempo guess: nothing better

    def _emit(self, pos_ticks: float, *, playing: bool, t: float, seconds: float) -> TransportState | None:
        beats = pos_ticks / PPQN
        if self.tempo_map is not None:
            seconds = float(self.tempo_map.quarters_to_seconds(beats))
            bar, beat = self.tempo_map.bar_beat(beats)
            signature = self.tempo_map.time_signature_at(beats)
        else:
            signature = self.time_signature
            bar, beat = bar_beat(beats, signature)
        tempo_bpm = self.tempo_bpm
        new = TransportState(
            playing=playing, tempo_bpm=tempo_bpm, position_beats=beats, position_seconds=seconds,
            bar=bar, beat=beat, time_signature=signature, source=self.source, received_at=t,
        )
        old = self._state
        if (old.playing == new.playing and old.position_beats == new.position_beats
                and old.tempo_bpm == new.tempo_bpm and not playing):
            return None
        self._state = new
        self._emitted_tempo = tempo_bpm
        return new
