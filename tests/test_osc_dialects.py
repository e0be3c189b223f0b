"""The OSC dialect parsers, fed messages directly (no sockets).

Truths are independent of the code: positions come from a simulated DAW whose song position is a
known function of time, strings are written in each DAW's documented format by hand.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.transport import osc_protocol as P
from bridge.transport.osc_dialects import (
    AbletonOscDialect,
    ArdourOscDialect,
    BitwigOscDialect,
    PositionLoop,
    ReaperOscDialect,
    StembridgeOscDialect,
    make_dialect,
)
from bridge.transport.state import TransportState

DIALECTS = ("ableton", "stembridge", "reaper", "bitwig", "ardour")


def extrapolate(state: TransportState, t: float) -> float:
    """Independent extrapolation: constant tempo from the state's position at received_at."""
    return state.position_beats + ((t - state.received_at) * state.tempo_bpm / 60.0 if state.playing else 0.0)


def assert_sane(state: TransportState) -> None:
    for v in (state.tempo_bpm, state.position_beats, state.position_seconds, state.beat, state.received_at):
        assert math.isfinite(v)
    assert P.MIN_TEMPO_BPM <= state.tempo_bpm <= P.MAX_TEMPO_BPM
    assert abs(state.position_beats) <= P.MAX_ABS_POSITION_BEATS
    assert abs(state.position_seconds) <= P.MAX_ABS_POSITION_SECONDS
    num, den = state.time_signature
    assert 1 <= num <= P.MAX_SIGNATURE_NUMERATOR and den in P.SIGNATURE_DENOMINATORS
    assert isinstance(state.bar, int) and isinstance(state.playing, bool)
    assert 1.0 <= state.beat < num + 1.0 + 1e-9


# --- AbletonOSC -------------------------------------------------------------------------------------

def test_ableton_basic_values_and_bar_beat():
    d = AbletonOscDialect()
    assert d.handle(P.ABLETON_TEMPO, (128.0,), 1.0).tempo_bpm == 128.0
    d.handle(P.ABLETON_SIG_NUMERATOR, (3,), 1.0)
    s = d.handle(P.ABLETON_SIG_DENOMINATOR, (4,), 1.0)
    assert s.time_signature == (3, 4)
    s = d.handle(P.ABLETON_SONG_TIME, (7.5,), 1.1)  # stopped: taken exactly
    assert s.position_beats == 7.5 and not s.playing
    assert (s.bar, s.beat) == (3, 2.5)  # 3/4: bars of 3 quarters; 7.5 = 2 bars + 1.5 beats
    assert s.position_seconds == pytest.approx(7.5 * 60 / 128)
    s = d.handle(P.ABLETON_IS_PLAYING, (True,), 1.2)
    assert s.playing and s.position_beats == 7.5
    assert s.source == "ableton_osc"
    # AbletonOSC object getters prefix ids: the value is the last argument
    assert d.handle(P.ABLETON_TEMPO, (0, 140.0), 1.3).tempo_bpm == 140.0


def test_ableton_startup_requests_resubscription_and_subscriptions_cover_transport():
    d = AbletonOscDialect()
    assert d.handle(P.ABLETON_STARTUP, (), 1.0) is None
    assert d.resubscribe_requested
    addresses = [a for a, _ in d.subscriptions()]
    for prop in ("is_playing", "tempo", "current_song_time", "signature_numerator", "signature_denominator"):
        assert f"/live/song/start_listen/{prop}" in addresses
    assert "/live/song/start_listen/beat" in addresses


def simulate_coarse_daw(*, tempo_bpm, seconds, rng, interval_s=0.1, jitter_s=0.03, block_s=512 / 44100):
    """Song time as Live reports it: sampled every ~100 ms at audio-block boundaries, arriving
    0.2-2 ms later. Returns (arrival times, reported beats, true-beats function)."""
    bps = tempo_bpm / 60.0
    t, t0 = 10.0, 10.0
    arrivals, values = [], []
    while t < t0 + seconds:
        t += interval_s + rng.uniform(-jitter_s, jitter_s)
        sampled_at = t0 + math.floor((t - t0) / block_s) * block_s
        arrivals.append(t + rng.uniform(0.0002, 0.002))
        values.append((sampled_at - t0) * bps)
    return np.array(arrivals), np.array(values), (lambda tt: (tt - t0) * bps)


