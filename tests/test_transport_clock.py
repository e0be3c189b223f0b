"""TransportClock (extrapolation, latency, staleness), BeatGrid and TempoMapRecorder.

Truths: hand-computed tempo arithmetic, mido's own tick→second conversion, the analysis package's
``beat_grid_from_midi`` (separate code) on a real tempo map, and a synthetic DAW whose tick times
come from a known tempo map.
"""

from __future__ import annotations

import threading

import mido
import numpy as np
import pytest
from conftest import shared_data, write_midi

from bridge.analysis.tempo_map import beat_grid_from_midi
from bridge.errors import TransportError
from bridge.transport.clock import BeatGrid, TempoMapRecorder, TransportClock, bar_beat
from bridge.transport.midi_clock import MidiClockParser
from bridge.transport.state import TransportState


def _state(**kw) -> TransportState:
    base = dict(playing=True, tempo_bpm=120.0, position_beats=8.0, position_seconds=4.0,
                source="midi_clock", received_at=100.0)
    base.update(kw)
    return TransportState(**base)


# -- TransportClock ------------------------------------------------------------------------------

def test_extrapolates_between_messages_and_applies_latency():
    clock = TransportClock(time_fn=lambda: 100.25)
    assert clock.now().position_beats == 0.0 and not clock.now().playing  # nothing received yet
    assert clock.position() == (0.0, False)
    clock.update(_state())
    now = clock.now()  # time_fn: 0.25 s after the state at 120 BPM
    assert now.playing and now.position_beats == pytest.approx(8.5)
    assert now.position_seconds == pytest.approx(4.25) and now.received_at == 100.25
    assert (now.bar, now.beat) == (3, pytest.approx(1.5))
    assert clock.position() == (pytest.approx(4.25), True)  # the preview's cheaper read
    clock.latency_ms = 100.0  # positive: show where the DAW will be 100 ms later
    assert clock.now(at=100.25).position_beats == pytest.approx(8.7)
    assert clock.position(at=100.25)[0] == pytest.approx(4.35)
    clock.latency_ms = -50.0
    assert clock.now(at=100.25).position_beats == pytest.approx(8.4)
    with pytest.raises(ValueError, match="latency_ms"):
        clock.latency_ms = float("nan")


def test_stopped_states_do_not_move_and_stale_ones_stop():
    clock = TransportClock()
    clock.update(_state(playing=False))
    assert clock.now(at=105.0).position_beats == 8.0
    clock.update(_state())
    assert clock.now(at=100.9).playing  # MIDI clock: stale after 1 s without a clock
    late = clock.now(at=101.5)
    assert not late.playing and late.position_beats == 8.0
    assert clock.position(at=101.5) == (4.0, False)
    never_stale = TransportClock(stale_after_s={})
    never_stale.update(_state())
    assert never_stale.now(at=110.0).position_beats == pytest.approx(28.0)


def test_tempo_map_drives_extrapolation_through_a_tempo_change():
    # 120 BPM up to beat 8 (4 s), then 60 BPM
    tmap = BeatGrid.from_tempo_anchors([0.0, 4.0, 8.0], [0.0, 8.0, 12.0])
    clock = TransportClock(tempo_map=tmap)
    clock.update(_state(position_beats=7.0, position_seconds=999.0))  # seconds come from the map
    s = clock.now(at=101.0)  # 0.5 s to beat 8, then 0.5 s at 60 BPM
    assert s.position_beats == pytest.approx(8.5) and s.position_seconds == pytest.approx(4.5)
    assert s.tempo_bpm == pytest.approx(60.0)
    assert clock.position(at=101.0) == (pytest.approx(4.5), True)
    # a seconds-based source (MTC) extrapolates in seconds
    clock.update(_state(source="mtc", position_seconds=3.0, position_beats=0.0, received_at=200.0))
    assert clock.now(at=200.02).position_seconds == pytest.approx(3.02)
    assert clock.position(at=200.02) == (pytest.approx(3.02), True)
    assert clock.now(at=200.02).position_beats == pytest.approx(6.04)


def test_readers_never_see_a_half_state():
    clock = TransportClock()
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer():
        k = 0
        while not stop.is_set():
            k += 1
            clock.update(_state(position_beats=float(k), position_seconds=k / 2.0, received_at=float(k)))

    th = threading.Thread(target=writer)
    th.start()
    try:
        for _ in range(20000):
            s = clock.now(at=0.0)
            if s.received_at and abs(s.position_seconds * 2.0 - s.position_beats) > 1e-9:
                errors.append(AssertionError(s))
    finally:
        stop.set()
        th.join()
    assert not errors


def test_bar_beat():
    assert bar_beat(0.0) == (1, 1.0)
    assert bar_beat(9.5) == (3, pytest.approx(2.5))
    assert bar_beat(3.0, (6, 8)) == (2, pytest.approx(1.0))  # a 6/8 bar is 3 quarters
    assert bar_beat(-1.0) == (0, pytest.approx(4.0))


