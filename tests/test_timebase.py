"""The one time base, :class:`bridge.timebase.BeatGrid`, against truth computed by hand or by mido.

Every expected number here comes from the definition of the tempo (a quarter at B BPM lasts 60/B s;
a 6/8 beat is a dotted quarter = three eighths = 1.5 quarters) or from a MIDI file written with
mido directly — never from our own conversions or our own MIDI writer.
"""

from __future__ import annotations

import dataclasses

import mido
import numpy as np
import pytest

from bridge.analysis.tempo_map import beat_grid_from_midi
from bridge.timebase import BeatGrid, beat_position, beat_time, local_tempo_bpm
from bridge.transport.clock import TransportClock
from bridge.transport.state import TransportState


def test_a_constant_tempo_maps_seconds_to_quarters_exactly():
    bpm = 97.0
    grid = BeatGrid.constant(bpm)
    seconds = np.array([-3.0, 0.0, 0.25, 1.0, 37.5, 600.0])
    np.testing.assert_allclose(grid.seconds_to_quarters(seconds), seconds * bpm / 60.0, rtol=0, atol=1e-9)
    quarters = np.array([-2.0, 0.0, 1.0, 4.5, 1000.0])
    np.testing.assert_allclose(grid.quarters_to_seconds(quarters), quarters * 60.0 / bpm, rtol=0, atol=1e-9)
    assert grid.quarters_to_seconds(8.0) == pytest.approx(8 * 60 / 97, abs=1e-12)  # scalar → float
    assert grid.tempo_at_seconds(123.0) == pytest.approx(bpm) and grid.tempo_at_quarters(-5.0) == pytest.approx(bpm)
    # bar 3 of 4/4 starts at quarter 8; quarter 9.5 is its beat 2.5
    assert grid.bar_beat(9.5) == (3, pytest.approx(2.5))
    # its tapped beats over 10 s are the quarters, 60/97 s apart, downbeats every 4
    song = grid.with_beats_until(10.0)
    expect = np.arange(0, int(10.0 * bpm / 60.0) + 1) * 60.0 / bpm
    np.testing.assert_allclose(song.beats_s, expect, atol=1e-9)
    np.testing.assert_allclose(song.downbeats_s, expect[::4], atol=1e-9)
    np.testing.assert_allclose(beat_position(np.array([3.0]), song), [3.0 * bpm / 60.0], atol=1e-9)


def test_a_grid_of_detected_beats_at_a_known_tempo_is_its_own_tempo_map():
    """Beats at 128 BPM starting 0.3 s in: the transport's quarter k is beat k, beat 0 at 0.3 s;
    the grid's beat positions say the same, inside and outside the beats."""
    period = 60.0 / 128.0
    beats = 0.3 + np.arange(64) * period
    grid = BeatGrid(tempo_bpm=128.0, beats_s=beats, downbeats_s=beats[::4], beats_per_bar=4)
    k = np.array([-4.0, 0.0, 1.0, 10.5, 63.0, 80.0])
    np.testing.assert_allclose(grid.quarters_to_seconds(k), 0.3 + k * period, atol=1e-9)
    np.testing.assert_allclose(grid.seconds_to_quarters(0.3 + k * period), k, atol=1e-9)
    np.testing.assert_allclose(grid.beat_position(0.3 + k * period), k, atol=1e-9)
    np.testing.assert_allclose(beat_time(k, grid, clock="bar"), 0.3 + k * 4 * period, atol=1e-9)
    assert grid.tempo_at_seconds(5.0) == pytest.approx(128.0)
    assert grid.require_tempo_map() is grid
    # a corrected grid (replace: the beats twice as fast) gets its own map, not the cached one
    half = dataclasses.replace(grid, tempo_bpm=256.0, beats_s=0.3 + np.arange(128) * period / 2,
                               downbeats_s=0.3 + np.arange(32) * period * 2)
    assert half.quarters_to_seconds(2.0) == pytest.approx(0.3 + period, abs=1e-9)
    assert grid.quarters_to_seconds(2.0) == pytest.approx(0.3 + 2 * period, abs=1e-9)
    with pytest.raises(ValueError, match="at least 2"):
        BeatGrid(tempo_bpm=120.0, beats_s=np.array([1.0]), downbeats_s=np.array([1.0]),
                 beats_per_bar=4).require_tempo_map()


