"""Position estimate from a DAW's coarse, block-quantised OSC position reports (:class:`PositionLoop`),
used by every dialect in :mod:`bridge.transport.osc_dialects`."""

from __future__ import annotations

from collections import deque


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