# -- BeatGrid ------------------------------------------------------------------------------------



def test_tempo_map_from_a_midi_file_with_meter_changes(tmp_path):
    path = write_midi(tmp_path / "map.mid", [
        (0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(120))),
        (0, mido.MetaMessage("time_signature", numerator=4, denominator=4)),
        (16 * 480, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(90))),
        (16 * 480, mido.MetaMessage("time_signature", numerator=3, denominator=4)),
    ])
    tmap = BeatGrid.from_midi_file(path)
    assert tmap.quarters_to_seconds(16.0) == pytest.approx(8.0)
    assert tmap.quarters_to_seconds(19.0) == pytest.approx(10.0)  # 3 beats at 90 BPM = 2 s
    assert tmap.seconds_to_quarters(np.array([0.0, 8.0, 12.0])) == pytest.approx([0.0, 16.0, 22.0])
    assert tmap.tempo_at_seconds(9.0) == pytest.approx(90.0) and tmap.tempo_at_quarters(1.0) == pytest.approx(120.0)
    assert tmap.bar_beat(16.0) == (5, pytest.approx(1.0))
    assert tmap.bar_beat(20.0) == (6, pytest.approx(2.0))
    assert tmap.time_signature_at(20.0) == (3, 4)
    assert tmap.quarters_to_seconds(-2.0) == pytest.approx(-1.0)  # extrapolated at the first tempo
    with pytest.raises(ValueError, match="strictly increasing"):
        BeatGrid.from_tempo_anchors([0.0, 1.0, 1.0], [0.0, 1.0, 2.0])


@pytest.mark.shared_data
def test_real_tempo_map_round_trips_and_matches_beat_grid_from_midi():
    path = shared_data("midi_tempo_maps_pianomidi", "debussy_childrens_corner_4.mid")
    tmap = BeatGrid.from_midi_file(path)
    assert tmap.anchors_quarters.size >= 400  # the file has 440 tempo events
    beats = np.linspace(-1.0, 300.0, 20001)
    assert np.asarray(tmap.seconds_to_quarters(tmap.quarters_to_seconds(beats))) == pytest.approx(beats, abs=1e-9)
    # independent code in bridge.analysis: beat k of the grid is at quarter k (4/4 and 2/4 here)
    grid = beat_grid_from_midi(path, duration_seconds=143.0)
    k = np.arange(grid.beats_s.size)
    np.testing.assert_allclose(tmap.quarters_to_seconds(k.astype(float)), grid.beats_s, atol=1e-6)
    # and mido's own tick→second conversion, tempo event by tempo event
    mid = mido.MidiFile(str(path))
    tempos, tick = {}, 0
    for msg in mido.merge_tracks(mid.tracks):
        tick += msg.time
        if msg.type == "set_tempo":
            tempos[tick] = msg.tempo
    t, last, cur, expect = 0.0, 0, 500000, []
    for tk in sorted(tempos):
        t += mido.tick2second(tk - last, mid.ticks_per_beat, cur)
        expect.append((tk / mid.ticks_per_beat, t))
        last, cur = tk, tempos[tk]
    b, s = np.array(expect).T
    np.testing.assert_allclose(tmap.quarters_to_seconds(b), s, atol=1e-9)
    assert 2.0 <= tmap.bar_beat(float(b[-1]))[0] <= 200


def test_tempo_map_from_beat_grid_and_back():
    beats_s = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 2.6, 3.2, 3.8, 4.4])
    from bridge.analysis.types import BeatGrid

    grid = BeatGrid(tempo_bpm=110.0, beats_s=beats_s, downbeats_s=beats_s[::4], beats_per_bar=4)
    tmap = grid
    assert tmap.quarters_to_seconds(5.0) == pytest.approx(2.6)
    assert tmap.tempo_at_seconds(3.0) == pytest.approx(100.0)
    back = tmap.with_beats_until(4.4)
    np.testing.assert_allclose(back.beats_s, beats_s, atol=1e-9)
    np.testing.assert_allclose(back.downbeats_s, beats_s[::4], atol=1e-9)


