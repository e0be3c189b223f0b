"""The followed DAW's tempo and meter become the project's beat grid (issue 17 item 4, second half),
so the analysis, the preview and the export count the DAW's bars.

Truths: an emulated Live on a real UDP socket (AbletonOSC messages: 128 BPM in 3/4), whose beat b
is at b·60/128 s; and a DAW timeline written here (120 BPM for 16 beats, then 90 BPM) whose beat →
seconds map is computed by hand.
"""

from __future__ import annotations

import socket
import time

import pytest
from pythonosc.osc_message_builder import OscMessageBuilder

from bridge.errors import ProjectError
from bridge.project import load_project
from bridge.session import Session
from bridge.transport import osc_protocol as P
from bridge.transport.clock import BeatGrid, TransportClock
from bridge.transport.osc_dialects import make_dialect
from bridge.transport.osc_io import OscListener
from bridge.transport.state import TransportState


def msg(address: str, *args: object) -> bytes:
    b = OscMessageBuilder(address=address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


def test_live_tempo_and_meter_become_the_grid_the_analysis_uses(project_dir):
    clock = TransportClock()
    with Session.open(project_dir, preview=False, watch=False, autosave=False, clock=clock) as s:
        assert s.wait_for_analysis(60)
        before = s.project.tempo
        with pytest.raises(ProjectError, match="no DAW"):
            s.adopt_daw_tempo()  # nothing followed yet

        def sink(state):
            clock.update(state)
            s.record_daw_state(state)

        with OscListener(make_dialect("ableton"), sink, listen_port=0, resubscribe_after_s=None) as lis, \
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as live:
            for address, value in ((P.ABLETON_TEMPO, 128.0), (P.ABLETON_SIG_NUMERATOR, 3),
                                   (P.ABLETON_SIG_DENOMINATOR, 4), (P.ABLETON_IS_PLAYING, 1),
                                   (P.ABLETON_SONG_TIME, 4.0)):
                live.sendto(msg(address, value), lis.address)
            deadline = time.monotonic() + 5.0
            while not (clock.state and clock.state.playing and clock.state.time_signature == (3, 4)
                       and clock.state.tempo_bpm == 128.0) and time.monotonic() < deadline:
                time.sleep(0.005)
        what = s.adopt_daw_tempo()
        assert "128 BPM, 3/4" in what
        assert s.wait_for_analysis(60) and s.wait_idle(60)
        grid = s.analysis.beat_grid
        assert grid.tempo_bpm == pytest.approx(128.0) and grid.beats_per_bar == 3
        # Live's beat 24 (bar 9) is at 24·60/128 s on the grid the preview and the export use
        assert float(s.clock.tempo_map.quarters_to_seconds(24.0)) == pytest.approx(24 * 60 / 128, abs=1e-6)
        assert s.undo()  # one step back to the project's own grid
        assert s.project.tempo == before
    assert load_project(project_dir)[0].tempo == before  # nothing saved in between (no autosave here)


def test_a_daw_tempo_change_becomes_a_tempo_map_file(tmp_path):
    from bridge.project.schema import Project
    from bridge.project.store import save_project

    d = tmp_path / "proj"
    d.mkdir()
    save_project(Project(name="t"), d)
    clock = TransportClock()

    def seconds_at(beat: float) -> float:  # the DAW's own map, by hand
        return beat * 60 / 120 if beat <= 16 else 8.0 + (beat - 16) * 60 / 90

    with Session.open(d, analyse=False, preview=False, watch=False, autosave=False, clock=clock) as s:
        t0, beat = 1000.0, 0.0
        while beat <= 40.0:  # a state every ~50 ms of song, as an OSC DAW sends them
            tempo = 120.0 if beat < 16 else 90.0
            state = TransportState(playing=True, tempo_bpm=tempo, position_beats=beat, position_seconds=seconds_at(beat),
                                   time_signature=(4, 4), source="reaper_osc", received_at=t0 + seconds_at(beat))
            clock.update(state)
            s.record_daw_state(state)
            beat += 0.1
        what = s.adopt_daw_tempo()
        assert "tempo map" in what and "daw_tempo.mid" in what
        assert s.project.tempo.source == "midi_file" and s.project.tempo.midi_file == "daw_tempo.mid"
    tmap = BeatGrid.from_midi_file(d / "daw_tempo.mid")
    for b in (8.0, 16.0, 24.0, 36.0):
        assert float(tmap.quarters_to_seconds(b)) == pytest.approx(seconds_at(b), abs=0.01)


def test_a_wobbling_derived_tempo_is_one_tempo_not_a_map(tmp_path):
    from bridge.project.schema import Project
    from bridge.project.store import save_project

    d = tmp_path / "proj"
    d.mkdir()
    save_project(Project(name="t"), d)
    clock = TransportClock()
    with Session.open(d, analyse=False, preview=False, watch=False, autosave=False, clock=clock) as s:
        for k in range(200):  # Ardour: a tempo derived from its position, ±0.2 % around 120 BPM
            beat = k * 0.1
            state = TransportState(playing=True, tempo_bpm=120.0 + (0.24 if k % 2 else -0.24), position_beats=beat,
                                   position_seconds=beat / 2, source="ardour_osc", received_at=50.0 + beat / 2)
            clock.update(state)
            s.record_daw_state(state)
        s.adopt_daw_tempo()
        assert s.project.tempo.source == "constant" and abs(s.project.tempo.tempo_bpm - 120.0) < 0.5
        assert not (d / "daw_tempo.mid").exists()


@pytest.mark.parametrize("numerator, denominator, beat_s, per_bar", [(6, 8, 0.75, 2), (7, 8, 0.25, 7)])
def test_one_daw_tempo_in_six_eight_or_seven_eight_keeps_the_meter(tmp_path, numerator, denominator, beat_s,
                                                                   per_bar):
    """A DAW at 120 quarters a minute (a quarter is 0.5 s) in 6/8 or 7/8, one tempo: the adopted
    grid taps the meter's beats (a dotted quarter 0.75 s, an eighth 0.25 s), bars of 2 or 7 of
    them, and reads as the DAW's meter — not a 3/4 or 4/4 grid of quarters."""
    import numpy as np

    from bridge.analysis.tempo_map import beat_grid_from_midi
    from bridge.project.schema import Project
    from bridge.project.store import save_project

    d = tmp_path / "proj"
    d.mkdir()
    save_project(Project(name="t"), d)
    clock = TransportClock()
    with Session.open(d, analyse=False, preview=False, watch=False, autosave=False, clock=clock) as s:
        for k in range(40):
            state = TransportState(playing=True, tempo_bpm=120.0, position_beats=0.1 * k, position_seconds=0.05 * k,
                                   time_signature=(numerator, denominator), source="reaper_osc",
                                   received_at=1000.0 + 0.05 * k)
            clock.update(state)
            s.record_daw_state(state)
        what = s.adopt_daw_tempo()
        assert f"120 BPM, {numerator}/{denominator}" in what
        assert s.project.tempo.source == "midi_file"
    grid = beat_grid_from_midi(d / s.project.tempo.midi_file, duration_seconds=12.0)
    assert grid.meter_label == f"{numerator}/{denominator}" and grid.beats_per_bar == per_bar
    np.testing.assert_allclose(np.diff(grid.beats_s), beat_s, atol=1e-6)
    np.testing.assert_allclose(np.diff(grid.downbeats_s), beat_s * per_bar, atol=1e-6)
    assert grid.quarters_to_seconds(6.0) == pytest.approx(3.0, abs=1e-6)
