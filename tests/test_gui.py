"""The app, offscreen (pytest-qt): boots on the demo project, follows real OSC over UDP, edits a
mapping (and undoes it) through the editor, exports a decodable video, refuses a corrupt stem, and
starts without torch/diffusers."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import jack_server

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QMimeData, QObject, QPointF, QSettings, Qt, QUrl, Slot  # noqa: E402
from PySide6.QtGui import QDropEvent  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory) -> Path:
    """The demo song's stems + a project, analysed once (the analysis cache travels with copies)."""
    from bridge.analysis.project import analyze_project
    from bridge.demo.song import generate_demo_song, write_demo_stems
    from bridge.project import load_project
    from bridge.project.create import new_project

    root = tmp_path_factory.mktemp("guidemo")
    write_demo_stems(generate_demo_song(), root / "stems")
    new_project(root / "project", root / "stems", name="stembridge demo")
    project, project_dir = load_project(root / "project")
    analyze_project(project, project_dir)
    return root


@pytest.fixture
def window(qtbot, demo_root, tmp_path, monkeypatch):
    monkeypatch.setenv("STEMBRIDGE_LOG_DIR", str(tmp_path / "logs"))
    from gui.app import create_app
    from gui.main_window import MainWindow

    create_app(install_error_hook=False)  # pytest-qt reports exceptions in slots as failures
    root = tmp_path / "demo"
    shutil.copytree(demo_root, root)
    w = MainWindow(settings=QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    w.resize(1400, 900)
    w.show()
    assert w.open_project(root / "project", watch=False)
    qtbot.waitUntil(lambda: len(w.timeline.lanes) > 0, timeout=30_000)
    yield w
    w.close()


def preview_frame(w) -> np.ndarray:
    return np.asarray(w.preview.frame, dtype=np.float32)


def test_boots_on_the_demo_with_one_lane_per_stem(window, qtbot):
    project = window.adapter.session.project
    assert [lane.name for lane in window.timeline.lanes] == [s.name for s in project.stems]
    assert len(window.timeline.lanes) == 4
    # the lanes' level envelopes span the song (the demo is ~35 s)
    assert all(lane.extent_seconds > 30 for lane in window.timeline.lanes)
    assert window.timeline.beats_s.size > 50
    assert QSettings(window.settings.fileName(), QSettings.Format.IniFormat).value("last_project")
    # local transport (no DAW): play moves the playhead, pause holds it
    start = window.timeline.playhead_s
    window.transport.play_button.click()
    qtbot.waitUntil(lambda: window.timeline.playhead_s > start + 0.3, timeout=5_000)
    window.transport.play_button.click()
    qtbot.wait(100)
    held = window.timeline.playhead_s
    qtbot.wait(300)
    assert window.timeline.playhead_s == pytest.approx(held, abs=1e-6)
    assert "stopped" in window.transport.status.text()


def test_osc_transport_over_udp_moves_the_playhead(window, qtbot):
    from bridge.transport import osc_protocol as P
    from bridge.transport.osc_io import build_osc_message

    sources = window.adapter.connect_sync("REAPER via OSC", "127.0.0.1:0")
    assert sources, "the REAPER listener did not start"
    host, port = sources[0].address
    assert window.timeline.playhead_s < 1.0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for address, args in ((P.REAPER_TEMPO_RAW, [124.0]), (P.REAPER_TIME, [20.0]), (P.REAPER_PLAY, [1.0])):
            sock.sendto(build_osc_message(address, args), (host, port))
        qtbot.waitUntil(lambda: window.timeline.playhead_s > 19.9, timeout=5_000)
        assert window.timeline.playhead_s < 23.0
        qtbot.waitUntil(lambda: "REAPER via OSC" in window.transport.status.text()
                        and "playing" in window.transport.status.text(), timeout=5_000)
        # stopping in REAPER stops the playhead
        sock.sendto(build_osc_message(P.REAPER_STOP, [1.0]), (host, port))
        sock.sendto(build_osc_message(P.REAPER_TIME, [5.0]), (host, port))
        qtbot.waitUntil(lambda: abs(window.timeline.playhead_s - 5.0) < 0.05, timeout=5_000)
    window.adapter.disconnect_sync()


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_osc_entry_with_an_edited_port_listens_on_that_port(window, qtbot):
    from bridge.transport import osc_protocol as P
    from bridge.transport.osc_io import build_osc_message

    bar = window.transport
    bar.choose_source("REAPER via OSC")
    assert bar.osc_address.isVisible() and bar.osc_address.text() == str(P.REAPER_OSC_SUGGESTED_PORT)
    port = _free_udp_port()
    bar.osc_address.clear()
    qtbot.keyClicks(bar.osc_address, f"127.0.0.1:{port}")
    qtbot.keyClick(bar.osc_address, Qt.Key.Key_Return)  # as typed: Return ends the edit
    assert window.adapter.sync_value == f"127.0.0.1:{port}"
    assert [s.address for s in window.adapter.sync_sources] == [("127.0.0.1", port)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for address, args in ((P.REAPER_TEMPO_RAW, [110.0]), (P.REAPER_TIME, [12.0]), (P.REAPER_PLAY, [1.0])):
            sock.sendto(build_osc_message(address, args), ("127.0.0.1", port))
        qtbot.waitUntil(lambda: window.timeline.playhead_s > 11.9, timeout=5_000)
        assert window.timeline.playhead_s < 15.0
        qtbot.waitUntil(lambda: "REAPER via OSC" in bar.status.text() and "playing" in bar.status.text(),
                        timeout=5_000)
        assert "110.00 BPM" in bar.status.text()  # the DAW's tempo, not the song's detected 124
    # the edit is kept when switching away and back; a bad port is refused with a message
    bar.choose_source("Local clock (no DAW)")
    assert not bar.osc_address.isVisible() and window.adapter.sync_sources == []
    bar.choose_source("REAPER via OSC")
    assert bar.osc_address.text() == f"127.0.0.1:{port}"
    bar.osc_address.setText("99999")
    bar.osc_address.editingFinished.emit()
    assert window.messages.level == "error" and "99999" in window.messages.text
    assert window.adapter.sync_sources == [] and window.adapter.sync_label == "Local clock (no DAW)"


def test_the_sync_setup_is_remembered_and_followed_when_a_project_opens(window, qtbot, tmp_path):
    from bridge.transport import osc_protocol as P
    from bridge.transport.osc_io import build_osc_message
    from gui.main_window import MainWindow

    bar = window.transport
    port = _free_udp_port()
    bar.choose_source("REAPER via OSC")
    bar.osc_address.setText(f"127.0.0.1:{port}")
    bar.osc_address.editingFinished.emit()
    bar.latency.setValue(40.0)
    project_dir = window.adapter.session.project_dir
    window.close()  # saves the layout and the sync setup, closes the session (and its listener)

    again = MainWindow(settings=QSettings(window.settings.fileName(), QSettings.Format.IniFormat))
    qtbot.addWidget(again)
    assert again.transport.source.currentText() == "REAPER via OSC" and again.transport.latency.value() == 40.0
    assert again.open_project(project_dir, watch=False)
    try:
        assert (again.adapter.sync_label, again.adapter.sync_value) == ("REAPER via OSC", f"127.0.0.1:{port}")
        assert again.adapter.session.clock.latency_ms == 40.0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for address, args in ((P.REAPER_TEMPO_RAW, [110.0]), (P.REAPER_TIME, [12.0]), (P.REAPER_PLAY, [1.0])):
                sock.sendto(build_osc_message(address, args), ("127.0.0.1", port))
            qtbot.waitUntil(lambda: again.timeline.playhead_s > 11.9, timeout=5_000)
    finally:
        again.close()


@pytest.mark.parametrize("label", ["MIDI clock…", "MTC…"])
@pytest.mark.parametrize("case", ["no backend", "no ports"])
def test_midi_entry_without_ports_shows_the_message_and_stays_local(window, qtbot, monkeypatch, label, case):
    from bridge.transport import midi_io

    if case == "no backend":  # as in a container: neither /dev/snd/seq nor a JACK server
        def no_client(kind, api_id, client_name):
            raise OSError("MidiInAlsa::initialize: error creating ALSA sequencer client object")

        monkeypatch.setattr(midi_io, "_open_client", no_client)
    else:
        monkeypatch.setattr(midi_io, "list_midi_ports", lambda **kw: [])
    bar = window.transport
    bar.choose_source(label)
    assert window.messages.isVisible() and window.messages.level == "error"
    expected = "No MIDI backend is available" if case == "no backend" else "No MIDI input ports found"
    assert expected in window.messages.text
    assert window.adapter.sync_label == "Local clock (no DAW)" and window.adapter.sync_sources == []
    assert bar.source.currentText() == "Local clock (no DAW)" and not bar.midi_port.isVisible()
    # still the local clock: play moves the playhead
    start = window.timeline.playhead_s
    bar.play_button.click()
    qtbot.waitUntil(lambda: window.timeline.playhead_s > start + 0.2, timeout=5_000)
    assert "Local clock" in bar.status.text()
    bar.play_button.click()


def test_link_without_aalink_shows_the_install_message(window, monkeypatch):
    # never a real Link session in tests (it multicasts on the network): make the import fail
    monkeypatch.setitem(sys.modules, "aalink", None)
    bar = window.transport
    bar.link.setChecked(True)
    assert window.messages.level == "error" and "aalink" in window.messages.text
    assert 'stembridge[link]' in window.messages.text
    assert not bar.link.isChecked() and not window.adapter.link_enabled
    assert window.adapter.sync_sources == []


def test_link_without_aalink_keeps_the_osc_source(window, monkeypatch):
    monkeypatch.setitem(sys.modules, "aalink", None)
    bar = window.transport
    bar.choose_source("REAPER via OSC")
    bar.osc_address.setText("127.0.0.1:0")
    bar.osc_address.editingFinished.emit()
    assert len(window.adapter.sync_sources) == 1
    bar.link.setChecked(True)
    assert "aalink" in window.messages.text and not bar.link.isChecked()
    assert len(window.adapter.sync_sources) == 1 and window.adapter.sync_label == "REAPER via OSC"
    window.adapter.disconnect_sync()


@pytest.mark.timeout(60)
def test_midi_clock_from_a_jack_port_moves_the_playhead(window, qtbot):
    """Real MIDI through a JACK server (dummy backend), picked in the transport bar like a user would."""
    import time

    from bridge.transport.midi_io import MidiOutput

    with jack_server("stembridge-guitest"):
        with MidiOutput(api="jack", virtual_name="logic-clock") as out:
            bar = window.transport
            bar.choose_source("MIDI clock…")
            ports = [bar.midi_port.itemText(i) for i in range(bar.midi_port.count())]
            wanted = [i for i, name in enumerate(ports) if "logic-clock" in name]
            assert wanted, f"the JACK port is not offered: {ports}"
            bar.midi_port.setCurrentIndex(wanted[0])
            bar.midi_port.activated.emit(wanted[0])
            assert window.adapter.sync_label == "MIDI clock…" and len(window.adapter.sync_sources) == 1
            qtbot.wait(100)  # let JACK connect the ports
            out.send([0xF2, 64, 0])  # Song Position Pointer: 64 sixteenths = beat 16 = bar 5
            out.send([0xFB])  # Continue
            tick_s = 60.0 / (24 * 120.0)
            t0 = time.monotonic()
            for k in range(48):  # two beats at 120 BPM
                left = t0 + k * tick_s - time.monotonic()
                if left > 0:
                    time.sleep(left)
                out.send([0xF8])
            qtbot.waitUntil(lambda: "MIDI clock" in bar.status.text() and "playing" in bar.status.text(),
                            timeout=5_000)
            # bar 5 at ~120 BPM is 8 s in; a second of clocks later the playhead is past it
            assert 8.0 <= window.timeline.playhead_s < 12.0
            window.adapter.disconnect_sync()


def test_mapping_amount_in_the_editor_changes_the_preview_and_undo_restores(window, qtbot):
    session = window.adapter.session
    session.seek(14.0)  # vocals are playing (they enter at bar 5)
    assert session.wait_idle(60)
    qtbot.wait(150)
    before = preview_frame(window).copy()
    editor = window.mappings
    editor.stem.setCurrentText("Vocals")
    editor.rebuild()
    rows = [r for r in editor.rows if session.project.mappings[r.index].target == "brightness"]
    assert rows, "the demo maps Vocals.rms to brightness"
    row = rows[0]
    old_amount = session.project.mappings[row.index].amount
    row.amount.setValue(-20.0)  # as a user typing into the spin box: a Session command
    assert session.project.mappings[row.index].amount == -20.0
    qtbot.waitUntil(lambda: np.abs(preview_frame(window) - before).mean() > 8.0, timeout=30_000)
    assert preview_frame(window).mean() < before.mean()  # darker, as brightness says

    window.undo_action.trigger()
    assert session.project.mappings[row.index].amount == old_amount
    qtbot.waitUntil(lambda: np.abs(preview_frame(window) - before).mean() < 1.0, timeout=30_000)
    qtbot.waitUntil(lambda: abs(row.amount.value() - old_amount) < 1e-9, timeout=5_000)  # the editor follows


def _demo_mix(window, tmp_path, seconds: float = 4.0) -> Path:
    """The first seconds of the demo's stems summed: a mix a producer would drop in."""
    import soundfile as sf

    session = window.adapter.session
    parts = []
    for s in session.project.stems:
        audio, sr = sf.read(session.project_dir / s.path, dtype="float32", always_2d=True)
        parts.append(audio[: int(seconds * sr)])
    mix = np.sum(parts, axis=0)
    path = tmp_path / "Demo Mix.wav"
    sf.write(path, mix / max(1.0, float(np.abs(mix).max()) / 0.9), sr, subtype="FLOAT")
    return path


def test_separate_a_mix_adds_its_stems_to_the_project(window, qtbot, tmp_path):
    pytest.importorskip("demucs")
    import soundfile as sf

    from gui.panels.separate import separate_mix_dialog

    mix = _demo_mix(window, tmp_path)
    before = [s.name for s in window.adapter.session.project.stems]
    # demucs's own small test model (random weights, built by demucs.pretrained, no download)
    worker = separate_mix_dialog(window.stems, mix, model="demucs_unittest", cache_dir=tmp_path / "cache")
    assert worker is not None
    qtbot.waitUntil(lambda: len(window.adapter.session.project.stems) == len(before) + 4, timeout=120_000)
    project = window.adapter.session.project
    added = [s for s in project.stems if s.name not in before]
    assert sorted(s.role for s in added) == ["bass", "drums", "other", "vocals"]
    mix_frames = sf.info(mix).frames
    for s in added:
        path = window.adapter.session.project_dir / s.path
        assert path.parent == window.adapter.session.project_dir / "separated" / "Demo Mix"
        assert sf.info(path).frames == mix_frames  # each stem spans the whole mix
    assert window.messages.level == "info" and "Separated Demo Mix.wav" in window.messages.text
    qtbot.waitUntil(lambda: len(window.timeline.lanes) == len(before) + 4, timeout=60_000)


def test_separate_without_the_model_says_how_to_get_it_and_adds_nothing(window, qtbot, tmp_path, monkeypatch):
    pytest.importorskip("demucs")
    from huggingface_hub import constants

    from gui.panels.separate import separate_mix_dialog

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    before = list(window.adapter.session.project.stems)
    separate_mix_dialog(window.stems, _demo_mix(window, tmp_path), cache_dir=tmp_path / "cache")
    qtbot.waitUntil(lambda: window.messages.level == "error", timeout=60_000)
    assert "htdemucs" in window.messages.text and "HF_HUB_OFFLINE" in window.messages.text
    assert window.adapter.session.project.stems == before
    assert not (window.adapter.session.project_dir / "separated" / "Demo Mix").exists()


def test_export_dialog_writes_a_decodable_video(window, qtbot, tmp_path):
    import av

    dlg = window.open_export()
    dlg.width_spin.setValue(96)
    dlg.height_spin.setValue(64)
    dlg.fps.setCurrentText("12")
    dlg.start.setValue(1.0)
    dlg.end.setValue(2.5)
    out = tmp_path / "clip.mp4"
    dlg.out.setText(str(out))
    dlg.export_button.click()
    qtbot.waitUntil(lambda: dlg.result_path is not None, timeout=60_000)
    qtbot.waitUntil(lambda: dlg.worker is None, timeout=10_000)
    assert dlg.open_button.isEnabled()
    with av.open(str(out)) as c:
        v = c.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(v)]
        assert c.streams.audio, "the export has no audio stream"
    assert len(frames) == 18  # 1.5 s at 12 fps
    assert frames[0].shape == (64, 96, 3)
    assert max(float(f.std()) for f in frames) > 5.0  # pictures, not a blank clip
    dlg.close()


class _UrlCatcher(QObject):
    """Stands in for the desktop (player, file manager): QDesktopServices hands it the URLs."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[QUrl] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        self.urls.append(url)


def test_export_dialog_vertical_preset_exports_a_vertical_video_and_shows_it(window, qtbot, tmp_path):
    """Pick "Vertical 9:16" in the dialog, export one second, read the file back; then Open video
    and Show in folder hand the file and its folder to the desktop, and say why when they cannot."""
    import av
    from PySide6.QtGui import QDesktopServices

    dlg = window.open_export()
    dlg.preset.setCurrentIndex(dlg.preset.findData("vertical-1080"))
    assert (dlg.width_spin.value(), dlg.height_spin.value(), dlg.fps.currentText()) == (1080, 1920, "30")
    assert dlg.region.currentText() == "Whole song"
    assert dlg.region.count() >= 3  # the song's sections are regions too
    dlg.region.setCurrentIndex(1)  # section 1
    assert dlg.start.value() == 0.0 and dlg.end.value() > 0
    dlg.end.setValue(1.0)
    assert dlg.region.currentText() == "Custom"
    dlg.quality_mode.setCurrentIndex(dlg.quality_mode.findData("bitrate"))
    assert dlg.bitrate.isVisibleTo(dlg) and not dlg.crf.isVisibleTo(dlg)
    dlg.bitrate.setValue(4.0)
    out = tmp_path / "reel.mp4"
    dlg.out.setText(str(out))
    assert dlg.options()["bitrate"] == 4_000_000 and "crf" not in dlg.options()
    dlg.export_button.click()
    qtbot.waitUntil(lambda: dlg.result_path is not None, timeout=60_000)
    qtbot.waitUntil(lambda: dlg.worker is None, timeout=10_000)
    with av.open(str(out)) as c:
        v = c.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(v)]
        assert (v.codec_context.name, v.codec_context.width, v.codec_context.height) == ("h264", 1080, 1920)
        assert v.average_rate == 30 and float(c.duration / av.time_base) == pytest.approx(1.0, abs=0.05)
    assert len(frames) == 30 and max(float(f.std()) for f in frames) > 5.0

    catcher = _UrlCatcher()
    QDesktopServices.setUrlHandler("file", catcher, "open")
    try:
        assert dlg.open_button.isEnabled() and dlg.folder_button.isEnabled()
        dlg.open_button.click()
        if sys.platform.startswith("linux"):
            dlg.folder_button.click()
            assert [Path(u.toLocalFile()) for u in catcher.urls] == [out, out.parent]
        else:
            assert [Path(u.toLocalFile()) for u in catcher.urls] == [out]
        out.unlink()  # moved away: the buttons say so instead of doing nothing
        dlg.open_button.click()
        assert window.messages.level == "error" and "no longer at" in window.messages.text
    finally:
        QDesktopServices.unsetUrlHandler("file")
    dlg.close()


def test_export_dialog_codec_quality_and_a_failed_open_are_explained(window, qtbot, tmp_path, monkeypatch):
    from PySide6.QtGui import QDesktopServices

    from bridge.export.presets import available_codecs

    dlg = window.open_export()
    dlg.out.setText(str(tmp_path / "clip.mp4"))
    if "prores" in available_codecs():
        dlg.codec.setCurrentIndex(dlg.codec.findData("prores"))
        assert dlg.out.text().endswith("clip.mov")  # ProRes goes in a MOV
        assert not dlg.crf.isEnabled() and "profile" in dlg.quality_note.text()
        assert "crf" not in dlg.options() and "bitrate" not in dlg.options()
    if "hevc" in available_codecs():
        dlg.codec.setCurrentIndex(dlg.codec.findData("hevc"))
        assert dlg.out.text().endswith("clip.mov") and dlg.crf.isEnabled() and dlg.crf.value() == 24
        assert dlg.options()["codec"] == "hevc" and dlg.options()["crf"] == 24
    dlg.width_spin.setValue(1080)
    dlg.height_spin.setValue(1080)
    dlg.fps.setCurrentText("30")
    assert dlg.preset.currentData() == "square-1080"  # typing a preset's size shows the preset
    dlg.width_spin.setValue(1000)
    assert dlg.preset.currentText() == "Custom"
    # a file that exists, but nothing on this desktop opens it: the message bar says so
    video = tmp_path / "done.mp4"
    video.write_bytes(b"\0")
    dlg.result_path = video
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: False)
    assert dlg.open_result() is False
    assert window.messages.level == "error" and "no application" in window.messages.text
    assert str(video) in window.messages.text
    if sys.platform.startswith("linux"):
        assert dlg.show_in_folder() is False and "file manager" in window.messages.text
    dlg.close()


def test_a_corrupt_stem_dropped_on_the_stems_panel_shows_an_error_and_changes_nothing(window, tmp_path):
    session = window.adapter.session
    bad = tmp_path / "Broken Synth.wav"
    bad.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 4)
    before, undo_before = session.project, session.can_undo
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(bad))])
    panel = window.stems
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    panel.dropEvent(event)
    assert session.project == before
    assert session.can_undo == undo_before
    assert window.messages.isVisible() and window.messages.level == "error"
    assert "Broken Synth.wav" in window.messages.text
    assert panel.table.rowCount() == len(before.stems)
    # the same error again is counted, not stacked
    panel.dropEvent(event)
    assert window.messages.count == 2


def test_startup_imports_no_torch_or_diffusers(tmp_path):
    code = (
        "import sys, json\n"
        "from gui.app import create_app\n"
        "from gui.main_window import MainWindow\n"
        "app = create_app(); w = MainWindow(); w.show(); app.processEvents()\n"
        "heavy = [m for m in ('torch', 'diffusers', 'demucs', 'transformers') if m in sys.modules]\n"
        "print(json.dumps(heavy)); w.close()\n"
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "STEMBRIDGE_LOG_DIR": str(tmp_path),
           "XDG_CONFIG_HOME": str(tmp_path / "config")}
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1]) == []


def test_screenshot_command_writes_the_main_window_png(demo_root, tmp_path):
    from PySide6.QtGui import QImage

    root = tmp_path / "demo"
    shutil.copytree(demo_root, root)
    out = tmp_path / "shot.png"
    code = ("import sys, argparse\nfrom gui.cli import run_gui_command\n"
            f"sys.exit(run_gui_command(argparse.Namespace(project_dir={str(root / 'project')!r}, "
            f"screenshot={str(out)!r})))\n")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "STEMBRIDGE_LOG_DIR": str(tmp_path),
           "XDG_CONFIG_HOME": str(tmp_path / "config")}
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    img = QImage(str(out))
    assert (img.width(), img.height()) == (1600, 980)
    # dark theme: the corner (window background) is dark; the picture is not blank
    assert QImage(str(out)).pixelColor(5, img.height() // 2).lightness() < 80
    px = np.array([img.pixelColor(x, y).lightness() for x in range(0, 1600, 37) for y in range(0, 980, 29)])
    assert px.std() > 10


def test_unexpected_exceptions_are_logged_and_shown_once(qtbot, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("STEMBRIDGE_LOG_DIR", str(tmp_path))
    from gui.app import ErrorReporter, create_app

    create_app(install_error_hook=False)
    reporter = ErrorReporter()
    for _ in range(5):  # the same bug firing from a timer
        try:
            raise ValueError("boom")
        except ValueError as e:
            reporter(type(e), e, e.__traceback__)
    assert len(reporter.seen) == 1 and reporter.dialog is not None
    assert sum("unexpected error" in r.message for r in caplog.records) == 5
    reporter.dialog.close()


def test_lane_envelope_keeps_a_short_hit_visible_when_zoomed_out():
    from gui.widgets.timeline import envelope

    curve = np.zeros(100_000)
    curve[73_210] = 0.5  # one frame-long hit
    centres, values = envelope(curve, bins=1000)
    assert values.max() == 1.0  # normalised to the peak, not averaged away
    hit = int(np.argmax(values))
    assert abs(centres[hit] - 73_210 / 100_000) < 1.0 / 1000
    assert np.count_nonzero(values) == 1


def test_a_shader_looks_inputs_are_mapping_targets_in_the_editor(window, qtbot):
    """With the shader engine and the glitch look, its inputs are targets (shader:tear …); picking one
    changes the mapping, and the level meter copes with a target that is not a visual parameter."""
    session = window.adapter.session
    session.set_engine(name="shader", look="glitch")
    editor = window.mappings
    editor.stem.setCurrentText("Drums")
    editor.rebuild()
    assert editor.rows, "the demo maps the drums"
    row = editor.rows[0]
    items = [row.target.itemText(i) for i in range(row.target.count())]
    assert {"shader:tear", "shader:smear", "shader:blocks"} <= set(items) and "travel" in items
    i = items.index("shader:tear")
    row.target.setCurrentIndex(i)
    row.target.activated.emit(i)
    assert session.project.mappings[row.index].target == "shader:tear"
    qtbot.waitUntil(lambda: session.params is not None and "shader:tear" in session.params.names, timeout=30_000)
    qtbot.wait(300)  # meters refresh on the timer: must not raise on shader:NAME
    window.undo_action.trigger()