def test_a_midi_tempo_change_written_by_mido_reads_back_at_the_right_seconds(tmp_path):
    """Type 1, written with mido only: 100 BPM for 8 quarters, 150 BPM from quarter 8, 75 BPM from
    the middle of quarter 10 (tick 10.5 × 480), 6/8 from quarter 12; tempo in track 0, a note in
    track 1. By hand: a quarter lasts 0.6 s at 100, 0.4 s at 150, 0.8 s at 75 BPM."""
    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    conductor, notes = mido.MidiTrack(), mido.MidiTrack()
    mid.tracks += [conductor, notes]
    conductor += [
        mido.MetaMessage("set_tempo", tempo=600_000, time=0),
        mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0),
        mido.MetaMessage("set_tempo", tempo=400_000, time=8 * 480),
        mido.MetaMessage("set_tempo", tempo=800_000, time=int(2.5 * 480)),
        mido.MetaMessage("time_signature", numerator=6, denominator=8, time=int(1.5 * 480)),
    ]
    notes += [mido.Message("note_on", note=60, velocity=90, time=0),
              mido.Message("note_off", note=60, velocity=0, time=20 * 480)]
    path = tmp_path / "tempo_change.mid"
    mid.save(str(path))

    grid = BeatGrid.from_midi_file(path, offset_seconds=2.0)
    at_8, at_10_5 = 2.0 + 8 * 0.6, 2.0 + 8 * 0.6 + 2.5 * 0.4  # 6.8 s, 7.8 s
    known = {0.0: 2.0, 4.0: 2.0 + 4 * 0.6, 8.0: at_8, 10.0: at_8 + 0.8, 10.5: at_10_5,
             11.0: at_10_5 + 0.5 * 0.8, 12.0: at_10_5 + 1.5 * 0.8, 20.0: at_10_5 + 9.5 * 0.8}
    q = np.array(list(known))
    np.testing.assert_allclose(grid.quarters_to_seconds(q), list(known.values()), atol=1e-9)
    np.testing.assert_allclose(grid.seconds_to_quarters(np.array(list(known.values()))), q, atol=1e-9)
    assert grid.tempo_at_seconds(7.0) == pytest.approx(150.0) and grid.tempo_at_quarters(11.0) == pytest.approx(75.0)
    assert grid.time_signature_at(11.9) == (4, 4) and grid.time_signature_at(12.0) == (6, 8)
    assert grid.bar_beat(12.0) == (4, pytest.approx(1.0))  # three 4/4 bars, then the first 6/8 bar
    assert grid.bar_beat(13.5) == (4, pytest.approx(4.0))  # quarter 1.5 into 6/8: the 4th eighth
    # mido's own tick → second conversion agrees, segment by segment
    assert grid.quarters_to_seconds(10.5) - 2.0 == pytest.approx(
        mido.tick2second(8 * 480, 480, 600_000) + mido.tick2second(int(2.5 * 480), 480, 400_000), abs=1e-9)

    # the analysis side counts the song's tapped beats on the same map: quarters 0…11 in 4/4, then
    # dotted quarters in 6/8 (quarter 12 at 9.0 s, 13.5 at 10.2 s)
    song = beat_grid_from_midi(path, duration_seconds=10.2, offset_seconds=2.0)
    expect = [2.0 + 0.6 * k for k in range(9)] + [7.2, 7.6, 8.2, 9.0, 10.2]
    np.testing.assert_allclose(song.beats_s, expect, atol=1e-9)
    # and keeps the file's map: its quarters stay exact across the 6/8 change, also after the
    # analysis cache has written it out and read it back
    from bridge.analysis.cache import AnalysisCache

    cache = AnalysisCache(tmp_path / "cache")
    cache.save_song("k", song, [(0.0, 10.2)])
    for grid_back in (song, cache.load_song("k")[0]):
        np.testing.assert_allclose(grid_back.quarters_to_seconds(q), list(known.values()), atol=1e-9)
        assert grid_back.bar_beat(13.5) == (4, pytest.approx(4.0))


@pytest.mark.parametrize("numerator, denominator, beat_s", [(7, 8, 0.25), (5, 8, 0.25), (6, 8, 0.75),
                                                           (12, 8, 0.75), (3, 4, 0.5), (2, 2, 1.0)])
