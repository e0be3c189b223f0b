"""MIDI Time Code parser, fed bytes with timestamps.

The streams are built here from the MTC spec (piece k of the cycle coding frame c is sent at
frame c + k/4; nibbles as tabulated in the spec), not with the parser's helpers, and drop-frame
numbering is checked against SMPTE's own examples.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.transport.clock import BeatGrid, TransportClock
from bridge.transport.mtc import (
    MtcParser,
    frames_to_timecode,
    full_frame_message,
    quarter_frame_messages,
    timecode_to_frames,
)

RATES = {0: 24.0, 1: 25.0, 2: 30000 / 1001, 3: 30.0}


def qf_bytes(h: int, m: int, s: int, f: int, rate_code: int) -> list[bytes]:
    """The 8 quarter frames for timecode h:m:s:f, straight from the spec's table."""
    data = [f & 0xF, (f >> 4) & 1, s & 0xF, (s >> 4) & 3, m & 0xF, (m >> 4) & 3, h & 0xF, ((h >> 4) & 1) | (rate_code << 1)]
    return [bytes([0xF1, (k << 4) | d]) for k, d in enumerate(data)]


def stream(first_frame: int, rate_code: int, n_qf: int, t0: float, *, reverse: bool = False):
    """(time, bytes) of n_qf quarter frames from first_frame at 1:1 speed (backwards if reverse)."""
    fps = RATES[rate_code]
    out = []
    for i in range(n_qf):
        if not reverse:
            cycle, piece = divmod(i, 8)
            frame = first_frame + 2 * cycle
            t = t0 + i / (4 * fps)
        else:
            cycle, k = divmod(i, 8)
            piece = 7 - k
            frame = first_frame - 2 * cycle
            t = t0 + i / (4 * fps)
        out.append((t, qf_bytes(*frames_to_timecode(frame, rate_code), rate_code)[piece], frame + piece / 4))
    return out


def test_drop_frame_numbering_matches_smpte():
    # 29.97 drop-frame skips ;00 and ;01 each minute except every tenth
    assert timecode_to_frames(0, 1, 0, 2, 2) == 1800  # the first frame of minute 1
    assert timecode_to_frames(0, 0, 59, 29, 2) == 1799
    assert timecode_to_frames(0, 10, 0, 0, 2) == 17982  # 10 minutes = 17982 frames
    assert timecode_to_frames(1, 0, 0, 0, 2) == 107892
    assert timecode_to_frames(0, 1, 0, 0, 3) == 1800  # 30 non-drop: nothing skipped
    for n in range(0, 40000, 7):
        h, m, s, f = frames_to_timecode(n, 2)
        assert not (s == 0 and f < 2 and m % 10 != 0), (n, h, m, s, f)
        assert timecode_to_frames(h, m, s, f, 2) == n


@pytest.mark.parametrize("rate_code", [0, 1, 2, 3])
def test_quarter_frames_at_every_rate(rate_code):
    fps = RATES[rate_code]
    tc = (1, 2, 3, 4)  # 01:02:03:04 (valid at every rate)
    start = timecode_to_frames(*tc, rate_code)
    p = MtcParser(offset_seconds=3600.0)
    msgs = stream(start, rate_code, 40, t0=5.0)
    states = [p.feed(m, t) for t, m, _ in msgs]
    assert all(s is None for s in states[:7])  # nothing is known before a full cycle
    for (t, _, frames), s in zip(msgs[7:], states[7:], strict=True):
        assert s.playing and s.source == "mtc"
        # the song is at frame c + k/4 when piece k arrives: 7/4 frames added at piece 7
        assert s.position_seconds == pytest.approx(frames / fps - 3600.0, abs=1e-9)
        assert s.received_at == pytest.approx(t, abs=1e-9)
    assert p.rate_name == {0: "24", 1: "25", 2: "29.97df", 3: "30"}[rate_code]