def test_ableton_song_time_is_smoothed_and_never_steps_back(rng):
    tempo = 126.0
    arrivals, values, truth = simulate_coarse_daw(tempo_bpm=tempo, seconds=20.0, rng=rng)
    d = AbletonOscDialect()
    d.handle(P.ABLETON_TEMPO, (tempo,), 9.0)
    d.handle(P.ABLETON_IS_PLAYING, (1,), 10.0)
    smoothed_err, raw_err, steps = [], [], []
    prev = None
    for i, (t, v) in enumerate(zip(arrivals, values, strict=True)):
        s = d.handle(P.ABLETON_SONG_TIME, (float(v),), float(t))
        if prev is not None:
            steps.append((extrapolate(s, t) - extrapolate(prev, t)) * 60 / tempo)
        if i > 20:  # after lock-in
            for k in range(5):  # between fixes, as a 50 Hz reader would see it
                tt = t + k * 0.02
                smoothed_err.append((extrapolate(s, tt) - truth(tt)) * 60 / tempo)
                raw_err.append((v + (tt - t) * tempo / 60 - truth(tt)) * 60 / tempo)
        prev = s
    smoothed_err, raw_err = np.array(smoothed_err), np.array(raw_err)
    spread = lambda e: np.percentile(e, 95) - np.percentile(e, 5)  # noqa: E731
    assert spread(smoothed_err) < 0.6 * spread(raw_err)  # smoothing removes most of the jitter
    assert abs(np.median(smoothed_err)) < 0.012  # only the DAW's own sampling lag (~7 ms) remains
    assert min(steps) >= -0.0021  # corrections never step back more than 2 ms


def test_ableton_jump_is_taken_at_once():
    d = AbletonOscDialect()
    d.handle(P.ABLETON_TEMPO, (120.0,), 0.0)
    d.handle(P.ABLETON_IS_PLAYING, (True,), 0.0)
    for k in range(10):
        d.handle(P.ABLETON_SONG_TIME, (16.0 + k * 0.2,), 1.0 + k * 0.1)
    s = d.handle(P.ABLETON_SONG_TIME, (4.0,), 2.0)  # loop wrap back to beat 4
    assert s.position_beats == 4.0
    s = d.handle(P.ABLETON_SONG_TIME, (4.2 + 8.0,), 2.1)  # locate forward by 8 beats
    assert s.position_beats == pytest.approx(12.2)


def test_ableton_beat_messages_only_used_without_song_time():
    d = AbletonOscDialect()
    d.handle(P.ABLETON_IS_PLAYING, (1,), 0.0)
    assert d.handle(P.ABLETON_BEAT, (8,), 1.0).position_beats == 8.0
    d.handle(P.ABLETON_SONG_TIME, (9.3,), 1.5)
    assert d.handle(P.ABLETON_BEAT, (9,), 1.6) is None  # song time is better, and fresh


# --- our own /stembridge/transport -----------------------------------------------------------------

def stembridge_args(seq, *, playing=1, tempo=100.0, beats=0.0, num=4, den=4, loop=(0, 0.0, 16.0)):
    return (1, seq, playing, tempo, beats, num, den, *loop)


