"""Position accuracy of the OSC dialects on block-quantised streams whose true position is known.

DAWs report the position of the start of the audio block they are processing, so every fix is
behind the truth by up to one block; a loop that averages fixes lags by half a block. The streams
come from ``tests/osc_streams.py`` (a simulated DAW with its own drifting audio clock, a tempo
change, two loop wraps and a relocation); errors are measured against the song's own position at
each instant, in milliseconds of song time. Goal (issue 17): median ≤ 1.5 ms, p99 ≤ 6 ms, outside
the instants no listener can know (from a jump until the first fix after it arrives).
"""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest
from osc_streams import SimDaw, read_clock

from bridge.transport import osc_protocol as P
from bridge.transport.clock import TransportClock
from bridge.transport.osc_dialects import AbletonOscDialect, make_dialect
from bridge.transport.osc_io import OscListener, build_osc_message

MEDIAN_GOAL_MS, P99_GOAL_MS = 1.5, 6.0


def _errors_ms(name: str, *, sample_rate: int, block: int, drift: float, seed: int = 7,
               tempo_map: bool = True, blocks_restart: bool = False) -> tuple[np.ndarray, SimDaw, object]:
    rng = np.random.default_rng(seed)
    daw = SimDaw(sample_rate=sample_rate, block=block, drift=drift, blocks_restart=blocks_restart)
    msgs = daw.messages(name, rng)
    q = np.sort(rng.uniform(daw.t_start + 0.3, daw.t_end, 3000))
    dialect = make_dialect(name)
    beats = read_clock(dialect, msgs, q, TransportClock(tempo_map=daw.tmap if tempo_map else None))
    err = (beats - daw.truth_beats(q)) * 60000.0 / daw.tempo_at(q)
    return err[~daw.blind(q)], daw, dialect


@pytest.mark.parametrize("name", ["ableton", "stembridge", "reaper", "bitwig", "ardour"])
@pytest.mark.parametrize(("sample_rate", "block", "drift"), [(44100, 512, 0.005), (48000, 256, -0.005),
                                                             (48000, 512, 0.0)])
def test_block_quantised_positions_meet_the_goal(name, sample_rate, block, drift):
    err, _, dialect = _errors_ms(name, sample_rate=sample_rate, block=block, drift=drift)
    a = np.abs(err)
    assert np.median(a) <= MEDIAN_GOAL_MS and np.percentile(a, 99) <= P99_GOAL_MS, (
        f"median {np.median(a):.2f} ms, p99 {np.percentile(a, 99):.2f} ms, signed median {np.median(err):+.2f} ms")
    # the simulated DAW's blocks ran on through its loop wraps and the relocation
    assert not dialect._beats.blocks_restart and not dialect._seconds.blocks_restart


@pytest.mark.parametrize("name", ["ableton", "stembridge", "reaper", "ardour"])
@pytest.mark.parametrize(("sample_rate", "drift"), [(44100, 0.005), (48000, -0.005)])
def test_big_blocks_meet_the_goal_through_jumps_and_the_tempo_change(name, sample_rate, drift):
    """1024-sample blocks (21-23 ms): the first fix after a loop wrap, the relocation or the tempo
    change is placed by its lateness on the DAW's block grid, so p99 holds there too (it was
    7-12 ms when each jump restarted the envelope from one fix)."""
    err, daw, dialect = _errors_ms(name, sample_rate=sample_rate, block=1024, drift=drift)
    a = np.abs(err)
    assert np.median(a) <= MEDIAN_GOAL_MS and np.percentile(a, 99) <= P99_GOAL_MS, (
        f"median {np.median(a):.2f} ms, p99 {np.percentile(a, 99):.2f} ms, signed median {np.median(err):+.2f} ms")
    # the grid it used is the DAW's own block (independent truth: the simulated DAW's block length)
    assert dialect._beats.block_s == pytest.approx(1024 / sample_rate, rel=1e-3)


@pytest.mark.parametrize("name", ["ableton", "reaper"])
def test_big_blocks_are_unbiased(name):
    """1024-sample blocks (21-23 ms): a mean would lag ~11 ms; the envelope stays within 1.5 ms."""
    err, _, _ = _errors_ms(name, sample_rate=44100, block=1024, drift=0.005)
    assert abs(np.median(err)) <= 1.0 and np.median(np.abs(err)) <= MEDIAN_GOAL_MS


@pytest.mark.parametrize("drift", [0.005, -0.005])
def test_clock_ratio_follows_the_daw_audio_clock(drift):
    _, _, dialect = _errors_ms("ableton", sample_rate=48000, block=512, drift=drift)
    assert dialect._beats.clock_ratio == pytest.approx(1.0 + drift, abs=0.001)


