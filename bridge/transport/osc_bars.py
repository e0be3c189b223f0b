"""The OSC dialects that report bars/beats and song seconds but no meter (REAPER) or neither meter
nor tempo (Ardour): the meter and beat rate are inferred from the fixes (:class:`_MeterFromBars`)."""

from __future__ import annotations

import bisect
import itertools
import math
import re
from collections import deque

from bridge.transport import osc_protocol as P
from bridge.transport.markers import ReaperMarkerCollector
from bridge.transport.osc_dialect_base import OscDialect
from bridge.transport.osc_values import _flag, _integer, _number, _signature, _tempo, _text


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
        self._drop_first = False

    @property
    def run_length(self) -> int:
        """Fixes in the window since it last restarted (a locate, a loop wrap, a tempo change)."""
        return len(self._fixes)

    def reset_window(self) -> None:
        self._fixes.clear()
        self._drop_first = False

    def add(self, seconds: float, bar: int, beat: float, *, exact: bool = False) -> None:
        """One (song seconds, bar, beat) fix; ``exact``: the seconds are the DAW's sample count of the
        same update (not a rounded clock string), so one fix off the line is a tempo change."""
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
                self._check_tempo_change(ds, bar - b0, beat - x0, needed=1 if exact else 2)
        self._fixes.append((seconds, bar, beat))
        while self._fixes and seconds - self._fixes[0][0] > self.window_s:
            self._fixes.popleft()
        if self._drop_first and len(self._fixes) >= 3:
            self._fixes.popleft()
            self._drop_first = False
            self.beats_per_second = None  # the line without it is taken as is
        self._update_rate()

    def _check_tempo_change(self, ds: float, bars: int, dbeat: float, *, needed: int = 2) -> None:
        """``needed`` fixes in a row off the line by more than the DAW's rounding (two, unless the
        seconds are exact: one could be a seconds value paired with the wrong update): the tempo
        changed (Ardour sends none). Keep only the fixes since, and measure the rate from them at once
        instead of letting the window's old fixes drag it for ``window_s``."""
        rate = self.beats_per_second
        if rate is None or (bars and self.beats_per_bar is None):
            return
        off = dbeat + bars * (self.beats_per_bar or 0) - rate * ds
        # the DAW's rounding: REAPER's beats to 1/100; Ardour's exact pairs to a tick (1/1920 beat),
        # so a change is seen from ~2 ms of drift off the line instead of ~10 ms
        tolerance = self.EXACT_OFF_LINE_BEATS if needed == 1 else max(0.02, 0.05 * rate * ds)
        if abs(off) <= tolerance:
            self._off_line = 0
            return
        self._off_line += 1
        if self._off_line >= needed:
            while len(self._fixes) > 1:
                self._fixes.popleft()
            self.beats_per_second = None  # the next fit is taken as is
            self._off_line = 0
            # the fix kept may predate the change: it gives a first rate with this one, and goes
            # once two fixes after it give the new rate alone
            self._drop_first = True
            if needed == 1:
                self._change_on_a_beat(rate, ds, bars, dbeat)

    #: how far (beats) an exact fix may stray off the line before the tempo has changed: 8 ticks
    EXACT_OFF_LINE_BEATS = 0.004
    #: the new tempo is taken from a change on a beat only this long (song seconds) before the fix
    MIN_AFTER_CHANGE_S = 0.03

    def _change_on_a_beat(self, rate: float, ds: float, bars: int, dbeat: float) -> None:
        """An exact fix off the line (Ardour): the tempo changed between the kept fix and this one.
        The line through the two mixes the old tempo and the new one (a 124 → 100 BPM change read
        ~112 BPM until the next update, 100 ms on, and the position ran 35 ms ahead). A DAW's tempo
        markers sit on beats: where exactly one beat boundary lies between the kept fix and both
        this fix and where the old line would have put it, the change is taken to be there, and the
        kept fix is replaced by that boundary on the old line, so the line through it and this fix
        is the new tempo alone. Off a beat (or two beats to choose from) the mixed line stays, and
        two fixes after the change give the new tempo either way."""
        s0, b0, x0 = self._fixes[-1]
        bpb = self.beats_per_bar or 0
        x1 = x0 + dbeat + bars * bpb  # this fix on the kept fix's bar's beat count
        top = min(x1, x0 + rate * ds)
        first = math.floor(x0) + 1
        if not first <= top < first + 1:
            return
        s_change = s0 + (first - x0) / rate
        if s0 + ds - s_change < self.MIN_AFTER_CHANGE_S:
            return
        bar, beat = (b0, float(first)) if first < bpb + 1 or not bpb else (b0 + 1, float(first - bpb))
        self._fixes[-1] = (s_change, bar, beat)

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
    #: a seconds fix of this quality is exact (Ardour's /position/samples): see _seconds_fix
    EXACT_QUALITY = 3
    seconds_may_precede_bars = True  # REAPER: order not documented; Ardour: bars always first

    def __init__(self) -> None:
        super().__init__()
        self._meter = _MeterFromBars()
        # the bar/beat fixes come from the same audio blocks as the seconds, whose block grid does
        # not hang on the derived tempo (Ardour: exact sample counts)
        self._beats.grid_source = self._seconds
        self._last_seconds_fix: tuple[float, float, int] | None = None  # (arrival t, seconds, quality)
        self._pending: list | None = None  # [t, bar, beat, seconds or None, quality, quarters] of this update
        self._offset_bounds: tuple[float, float, float] | None = None  # see _refine_quarters
        self._have_explicit_tempo = False
        # (quarters, song seconds) of the updates heard while playing, sorted by quarters: the DAW's
        # own tempo map where it has played (see _played_tempo); one point per PLAYED_BIN_Q quarters
        self._played: list[tuple[float, float]] = []
        self._tempo_known_here = False  # the latest jump's target was in the played map

    #: resolution of the played map (quarters) and how far apart two of its points may be to give a tempo
    PLAYED_BIN_Q = 0.125
    PLAYED_SPAN_Q = (0.1, 2.0)
    PLAYED_MAX_POINTS = 100_000

    def _remember_played(self, quarters: float, seconds: float) -> None:
        """Add one (quarters, seconds) pair of a DAW update to the played map (replacing the point
        of the same bin: a loop played again overwrites itself)."""
        played, step = self._played, self.PLAYED_BIN_Q
        key = round(quarters / step)
        i = bisect.bisect_left(played, key, key=lambda p: round(p[0] / step))
        if i < len(played) and round(played[i][0] / step) == key:
            played[i] = (quarters, seconds)
        elif len(played) < self.PLAYED_MAX_POINTS:
            played.insert(i, (quarters, seconds))

    def _played_tempo(self, quarters: float) -> float | None:
        """The tempo (quarter notes per minute) from ``quarters`` on where the DAW has played it:
        the slope between points of the played map that follow ``quarters`` (the first at most one
        bin before it), each next one at least ``PLAYED_SPAN_Q[0]`` on (points of two passes
        through a loop interleave); None where it has not played, or where two such slopes in a row
        disagree (a tempo change between the points)."""
        played = self._played
        lo, hi = self.PLAYED_SPAN_Q
        i = bisect.bisect_left(played, quarters - self.PLAYED_BIN_Q, key=lambda p: p[0])
        chain = played[i:i + 1]
        for q, sec in played[i + 1:i + 16]:
            if len(chain) == 3:
                break
            if q - chain[-1][0] >= lo:
                if q - chain[-1][0] > hi or sec <= chain[-1][1]:
                    break
                chain.append((q, sec))
        if len(chain) < 2:
            return None
        tempi = [60.0 * (q1 - q0) / (s1 - s0) for (q0, s0), (q1, s1) in itertools.pairwise(chain)]
        if len(tempi) == 2 and abs(tempi[1] / tempi[0] - 1.0) > 0.01:
            return None
        return tempi[0] if P.MIN_TEMPO_BPM <= tempi[0] <= P.MAX_TEMPO_BPM else None

    def _quarters(self, bar: int, beat: float) -> float:
        bpb = self._meter.beats_per_bar or self.time_signature[0]
        den = self.time_signature[1]
        return ((bar - 1) * bpb + (beat - 1.0)) * 4.0 / den

    #: how far below the true seconds a fix of each quality may be (Ardour: SMPTE frames at 30 fps,
    #: the time string's milliseconds, exact samples; REAPER's float seconds: 2)
    SECONDS_RESOLUTION = {1: 1.0 / 30.0, 2: 0.0, 3: 0.0}

    def _seconds_fix(self, seconds: float, t: float, *, quality: int = 2) -> None:
        self._seconds.resolution = self.SECONDS_RESOLUTION.get(quality, 0.0)
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
            if quality >= self.EXACT_QUALITY:
                # Nothing better comes for this update (Ardour's sample count is its last word):
                # use the pair now rather than at the next update, so a tempo change is taken one
                # update (~100 ms) sooner.
                self._flush_pair(t)

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
        self._beats.resolution = 0.5 * (hi - lo)  # the refined fix is off by at most this
        return last[1] * k + 0.5 * (lo + hi)

    def _bbt_fix(self, bar: int, beat: float, t: float, *, resolution: float | None = None) -> None:
        """``resolution``: the step of ``beat`` when the DAW truncates it (meter beats)."""
        self._flush_pair(t)
        last = self._last_seconds_fix
        if self.seconds_may_precede_bars and last is not None and abs(t - last[0]) <= self.pair_window_s:
            self._pending = [t, bar, beat, last[1], last[2], None]
        else:
            self._pending = [t, bar, beat, None, 0, None]
        bpb = self._meter.beats_per_bar
        if bpb is not None and bpb != self.time_signature[0]:
            sig = _signature(bpb, self.time_signature[1])
            if sig is not None:
                self.time_signature = sig
        quarters = self._quarters(bar, beat)
        if resolution is not None:
            self._beats.resolution = resolution * 4.0 / self.time_signature[1]
        if resolution is not None and self.playing:
            quarters = self._refine_quarters(quarters, resolution * 4.0 / self.time_signature[1], t)
        self._pending[5] = quarters
        if not self._have_explicit_tempo and self.playing:
            self._tempo_where_played(quarters, t)
        # a tempo derived from fewer than two fixes of this run (just after a jump) is a guess,
        # unless the played map gave the tempo at the jump's target
        self._beats.hold_checks = (not self._have_explicit_tempo and self._meter.run_length < 2
                                   and not self._tempo_known_here)
        self._beats.measure(quarters, t)

    def _tempo_where_played(self, quarters: float, t: float) -> None:
        """A DAW that sends no tempo (Ardour), after a jump (locate, loop wrap) to a place it has
        played before: take the tempo there from the played map at once, so the position after the
        jump runs at the right speed from its first fix instead of at the tempo before the jump
        until the next update gives a new line (a jump from 100 to 124 BPM cost ~19 ms over those
        100 ms)."""
        expected = self._beats.position_at(t)
        if expected is None or abs(quarters - expected) <= self._beats.jump_s * self._beats.rate_per_s:
            return
        tempo = self._played_tempo(quarters)
        self._tempo_known_here = tempo is not None
        if tempo is None or abs(tempo / self.tempo_bpm - 1.0) <= 0.005:
            return
        self._set_tempo(t, tempo)
        # the meter's line restarts at this fix (a jump): it starts from this rate, not the old one
        self._meter.beats_per_second = tempo / 60.0 * self.time_signature[1] / 4.0

    def _flush_pair(self, t: float) -> None:
        pending, self._pending = self._pending, None
        if pending is None or pending[3] is None:
            return
        if not self.playing:
            self._meter.reset_window()
            return
        self._meter.add(pending[3], pending[1], pending[2], exact=pending[4] >= self.EXACT_QUALITY)
        if pending[5] is not None and pending[4] >= self.EXACT_QUALITY:
            self._remember_played(pending[5], pending[3])
        rate = self._meter.beats_per_second
        if rate is not None and not self._have_explicit_tempo:
            tempo = rate * 60.0 * 4.0 / self.time_signature[1]
            if abs(tempo - self.tempo_bpm) > 0.005:
                before = self.tempo_bpm
                self._set_tempo(t, tempo)
                if abs(tempo / before - 1.0) > 0.01 and pending[5] is not None:
                    # a tempo change found from this update's own fix: place that fix again at the
                    # new tempo now (the position loop relocks on it) instead of at the next one
                    self._beats.forget(pending[0])
                    self._beats.measure(pending[5], pending[0])


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
    SECONDS_RESOLUTION = {1: 1.0 / 30.0, 2: 0.001, 3: 0.0}  # smpte frames, time ms, samples

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
            self._beats.resolution = 4.0 / self.time_signature[1] / P.ARDOUR_TICKS_PER_BEAT
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