def test_stembridge_message_and_stale_sequence():
    d = StembridgeOscDialect()
    s = d.handle(P.STEMBRIDGE_TRANSPORT_ADDRESS, stembridge_args(5, tempo=100.0, beats=10.0, num=7, den=8,
                                                                 loop=(1, 8.0, 4.0)), 3.0)
    assert (s.playing, s.tempo_bpm, s.position_beats, s.time_signature) == (True, 100.0, 10.0, (7, 8))
    assert (d.loop_on, d.loop_start_beats, d.loop_length_beats) == (True, 8.0, 4.0)
    # 7/8: a bar is 3.5 quarters; 10 quarters = 2 bars + 3 quarters = beat 1 + 6 eighths
    assert (s.bar, s.beat) == (3, 7.0)
    assert d.handle(P.STEMBRIDGE_TRANSPORT_ADDRESS, stembridge_args(4, beats=10.1), 3.05) is None  # reordered
    assert d.handle(P.STEMBRIDGE_TRANSPORT_ADDRESS, stembridge_args(5, beats=10.1), 3.05) is None  # duplicate
    assert d.handle(P.STEMBRIDGE_TRANSPORT_ADDRESS, stembridge_args(6, beats=10.15), 3.1) is not None
    assert d.handle(P.STEMBRIDGE_TRANSPORT_ADDRESS, stembridge_args(1, beats=0.0), 5.0) is not None  # restart
    # a newer protocol version with more arguments is still read
    assert d.handle(P.STEMBRIDGE_TRANSPORT_ADDRESS, (*stembridge_args(2, beats=1.0), "extra", 3), 5.1) is not None
    # too few arguments, wrong version
    assert d.handle(P.STEMBRIDGE_TRANSPORT_ADDRESS, stembridge_args(3)[:-1], 5.2) is None
    assert d.handle(P.STEMBRIDGE_TRANSPORT_ADDRESS, (0, *stembridge_args(9)[1:]), 5.3) is None


# --- REAPER -------------------------------------------------------------------------------------------

def reaper_feed(d, *, tempo_bpm, num, seconds, start_s=0.0, rate_hz=30.0, t0=100.0, send_tempo=True):
    """REAPER playing from song time start_s: /time and /beat/str each update."""
    if send_tempo:
        d.handle(P.REAPER_TEMPO_RAW, (float(tempo_bpm),), t0)
    d.handle(P.REAPER_PLAY, (1.0,), t0)
    out = []
    n = int(seconds * rate_hz)
    for k in range(n):
        t = t0 + k / rate_hz
        song_s = start_s + k / rate_hz
        beats = song_s * tempo_bpm / 60.0
        bar, in_bar = divmod(beats, num)
        d.handle(P.REAPER_TIME, (float(song_s),), t)
        beat_str = f"{int(bar) + 1}.{int(in_bar) + 1}.{int((in_bar % 1) * 100):02d}"
        out.append(d.handle(P.REAPER_BEAT_STR, (beat_str,), t + 0.0003))
    return out


def test_reaper_tempo_position_and_meter_inferred():
    d = ReaperOscDialect()
    states = reaper_feed(d, tempo_bpm=90.0, num=3, seconds=6.0)
    s = states[-1]
    assert s.playing and s.tempo_bpm == 90.0
    assert s.time_signature == (3, 4)  # REAPER sends no meter: inferred from the bar wrap
    true_beats = (len(states) - 1) / 30.0 * 90.0 / 60.0
    assert s.position_beats == pytest.approx(true_beats, abs=0.02)  # /beat/str has 1/100 beat
    assert s.position_seconds == pytest.approx((len(states) - 1) / 30.0, abs=0.005)
    d.handle(P.REAPER_PAUSE, (1.0,), 200.0)
    assert not d.state.playing
    d.handle(P.REAPER_PAUSE, (0.0,), 201.0)
    assert d.state.playing
    d.handle(P.REAPER_STOP, (1.0,), 202.0)
    assert not d.state.playing


def test_reaper_tempo_derived_when_not_sent():
    d = ReaperOscDialect()
    s = reaper_feed(d, tempo_bpm=137.0, num=4, seconds=4.0, send_tempo=False)[-1]
    assert s.tempo_bpm == pytest.approx(137.0, abs=0.05)


# --- Ardour ---------------------------------------------------------------------------------------------

def ardour_update(d, t, song_s, *, tempo_bpm, num, sample_rate=48000):
    """One Ardour tick: smpte, bbt, time, samples for the same instant (osc_global_observer order)."""
    beats = song_s * tempo_bpm / 60.0
    bar, in_bar = divmod(beats, num)
    beat_i = int(in_bar)
    ticks = int((in_bar - beat_i) * 1920)
    h, rem = divmod(song_s, 3600)
    m, sec = divmod(rem, 60)
    d.handle(P.ARDOUR_POSITION_SMPTE, (f"{int(h):02d}:{int(m):02d}:{int(sec):02d}:{int((sec % 1) * 30):02d}",), t)
    d.handle(P.ARDOUR_POSITION_BBT, (f"{int(bar) + 1:03d}|{beat_i + 1:02d}|{ticks:04d}",), t + 0.0001)
    s = d.handle(P.ARDOUR_POSITION_TIME, (f"{int(h):02d}:{int(m):02d}:{int(sec):02d}.{int(round((sec % 1) * 1000)) % 1000:03d}",),
                 t + 0.0002)
    s2 = d.handle(P.ARDOUR_POSITION_SAMPLES, (str(int(round(song_s * sample_rate))),), t + 0.0003)
    return s2 or s


