"""Speaker-time calibration (issue 17 item 3): the offset stored per sync setup moves the position
the preview follows by exactly that amount.

The truth is an emulated REAPER on a real UDP socket: it reports song second 10.0 while playing at
120 BPM at a known instant, so where the song is at any later instant is known without the code
under test; and a second clock fed the same datagrams without an offset.
"""

from __future__ import annotations

import argparse
import json
import socket
import time

import pytest
from pythonosc.osc_message_builder import OscMessageBuilder

from bridge.errors import TransportError
from bridge.project.schema import Project
from bridge.project.store import save_project
from bridge.session import Session
from bridge.transport import osc_protocol as P
from bridge.transport.calibration import (
    beat_flash,
    calibration_file,
    latency_for,
    load_latencies,
    save_latency,
    setup_key,
)
from bridge.transport.listen import add_sync_arguments, make_clock_from_args
from bridge.transport.osc_dialects import make_dialect
from bridge.transport.osc_io import OscListener


def msg(address: str, *args: object) -> bytes:
    b = OscMessageBuilder(address=address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


def sync_args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_sync_arguments(p)
    return p.parse_args(list(argv))


def test_offsets_are_kept_per_setup_and_bad_ones_refused(tmp_path):
    path = tmp_path / "cal.json"
    assert load_latencies(path) == {}
    save_latency(setup_key("--reaper-osc"), 42.5, path)
    save_latency(setup_key("--ableton-osc", link=True), -12.0, path)
    assert load_latencies(path) == {"reaper-osc": 42.5, "ableton-osc+link": -12.0}
    with pytest.raises(TransportError, match="out of range"):
        save_latency("reaper-osc", float("nan"), path)
    with pytest.raises(TransportError, match="out of range"):
        save_latency("reaper-osc", 5000.0, path)
    assert latency_for("reaper-osc", path) == 42.5  # a refused value changes nothing
    # a damaged file or entry is skipped, never raised at startup
    path.write_text(json.dumps({"version": 1, "latency_ms": {"a": "x", "b": 1e9, "c": 3}}))
    assert load_latencies(path) == {"c": 3.0}
    path.write_text("{not json")
    assert load_latencies(path) == {}
    assert setup_key(None) == "local" and setup_key(None, link=True) == "link"


def test_the_cli_uses_the_stored_offset_unless_told_otherwise():
    save_latency("reaper-osc", 35.0)  # conftest points this at a test file
    assert calibration_file().exists()
    assert make_clock_from_args(sync_args("--reaper-osc", "0")).latency_ms == pytest.approx(35.0)
    assert make_clock_from_args(sync_args("--reaper-osc", "0", "--latency-ms", "-5")).latency_ms == pytest.approx(-5.0)
    assert make_clock_from_args(sync_args("--osc", "0")).latency_ms == 0.0  # another setup: not calibrated


def test_beat_flash_lights_on_the_beat_only():
    assert beat_flash(8.0) == 1.0 and beat_flash(7.99) == 0.0 and beat_flash(8.075) == pytest.approx(0.5)
    assert beat_flash(float("nan")) == 0.0


def test_stored_offset_moves_the_preview_position_by_exactly_that_amount(tmp_path):
    offset_ms = 80.0
    save_latency("reaper-osc", offset_ms)
    d = tmp_path / "proj"
    d.mkdir()
    save_project(Project(name="cal"), d)
    calibrated = make_clock_from_args(sync_args("--reaper-osc", "0"))  # as `stembridge preview` builds it
    plain = make_clock_from_args(sync_args("--reaper-osc", "0", "--latency-ms", "0"))
    assert calibrated.latency_ms == offset_ms

    def both(state):
        calibrated.update(state)
        plain.update(state)

    with Session.open(d, analyse=False, preview=False, watch=False, autosave=False, clock=calibrated) as s, \
            OscListener(make_dialect("reaper"), both, listen_port=0) as listener, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as daw:
        for address, args in ((P.REAPER_TEMPO_RAW, 120.0), (P.REAPER_PLAY, 1.0)):
            daw.sendto(msg(address, args), listener.address)
        deadline = time.monotonic() + 5.0
        while (calibrated.state is None or not calibrated.state.playing) and time.monotonic() < deadline:
            time.sleep(0.005)
        sent_at = time.monotonic()
        daw.sendto(msg(P.REAPER_TIME, 10.0), listener.address)  # REAPER: "song second 10.0, now"
        while (calibrated.state is None or calibrated.state.position_seconds < 9.0) and time.monotonic() < deadline:
            time.sleep(0.005)
        assert calibrated.state.position_seconds >= 9.0, "REAPER's position never arrived"
        at = time.monotonic()
        # the playhead the preview renders around (Session._playhead reads the clock this way)
        seen, playing = s.clock.position(at)
        uncalibrated, _ = plain.position(at)
        state = s.clock.now(at)
    assert playing and state.playing
    ratio = calibrated.state.clock_ratio  # 1.0 until the DAW's clock drift is measured (needs seconds of fixes)
    assert seen - uncalibrated == pytest.approx(offset_ms / 1000.0 * ratio, abs=1e-9)
    assert state.position_seconds == pytest.approx(seen, abs=1e-9)
    # and against REAPER's own clock: where the song is at `at`, plus the offset. The report is taken
    # as true when it arrived, after it was sent: behind by the delivery time, never ahead (generous
    # slack for a loaded machine's UDP delivery and thread scheduling)
    truth = 10.0 + (at - sent_at)
    late = truth + offset_ms / 1000.0 - seen
    assert -1e-3 <= late <= 0.25