def test_without_a_tempo_map_only_the_tempo_change_costs():
    """Without the project's map the clock cannot know the tempo change before the DAW says so;
    everywhere else the goal holds."""
    err, _, _ = _errors_ms("ableton", sample_rate=44100, block=512, drift=0.005, tempo_map=False)
    a = np.abs(err)
    assert np.median(a) <= MEDIAN_GOAL_MS and np.percentile(a, 98) <= P99_GOAL_MS


@pytest.mark.parametrize("seed", [7, 8, 9])
def test_ardour_without_a_tempo_map_meets_the_goal(seed):
    """Ardour sends no tempo: the estimator derives it from each update's bars/beats and sample
    count. 1024-sample blocks, no tempo map in the clock: p99 was 7-8 ms, from the tempo after a
    relocation (the tempo before it until the next update) and the tempo change (a line mixing
    the old and the new tempo until the update after)."""
    err, _, _ = _errors_ms("ardour", sample_rate=44100, block=1024, drift=0.005, seed=seed, tempo_map=False)
    a = np.abs(err)
    assert np.median(a) <= MEDIAN_GOAL_MS and np.percentile(a, 99) <= P99_GOAL_MS, (
        f"median {np.median(a):.2f} ms, p99 {np.percentile(a, 99):.2f} ms")


def _between_fixes(daw: SimDaw, q: np.ndarray, t_event: float, block_s: float) -> np.ndarray:
    """Instants from the arrival of the first fix sent a block after ``t_event`` until the
    arrival of the next one: what the first fix after a jump or tempo change must carry alone."""
    t_emit, arrive = daw._emitted
    later = np.sort(arrive[t_emit >= t_event + block_s])
    return (q >= later[0]) & (q < later[1])


def test_ardour_takes_the_tempo_of_a_place_it_played_and_of_a_change_on_a_beat_at_once():
    """No tempo map, 512-sample blocks. The relocation goes from 100 BPM back to a place played at
    124 BPM: the played map gives that tempo at the first fix (it ran on at 100 BPM for ~100 ms,
    ~19 ms off). The change 124 → 100 BPM sits on beat 40: the first exact fix after it gives the
    new tempo (a line through the fixes on both sides of it read ~112 BPM, up to 35 ms off)."""
    rng = np.random.default_rng(11)
    daw = SimDaw(sample_rate=48000, block=512, drift=-0.005)
    msgs = daw.messages("ardour", rng)
    q = np.sort(rng.uniform(daw.t_start + 0.3, daw.t_end, 20000))
    beats = read_clock(make_dialect("ardour"), msgs, q, TransportClock())
    err = (beats - daw.truth_beats(q)) * 60000.0 / daw.tempo_at(q)
    block_s = 512 / 48000
    grid = np.linspace(daw.t_start, daw.t_end, 200_001)
    change = float(grid[np.argmax(daw.truth_beats(grid) >= 40.0)])  # truth: the song's tempo change
    for label, t_event in (("relocation", daw.discontinuities[-1]), ("tempo change", change)):
        window = _between_fixes(daw, q, t_event, block_s)
        assert window.sum() > 20
        assert np.abs(err[window]).max() <= 3.0, f"{label}: {np.abs(err[window]).max():.2f} ms"


@pytest.mark.parametrize(("name", "sample_rate", "block", "drift"), [
    ("ableton", 48000, 512, -0.005), ("reaper", 48000, 512, -0.005), ("ardour", 48000, 512, -0.005),
    ("bitwig", 44100, 512, 0.005), ("ableton", 48000, 1024, -0.005), ("reaper", 44100, 1024, 0.005)])
def test_blocks_that_restart_at_a_locate_meet_the_goal(name, sample_rate, block, drift):
    """A host that starts a fresh block at every loop wrap and locate: the carried grid's phase is
    wrong after the first one. A new fix that arrived within a block of its block start bounds the
    truth from above; the carried envelope above that bound is a restart: the carried fixes go,
    the DAW is known to restart, and later jumps start from their own fixes. Before, the carried
    window stayed off by up to a block until the new run had 32 fixes (p99 7-19 ms at 1024)."""
    err, _, dialect = _errors_ms(name, sample_rate=sample_rate, block=block, drift=drift, blocks_restart=True)
    a = np.abs(err)
    assert np.median(a) <= MEDIAN_GOAL_MS and np.percentile(a, 99) <= P99_GOAL_MS, (
        f"median {np.median(a):.2f} ms, p99 {np.percentile(a, 99):.2f} ms")


