"""Real MIDI ports through python-rtmidi: a JACK server with the dummy backend stands in for the
ALSA sequencer (absent in containers). A DAW-like sender on a virtual output port plays MIDI clock
with SPP + Continue and MTC quarter frames; the input side must report the tempo and position the
sender timed. Skipped with the reason where jackd is not installed (Debian: ``apt-get install
jackd2``). Also: the "no backend" error, and the callback that must survive anything.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import jack_server as _jack_server

from bridge.errors import TransportError
from bridge.transport.clock import TransportClock
from bridge.transport.midi_clock import MidiClockParser
from bridge.transport.midi_io import (
    MidiCallback,
    MidiInput,
    MidiOutput,
    jack_cycle_seconds,
    list_midi_ports,
)
from bridge.transport.mtc import (
    MtcParser,
    full_frame_message,
    quarter_frame_messages,
    timecode_to_frames,
)

# A JACK client call can block on a server that hangs under overload: fail fast rather than hang.
pytestmark = pytest.mark.timeout(60)


def _wait_for(condition, timeout_s: float = 2.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)


def _wait_until(t: float) -> None:
    # sleep, never spin: a spinning thread holds the GIL and starves the MIDI thread
    left = t - time.monotonic()
    if left > 0:
        time.sleep(left)


@pytest.fixture(scope="module")
def jack_server():
    with _jack_server("stembridge-test") as name:
        yield name


class _Recorder:
    """Wraps a parser and keeps the timestamps it was fed (to judge the link's own jitter)."""

    def __init__(self, parser):
        self.parser = parser
        self.fed: list[tuple[bytes, float]] = []

    def feed(self, message, timestamp_s):
        self.fed.append((bytes(message), timestamp_s))
        return self.parser.feed(message, timestamp_s)


def _skip_if_lost(received: int, expected: int) -> None:
    if received < expected:
        pytest.skip(f"JACK lost {expected - received} of {expected} MIDI messages (xruns: the dummy "
                    "backend runs without real-time priority and this machine is overloaded)")


def _link_jitter_ms(recorded: list[float], sent: list[float]) -> float:
    """RMS of the receive-minus-send times around their mean (the link's jitter, not its delay)."""
    d = np.asarray(recorded) - np.asarray(sent)
    return float(1000 * np.std(d))


def test_midi_clock_with_spp_and_continue_over_jack(jack_server):
    tempo_bpm = 120.0
    tick_s = 60.0 / (24 * tempo_bpm)
    clock = TransportClock()
    rec = _Recorder(MidiClockParser())
    with MidiOutput(api="jack", virtual_name="daw-clock") as out:
        with MidiInput("daw-clock", rec, clock, api="jack") as inp:
            assert "daw-clock" in inp.port_name and inp.api == "jack"
            time.sleep(0.1)  # let JACK connect the ports
            out.send([0xF2, 64, 0])  # SPP: 64 sixteenths = beat 16 (bar 5, Logic style)
            out.send([0xFB])  # Continue
            t_start = time.monotonic() + 0.02
            n_ticks = 96  # 4 beats, 2 s
            sent = []
            for k in range(n_ticks):
                _wait_until(t_start + k * tick_s)
                out.send([0xF8])
                sent.append(time.monotonic())
            # the sender's clock as it really went out (a loaded machine sleeps late)
            t_first = float(np.polyfit(np.arange(n_ticks), sent, 1)[1])
            t_last = t_first + (n_ticks - 1) * tick_s
            _wait_for(lambda: inp.callback.messages >= n_ticks + 2)
            time.sleep(max(0.0, t_last + 0.03 - time.monotonic()))
            now = time.monotonic()
            state = clock.now(at=now)
            last_tick = rec.parser.state

            _wait_until(t_last + 0.5 * tick_s)
            out.send([0xFC])  # Stop half a tick after the last clock
            _wait_for(lambda: inp.callback.messages >= n_ticks + 3)
            stopped = clock.now()

    # what the port must deliver whatever the machine's load: every message, counted exactly
    assert inp.callback.errors == 0
    _skip_if_lost(inp.callback.messages, n_ticks + 3)
    assert [m for m, _ in rec.fed] == [b"\xf2\x40\x00", b"\xfb"] + [b"\xf8"] * n_ticks + [b"\xfc"]
    assert state.playing and state.source == "midi_clock"
    assert last_tick.position_beats == pytest.approx(16.0 + (n_ticks - 1) / 24.0)
    assert last_tick.bar == 5 and last_tick.beat == pytest.approx(4 + 23 / 24)
    assert not stopped.playing
    assert 16.0 + (n_ticks - 1) / 24 <= stopped.position_beats <= 16.0 + n_ticks / 24

    # timing, judged only when JACK itself delivered in time (the dummy backend runs without
    # real-time priority: on an overloaded machine it batches whole periods)
    jitter_ms = _link_jitter_ms([t for m, t in rec.fed if m == b"\xf8"], sent)
    if jitter_ms > 3.0:
        pytest.skip(f"JACK delivered the clocks with {jitter_ms:.1f} ms RMS jitter (machine overloaded); "
                    "counts checked, timing not judged")
    # up to 3 ms of bursty jitter over 4 beats: the loop may still be re-locking after a burst
    assert state.tempo_bpm == pytest.approx(tempo_bpm, abs=2.0)
    truth_beats = 16.0 + (now - t_first) * tempo_bpm / 60.0
    # JACK delivers once per 5.3 ms period with up to two periods of latency: 20 ms
    assert state.position_beats == pytest.approx(truth_beats, abs=0.04)


def test_midi_clock_has_no_constant_lag_over_jack(jack_server):
    """Issue 17: the position lagged by a constant −1.4…−2.7 ms over JACK. rtmidi stamps a JACK
    message with the process cycle that delivers it, and a message sent between cycles waits for
    the next one: stamps were late by half a period on average. Clocks are sent at known
    instants (120 BPM with 1 ms of random timing jitter); each tick's stamp as the parser smoothed
    it must match the sender's clock line: |median| ≤ 0.5 ms, p99 ≤ 2 ms."""
    period = jack_cycle_seconds()
    assert period == pytest.approx(256 / 48000)  # the fixture's server: -p 256 -r 48000
    tick_s = 60.0 / (24 * 120.0)
    rng = np.random.default_rng(17)
    rec = _Recorder(MidiClockParser())
    stamps: list[float] = []
    orig_feed = rec.feed

    def feed(message, timestamp_s):
        state = orig_feed(message, timestamp_s)
        if bytes(message) == b"\xf8":
            stamps.append(rec.parser.state.received_at)  # the smoothed time of this tick
        return state

    rec.feed = feed
    n_ticks = 240  # 10 beats, 5 s
    with MidiOutput(api="jack", virtual_name="daw-clock-lag") as out:
        with MidiInput("daw-clock-lag", rec, TransportClock(), api="jack") as inp:
            assert inp.callback.offset_s == pytest.approx(-period / 2)
            time.sleep(0.1)
            out.send([0xFA])
            t_start = time.monotonic() + 0.02
            sent = []
            for k in range(n_ticks):
                _wait_until(t_start + k * tick_s + rng.uniform(-1e-3, 1e-3))
                out.send([0xF8])
                sent.append(time.monotonic())  # the known instant it went out
            _wait_for(lambda: inp.callback.messages >= n_ticks + 1)
    _skip_if_lost(inp.callback.messages, n_ticks + 1)
    fed = [t for m, t in rec.fed if m == b"\xf8"]
    jitter_ms = _link_jitter_ms(fed, sent)
    if jitter_ms > 2.5:
        pytest.skip(f"JACK delivered the clocks with {jitter_ms:.1f} ms RMS jitter (machine overloaded)")
    k = np.arange(n_ticks)
    slope, intercept = np.polyfit(k, sent, 1)  # the sender's clock: its ticks without the jitter
    err_ms = 1000 * (np.asarray(stamps) - (intercept + slope * k))[96:]  # after four beats of lock-in
    assert abs(np.median(err_ms)) <= 0.5, f"median {np.median(err_ms):+.2f} ms"
    # the spread is judged only when JACK itself delivered every clock within its cycle (under load
    # the dummy backend runs late by whole periods, which no receiver can undo)
    # and only when the sender kept its own schedule (±1 ms as asked; a sleep that overslept by
    # many milliseconds on a loaded machine is a tempo wobble the loop rightly follows)
    late_ms = 1000 * (np.asarray(fed) - np.asarray(sent) - period)
    off_schedule_ms = 1000 * np.abs(np.asarray(sent) - (intercept + slope * k))
    if np.percentile(late_ms, 99) <= 0.5 and off_schedule_ms.max() <= 1.5:
        assert np.percentile(np.abs(err_ms), 99) <= 2.0, f"p99 {np.percentile(np.abs(err_ms), 99):.2f} ms"


def test_stamp_offset_is_added_to_every_stamp():
    now = [10.0]
    cb = MidiCallback(MidiClockParser(), TransportClock(), offset_s=-0.002, time_fn=lambda: now[0])
    seen = []
    cb.parser = type("P", (), {"feed": lambda self, m, t: seen.append(t)})()
    cb(([0xF8], 0.0))
    now[0] = 10.03
    cb(([0xF8], 0.02))
    assert seen == [pytest.approx(9.998), pytest.approx(10.018)]


def test_mtc_quarter_frames_and_full_frame_over_jack(jack_server):
    rate = 1  # 25 fps
    qf_s = 1.0 / 100.0
    start_frame = timecode_to_frames(0, 1, 0, 0, rate)  # 00:01:00:00
    clock = TransportClock()
    rec = _Recorder(MtcParser())
    with MidiOutput(api="jack", virtual_name="daw-mtc") as out:
        with MidiInput("daw-mtc", rec, clock, api="jack") as inp:
            time.sleep(0.1)
            t_start = time.monotonic() + 0.02
            n_qf = 80  # 20 frames = 0.8 s
            sent = []
            for k in range(n_qf):
                _wait_until(t_start + k * qf_s)
                cycle, piece = divmod(k, 8)
                out.send(quarter_frame_messages(start_frame + 2 * cycle, rate)[piece])
                sent.append(time.monotonic())
            t0 = float(np.polyfit(np.arange(n_qf), sent, 1)[1])
            _wait_for(lambda: inp.callback.messages >= n_qf)
            now = time.monotonic()
            state = clock.now(at=now)
            last_qf = rec.parser.state

            # Cubase-style locate: a full frame to 00:02:03:10, then silence
            out.send(full_frame_message(timecode_to_frames(0, 2, 3, 10, rate), rate))
            _wait_for(lambda: inp.callback.messages >= n_qf + 1)
            time.sleep(0.05)  # past the clock's 30 ms hold
            located = clock.now()

    assert inp.callback.errors == 0
    _skip_if_lost(inp.callback.messages, n_qf + 1)
    assert state.source == "mtc"
    # the last quarter frame is piece 7 of the cycle coding frame start + 18: the song is 7/4 on
    assert last_qf.playing and last_qf.position_seconds == pytest.approx(60.0 + (18 + 1.75) / 25.0)
    assert not located.playing
    assert located.position_seconds == pytest.approx(123.0 + 10 / 25.0, abs=1e-9)

    jitter_ms = _link_jitter_ms([t for m, t in rec.fed if m[0] == 0xF1], sent)
    if jitter_ms > 3.0:
        pytest.skip(f"JACK delivered the quarter frames with {jitter_ms:.1f} ms RMS jitter (machine "
                    "overloaded); positions checked, timing not judged")
    assert state.playing
    assert state.position_seconds == pytest.approx(60.0 + (now - t0), abs=0.02)


def test_no_backend_says_what_to_install(monkeypatch):
    if Path("/dev/snd/seq").exists():
        pytest.skip("the ALSA sequencer exists here, so a MIDI backend is available")
    monkeypatch.setenv("JACK_DEFAULT_SERVER", f"stembridge-absent-{os.getpid()}")
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")
    with pytest.raises(TransportError, match=r"(?s)No MIDI backend.*(jackd2|snd-seq)"):
        list_midi_ports()
    with pytest.raises(TransportError, match="No MIDI backend"):
        MidiInput("anything", MidiClockParser(), TransportClock())


def test_missing_port_names_the_available_ones(jack_server):
    with pytest.raises(TransportError, match="not found"):
        MidiInput("no-such-port-xyz", MidiClockParser(), TransportClock(), api="jack")


class _Boom:
    def feed(self, message, timestamp_s):
        raise RuntimeError("parser bug")


def test_callback_accumulates_driver_deltas_and_survives_anything():
    fake_now = [100.0]
    clock = TransportClock()
    cb = MidiCallback(MidiClockParser(), clock, time_fn=lambda: fake_now[0], max_lag_s=0.5)
    cb(([0xFA], 0.0))  # first message: stamped with the callback time
    # delivered in a burst 30 ms late, but the driver's deltas say 20.833 ms apart
    fake_now[0] = 100.135
    for _ in range(5):
        cb(([0xF8], 0.020833))
    assert clock.state is not None
    assert clock.state.received_at == pytest.approx(100.0 + 5 * 0.020833, abs=1e-6)
    # a driver clock running ahead is clamped to the delivery time
    cb(([0xF8], 5.0))
    assert clock.state.received_at <= fake_now[0]
    # garbage of every kind: nothing escapes
    for event in (None, ([0xF8],), ("xx", "yy"), ([300, -1, "a"], 0.01), ([0xF8], float("nan"))):
        cb(event)
    assert cb.errors >= 3
    bad = MidiCallback(_Boom(), clock)
    bad(([0xF8], 0.0))
    assert bad.errors == 1 and "parser bug" in bad.last_error