def test_ardour_tempo_meter_and_sample_rate_are_derived():
    d = ArdourOscDialect()
    assert d.subscriptions() == [("/set_surface", (0, 0, 3192, 0, 0, 0, 0, 0, 0))]
    d.handle(P.ARDOUR_TRANSPORT_PLAY, (1,), 50.0)
    s = None
    for k in range(40):  # 4 s at Ardour's 10 Hz feedback
        s = ardour_update(d, 50.0 + k * 0.1, 2.0 + k * 0.1, tempo_bpm=100.0, num=3) or s
    assert s.playing
    assert d.sample_rate == 48000
    assert s.time_signature == (3, 4)
    assert s.tempo_bpm == pytest.approx(100.0, abs=0.05)
    assert s.position_seconds == pytest.approx(2.0 + 3.9, abs=0.002)
    assert s.position_beats == pytest.approx(5.9 * 100 / 60, abs=0.01)
    d.handle(P.ARDOUR_TRANSPORT_PLAY, (0,), 60.0)  # alone: not a stop (could be ffwd)
    assert d.state.playing
    d.handle(P.ARDOUR_TRANSPORT_STOP, (1,), 60.1)
    assert not d.state.playing
    # Ardour blanks its fields with " " when a surface is cleared: ignored
    for address in (P.ARDOUR_POSITION_BBT, P.ARDOUR_POSITION_TIME, P.ARDOUR_POSITION_SMPTE, P.ARDOUR_POSITION_SAMPLES):
        assert d.handle(address, (" ",), 61.0) is None


def test_ardour_time_string_formats():
    d = ArdourOscDialect()
    assert d.handle(P.ARDOUR_POSITION_TIME, ("01:02:03.456",), 1.0).position_seconds == pytest.approx(3723.456)
    assert d.handle(P.ARDOUR_POSITION_TIME, (" 00:00:01.500",), 2.0).position_seconds == pytest.approx(1.5)
    assert d.handle(P.ARDOUR_POSITION_TIME, ("-00:00:00.250",), 3.0).position_seconds == pytest.approx(-0.25)
    assert d.handle(P.ARDOUR_POSITION_TIME, ("00:61:00.000",), 4.0) is None


# --- Bitwig / DrivenByMoss ----------------------------------------------------------------------------------

def test_bitwig_bundle_emits_once_and_parses_beat_string():
    d = BitwigOscDialect()
    t = 7.0
    assert d.handle(P.BITWIG_UPDATE, (1,), t) is None
    assert d.handle(P.BITWIG_PLAY, (1,), t) is None
    assert d.handle(P.BITWIG_TEMPO_RAW, (132.5,), t) is None
    assert d.handle(P.BITWIG_TIME_SIGNATURE, ("4 / 4",), t) is None
    # measure 5, quarter 3, sixteenth 2, 50/100 of a sixteenth → 16 + 2 + 0.25 + 0.125 quarters
    assert d.handle(P.BITWIG_BEAT_STR, ("5.3.2:050",), t) is None
    s = d.handle(P.BITWIG_UPDATE, (0,), t)
    assert (s.playing, s.tempo_bpm, s.position_beats) == (True, 132.5, 18.375)
    assert (s.bar, s.beat) == (5, pytest.approx(3.375))
    # 6/8: DrivenByMoss counts 4*6//8 = 3 quarters per measure
    d.handle(P.BITWIG_TIME_SIGNATURE, ("6 / 8",), 8.0)
    s = d.handle(P.BITWIG_BEAT_STR, ("3.1.1:000",), 8.0)  # no /update around it: emitted at once
    assert s.position_beats == 6.0 and s.time_signature == (6, 8)