def test_a_six_eight_grid_reaches_the_transport_in_quarter_notes_and_back():
    """6/8 by definition: a dotted-quarter beat is three eighths = 1.5 quarter notes, two beats a
    bar. An analysed 6/8 grid (beats 0.5 s apart) must give a DAW's quarter-note position its true
    time (quarter 3 = two dotted beats = 1.0 s; it used to read 1.5 s, as if the beats were
    quarters), bars of 6/8, and a 6/8 map must give back the dotted beats, not the eighths."""
    from bridge.analysis.types import BeatGrid

    beats_s = np.arange(16) * 0.5
    grid = BeatGrid(tempo_bpm=120.0, beats_s=beats_s, downbeats_s=beats_s[1::2], beats_per_bar=2,
                    beat_division=3)
    tmap = grid
    assert tmap.quarters_to_seconds(3.0) == pytest.approx(1.0)
    assert tmap.tempo_at_seconds(2.0) == pytest.approx(180.0)  # quarters per minute
    assert tmap.time_signature_at(0.0) == (6, 8)
    # the first downbeat is grid beat 1 (0.5 s = quarter 1.5); the next bar starts 3 quarters on
    assert tmap.bar_beat(1.5)[1] == pytest.approx(1.0) and tmap.bar_beat(4.5)[1] == pytest.approx(1.0)
    assert tmap.bar_beat(4.5)[0] == tmap.bar_beat(1.5)[0] + 1

    back = BeatGrid.constant(120.0, time_signature=(6, 8)).with_beats_until(6.0)
    np.testing.assert_allclose(back.beats_s, np.arange(0.0, 6.0 + 1e-9, 0.75), atol=1e-9)  # 1.5 × 0.5 s
    np.testing.assert_allclose(back.downbeats_s, np.arange(0.0, 6.0 + 1e-9, 1.5), atol=1e-9)
    assert (back.beats_per_bar, back.beat_division, back.meter_label) == (2, 3, "6/8")
    seven = BeatGrid.constant(120.0, time_signature=(7, 8)).with_beats_until(3.5)
    assert seven.beats_per_bar == 7 and seven.beat_division == 2  # 7/8 counts its eighths


# -- TempoMapRecorder ----------------------------------------------------------------------------

def test_recorder_captures_the_daws_tempo_map_and_saves_it(tmp_path):
    """A DAW plays a map (120 BPM, a step to 90, a ramp) as MIDI clock with 1 ms jitter, with a
    stop, an SPP jump and a replay; the recorded map must match the truth within a few ms."""
    truth = BeatGrid.from_tempo_anchors([0.0, 8.0, 14.0, 20.0], [0.0, 16.0, 25.0, 35.0])  # 120, 90, then 100 BPM
    rng = np.random.default_rng(11)
    parser = MidiClockParser()
    rec = TempoMapRecorder()

    def run(start_beat: float, end_beat: float, t0: float, how: bytes) -> float:
        ticks = np.arange(round(start_beat * 24), round(end_beat * 24) + 1)
        times = t0 + np.asarray(truth.quarters_to_seconds(ticks / 24)) - float(truth.quarters_to_seconds(start_beat))
        if how == b"\xfa":
            rec.record(parser.feed(how, t0 - 0.001))
        else:
            sixteenths = round(start_beat * 4)
            rec.record(parser.feed(bytes([0xF2, sixteenths & 0x7F, sixteenths >> 7]), t0 - 0.002))
            parser.feed(b"\xfb", t0 - 0.001)
        noisy = np.round((times + rng.normal(0, 1e-3, times.size)) * 1000) / 1000
        for t in np.maximum.accumulate(noisy):
            s = parser.feed(b"\xf8", float(t))
            if s is not None:
                rec.record(s)
        rec.record(parser.feed(b"\xfc", float(times[-1]) + 0.005))
        return float(times[-1]) + 1.0

    t = run(0.0, 20.0, 1.0, b"\xfa")
    t = run(28.0, 35.0, t, b"\xfb")  # located past a gap
    t = run(20.0, 28.0, t, b"\xfb")  # the gap, played later
    run(10.0, 18.0, t, b"\xfb")  # a replay of the step region (averaged in)

    tmap = rec.to_tempo_map()
    probe = np.linspace(0.0, 35.0, 141)
    err_ms = 1000 * (np.asarray(tmap.quarters_to_seconds(probe)) - np.asarray(truth.quarters_to_seconds(probe)))
    assert np.max(np.abs(err_ms)) < 10.0 and np.median(np.abs(err_ms)) < 3.0
    # tempo over one beat (a single 16th bin holds only one or two jittered clock intervals)
    beat_bpm = lambda b: 60.0 / (tmap.quarters_to_seconds(b + 1.0) - tmap.quarters_to_seconds(b))  # noqa: E731
    assert beat_bpm(5.0) == pytest.approx(120.0, abs=0.5)
    assert beat_bpm(20.0) == pytest.approx(90.0, abs=0.5)

    path = rec.save_midi(tmp_path / "captured.mid")
    again = BeatGrid.from_midi_file(path)
    np.testing.assert_allclose(again.quarters_to_seconds(probe), tmap.quarters_to_seconds(probe), atol=2e-4)
    grid = beat_grid_from_midi(path, duration_seconds=19.5)  # the analysis side reads it
    np.testing.assert_allclose(grid.beats_s, truth.quarters_to_seconds(np.arange(grid.beats_s.size, dtype=float)), atol=0.01)
    assert rec.to_beat_grid().source == "daw"


def test_recorder_without_data_says_so():
    with pytest.raises(TransportError, match="no tempo map was captured"):
        TempoMapRecorder().to_tempo_map()
