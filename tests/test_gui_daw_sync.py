"""The app's DAW extras (pytest-qt, offscreen): "Import DAW markers" in the Sections tab, over the
sync connection to an emulated REAPER sending real UDP datagrams; the truth is REAPER's marker list
written here and the project file read back."""

from __future__ import annotations

import os
import socket
import time

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from pythonosc.osc_message_builder import OscMessageBuilder  # noqa: E402

from bridge.project import load_project  # noqa: E402
from bridge.project.schema import Project, Section  # noqa: E402
from bridge.project.store import save_project  # noqa: E402

QUIET = dict(analyse=False, preview=False, watch=False, autosave=False, audio=False)


def msg(address: str, *args: object) -> bytes:
    b = OscMessageBuilder(address=address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


@pytest.fixture
def adapter(qtbot, tmp_path):
    from gui.app import create_app
    from gui.session_adapter import SessionAdapter

    create_app(install_error_hook=False)
    d = tmp_path / "proj"
    d.mkdir()
    save_project(Project(name="m", sections=[Section(name="Verse", start=3.0, prompt="ink", seed=9)]), d)
    a = SessionAdapter()
    a.open(d, **QUIET)
    yield a
    a.close()


def test_import_daw_markers_button_over_the_reaper_connection(adapter, qtbot):
    from gui.panels.sections import SectionEditor

    editor = SectionEditor(adapter)
    qtbot.addWidget(editor)
    messages = []
    adapter.message.connect(lambda level, text: messages.append((level, text)))
    # not following a DAW: the button says what to do and changes nothing
    editor.import_daw.click()
    assert messages[-1][0] == "error" and "follow" in messages[-1][1]
    sources = adapter.connect_sync("REAPER via OSC", "127.0.0.1:0")
    host, port = sources[0].address
    truth = [("Intro", 0.0), ("Verse", 8.5), ("Outro", 40.25)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as daw:
        for i, (name, t) in enumerate(truth, start=1):
            daw.sendto(msg(f"/marker/{i}/name", name), (host, port))
            daw.sendto(msg(f"/marker/{i}/time", t), (host, port))
        daw.sendto(b"\x00garbage", (host, port))
        editor.import_daw.click()
        qtbot.waitUntil(lambda: [s.name for s in adapter.session.project.sections] == [n for n, _ in truth],
                        timeout=10_000)
    sections = adapter.session.project.sections
    assert [(s.start, s.unit) for s in sections] == [(t, "seconds") for _, t in truth]
    assert (sections[1].prompt, sections[1].seed) == ("ink", 9)  # same name: the prompt stays
    qtbot.waitUntil(lambda: editor.table.rowCount() == 3, timeout=5_000)  # the next tick refreshes the table
    adapter.session.save()
    assert [s.name for s in load_project(adapter.session.project_dir)[0].sections] == ["Intro", "Verse", "Outro"]
    adapter.session.undo()
    assert [s.name for s in adapter.session.project.sections] == ["Verse"]
    adapter.disconnect_sync()


def test_calibration_dialog_nudges_saves_per_daw_and_moves_the_followed_position(adapter, qtbot):
    from bridge.transport import osc_protocol as P
    from bridge.transport.calibration import load_latencies
    from gui.panels.calibrate import CalibrationDialog
    from gui.panels.transport import TransportBar

    bar = TransportBar(adapter)
    qtbot.addWidget(bar)
    bar._osc_values["REAPER via OSC"] = "127.0.0.1:0"  # as typed in its field: any free port
    bar.choose_source("REAPER via OSC")
    host, port = adapter.sync_sources[0].address
    clock = adapter.session.clock
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as daw:
        for address, value in ((P.REAPER_TEMPO_RAW, 120.0), (P.REAPER_PLAY, 1.0), (P.REAPER_TIME, 10.0)):
            daw.sendto(msg(address, value), (host, port))
        t0 = time.monotonic()
        qtbot.waitUntil(lambda: clock.state is not None and clock.state.playing
                        and clock.state.position_seconds >= 10.0, timeout=5_000)
        at = clock.state.received_at + 0.01  # one instant, asked of the clock before and after
        before = clock.position(at)[0]
        dlg = CalibrationDialog(adapter, bar)
        qtbot.addWidget(dlg)
        dlg.slider.setValue(80)  # nudge: applies at once
        assert clock.latency_ms == pytest.approx(80.0)
        # the same REAPER report, read at the same instant: 80 ms further on
        assert clock.position(at)[0] - before == pytest.approx(0.080 * clock.state.clock_ratio, abs=1e-9)
        # it flashes on REAPER's beats (REAPER keeps reporting its time, as it does while playing)
        started = time.monotonic()
        while dlg.level == 0.0 and time.monotonic() - started < 5.0:
            daw.sendto(msg(P.REAPER_TIME, 10.0 + (time.monotonic() - t0)), (host, port))
            qtbot.wait(50)
        assert dlg.level > 0.0
        dlg.save()
    assert load_latencies() == {"reaper-osc": 80.0}
    assert bar.latency.value() == 80.0
    # another DAW has its own offset (none yet); coming back brings REAPER's again
    bar.choose_source("Local clock (no DAW)")
    assert bar.latency.value() == 0.0 and adapter.session.clock.latency_ms == 0.0
    bar.choose_source("REAPER via OSC")
    assert bar.latency.value() == 80.0 and adapter.session.clock.latency_ms == pytest.approx(80.0)
    # Cancel puts the saved offset back
    dlg = CalibrationDialog(adapter, bar)
    qtbot.addWidget(dlg)
    dlg.value.setValue(-40.0)
    assert adapter.session.clock.latency_ms == pytest.approx(-40.0)
    dlg.reject()
    assert adapter.session.clock.latency_ms == pytest.approx(80.0) and load_latencies() == {"reaper-osc": 80.0}
    adapter.disconnect_sync()


def test_use_daw_tempo_makes_the_followed_tempo_the_grid(adapter, qtbot):
    from bridge.transport import osc_protocol as P
    from gui.panels.tempo import TempoBar

    bar = TempoBar(adapter)
    qtbot.addWidget(bar)
    messages = []
    adapter.message.connect(lambda level, text: messages.append((level, text)))
    bar.use_daw_tempo()  # the local clock has no DAW tempo: said, nothing changes
    assert messages[-1][0] == "error" and "no DAW" in messages[-1][1]
    assert adapter.session.project.tempo.source == "detect"
    sources = adapter.connect_sync("REAPER via OSC", "127.0.0.1:0")
    host, port = sources[0].address
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as daw:
        for address, value in ((P.REAPER_TEMPO_RAW, 97.5), (P.REAPER_PLAY, 1.0), (P.REAPER_TIME, 1.0)):
            daw.sendto(msg(address, value), (host, port))
        qtbot.waitUntil(lambda: adapter.session.clock.state.tempo_bpm == 97.5, timeout=5_000)
        bar.use_daw_tempo()
    tempo = adapter.session.project.tempo
    assert (tempo.source, tempo.tempo_bpm, tempo.beats_per_bar) == ("constant", 97.5, 4)
    adapter.disconnect_sync()
