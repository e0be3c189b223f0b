"""Synthetic OSC transport streams from a simulated DAW whose true position is known.

The DAW runs its own audio clock (``drift``: +0.005 = its sample clock is 0.5 % fast against ours)
and processes audio in blocks of ``block`` samples. When it sends a position it reports the
position at the start of the block it is processing — as DAWs do — so every message is at or
behind the truth by up to one block; the message then arrives after a delivery delay (never
early: 0.1 ms + exponential 0.3 ms, and now and then a scheduler hiccup of 2-8 ms).

The song has a tempo map (124 BPM, 100 BPM from beat 40) and the transport plays with an
arrangement loop that wraps twice, then runs through the tempo change and is relocated backwards
while playing. :meth:`SimDaw.truth_beats` is the position at any instant of our clock, computed
from the song, never from any parser.

``blocks_restart``: the host starts a fresh audio block at every locate and loop wrap (the block
phase after it is not continuous with before: the block holding the jump is cut short), instead of
its audio clock running on through the jump with the same block grid (the default). Used by ``tests/test_osc_timing.py`` and
``benchmarks/transport_accuracy.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bridge.transport import osc_protocol as P
from bridge.transport.clock import BeatGrid

DIALECT_PERIOD_S = {"ableton": 0.05, "stembridge": 0.1, "reaper": 0.033, "bitwig": 0.05, "ardour": 0.1}


@dataclass
class _Seg:
    d0: float  # DAW seconds (its own clock) at which this run starts
    s0: float  # song seconds at d0


class SimDaw:
    """A DAW transport: song seconds over the DAW's own time, slope 1 between discontinuities."""

    def __init__(self, *, sample_rate: int = 48000, block: int = 512, drift: float = 0.005,
                 t_start: float = 0.5, duration_s: float = 46.0, loops: int = 2,
                 loop_beats: tuple[float, float] = (8.0, 24.0), jump_at_s: float = 38.0,
                 jump_to_beats: float = 16.0, blocks_restart: bool = False) -> None:
        self.sample_rate, self.block, self.drift = sample_rate, block, drift
        self.blocks_restart = blocks_restart
        self.tmap = BeatGrid.from_tempo_anchors([0.0, 40 * 60 / 124, 40 * 60 / 124 + 60], [0.0, 40.0, 140.0])
        self.t_start = t_start
        self.t_end = t_start + duration_s / (1.0 + drift)
        l0, l1 = (float(self.tmap.quarters_to_seconds(b)) for b in loop_beats)
        segs = [_Seg(0.0, 0.0)]
        d = l1
        for _ in range(loops):  # each wrap: from l1 back to l0
            segs.append(_Seg(d, l0))
            d += l1 - l0
        segs.append(_Seg(jump_at_s, float(self.tmap.quarters_to_seconds(jump_to_beats))))
        self.segs = segs
        #: (wall time, kind) of every discontinuity: loop wraps and the relocation
        self.discontinuities = [self.wall(s.d0) for s in segs[1:]]

    # clocks
    def daw_time(self, t: np.ndarray | float) -> np.ndarray:
        return (np.asarray(t, dtype=np.float64) - self.t_start) * (1.0 + self.drift)

    def wall(self, d: float) -> float:
        return self.t_start + d / (1.0 + self.drift)

    def song_seconds_at_daw(self, d: np.ndarray) -> np.ndarray:
        d = np.asarray(d, dtype=np.float64)
        starts = np.array([s.d0 for s in self.segs])
        i = np.clip(np.searchsorted(starts, d, side="right") - 1, 0, len(self.segs) - 1)
        return np.array([s.s0 for s in self.segs])[i] + (d - starts[i])

    # truth
    def truth_seconds(self, t: np.ndarray) -> np.ndarray:
        return self.song_seconds_at_daw(self.daw_time(t))

    def truth_beats(self, t: np.ndarray) -> np.ndarray:
        return np.asarray(self.tmap.seconds_to_quarters(self.truth_seconds(t)))

    def tempo_at(self, t: np.ndarray) -> np.ndarray:
        return np.asarray(self.tmap.tempo_at_seconds(self.truth_seconds(t)))

    # what the DAW reports
    def reported_song_seconds(self, t_emit: np.ndarray) -> np.ndarray:
        """Song seconds at the start of the block being processed at each emission time."""
        d = self.daw_time(t_emit)
        if not self.blocks_restart:
            n = np.floor(d * self.sample_rate / self.block) * self.block
            return self.song_seconds_at_daw(n / self.sample_rate)
        # blocks counted from the start of the run (segment) each instant belongs to
        starts = np.array([s.d0 for s in self.segs])
        d0 = starts[np.clip(np.searchsorted(starts, d, side="right") - 1, 0, len(starts) - 1)]
        n = np.floor((d - d0) * self.sample_rate / self.block) * self.block
        return self.song_seconds_at_daw(d0 + n / self.sample_rate)

    def messages(self, dialect: str, rng: np.random.Generator) -> list[tuple[float, str, tuple]]:
        """(arrival time, address, args) in arrival order: transport start, tempo, positions."""
        period = DIALECT_PERIOD_S[dialect]
        n = int((self.t_end - self.t_start) / period)
        t_emit = self.t_start + 0.002 + np.arange(n) * period + rng.uniform(0.0, 0.2 * period, n)
        delay = 1e-4 + rng.exponential(3e-4, n) + (rng.random(n) < 0.02) * rng.uniform(2e-3, 8e-3, n)
        arrive = t_emit + delay
        secs = self.reported_song_seconds(t_emit)
        beats = np.asarray(self.tmap.seconds_to_quarters(secs))
        tempo = np.asarray(self.tmap.tempo_at_seconds(secs))
        t0 = self.t_start
        msgs: list[tuple[float, str, tuple]] = []
        first_tempo = float(tempo[0])
        if dialect == "ableton":
            msgs += [(t0, P.ABLETON_TEMPO, (first_tempo,)), (t0, P.ABLETON_IS_PLAYING, (1,))]
        elif dialect == "reaper":
            msgs += [(t0, P.REAPER_TEMPO_RAW, (first_tempo,)), (t0, P.REAPER_PLAY, (1,))]
        elif dialect == "bitwig":
            msgs += [(t0, P.BITWIG_TEMPO_RAW, (first_tempo,)), (t0, P.BITWIG_PLAY, (1,))]
        elif dialect == "ardour":
            msgs += [(t0, P.ARDOUR_TRANSPORT_PLAY, (1,))]
        last_tempo = first_tempo
        seq = 0
        for k in range(n):
            a, b, s, bpm = float(arrive[k]), float(beats[k]), float(secs[k]), float(tempo[k])
            if bpm != last_tempo and dialect in ("ableton", "reaper", "bitwig"):
                addr = {"ableton": P.ABLETON_TEMPO, "reaper": P.REAPER_TEMPO_RAW, "bitwig": P.BITWIG_TEMPO_RAW}[dialect]
                msgs.append((a, addr, (bpm,)))
            last_tempo = bpm
            bar, in_bar = divmod(b, 4.0)  # 4/4 throughout
            if dialect == "ableton":
                msgs.append((a, P.ABLETON_SONG_TIME, (float(np.float32(b)),)))
            elif dialect == "stembridge":
                seq += 1
                msgs.append((a, P.STEMBRIDGE_TRANSPORT_ADDRESS, (1, seq, 1, bpm, b, 4, 4, 0, 0.0, 0.0)))
            elif dialect == "reaper":
                hundredths = int((in_bar % 1.0) * 100)  # REAPER's string truncates
                msgs.append((a, P.REAPER_TIME, (float(np.float32(s)),)))
                msgs.append((a, P.REAPER_BEAT_STR, (f"{int(bar) + 1}.{int(in_bar) + 1}.{hundredths:02d}",)))
            elif dialect == "bitwig":
                sixteenths, frac = divmod((in_bar % 1.0) * 4.0, 1.0)
                text = f"{int(bar) + 1}.{int(in_bar) + 1}.{int(sixteenths) + 1}:{int(frac * 100):02d}"
                msgs += [(a, P.BITWIG_UPDATE, (1,)), (a, P.BITWIG_BEAT_STR, (text,)), (a, P.BITWIG_UPDATE, (0,))]
            elif dialect == "ardour":
                ticks = int((in_bar % 1.0) * P.ARDOUR_TICKS_PER_BEAT)
                whole = int(s)
                ms = int(round((s - whole) * 1000))
                if ms == 1000:
                    whole, ms = whole + 1, 0
                hh, rem = divmod(whole, 3600)
                mm, ss = divmod(rem, 60)
                samples = int(round(s * self.sample_rate))
                msgs += [(a, P.ARDOUR_POSITION_BBT, (f"{int(bar) + 1:03d}|{int(in_bar) + 1:02d}|{ticks:04d}",)),
                         (a, P.ARDOUR_POSITION_TIME, (f"{hh:02d}:{mm:02d}:{ss:02d}.{ms:03d}",)),
                         (a, P.ARDOUR_POSITION_SAMPLES, (str(samples),))]
        msgs.sort(key=lambda m: m[0])
        self._emitted = (t_emit, arrive)
        return msgs

    def blind(self, t: np.ndarray) -> np.ndarray:
        """Instants no listener can know (after :meth:`messages`): from each discontinuity until
        the first position sent from a block that starts after it has arrived (a host whose blocks
        restart at the jump starts one at it)."""
        t_emit, arrive = self._emitted
        block_s = 0.0 if self.blocks_restart else self.block / self.sample_rate / (1.0 + self.drift)
        out = np.zeros(np.shape(t), dtype=bool)
        for td in self.discontinuities:
            later = arrive[t_emit >= td + block_s]
            t1 = later.min() if later.size else np.inf
            out |= (t >= td) & (t <= t1)
        return out


def read_clock(dialect, msgs: list[tuple[float, str, tuple]], queries: np.ndarray, clock) -> np.ndarray:
    """Feed the messages in arrival order to ``dialect`` and ``clock``; the clock's position
    (beats) at each query instant, with only the messages that had arrived by then."""
    out = np.empty(queries.size)
    j = 0
    for t_msg, address, args in msgs:
        while j < queries.size and queries[j] < t_msg:
            out[j] = clock.now(at=float(queries[j])).position_beats
            j += 1
        state = dialect.handle(address, args, t_msg)
        if state is not None:
            clock.update(state)
    while j < queries.size:
        out[j] = clock.now(at=float(queries[j])).position_beats
        j += 1
    return out