def test_bitwig_lost_update_close_does_not_block_forever():
    d = BitwigOscDialect()
    d.handle(P.BITWIG_UPDATE, (1,), 1.0)
    d.handle(P.BITWIG_TEMPO_RAW, (100.0,), 1.0)
    assert d.handle(P.BITWIG_TEMPO_RAW, (101.0,), 2.0).tempo_bpm == 101.0


# --- the smoothing loop itself --------------------------------------------------------------------------

def test_position_loop_follows_rate_change_without_jump():
    loop = PositionLoop()
    loop.set_rate(0.0, 2.0)
    loop.set_playing(0.0, True)
    loop.measure(0.0, 0.0)
    loop.set_rate(1.0, 4.0)  # tempo doubled at t=1
    assert loop.position_at(1.0) == pytest.approx(2.0)
    assert loop.position_at(1.5) == pytest.approx(4.0)


# --- malformed input and fuzzing -----------------------------------------------------------------------

MALFORMED = [
    ("/live/song/get/tempo", ()),
    ("/live/song/get/tempo", (float("nan"),)),
    ("/live/song/get/tempo", (float("inf"),)),
    ("/live/song/get/tempo", (-5.0,)),
    ("/live/song/get/tempo", ("fast",)),
    ("/live/song/get/current_song_time", (b"\x00\x01",)),
    ("/live/song/get/current_song_time", (1e300,)),
    ("/live/song/get/signature_denominator", (3,)),
    ("/live/song/get/signature_numerator", (0,)),
    ("/live/song/get/is_playing", ("maybe",)),
    ("/stembridge/transport", (1, 2, 3)),
    ("/stembridge/transport", ("a",) * 10),
    ("/stembridge/transport", (1, 1, 1, float("nan"), 0.0, 4, 4, 0, 0.0, 4.0)),
    ("/time", ("12:00",)),
    ("/time", (None,)),
    ("/beat/str", ("1.0.00",)),
    ("/beat/str", ("x.y.z",)),
    ("/beat/str", (12,)),
    ("/position/bbt", ("001|00|0000",)),
    ("/position/bbt", ("001|01|99999",)),
    ("/position/time", ("99:99:99.999",)),
    ("/position/samples", ("12.5",)),
    ("/position/smpte", ("00:00:00:99",)),
    ("/time/signature", ("4/0",)),
    ("/time/signature", ("banana",)),
    ("/update", ("x",)),
    ("/tempo/raw", ([1, 2],)),
    ("", ()),
    ("/", (None, None)),
]


@pytest.mark.parametrize("name", DIALECTS)
def test_malformed_messages_are_ignored(name):
    d = make_dialect(name)
    before = d.state
    for i, (address, args) in enumerate(MALFORMED):
        assert d.handle(address, args, 1.0 + i) is None, (address, args)
    assert d.handle(None, (), 1.0) is None  # type: ignore[arg-type]
    assert d.handle("/time", (1.0,), float("nan")) is None
    assert d.internal_errors == 0
    assert d.state == before


_ADDRESSES = sorted({
    *(a for a, _ in MALFORMED), P.ABLETON_IS_PLAYING, P.ABLETON_TEMPO, P.ABLETON_SONG_TIME, P.ABLETON_BEAT,
    P.ABLETON_SIG_NUMERATOR, P.ABLETON_SIG_DENOMINATOR, P.ABLETON_LOOP, P.ABLETON_LOOP_START, P.ABLETON_STARTUP,
    P.STEMBRIDGE_TRANSPORT_ADDRESS, P.REAPER_TIME, P.REAPER_BEAT_STR, P.REAPER_TEMPO_RAW, P.REAPER_PLAY,
    P.REAPER_PAUSE, P.REAPER_STOP, P.REAPER_PLAYRATE_RAW, P.BITWIG_UPDATE, P.BITWIG_TIME_STR,
    P.BITWIG_TIME_SIGNATURE, P.ARDOUR_POSITION_BBT, P.ARDOUR_POSITION_TIME, P.ARDOUR_POSITION_SAMPLES,
    P.ARDOUR_POSITION_SMPTE, P.ARDOUR_TRANSPORT_PLAY, P.ARDOUR_TRANSPORT_STOP, *P.ARDOUR_TRANSPORT_SPEED,
})
_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=True, allow_infinity=True), st.floats(min_value=-10, max_value=1000),
    st.text(max_size=20), st.from_regex(r"-?\d{1,3}[.:|]\d{1,2}[.:|]\d{1,4}", fullmatch=True),
    st.from_regex(r"\d{1,2}:\d{1,2}:\d{1,2}[.:]\d{1,3}", fullmatch=True), st.binary(max_size=8),
)
_args = st.lists(st.one_of(_scalar, st.lists(_scalar, max_size=3)), max_size=12).map(tuple)
_dt = st.floats(min_value=0.0, max_value=0.5)
_message = st.one_of(
    st.tuples(st.one_of(st.sampled_from(_ADDRESSES), st.text(max_size=30)), _args, _dt),
    # well-formed-looking /stembridge/transport argument lists, so its checks are reached
    st.tuples(st.just(P.STEMBRIDGE_TRANSPORT_ADDRESS),
              st.lists(st.one_of(st.integers(-3, 300), st.floats(-10, 1000), st.booleans()),
                       min_size=10, max_size=11).map(tuple), _dt),
)