BLOCK_S = 512 / 48000  # the simulated Live's audio block: 512 samples at 48 kHz


def _three_seconds_of_play(rng: np.random.Generator) -> tuple[AbletonOscDialect, float]:
    """A dialect after 3 s of play at 120 BPM, a fix every 50–60 ms, each the position of its
    block's start; (the dialect, the time of the last fix)."""
    d = AbletonOscDialect()
    d.handle(P.ABLETON_TEMPO, (120.0,), 0.0)
    d.handle(P.ABLETON_IS_PLAYING, (1,), 0.0)
    t = 0.0
    for _ in range(60):
        t += 0.05 + rng.uniform(0, 0.01)
        d.handle(P.ABLETON_SONG_TIME, (2.0 * np.floor(t / BLOCK_S) * BLOCK_S,), t)
    return d, t


def _fixes_after_locate(d: AbletonOscDialect, rng: np.random.Generator, t: float, t_jump: float,
                        target: float, n: int, *, blocks_restart: bool) -> tuple[list[float], float]:
    """Errors (ms) of ``n`` fixes after a locate to beat ``target`` at ``t_jump`` (truth = 2 beats/s
    from there); ``blocks_restart``: the DAW starts a fresh block at the locate instead of its audio
    clock running on. (errors, the time of the last fix)."""
    errs = []
    for _ in range(n):
        t += 0.05 + rng.uniform(0, 0.01)
        if blocks_restart:
            block_start = t_jump + np.floor((t - t_jump) / BLOCK_S) * BLOCK_S
        else:
            block_start = np.floor(t / BLOCK_S) * BLOCK_S
        s = d.handle(P.ABLETON_SONG_TIME, (target + 2.0 * (block_start - t_jump),), t)
        errs.append((s.position_beats - (target + 2.0 * (t - t_jump))) * 500.0)
    return errs, t


def _two_locates(*, blocks_restart: bool) -> tuple[list[list[float]], AbletonOscDialect, float]:
    """Errors (ms) of the 30 fixes after each of two locates (to beat 4, then to beat 20), after 3 s
    of play at 120 BPM (512-sample blocks at 48 kHz, each fix the position of its block's start).
    ``blocks_restart``: each locate starts a fresh block, half a block (then a quarter) into the
    block the DAW was in, instead of its audio clock running on."""
    rng = np.random.default_rng(3)
    d, t = _three_seconds_of_play(rng)
    runs = []
    for target, phase in ((4.0, 0.5), (20.0, 0.25)):
        t_jump = (np.floor(t / BLOCK_S) + 1 + phase) * BLOCK_S
        errs, t = _fixes_after_locate(d, rng, t, t_jump, target, 30, blocks_restart=blocks_restart)
        runs.append(errs)
    return runs, d, BLOCK_S * 1000.0


def test_a_host_whose_blocks_restart_is_learned_at_a_locate_and_the_next_starts_afresh():
    """The first locate is carried on the old grid, a block behind here; lifting it a block would
    put it over what the new fixes allow, so the carried fixes go and the DAW is known to restart
    its blocks. The second locate is not carried: its first fix is placed by the expected lateness
    (within half a block), and the new run settles on its own fixes."""
    (first, second), d, block_ms = _two_locates(blocks_restart=True)
    assert d._beats.blocks_restart
    assert max(abs(e) for e in first[1:]) <= 0.5 * block_ms + 1.0, [round(e, 2) for e in first[:6]]
    # (the carried window stayed half a block ahead for 30 fixes: median 4.8 ms)
    assert np.median(np.abs(first[1:12])) <= MEDIAN_GOAL_MS, [round(e, 2) for e in first[:12]]
    assert max(abs(e) for e in second) <= 0.5 * block_ms + 1.0, [round(e, 2) for e in second[:6]]
    assert np.median(np.abs(second[8:])) <= MEDIAN_GOAL_MS
    # the same locates on a DAW whose audio clock runs on: nothing learned, both placed exactly
    (first, second), d, _ = _two_locates(blocks_restart=False)
    assert not d._beats.blocks_restart
    assert max(abs(e) for e in first + second) <= 1.0


def _jump_errors_ms(*, blocks_restart: bool, fixes_after: int) -> tuple[list[float], float]:
    """Errors (ms) of the fixes after a loop wrap to beat 4, 20 ms after 3 s of play at 120 BPM
    (truth = 2 beats/s · t, reported at block starts of 512 samples at 48 kHz). ``blocks_restart``:
    the DAW starts a fresh block at the locate instead of its audio clock running on."""
    rng = np.random.default_rng(3)
    d, t = _three_seconds_of_play(rng)
    errs, _ = _fixes_after_locate(d, rng, t, t + 0.02, 4.0, fixes_after, blocks_restart=blocks_restart)
    return errs, BLOCK_S * 1000.0


