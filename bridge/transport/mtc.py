"""MIDI Time Code: quarter frames (F1 0nnn dddd) and full-frame SysEx (F0 7F 7F 01 01 hh mm ss ff F7).

Pure parser, same contract as :class:`~bridge.transport.midi_clock.MidiClockParser`: bytes +
timestamp in, :class:`~bridge.transport.state.TransportState` out (source ``"mtc"``), never raises.

Timing model (MIDI 1.0 MTC spec; MIDIKit ``MTCDecoder``): the 8 pieces of one quarter-frame
cycle carry the timecode of frame *c*; piece 0 is sent at the instant of frame *c* and piece k at
*c* + k/4 frames, in both directions (running backwards the pieces arrive 7→0 and piece 0, still
at *c*, completes the cycle). So once one cycle has been assembled, every quarter frame is a
time stamp: the song is at frame ``c + k/4`` when piece k arrives. Forward, the value is complete
at piece 7, already 7/4 frames old; the next piece 0 is *c* + 2 frames: that is the "add two
frames" of the spec, applied here quarter frame by quarter frame. Cycles are 2 frames apart, so
wrapping 7→0 adds 2 frames (0→7 backwards subtracts 2).

* Frame rates (rate bits rr): 00 = 24, 01 = 25, 10 = 29.97 drop-frame, 11 = 30 fps. Drop-frame
  timecode skips frame numbers 00 and 01 at the start of every minute except each tenth, and
  runs at 30000/1001 frames per second, so 00:01:00;02 is frame 1800 = 60.06 s.
* A full frame locates (Cubase sends one on every jump; Logic and Pro Tools send none): the
  position is set and stays still until quarter frames run again.
* MTC has no Stop: ``playing`` is True while forward quarter frames arrive; the
  :class:`~bridge.transport.clock.TransportClock` reports a stop when they end (its stale
  timeout). Running backwards (rewind/scrub) reports ``playing=False`` with the position updated
  at each quarter frame.
* MTC carries no tempo: beats come from the project's :class:`~bridge.transport.clock.BeatGrid`
  when given, else from a constant ``tempo_bpm``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from bridge.transport.clock import BeatGrid, bar_beat
from bridge.transport.midi_clock import QUARTER_FRAME, DelayLockedLoop, MidiTokenizer
from bridge.transport.state import TransportState

#: rate bits → (nominal frames per second in the timecode, real frames per second, drop-frame)
MTC_RATES: dict[int, tuple[int, float, bool]] = {
    0: (24, 24.0, False),
    1: (25, 25.0, False),
    2: (30, 30000.0 / 1001.0, True),
    3: (30, 30.0, False),
}
#: the rate names people use, for messages and the CLI
MTC_RATE_NAMES = {0: "24", 1: "25", 2: "29.97df", 3: "30"}


def timecode_to_frames(hours: int, minutes: int, seconds: int, frames: int, rate_code: int) -> int:
    """Frame number (0 at 00:00:00:00) of a timecode; drop-frame numbering for rate code 2."""
    nominal, _, drop = MTC_RATES[rate_code]
    n = ((hours * 60 + minutes) * 60 + seconds) * nominal + frames
    if drop:
        total_minutes = hours * 60 + minutes
        n -= 2 * (total_minutes - total_minutes // 10)
    return n


def frames_to_timecode(frame_number: int, rate_code: int) -> tuple[int, int, int, int]:
    """Inverse of :func:`timecode_to_frames` (hours wrap at 24)."""
    nominal, _, drop = MTC_RATES[rate_code]
    if drop:
        # SMPTE 12M: 17982 frames per 10 minutes, 1798 per dropped minute
        tens, rem = divmod(frame_number, 17982)
        if rem < 2:
            extra = 0
        else:
            extra = 2 * ((rem - 2) // 1798)
        frame_number += 18 * tens + extra
    frames = frame_number % nominal
    total_s = frame_number // nominal
    return (total_s // 3600) % 24, (total_s // 60) % 60, total_s % 60, frames


def quarter_frame_messages(frame_number: int, rate_code: int) -> list[bytes]:
    """The 8 quarter-frame messages (pieces 0–7) of the cycle coding ``frame_number``.

    For tests, the benchmark and DAW simulation (a sender), kept next to the decoder.
    """
    h, m, s, f = frames_to_timecode(frame_number, rate_code)
    nibbles = [f & 0xF, f >> 4, s & 0xF, s >> 4, m & 0xF, m >> 4, h & 0xF, (h >> 4) | (rate_code << 1)]
    return [bytes([QUARTER_FRAME, (piece << 4) | nib]) for piece, nib in enumerate(nibbles)]


def full_frame_message(frame_number: int, rate_code: int, *, device_id: int = 0x7F) -> bytes:
    """The full-frame SysEx locating to ``frame_number``."""
    h, m, s, f = frames_to_timecode(frame_number, rate_code)
    return bytes([0xF0, 0x7F, device_id & 0x7F, 0x01, 0x01, (rate_code << 5) | h, m, s, f, 0xF7])


class MtcParser:
    """MTC quarter frames + full frames → TransportState (source ``"mtc"``).

    Parameters
    ----------
    tempo_map : BeatGrid, optional
        The project's tempo map: beats, bar and tempo from the song seconds.
    tempo_bpm : float
        Constant tempo used without a map.
    time_signature : (numerator, denominator)
        For bar/beat without a map.
    offset_seconds : float
        Timecode of the song start in seconds (a DAW project starting at 01:00:00:00 → 3600).
    gap_timeout_s : float
        Quarter frames further apart than this start a new lock (the DAW stopped in between).
    bandwidth_hz : float
        Of the loop that smooths quarter-frame timestamps (real time runs at a constant rate, so a
        narrow loop averages the jitter away).
    """

    source = "mtc"

    def __init__(
        self,
        *,
        tempo_map: BeatGrid | None = None,
        tempo_bpm: float = 120.0,
        time_signature: tuple[int, int] = (4, 4),
        offset_seconds: float = 0.0,
        gap_timeout_s: float = 0.25,
        bandwidth_hz: float = 0.5,
    ) -> None:
        if not (math.isfinite(tempo_bpm) and tempo_bpm > 0):
            raise ValueError(f"tempo_bpm={tempo_bpm!r} must be a positive number")
        self.tempo_map = tempo_map
        self.tempo_bpm = float(tempo_bpm)
        self.time_signature = (int(time_signature[0]), int(time_signature[1]))
        self.offset_seconds = float(offset_seconds)
        self.gap_timeout_s = float(gap_timeout_s)
        self._tok = MidiTokenizer()
        self._dll = DelayLockedLoop(nominal_period_s=1 / 120.0, min_period_s=1 / 480.0, max_period_s=1 / 24.0,
                                    bandwidth_hz=bandwidth_hz, cusum_threshold=8.0)
        self.reset()

    def reset(self) -> None:
        self._tok.reset()
        self._dll.reset()
        self._rate = 3
        self._history: list[tuple[int, int]] = []  # last 8 (piece, nibble), in arrival order
        self._cycle_times: list[tuple[float, int]] = []  # (timestamp, steps) of the current cycle
        self._run = 0  # consecutive steps in the current direction
        self._last_t: float | None = None
        self._direction = 0  # +1 forward, -1 backward, 0 unknown
        self._cycle_frame: int | None = None  # frame coded by the current cycle, once locked
        self._located_frame: int | None = None  # from a full frame, until quarter frames confirm it
        self._state = TransportState(tempo_bpm=self._tempo_at(0.0), source=self.source,
                                     time_signature=self.time_signature)

    @property
    def state(self) -> TransportState:
        return self._state

    @property
    def rate_name(self) -> str:
        return MTC_RATE_NAMES[self._rate]

    @property
    def locked(self) -> bool:
        return self._cycle_frame is not None

    def feed(self, message_bytes: bytes | bytearray | Sequence[int], timestamp_s: float) -> TransportState | None:
        """Parse MTC bytes received at ``timestamp_s`` (monotonic s); the newest state or None."""
        try:
            t = float(timestamp_s)
        except (TypeError, ValueError, OverflowError):
            return None
        if not math.isfinite(t):
            return None
        result = None
        for msg in self._tok.feed(message_bytes):
            state = None
            if msg[0] == QUARTER_FRAME and len(msg) == 2:
                state = self._on_quarter_frame(msg[1] >> 4, msg[1] & 0x0F, t)
            elif len(msg) == 10 and msg[0] == 0xF0 and msg[1] == 0x7F and msg[3:5] == (0x01, 0x01):
                state = self._on_full_frame(msg[5:9], t)
            if state is not None:
                result = state
        return result

    # -- quarter frames -------------------------------------------------------------------------
    def _unlock(self) -> None:
        self._history = []
        self._cycle_times = []
        self._direction = 0
        self._run = 0
        self._cycle_frame = None
        self._restart_timing()

    def _restart_timing(self) -> None:
        # At 1:1 speed quarter frames come at exactly 4 × the frame rate: trust that period and
        # average the phase over the first 16 quarter frames (the loop measures the period itself
        # if the stream runs at another speed).
        self._dll.reset(nominal_period_s=1.0 / (4.0 * MTC_RATES[self._rate][1]), prior_gear=16)

    def _on_quarter_frame(self, piece: int, nibble: int, t: float) -> TransportState | None:
        last_t, self._last_t = self._last_t, t
        if last_t is not None and (t - last_t > self.gap_timeout_s or t < last_t):
            self._unlock()  # a pause (stop) or time going backwards: start over
        last = self._history[-1][0] if self._history else None
        step = 0
        if last is not None:
            fwd, back = (piece - last) % 8, (last - piece) % 8
            if fwd == 1 or (self._direction == 1 and fwd in (2, 3)):
                step = fwd  # 2–3: quarter frames were lost, the count still holds
            elif back == 1 or (self._direction == -1 and back in (2, 3)):
                step = -back
        if step == 0:
            # first piece, a repeat or a jump in the sequence: nothing can be trusted yet
            self._unlock()
        else:
            new_dir = 1 if step > 0 else -1
            if new_dir != self._direction:
                self._restart_timing()
                self._cycle_times = self._cycle_times[-1:]
                self._direction, self._run = new_dir, 0
            self._run += 1
            if (new_dir == 1 and piece < last) or (new_dir == -1 and piece > last):  # type: ignore[operator]
                self._cycle_times = []  # wrapped into the next cycle (2 frames on, or back)
                if self._cycle_frame is not None:
                    self._cycle_frame += 2 * new_dir
        self._history = (self._history + [(piece, nibble)])[-8:]
        self._cycle_times.append((t, max(step, 1)))
        # Quarter frames are a metronome before the value is known: time them from the first one.
        x = self._dll.update(t, steps=max(step, 1)) if step >= 0 else t
        if self._located_frame is not None and self._cycle_frame is None and piece == 0 and step >= 0:
            # after a full frame the generator restarts at piece 0 of the located frame: if the
            # frame's low nibble agrees, lock now instead of waiting two frames for a full cycle
            if nibble == frames_to_timecode(self._located_frame, self._rate)[3] & 0x0F:
                self._cycle_frame = self._located_frame
                self._direction = 1
            self._located_frame = None
        # a cycle is complete when the last 8 pieces are 0..7 in order (7..0 running backwards)
        order = [p for p, _ in self._history]
        if order == [0, 1, 2, 3, 4, 5, 6, 7] or order == [7, 6, 5, 4, 3, 2, 1, 0]:
            rate_before = self._rate
            decoded = self._decode_cycle()
            if decoded is not None and decoded != self._cycle_frame:
                jumped = self._cycle_frame is not None
                self._cycle_frame = decoded  # lock, or re-anchor after a locate without full frame
                if self._direction == 1 and (jumped or self._rate != rate_before):
                    # the stream may have restarted with another cadence: time it from this cycle
                    self._restart_timing()
                    for t_i, step_i in self._cycle_times[-8:]:
                        x = self._dll.update(t_i, steps=step_i)
        if self._cycle_frame is None:
            return None
        if self._direction == -1 and self._run < 2:
            return None  # one step back is as likely a restart elsewhere as a reversal: wait
        playing = self._direction == 1
        frames = self._cycle_frame + piece / 4.0
        return self._emit(frames, playing=playing, t=x if playing else t)

    def _decode_cycle(self) -> int | None:
        n = [0] * 8
        for piece, nibble in self._history:
            n[piece] = nibble
        rate = (n[7] >> 1) & 0x03
        hours = n[6] | ((n[7] & 0x01) << 4)
        minutes = n[4] | ((n[5] & 0x03) << 4)
        seconds = n[2] | ((n[3] & 0x03) << 4)
        frames = n[0] | ((n[1] & 0x01) << 4)
        return self._frame_number(hours, minutes, seconds, frames, rate)

    def _frame_number(self, hours: int, minutes: int, seconds: int, frames: int, rate: int) -> int | None:
        nominal = MTC_RATES[rate][0]
        if hours > 23 or minutes > 59 or seconds > 59 or frames >= nominal:
            return None  # not a timecode: ignore rather than jump somewhere absurd
        if rate != self._rate:
            self._rate = rate
            self._restart_timing()
        return timecode_to_frames(hours, minutes, seconds, frames, rate)

    # -- full frame -----------------------------------------------------------------------------
    def _on_full_frame(self, data: tuple[int, ...], t: float) -> TransportState | None:
        hh, mm, ss, ff = data
        frame = self._frame_number(hh & 0x1F, mm, ss, ff, (hh >> 5) & 0x03)
        if frame is None:
            return None
        self._unlock()
        self._located_frame = frame
        return self._emit(float(frame), playing=False, t=t)

    # -- output ---------------------------------------------------------------------------------
    def _tempo_at(self, seconds: float) -> float:
        if self.tempo_map is not None:
            return float(self.tempo_map.tempo_at_seconds(seconds))
        return self.tempo_bpm

    def _emit(self, frames: float, *, playing: bool, t: float) -> TransportState | None:
        seconds = frames / MTC_RATES[self._rate][1] - self.offset_seconds
        if self.tempo_map is not None:
            beats = float(self.tempo_map.seconds_to_quarters(seconds))
            bar, beat = self.tempo_map.bar_beat(beats)
            signature = self.tempo_map.time_signature_at(beats)
        else:
            beats = seconds * self.tempo_bpm / 60.0
            signature = self.time_signature
            bar, beat = bar_beat(beats, signature)
        new = TransportState(
            playing=playing, tempo_bpm=self._tempo_at(seconds), position_beats=beats,
            position_seconds=seconds, bar=bar, beat=beat, time_signature=signature,
            source=self.source, received_at=t,
        )
        old = self._state
        if not playing and not old.playing and old.position_seconds == seconds:
            return None
        self._state = new
        return new