@pytest.mark.parametrize("name", DIALECTS)
@settings(max_examples=40, deadline=None, derandomize=True)
@given(messages=st.lists(_message, min_size=1, max_size=30))
def test_fuzzed_messages_never_raise_and_keep_state_sane(name, messages):
    d = make_dialect(name)
    t = 1000.0
    for address, args, dt in messages:
        t += dt
        state = d.handle(address, args, t)
        if state is not None:
            assert_sane(state)
            assert state.received_at == t
    assert d.internal_errors == 0
    assert_sane(d.state)


@pytest.mark.parametrize(("name", "messages"), [
    ("ableton", [(P.ABLETON_TEMPO, (1.0,)), (P.ABLETON_SONG_TIME, (524423.0,))]),
    ("reaper", [(P.REAPER_TEMPO_RAW, (1.0,)), (P.REAPER_BEAT_STR, ("500000.1.00",))]),
])
def test_positions_derived_at_extreme_tempi_stay_in_the_protocol_range(name, messages):
    """Found by benchmarks/reliability.py: each fix is inside the range, but converted at 1 BPM the
    seconds were 3.1e7 / 1.2e8, past MAX_ABS_POSITION_SECONDS (state no longer sane)."""
    d = make_dialect(name)
    for i, (address, args) in enumerate(messages):
        state = d.handle(address, args, 1.0 + i)
    assert state is not None and state.tempo_bpm == 1.0
    assert abs(state.position_seconds) <= P.MAX_ABS_POSITION_SECONDS
    assert abs(state.position_beats) <= P.MAX_ABS_POSITION_BEATS
    assert_sane(state)


def test_reaper_pattern_file_defines_what_the_parser_reads():
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "daw_scripts" / "reaper" / "stembridge.ReaperOSC"
    actions: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        words = line.split("#", 1)[0].split()
        if words and not words[0].startswith(("DEVICE_", "REAPER_")):
            actions.setdefault(words[0], []).extend(words[1:])
    for action, patterns in P.REAPER_PATTERN_ACTIONS.items():
        assert set(patterns) <= set(actions.get(action, [])), action
    # and nothing the parser would not read (the point of the trimmed file)
    handled = {p for patterns in P.REAPER_PATTERN_ACTIONS.values() for p in patterns}
    assert {p for patterns in actions.values() for p in patterns} <= handled


def test_ardour_rough_timecode_is_replaced_by_the_same_updates_time():
    d = ArdourOscDialect()
    d.handle(P.ARDOUR_TRANSPORT_PLAY, (1,), 10.0)
    for k in range(3):  # timecode (frame rate unknown) then exact time of the same update
        t = 10.0 + k * 0.1
        d.handle(P.ARDOUR_POSITION_SMPTE, (f"00:00:0{5 + k}:23",), t)  # 30 fps assumed: +0.767 s
        s = d.handle(P.ARDOUR_POSITION_TIME, (f"00:00:0{5 + k}.958",), t + 0.0002)  # really 24 fps
        assert s.position_seconds == pytest.approx(5 + k + 0.958, abs=1e-9)