def test_jump_is_placed_on_the_block_grid_at_the_first_fix():
    """The DAW's audio clock runs on through a locate: the first fix after it is placed by its
    lateness on the block grid learned before, to within a millisecond (restarting the envelope
    from that one fix left it anywhere within half a block: 1.7 ms here, up to 11 ms at 1024)."""
    errs, _ = _jump_errors_ms(blocks_restart=False, fixes_after=30)
    assert max(abs(e) for e in errs) <= 1.0, [round(e, 2) for e in errs[:5]]


def test_jump_where_the_blocks_restart_stays_bounded_and_settles():
    """A host that starts a fresh block at the locate breaks the grid: the carried window is off
    by a fraction of a block. It stays within one block, never more than half a block ahead, and
    once the new run has its own window the carried fixes give way."""
    errs, block_ms = _jump_errors_ms(blocks_restart=True, fixes_after=90)
    assert max(abs(e) for e in errs) <= block_ms
    assert max(errs) <= 0.6 * block_ms
    assert np.median(np.abs(errs[40:])) <= MEDIAN_GOAL_MS


class _Recording(AbletonOscDialect):
    def __init__(self):
        super().__init__()
        self.arrivals: list[tuple[float, float]] = []  # (arrival t, reported beats)

    def handle(self, address, args, timestamp_s):
        if address == P.ABLETON_SONG_TIME:
            self.arrivals.append((timestamp_s, float(args[0])))
        return super().handle(address, args, timestamp_s)


def test_real_udp_on_loopback():
    """A fake Live on 127.0.0.1 sends block-quantised song times (512 samples at 44.1 kHz, its
    clock 0.5 % fast) every 30 ms for 3 s; the states the listener produced are read back at
    instants after the first second and compared with the sender's truth."""
    rate, block_s, drift = 2.0, 512 / 44100, 0.005
    states = []
    dialect = _Recording()
    with OscListener(dialect, states.append, listen_port=0, resubscribe_after_s=None) as listener:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            t0 = time.monotonic()
            sent: list[float] = []

            def song_beats(t):
                daw = (t - t0) * (1.0 + drift)
                return rate * np.floor(daw / block_s) * block_s

            sock.sendto(build_osc_message(P.ABLETON_TEMPO, (120.0,)), listener.address)
            sock.sendto(build_osc_message(P.ABLETON_IS_PLAYING, (1,)), listener.address)
            k = 0
            while (now := time.monotonic()) < t0 + 3.0:
                sock.sendto(build_osc_message(P.ABLETON_SONG_TIME, (float(song_beats(now)),)), listener.address)
                sent.append(now)
                k += 1
                time.sleep(max(0.0, t0 + 0.03 * k - time.monotonic()))
            deadline = time.monotonic() + 2.0
            while len(dialect.arrivals) < len(sent) and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            sock.close()
    assert len(dialect.arrivals) >= 0.9 * len(sent) and states
    delays = np.array([a for a, _ in dialect.arrivals[: len(sent)]]) - np.array(sent[: len(dialect.arrivals)])
    if np.percentile(delays, 90) > 0.003:
        pytest.skip(f"loopback delivered with p90 delay {1000 * np.percentile(delays, 90):.1f} ms (machine "
                    "overloaded); timing not judged")
    clock = TransportClock()
    at = np.array([s.received_at for s in states])
    q = np.linspace(t0 + 1.0, at[-1], 2000)
    err = []
    for t in q:
        clock.update(states[int(np.searchsorted(at, t, side="right")) - 1])
        truth = rate * (t - t0) * (1.0 + drift)
        err.append((clock.now(at=float(t)).position_beats - truth) * 500.0)
    err = np.asarray(err)
    # The truth is the send time; the loopback's own delivery delay (up to the 3 ms allowed above on
    # a busy machine) is a lateness no estimator can see, so it is allowed on top of the goal.
    slack_ms = 1000.0 * float(np.median(delays))
    assert abs(np.median(err)) <= MEDIAN_GOAL_MS + slack_ms and np.percentile(np.abs(err), 95) <= P99_GOAL_MS + slack_ms, (
        f"median {np.median(err):+.2f} ms, p95 {np.percentile(np.abs(err), 95):.2f} ms, delivery {slack_ms:.2f} ms")