def test_two_frame_assembly_latency_is_compensated():
    # 00:00:10:00 at 25 fps, read straight from the nibbles: the value is 10 s, but when its last
    # piece arrives the song is 7/4 frames later and at the next piece 0 two frames later
    p = MtcParser()
    msgs = qf_bytes(0, 0, 10, 0, 1) + qf_bytes(0, 0, 10, 2, 1)
    states = [p.feed(m, 1.0 + i * 0.01) for i, m in enumerate(msgs)]
    assert states[7].position_seconds == pytest.approx(10.0 + 1.75 / 25)
    assert states[8].position_seconds == pytest.approx(10.0 + 2 / 25)
    assert states[15].position_seconds == pytest.approx(10.0 + 3.75 / 25)


def test_drop_frame_stream_crosses_a_minute():
    # 00:00:59;28, then 00:01:00;02 (;00 and ;01 do not exist), then ;04 — spelled out by hand
    msgs = qf_bytes(0, 0, 59, 28, 2) + qf_bytes(0, 1, 0, 2, 2) + qf_bytes(0, 1, 0, 4, 2)
    p = MtcParser()
    states = [p.feed(m, i / (4 * RATES[2])) for i, m in enumerate(msgs)]
    frame_s = 1001 / 30000
    assert states[7].position_seconds == pytest.approx((1798 + 1.75) * frame_s)
    assert states[8].position_seconds == pytest.approx(60.06)  # frame 1800 = 1800 × 1001/30000 s
    assert states[15].position_seconds == pytest.approx((1800 + 1.75) * frame_s)
    assert states[23].position_seconds == pytest.approx((1802 + 1.75) * frame_s)


def test_reverse_play():
    fps = 25.0
    start = timecode_to_frames(0, 0, 20, 0, 1)
    p = MtcParser()
    msgs = stream(start, 1, 32, t0=0.0, reverse=True)
    states = [p.feed(m, t) for t, m, _ in msgs]
    assert all(s is None for s in states[:7])
    for (_, _, frames), s in zip(msgs[7:], states[7:], strict=True):
        assert not s.playing  # rewinding is not playing
        assert s.position_seconds == pytest.approx(frames / fps)
    assert states[-1].position_seconds < states[8].position_seconds


def test_full_frame_locates_and_the_next_piece_zero_resumes():
    fps = 25.0
    p = MtcParser()
    for t, m, _ in stream(timecode_to_frames(0, 0, 5, 0, 1), 1, 20, t0=0.0):
        p.feed(m, t)
    # Cubase locates to 01:30:35:20 (the spec's own example bytes)
    s = p.feed(bytes.fromhex("F07F7F0101611E2314F7"), 1.0)
    assert not s.playing
    assert s.position_seconds == pytest.approx(1 * 3600 + 30 * 60 + 35 + 20 / 30)  # rate bits 11 = 30 fps
    # back to 25 fps: a full frame at 00:00:42:10, then quarter frames from that frame
    target = timecode_to_frames(0, 0, 42, 10, 1)
    s = p.feed(full_frame_message(target, 1), 2.0)
    assert s.position_seconds == pytest.approx(42.4) and not s.playing
    resumed = [p.feed(m, t) for t, m, _ in stream(target, 1, 3, t0=2.5)]
    assert resumed[0].playing and resumed[0].position_seconds == pytest.approx(42.4)
    assert resumed[2].position_seconds == pytest.approx(42.4 + 0.5 / fps)


def test_logic_locate_without_full_frame_reanchors_within_a_cycle():
    fps = 25.0
    p = MtcParser()
    t = 0.0
    for t, m, _ in stream(timecode_to_frames(0, 0, 5, 0, 1), 1, 21, t0=0.0):
        p.feed(m, t)
    # the playhead jumps to 00:00:30:00 and quarter frames continue from there at once
    jumped = stream(timecode_to_frames(0, 0, 30, 0, 1), 1, 16, t0=t + 0.01)
    states = [p.feed(m, tt) for tt, m, _ in jumped]
    assert states[-1].position_seconds == pytest.approx(30 + 15 / 4 / fps)
    assert states[-1].playing