def test_a_map_grid_taps_its_meters_beat_and_reports_its_tempo_in_those_beats(tmp_path, numerator, denominator,
                                                                                 beat_s):
    """A MIDI tempo map at 120 quarters a minute (a quarter is 0.5 s, by definition) in each meter:
    the beat a listener taps is the denominator note (an eighth in 7/8 and 5/8, a half in 2/2) or,
    in compound meter, a dotted quarter; the grid's tempo is in those beats (60 / beat_s), as a
    detected grid's is; its quarter notes stay 0.5 s; past the last counted beat, beats go on at the
    same spacing; and the meter reads as notated."""
    mid = mido.MidiFile(type=0, ticks_per_beat=480)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track += [mido.MetaMessage("set_tempo", tempo=500_000, time=0),
              mido.MetaMessage("time_signature", numerator=numerator, denominator=denominator, time=0),
              mido.MetaMessage("end_of_track", time=8 * 480)]
    path = tmp_path / f"{numerator}-{denominator}.mid"
    mid.save(str(path))
    song = beat_grid_from_midi(path, duration_seconds=12.0)
    np.testing.assert_allclose(np.diff(song.beats_s), beat_s, atol=1e-9)
    assert song.tempo_bpm == pytest.approx(60.0 / beat_s)
    assert song.meter_label == f"{numerator}/{denominator}"
    np.testing.assert_allclose(song.seconds_to_quarters(np.array([1.0, 7.25])), [2.0, 14.5], atol=1e-9)
    last = float(song.beats_s[-1])
    n = song.beats_s.shape[0]
    np.testing.assert_allclose(song.beat_position(np.array([last + beat_s, last + 2.5 * beat_s])),
                               [n, n + 1.5], atol=1e-9)
    bar_s = numerator * 2.0 / denominator  # a bar is numerator × (4 / denominator) quarters of 0.5 s
    np.testing.assert_allclose(np.diff(song.downbeats_s), bar_s, atol=1e-9)


def test_six_eight_quarters_against_dotted_beats_and_eighths():
    """6/8 at 120 quarter notes per minute: quarter 0.5 s, eighth 0.25 s, dotted-quarter beat
    0.75 s, bar (six eighths = three quarters) 1.5 s."""
    grid = BeatGrid.constant(120.0, time_signature=(6, 8))
    assert grid.quarters_to_seconds(4.5) == pytest.approx(2.25)
    assert grid.bar_beat(4.5) == (2, pytest.approx(4.0))  # bar 2 at quarter 3; +1.5 quarters = eighth 4
    assert grid.bar_beat(3.25) == (2, pytest.approx(1.5))  # half an eighth into bar 2
    song = grid.with_beats_until(6.0)
    assert (song.beats_per_bar, song.beat_division, song.quarters_per_beat) == (2, 3, 1.5)
    np.testing.assert_allclose(song.beats_s, np.arange(0.0, 6.0 + 1e-9, 0.75), atol=1e-9)
    np.testing.assert_allclose(song.downbeats_s, np.arange(0.0, 6.0 + 1e-9, 1.5), atol=1e-9)
    assert song.beat_position(np.array([2.25]))[0] == pytest.approx(3.0)  # 2.25 s / 0.75 s

    # a detected 6/8 grid: dotted beats 0.6 s apart (100 per minute) → a quarter is 0.4 s (150 BPM),
    # an eighth 0.2 s; the first downbeat is its beat 1, so bars start at quarter 1.5, 4.5, …
    beats = np.arange(20) * 0.6
    detected = BeatGrid(tempo_bpm=100.0, beats_s=beats, downbeats_s=beats[1::2], beats_per_bar=2, beat_division=3)
    assert detected.quarters_to_seconds(1.5) == pytest.approx(0.6)
    assert detected.seconds_to_quarters(0.2) == pytest.approx(0.5)  # one eighth
    assert detected.seconds_to_quarters(3.0) == pytest.approx(7.5)  # five dotted beats
    assert detected.tempo_at_seconds(1.0) == pytest.approx(150.0)
    assert detected.time_signature_at(0.0) == (6, 8)
    assert detected.bar_beat(4.5)[1] == pytest.approx(1.0) and detected.bar_beat(5.0)[1] == pytest.approx(2.0)


def test_the_transport_follows_a_grid_in_quarter_notes():
    """A DAW at quarter 6 of a 6/8 song whose dotted beats are 0.6 s apart is at 2.4 s (quarter
    0.4 s), not 3.6 s (as if its beats were quarters)."""
    beats = np.arange(20) * 0.6
    grid = BeatGrid(tempo_bpm=100.0, beats_s=beats, downbeats_s=beats[::2], beats_per_bar=2, beat_division=3)
    clock = TransportClock(tempo_map=grid)
    clock.update(TransportState(playing=False, tempo_bpm=150.0, position_beats=6.0, received_at=0.0,
                                source="midi_clock"))
    assert clock.now(0.0).position_seconds == pytest.approx(2.4)


