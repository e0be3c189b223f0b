"""Position estimate from a DAW's coarse, block-quantised OSC position reports (:class:`PositionLoop`),
used by every dialect in :mod:`bridge.transport.osc_dialects`."""

from __future__ import annotations

import math
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
      audio clock runs up to ~0.5 % off the system clock), a least-squares line through up to
      ``HISTORY_S`` seconds of fixes (kept across carried jumps and tempo changes: it is a property
      of the audio interface); the window reaches back as far as that ratio is known well enough
      (:meth:`_reach_s`), from about a second at first to tens of seconds;
    * the offset is the largest of the fixes' positions carried to now along that slope (the fix
      that arrived least late), plus the expected gap between the sample maximum and the true
      envelope, ``span / (n + 1)`` for ``n`` fixes whose lateness spreads uniformly over ``span``
      (learned from full windows): so even the first fix after a jump is unbiased on average.

    A fix further off than ``jump_s`` seconds of song time is a jump (locate, loop wrap, a restart);
    a tempo change of more than 1 % (``relock()``) is handled the same way. The song position jumps
    but the DAW's audio clock does not: its blocks keep their length and phase. So the loop learns
    the **block grid** while it plays — ``block_s``, the largest length that every spacing between
    consecutive fixes is a whole multiple of (the fixes are block starts), and the wall time of the
    latest block start — and the first fix after a jump is carried to now by its lateness on that
    grid, exactly known, instead of by the expected half block: the window's fixes are shifted onto
    the new position and keep working, so the estimate after a jump is as good as before it. Where
    no grid shows (positions not block-quantised, too coarse, or too few fixes yet) the window
    restarts at the jump. The lateness is taken within the current block, never one block more,
    so a fix that arrived after the next block had begun gives a position one block behind until
    the next fixes show it (:meth:`_check_carry`).

    A host whose blocks **restart at a locate** breaks the grid: the carried window is then off by
    part of a block. Each new fix also bounds the truth from above (it arrived within a block and a
    delivery delay of its block start), so a carried envelope over the bounds of enough new fixes,
    or a whole-block lift that would go over them, shows the restart (:meth:`_check_restart`): the
    carried fixes go, and the loop remembers that this DAW restarts (``blocks_restart``, shared
    through ``grid_source``): its later locates start afresh, placed between the new fixes' lower
    and upper bounds (:meth:`_fresh_estimate`). A tempo change (no locate) is still carried. The
    clock-ratio line keeps one intercept per run, so no jump costs its history.

    A small rate change (``set_rate``) keeps the window, each fix's lateness preserved. The reported
    position never steps back by more than ``max_step_back_s`` per fix (the rest is worked off over
    the next fixes) so the playhead does not visibly jump backwards, except in the first fixes
    after a jump and when a restart showed the estimate ahead; forward corrections are taken at
    once. ``gain`` is the weight of each window's clock-ratio measurement.
    """

    #: bounds of a believable DAW-clock / system-clock ratio; measurements outside are ignored
    MAX_CLOCK_DEVIATION = 0.02
    #: spacings between consecutive fixes needed before a block grid is believed
    MIN_SPACINGS = 16
    #: the block grid is used across a jump only this soon (seconds) after the last fix before it
    MAX_GRID_GAP_S = 1.0
    #: a spacing counts as a whole number of blocks within this fraction of a block (the DAW's own
    #: rounding of positions: float32 beats, Ardour's 1/1920-beat ticks)
    GRID_TOLERANCE = 0.08
    #: the clock ratio is a line through up to this many fixes over up to HISTORY_S seconds: the
    #: fixes scatter over a block, so the slope's error falls with the length of the baseline
    HISTORY_FIXES = 512
    #: the envelope's window never holds more fixes than this
    MAX_FIXES = 256
    #: how far a DAW's audio clock is taken to be off ours before it is measured (see _reach_s)
    PRIOR_RATIO_SIGMA = 0.01
    #: the first lateness span is measured from this many fixes (a rough one beats none: without
    #: it the first second of play lags by a block over the fixes so far, ~B/(n + 1))
    FIRST_SPAN_FIXES = 4
    #: a run that starts afresh is placed between its fixes' bounds for this many fixes
    FRESH_FIXES = 8
    #: fixes after a jump whose estimate may step back by any amount (see measure)
    FREE_STEPS_AFTER_JUMP = 6
    #: the spread of a delivery delay that is not held up (see _span_for_gap)
    TYPICAL_DELAY_SPREAD_S = 0.0005
    #: the share of a new run's fixes whose upper bound lies under a carried envelope that shows a
    #: restart (a fix held up on its way does so too, but ~1 in 200)
    RESTART_SHARE = 0.2
    #: fixes of two loops this close (s) come from the same DAW update (see grid_source)
    pair_window_s = 0.03
    #: the delivery delay allowed for when a fix bounds the truth from above (see _check_restart)
    RESTART_DELAY_S = 0.0015
    HISTORY_S = 30.0

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
        # block grid (see the class docstring): spacings of consecutive fixes in DAW seconds
        self._spacings: deque[float] = deque(maxlen=48)
        self._spacing_ok = False  # the window's last fix is a predecessor to measure a spacing from
        self._new_spacings = 0  # spacings since block_s was last worked out
        self._block_s: float | None = None
        self._grid_t: float | None = None  # wall time of the latest fix's block start
        self._carry_t, self._carry_checks = -math.inf, 0  # the last carried jump (see _check_carry)
        self._carry_lift = 0.0  # how far _check_carry levelled the carried fixes up so far
        self._grid_run = False  # the window's fixes are one run on the grid (≥ 8, or carried over)
        # a longer history of the same fixes for the clock ratio: (arrival t, value, run), one
        # intercept per run (a run ends at every jump), so no jump needs to line the runs up
        self._history: deque[tuple[float, float, int]] = deque(maxlen=self.HISTORY_FIXES)
        self._run = 0
        self._history_new = 0
        self._ratio_sigma = math.inf  # standard error of the latest clock-ratio line
        #: another loop fed by the same DAW's blocks whose grid to prefer (see _grid)
        self.grid_source: PositionLoop | None = None
        #: set by a dialect while its rate is a first guess (Ardour's tempo right after a jump):
        #: fixes then drift off the carried ones by the rate's error, not by blocks (see _check_carry)
        self.hold_checks = False
        #: the DAW starts a fresh audio block at a locate (its block phase after a jump is not the
        #: one before): learned from the first jump that shows it (see _check_restart); such jumps
        #: are not carried on the grid
        self.blocks_restart = False
        #: how far below its block start's true position a fix's value may be (position units): the
        #: DAW's rounding of what it sends (REAPER's 1/100 beat, Bitwig's 1/400 quarter); a fix
        #: bounds the truth from above only up to it
        self.resolution = 0.0
        self._restart_cut = -math.inf  # the jump (arrival time) at which a restart was last seen
        self._step_back_ok = False
        self._since_jump = 0  # fixes since the last jump, that one included

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
            self._history = deque(((tk, vk + d * (tk - t), rk) for tk, vk, rk in self._history),
                                  maxlen=self.HISTORY_FIXES)
            self.rate_per_s = rate_per_s
            self._spacing_ok = False

    def set_playing(self, t: float, playing: bool) -> None:
        if playing != self.playing:
            self._rebase(t)
            self.playing = playing
            self._fixes.clear()
            self._history.clear()
            self._ratio_sigma = math.inf
            self._spacing_ok = self._grid_run = False
            if playing:
                self._relock = True

    def reset(self) -> None:
        self._anchor_t = None
        self._fixes.clear()
        self._relock = True
        self._spacings.clear()
        self._history.clear()
        self._ratio_sigma = math.inf
        self._spacing_ok = self._grid_run = False
        self._block_s = self._grid_t = None

    def forget(self, t: float) -> None:
        """Drop the fixes that arrived at ``t`` (to measure that fix again, e.g. at a tempo found
        from it)."""
        while self._fixes and self._fixes[-1][0] == t:
            self._fixes.pop()
        while self._history and self._history[-1][0] == t:
            self._history.pop()

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
        if learn and (n >= 8 or (n >= self.FIRST_SPAN_FIXES and self.span_s is None)) and self.rate_per_s > 0.0:
            spread = (top - min(at_t)) / self.rate_per_s
            span = spread * (n + 1) / (n - 1)  # unbiased width of a uniform spread
            self.span_s = span if self.span_s is None else self.span_s + 0.1 * (span - self.span_s)
        if self.span_s is not None and self.span_s > 1e-6:  # (exact fixes: nothing to add)
            top += self._span_for_gap() * self.rate_per_s / (n + 1)
        return top

    def _fresh_estimate(self, t: float, estimate: float) -> float:
        """The first fixes of a run that starts afresh (a jump on a DAW whose blocks restart, or
        with no grid to carry it on), once the block length is known: each fix bounds the truth
        from below (its block had begun) and from above (it arrived within a block and a delivery
        delay of that start); the middle of the two is the best guess when the fixes' lateness
        spreads evenly over the block. With few fixes it beats the envelope's expected gap, which
        does not know the fixes whose lateness was large: the bounds narrow from both sides."""
        block = self._known_block()
        if block is None:
            return estimate
        slope = self.slope_per_s
        at_t = [vk + slope * (t - tk) for tk, vk in self._fixes]
        lower = max(at_t)
        upper = min(at_t) + block * self.rate_per_s + slope * self.RESTART_DELAY_S + self.resolution
        return 0.5 * (lower + upper) if upper > lower else estimate

    def _known_block(self) -> float | None:
        """The block length (DAW seconds) from ``grid_source`` or this loop, whatever its phase."""
        for loop in (self.grid_source, self):
            block = None if loop is None else loop._plausible_block()
            if block is not None:
                return block
        return None

    def _plausible_block(self) -> float | None:
        """``block_s`` where it can be the block: the fixes' lateness spreads over about one block
        (plus delivery), so a "grid" much coarser than that spread is not the block (a sender that
        skipped every other block), nor one much finer (the rounding of the values: Bitwig's
        1/400 quarter looked like a 1.5 ms grid)."""
        block = self.block_s
        if block is None or self.span_s is None:
            return None
        return block if 0.5 * self.span_s <= block / self.clock_ratio <= 1.5 * self.span_s else None

    def _span_for_gap(self) -> float:
        """The lateness span behind the envelope's expected gap: the learned spread of the fixes,
        but no more than a block (and a typical delivery delay) once the block is known: a fix held
        up on its way widens the measured spread, yet it is never the top fix, so it adds nothing
        to the gap (with one fix after a jump, a spread inflated by 8 ms put it 4 ms ahead)."""
        span = self.span_s or 0.0
        if self._block_s is not None:
            span = min(span, self._block_s / self.clock_ratio + self.TYPICAL_DELAY_SPREAD_S)
        return span

    def _update_clock_ratio(self) -> None:
        self._history_new += 1
        if self._history_new < 8 and len(self._history) >= 128:  # every 8th fix once it is long
            return
        self._history_new = 0
        fixes = self._history
        n = len(fixes)
        if n < 8 or self.rate_per_s <= 0.0 or fixes[-1][0] - fixes[0][0] < 1.0:
            return
        # one line, one intercept per run: sums about each run's own means
        t0 = fixes[0][0]
        runs: dict[int, list[float]] = {}
        for tk, vk, rk in fixes:
            acc = runs.setdefault(rk, [0.0, 0.0, 0.0])
            acc[0] += 1.0
            acc[1] += tk - t0
            acc[2] += vk
        means = {rk: (acc[1] / acc[0], acc[2] / acc[0]) for rk, acc in runs.items()}
        sxx = sxy = syy = 0.0
        for tk, vk, rk in fixes:
            mt, mv = means[rk]
            dt, dv = tk - t0 - mt, vk - mv
            sxx += dt * dt
            sxy += dt * dv
            syy += dv * dv
        if sxx <= 0.0:
            return
        ratio = sxy / sxx / self.rate_per_s
        dof = n - 1 - len(runs)
        if dof > 0:
            self._ratio_sigma = math.sqrt(max(0.0, syy - sxy * sxy / sxx) / dof / sxx) / self.rate_per_s
        if abs(ratio - 1.0) <= self.MAX_CLOCK_DEVIATION:
            # a long baseline is already smooth; a short one is weighed down by ``gain``
            weight = max(self.gain, min(1.0, (fixes[-1][0] - fixes[0][0]) / self.HISTORY_S))
            self.clock_ratio += weight * (ratio - self.clock_ratio)

    @property
    def block_s(self) -> float | None:
        """The DAW's block length in its own seconds, learned from the fixes (None: none seen)."""
        if self._new_spacings >= 8 or (self._block_s is None and self._new_spacings > 0):
            self._block_s = self._learn_block()
            self._new_spacings = 0
        return self._block_s

    def _learn_block(self) -> float | None:
        """The largest length that ≥ 90 % of the recent spacings are whole multiples of.

        Written by hand: this is a tolerant greatest common divisor of a few dozen reals, a dozen
        lines, and no library offers one. Candidates are the smallest spacing over 1, 2, 3 …; a
        grid finer than 0.5 ms is not looked for (its lateness would not matter).
        """
        sp = sorted(self._spacings)
        if len(sp) < self.MIN_SPACINGS:
            return None
        base = sp[0]
        for m in range(1, min(64, int(base / 0.0005)) + 1):
            b = base / m
            ns = [round(x / b) for x in sp]
            b = sum(n * x for n, x in zip(ns, sp, strict=True)) / sum(n * n for n in ns)
            good = sum(abs(x - n * b) <= self.GRID_TOLERANCE * b for n, x in zip(ns, sp, strict=True))
            if good >= 0.9 * len(sp):
                return b
        return None

    def _restarts(self) -> bool:
        """This DAW's blocks restart at a locate (learned here or by ``grid_source``)."""
        return self.blocks_restart or (self.grid_source is not None and self.grid_source.blocks_restart)

    def _carry_over(self, value: float, t: float, *, located: bool = True) -> bool:
        """After a jump: shift the window's fixes onto the new position, placing the fix ``value``
        at ``t`` by its lateness on the block grid. False when there is no grid to use, or the
        position ``located`` (not just a new tempo) and the DAW's blocks restart at a locate (the
        grid before says nothing of the phase after)."""
        if located and self._restarts():
            return False
        lateness = self._grid_lateness(t) if len(self._fixes) >= 8 else None
        if lateness is None:
            return False
        self._shift(value + self.slope_per_s * lateness - self._envelope(t))
        self._carry_t, self._carry_checks, self._carry_lift = t, 4, 0.0
        return True

    def _shift(self, by: float, *, before: float = math.inf) -> None:
        """Move the fixes that arrived before ``before`` by ``by`` position units."""
        self._fixes = deque((tk, vk + by if tk < before else vk) for tk, vk in self._fixes)
        self._grid_run = True

    def _check_carry(self, t: float) -> None:
        """The few fixes after a carried jump: the carrying fix may have arrived after the next block
        had begun (late by more than a block, or within the grid's margin of that), and then the
        carried fixes sit one block behind the new run's: the new run's envelope clearly above
        theirs by at least half a block shows it (or the grid placing a new fix that far
        above them), and they move up one block. Less than that is the carried window's own lag: they are levelled up to the new run (never past
        it), and a block shown later counts what was levelled. Rarely (the grid's phase off by more than its
        margin, and the carrying fix early in its block) they sit one block ahead: every later fix
        then lies at least a block less one margin below them; they move down one block."""
        self._carry_checks -= 1
        slope, cut = self.slope_per_s, self._carry_t
        old = [vk + slope * (t - tk) for tk, vk in self._fixes if tk < cut]
        new = [vk + slope * (t - tk) for tk, vk in self._fixes if tk >= cut]
        later = [vk + slope * (t - tk) for tk, vk in self._fixes if tk > cut]  # not the carrying fix
        grid = self._grid(t)
        if not old or not new or grid is None:
            return
        block = grid[1]
        block_wall = block / self.clock_ratio
        margin = self._grid_margin(block_wall) * slope
        gap = max(new) - max(old)
        block_pos = block * self.rate_per_s
        # where the grid places the newest fix, against the carried window's top
        lateness = self._grid_lateness(t)
        on_grid = -math.inf if lateness is None else self._fixes[-1][1] + slope * lateness - max(old)
        if max(gap, on_grid) + self._carry_lift >= 0.5 * block_pos:
            # a whole block up, unless that lifts the carried fixes over what a later fix allows
            # (it arrived within a block and a delivery delay of its block start; not the carrying
            # fix, which may well have come later than that): then the gap is not a block but a
            # host whose blocks restarted at the locate
            upper = min(later, default=math.inf) + block_pos + slope * self.RESTART_DELAY_S + self.resolution
            if max(old) + block_pos - self._carry_lift > upper + margin:
                self._restarted(cut)
                return
            self._shift(block_pos - self._carry_lift, before=cut)
            self._carry_checks = 0
        elif gap > margin:
            # less than half a block: the carried window's own lag, not a block; level it up to what
            # the new run shows (never past it), remembering how far, should a block show later
            self._shift(gap, before=cut)
            self._carry_lift += gap
        elif self._carry_lift == 0.0 and len(later) >= 2 and max(later) - max(old) < margin - block_wall * slope:
            self._shift(-block_pos, before=cut)
            self._carry_checks = 0

    def _check_restart(self, t: float) -> float:
        """While the fixes before a carried jump still hold the envelope: each fix arrived within
        one block (plus a delivery delay of ``RESTART_DELAY_S``) of its block start, so the new run
        bounds the truth from above as well. Blocks that ran on through the jump keep the carried
        envelope under that bound; a host that started a fresh block at the locate leaves it off
        by a fraction of a block, and when that is ahead the bounds show it: every fix whose
        lateness exceeds a block less that fraction. A fix held up on its way (a few ms) also lies
        under the envelope, so a restart takes two such fixes and ``RESTART_SHARE`` of the new
        run's. Then the carried fixes go, the new run stands alone, and later jumps of this DAW are
        not carried (``blocks_restart``).

        Returns the second-lowest bound while the new run is short: the estimate is held under it
        while the carried fixes stay (inf: no bound)."""
        cut = self._carry_t
        grid = self._grid(t) if self._fixes and self._fixes[0][0] < cut else None
        if grid is None:
            return math.inf
        slope = self.slope_per_s
        block_pos = grid[1] * self.rate_per_s
        margin = self._grid_margin(grid[1] / self.clock_ratio) * slope
        allowance = block_pos + slope * self.RESTART_DELAY_S + margin + self.resolution
        bounds = sorted(vk + slope * (t - tk) + allowance for tk, vk in self._fixes if tk >= cut)
        top = self._envelope(t)
        under = sum(b < top for b in bounds)
        if under >= 2 and under >= self.RESTART_SHARE * len(bounds):
            self._restarted(cut)
            return math.inf
        return bounds[1] if len(bounds) >= 2 else math.inf

    def _restarted(self, cut: float) -> None:
        """The blocks restarted at the jump at ``cut``: drop the fixes carried over it."""
        self.blocks_restart = True
        self._restart_cut = cut
        self._fixes = deque((tk, vk) for tk, vk in self._fixes if tk >= cut)
        self._carry_checks, self._carry_t = 0, -math.inf
        self._step_back_ok = True  # the estimate was ahead: take it back at once, not 2 ms a fix

    def _settle_carry(self, t: float) -> None:
        """Once the run after a carried jump has ``window`` fixes of its own, the carried fixes must
        agree with it: a DAW whose blocks restarted at the locate (not one whose audio clock ran
        on) leaves them off by a fraction of a block, and if that is ahead they are dropped rather
        than hold the envelope up."""
        cut = self._carry_t
        new = [vk + self.slope_per_s * (t - tk) for tk, vk in self._fixes if tk >= cut]
        if len(new) < self.window:
            return
        self._carry_t = -math.inf
        old = [vk + self.slope_per_s * (t - tk) for tk, vk in self._fixes if tk < cut]
        grid = self._grid(t)
        margin = self._grid_margin(grid[1] / self.clock_ratio if grid else 0.0) * self.slope_per_s
        if old and max(old) > max(new) + margin:
            self._fixes = deque((tk, vk) for tk, vk in self._fixes if tk >= cut)

    @staticmethod
    def _grid_margin(block_wall: float) -> float:
        """How far (wall seconds) the grid's phase may be off: the estimate's own error."""
        return min(max(0.1 * block_wall, 0.0003), 0.001)

    def _reach_s(self) -> float | None:
        """How far back (seconds) the envelope should reach, or None before the spread is known.

        With fixes every ``period`` seconds spread over ``span``, an envelope over ``reach``
        seconds misses the block start by ~span·period/reach; carrying its top fix (on average
        reach/2 old) along a slope whose ratio is off by σ adds σ·reach/2. The sum is least at
        reach = √(2·span·period/σ): about a second while the ratio is a first guess (σ: the
        spread of DAW clocks, PRIOR_RATIO_SIGMA), ten or more once a long line has measured it.
        """
        history = self._history
        if self.span_s is None or len(history) < 2 or history[-1][0] <= history[0][0]:
            return None
        period = (history[-1][0] - history[0][0]) / (len(history) - 1)
        sigma = max(1e-7, min(self._ratio_sigma, self.PRIOR_RATIO_SIGMA))
        return min(self.HISTORY_S, math.sqrt(2.0 * self.span_s * period / sigma))

    def _grid_lateness(self, t: float) -> float | None:
        """Wall seconds from the latest block start on the grid to ``t``, when the grid is known.

        The grid's phase is known to within the estimate's own error, so a fix that arrived just
        after its block began could seem to come just *before* it, i.e. almost a block late, and be
        placed a block ahead. So the phase is taken ``margin`` early: such a fix is placed at
        lateness ~0, and one that arrived within ``margin`` of the next block start is placed a
        block behind (the next fix moves it forwards, see :meth:`measure`): never ahead.
        """
        grid = self._grid(t)
        if grid is None:
            return None
        grid_t, block = grid
        block_wall = block / self.clock_ratio
        margin = self._grid_margin(block_wall)
        return max(0.0, (t - grid_t + margin) % block_wall - margin)

    def _grid(self, t: float) -> tuple[float, float] | None:
        """(wall time of a block start, block length in DAW seconds), from ``grid_source`` when it
        has one (the same DAW's exact seconds: its phase does not hang on a derived tempo), else
        from this loop's own fixes; None when neither knows the grid."""
        for loop in (self.grid_source, self):
            if loop is None or not loop._grid_run or loop._grid_t is None or loop.span_s is None:
                continue
            if t - loop._grid_t > self.MAX_GRID_GAP_S:
                continue
            block = loop._plausible_block()
            if block is not None:
                return loop._grid_t, block
        return None

    def measure(self, value: float, t: float) -> float:
        """Feed one fix (``value`` was the DAW's position at or before ``t``); returns the
        reported position at ``t``."""
        reported = self.position_at(t)
        fixes = self._fixes
        if reported is None or not self.playing or self.rate_per_s <= 0.0:
            fixes.clear()
            jumped = True
        else:
            located = bool(fixes) and abs(value - self._envelope(t)) > self.jump_s * self.rate_per_s
            jumped = self._relock or located
            if jumped and not self._carry_over(value, t, located=located):
                self._fixes.clear()
                self._grid_run = False
                self._carry_t, self._carry_checks = -math.inf, 0  # nothing carried over this one
            fixes = self._fixes
        if jumped:
            self._spacing_ok = False
            self._run += 1
            self._since_jump = 0
        self._since_jump += 1
        self._relock = not self.playing  # while stopped every fix is exact (nothing moves)
        if not self.playing or self.rate_per_s <= 0.0:
            self._anchor_t, self._anchor_pos = t, value
            return value
        if self._spacing_ok and fixes:
            spacing = (value - fixes[-1][1]) / self.rate_per_s  # DAW seconds between two block starts
            if spacing > 0.0:
                self._spacings.append(spacing)
                self._new_spacings += 1
        self._spacing_ok = True
        fixes.append((t, value))
        self._history.append((t, value, self._run))
        while self._history and t - self._history[0][0] > self.HISTORY_S:
            self._history.popleft()
        reach_s = self._reach_s()
        if reach_s is None:  # nothing learned yet: ``window`` fixes within ``window_s``
            while len(fixes) > 2 and (len(fixes) > self.window or t - fixes[0][0] > self.window_s):
                fixes.popleft()
        else:
            while len(fixes) > 2 and (len(fixes) > self.MAX_FIXES or t - fixes[0][0] > reach_s):
                fixes.popleft()
        if self._carry_checks > 0 and not jumped and not self.hold_checks:
            self._check_carry(t)
        upper = math.inf
        source = self.grid_source
        if (self._carry_t > -math.inf and not jumped and source is not None
                and abs(source._restart_cut - self._carry_t) <= self.pair_window_s):
            self._restarted(self._carry_t)  # the same DAW's exact seconds showed this jump restart
        if self._carry_t > -math.inf and not jumped:
            upper = self._check_restart(t)
        if self._carry_t > -math.inf and not jumped:
            self._settle_carry(t)
        self._update_clock_ratio()
        # (not while carried fixes stay: off by a fraction of a block after a restart, they widen the spread)
        estimate = self._envelope(t, learn=self._carry_t == -math.inf)
        if estimate > upper:  # a carried envelope above what a new fix allows (see _check_restart)
            estimate, self._step_back_ok = upper, True
        elif self._carry_t == -math.inf and len(fixes) <= min(self._since_jump, self.FRESH_FIXES):
            estimate = self._fresh_estimate(t, estimate)
        if len(fixes) >= 8:
            self._grid_run = True
        self._grid_t = t - (estimate - value) / self.slope_per_s  # this fix's block start
        # right after a jump the playhead has just moved anyway: the first fixes of the new run may
        # take it back at once (a fresh window's first estimates are off by up to a block / (n + 1))
        if (not jumped and reported is not None and not self._step_back_ok
                and self._since_jump > self.FREE_STEPS_AFTER_JUMP):
            estimate = max(estimate, reported - self.max_step_back_s * self.rate_per_s)
        self._step_back_ok = False
        self._anchor_t, self._anchor_pos = t, estimate
        return estimate