def test_transport_clock_stops_when_quarter_frames_end():
    clock = TransportClock()
    p = MtcParser()
    msgs = stream(timecode_to_frames(0, 0, 1, 0, 1), 1, 40, t0=10.0)
    for t, m, _ in msgs:
        s = p.feed(m, t)
        if s is not None:
            clock.update(s)
    t_last, _, frames_last = msgs[-1]
    assert clock.now(at=t_last + 0.01).position_seconds == pytest.approx(frames_last / 25 + 0.01)
    held = clock.now(at=t_last + 0.2)  # no quarter frame for 200 ms: hold, don't run on
    assert held.playing and held.position_seconds == pytest.approx(frames_last / 25 + 0.03)
    stopped = clock.now(at=t_last + 0.5)
    assert not stopped.playing and stopped.position_seconds == pytest.approx(frames_last / 25)
    # a new run after a pause starts a fresh lock
    assert p.feed(msgs[0][1], t_last + 1.0) is None


def test_tempo_map_gives_beats():
    tmap = BeatGrid.from_tempo_anchors([0.0, 10.0, 20.0], [0.0, 20.0, 30.0])  # 120 BPM for 10 s, then 60
    p = MtcParser(tempo_map=tmap)
    s = p.feed(full_frame_message(timecode_to_frames(0, 0, 15, 0, 1), 1), 0.0)
    assert s.position_beats == pytest.approx(25.0) and s.tempo_bpm == pytest.approx(60.0)
    assert s.bar == 7 and s.beat == pytest.approx(2.0)
    p = MtcParser(tempo_bpm=90.0)
    s = p.feed(full_frame_message(timecode_to_frames(0, 0, 20, 0, 1), 1), 0.0)
    assert s.position_beats == pytest.approx(30.0) and s.tempo_bpm == 90.0


def test_malformed_mtc_is_ignored():
    p = MtcParser()
    msgs = stream(timecode_to_frames(0, 0, 5, 0, 1), 1, 12, t0=0.0)
    for t, m, _ in msgs:
        s = p.feed(m, t)
    good = s
    for junk in (
        b"\xf0\x7f\x7f\x01\x01\x61",  # truncated full frame
        b"\xf0\x7f\x7f\x01\x01\x20\x46\x00\x00\xf7",  # minute 70: not a timecode
        b"\xf0\x7f\x7f\x01\x01\x20\x00\x00\xf7",  # too short
        b"\xf0\x7e\x7f\x06\x01\xf7",  # another universal SysEx (identity request)
        b"\xf1",  # quarter frame without its data byte
        b"\x77\x01\x02",
    ):
        assert p.feed(junk, 0.2) is None
    assert p.state == good
    assert quarter_frame_messages(100, 1)[0] == qf_bytes(*frames_to_timecode(100, 1), 1)[0]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=12), st.floats(allow_nan=True, allow_infinity=True)), max_size=60))
def test_fuzz_mtc_parser(messages):
    p = MtcParser()
    for data, t in messages:
        s = p.feed(data, t)
        if s is not None:
            assert math.isfinite(s.position_seconds) and math.isfinite(s.position_beats)
            assert 0 <= s.position_seconds < 24 * 3600 + 60
            assert math.isfinite(s.received_at) and s.tempo_bpm == 120.0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 7), st.integers(0, 15)), min_size=1, max_size=80),
       st.integers(0, 3))
def test_fuzz_quarter_frame_pieces(pieces, rate_code):
    """Random piece/nibble sequences: positions stay valid timecode and finite."""
    p = MtcParser()
    for i, (piece, nibble) in enumerate(pieces):
        s = p.feed(bytes([0xF1, (piece << 4) | nibble]), 1.0 + i * 0.01)
        if s is not None:
            assert 0 <= s.position_seconds < 24 * 3600 + 60
            assert np.isfinite(s.position_beats)