def test_past_its_ends_a_grid_goes_on_at_one_tempo_in_beats_and_in_quarters():
    """One extrapolation rule. A map at 100 then 150 quarters a minute (quarters 0.6 s, then 0.4 s
    long, by definition): past its last beat both the beat count and the quarter count go on at
    150 (and before the first at 100). A grid of detected beats whose last interval is jittered
    (0.52 s) at a fitted 120 BPM: both go on at 120, not at the jittered interval."""
    grid = BeatGrid.from_tempo_anchors([0.0, 4.8, 6.4], [0.0, 8.0, 12.0])  # 8 quarters at 100, 4 at 150
    assert grid.beats_s[-1] == pytest.approx(6.4)
    for t, expect in ((7.2, 14.0), (10.4, 22.0), (-1.2, -2.0)):
        assert grid.seconds_to_quarters(t) == pytest.approx(expect)
        assert grid.beat_position(np.array([t]))[0] == pytest.approx(expect)
        assert grid.beat_time(np.array([expect]))[0] == pytest.approx(t)

    beats = np.append(np.arange(16) * 0.5, 7.5 + 0.52)
    detected = BeatGrid(tempo_bpm=120.0, beats_s=beats, downbeats_s=beats[::4], beats_per_bar=4)
    later = beats[-1] + 1.0  # two beats of 0.5 s after the last
    assert detected.beat_position(np.array([later]))[0] == pytest.approx(18.0)
    assert detected.seconds_to_quarters(later) == pytest.approx(18.0)
    assert detected.seconds_to_quarters(-1.0) == pytest.approx(-2.0)


def test_a_tempo_maps_one_tempo_is_one_it_has_within_the_song():
    """A DAW tempo map of 90 BPM for 16 quarters, then 135 (by mido, not our writer): the grid's one
    tempo is the tempo most of the song's beats have, never the 112.5 between the map's two, and a
    song that ends before the change (10 s: 16 quarters at 90 take 10.67 s) is at 90 throughout."""
    import tempfile
    from pathlib import Path

    from bridge.analysis.tempo_map import beat_grid_from_midi

    mid = mido.MidiFile(type=0, ticks_per_beat=480)
    mid.tracks.append(mido.MidiTrack([
        mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0),
        mido.MetaMessage("set_tempo", tempo=int(mido.bpm2tempo(90.0)), time=0),
        mido.MetaMessage("set_tempo", tempo=int(mido.bpm2tempo(135.0)), time=16 * 480),
    ]))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "map.mid"
        mid.save(str(path))
        assert beat_grid_from_midi(path, duration_seconds=10.0).tempo_bpm == pytest.approx(90.0, rel=1e-4)
        # 40 s: 16 beats at 90, then 66 at 135
        assert beat_grid_from_midi(path, duration_seconds=40.0).tempo_bpm == pytest.approx(135.0, rel=1e-4)


def test_a_detected_grid_whose_tempo_doubles_goes_on_at_its_edge_tempi():
    """A song that doubles from 80 to 160 BPM at a bar line (8 bars of beats 0.75 s long, then 12
    of 0.375 s, by definition of the tempo): the line through all its beats says 119 BPM, a tempo it
    never has. Past its last beat it goes on at 160 and before its first at 80, in beats and in
    quarters alike, so the beat clocks of an outro ringing out after the last beat keep the song's
    last tempo."""
    beats = np.concatenate((np.arange(32) * 0.75, 24.0 + np.arange(48) * 0.375))
    fitted_bpm = 60.0 / np.polyfit(np.arange(beats.size), beats, 1)[0]  # what the tracker reports
    assert 115.0 < fitted_bpm < 125.0
    grid = BeatGrid(tempo_bpm=fitted_bpm, beats_s=beats, downbeats_s=beats[::4], beats_per_bar=4)
    last = beats.size - 1
    for t, expect in ((beats[-1] + 0.75, last + 2.0), (beats[-1] + 0.1875, last + 0.5), (-1.5, -2.0)):
        assert grid.beat_position(np.array([t]))[0] == pytest.approx(expect)
        assert grid.seconds_to_quarters(t) == pytest.approx(expect)
        assert grid.beat_time(np.array([expect]))[0] == pytest.approx(t)
    assert grid.beat_position(np.array([beats[-1] + 3.0]), clock="bar")[0] == pytest.approx(last / 4 + 2.0)
    # what the transport line shows at the playhead: the tempo there, not the 119 of the line
    for seconds, expect in ((-2.0, 80.0), (10.0, 80.0), (23.0, 80.0), (26.0, 160.0), (40.0, 160.0), (99.0, 160.0)):
        assert local_tempo_bpm(beats, seconds) == pytest.approx(expect)
    assert local_tempo_bpm(beats[:1], 1.0) is None
