"""The app, offscreen (pytest-qt): boots on the demo project, follows real OSC over UDP, edits a
mapping (and undoes it) through the editor, exports a decodable video, refuses a corrupt stem, and
starts without torch/diffusers."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import gl_problem, jack_server

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QMimeData, QObject, QPoint, QPointF, QSettings, Qt, QUrl, Slot  # noqa: E402
from PySide6.QtGui import QDropEvent  # noqa: E402
from PySide6.QtWidgets import QFileDialog  # noqa: E402

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


@pytest.fixture(scope="module")
def thumbnail_cache(tmp_path_factory) -> Path:
    """One thumbnail cache for the module's windows (the look browser renders into it)."""
    return tmp_path_factory.mktemp("thumbnails")


@pytest.fixture
def window(qtbot, demo_root, tmp_path, monkeypatch, thumbnail_cache):
    monkeypatch.setenv("STEMBRIDGE_LOG_DIR", str(tmp_path / "logs"))
    # the look browser: thumbnails in a test cache, the user's own looks in an empty test folder
    monkeypatch.setattr("bridge.visuals.thumbnails.thumbnail_cache_dir", lambda: thumbnail_cache)
    monkeypatch.setattr("bridge.visuals.shader_looks.user_looks_dir", lambda: tmp_path / "user_looks")
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
    assert "In the app: connect to the internet" in window.messages.text  # and the terminal way, for this case:
    assert "stembridge separate MIX_FILE -o STEMS_DIR --model-repo DIR" in window.messages.text
    assert window.adapter.session.project.stems == before
    assert not (window.adapter.session.project_dir / "separated" / "Demo Mix").exists()


def test_new_project_from_a_mix_separates_and_opens_it(window, qtbot, tmp_path):
    pytest.importorskip("demucs")
    import soundfile as sf

    mix = _demo_mix(window, tmp_path)
    target = tmp_path / "From Mix"
    # demucs's own small test model (random weights, built by demucs.pretrained, no download)
    worker = window.new_project_from_mix(mix, target, model="demucs_unittest", cache_dir=tmp_path / "cache")
    assert worker is not None and worker.dialog.windowTitle() == "New project from a mix"
    qtbot.waitUntil(lambda: window.adapter.session.project_dir == target.resolve(), timeout=120_000)
    project = window.adapter.session.project
    assert sorted(s.role for s in project.stems) == ["bass", "drums", "other", "vocals"]
    on_disk = sorted((target / "stems").glob("*.wav"))
    assert [p.name for p in on_disk] == sorted(f"Demo Mix - {r}.wav" for r in ("bass", "drums", "other", "vocals"))
    assert all(sf.info(p).frames == sf.info(mix).frames for p in on_disk)  # each stem spans the whole mix
    assert (target / "stembridge.json").is_file() and window.windowTitle().startswith("Demo Mix")
    assert window.messages.level == "info" and "Demo Mix.wav" in window.messages.text
    qtbot.waitUntil(lambda: len(window.timeline.lanes) == 4, timeout=60_000)


def test_new_project_from_a_mix_without_weights_says_how_to_get_them_and_makes_nothing(
        window, qtbot, tmp_path, monkeypatch):
    pytest.importorskip("demucs")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    before = window.adapter.session.project_dir
    mix = _demo_mix(window, tmp_path)
    target = tmp_path / "Never Made"
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(mix), ""))
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(target))
    window.new_from_mix_action.trigger()  # File ▸ New project from a mix…, the released htdemucs
    qtbot.waitUntil(lambda: window.messages.level == "error", timeout=60_000)
    text = window.messages.text
    assert "'htdemucs'" in text and "HF_HUB_OFFLINE" in text and "--model-repo" in text
    assert "In the app: connect to the internet" in text and "stembridge new PROJECT_DIR --mix MIX_FILE" in text
    assert str(tmp_path / "hf") in text  # where it looked
    assert not target.exists()  # no half-made project
    assert window.adapter.session.project_dir == before  # the open project stays open


def test_a_demucs_model_folder_chosen_in_preferences_makes_the_new_project_offline(window, qtbot, tmp_path,
                                                                                   monkeypatch):
    """Edit ▸ Preferences ▸ Separation model ▸ Choose folder…: a folder without a Demucs model is refused
    with the reason; a folder with one (a tiny random HTDemucs saved the way demucs packages its models)
    is remembered, and File ▸ New project from a mix… then separates with it, offline, where the
    released htdemucs is not on this machine."""
    pytest.importorskip("demucs")
    from fractions import Fraction

    import soundfile as sf
    import torch
    from demucs.htdemucs import HTDemucs
    from huggingface_hub import constants

    from bridge.separation import save_model_to_repo

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))  # no released weights, no network
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        model = HTDemucs(sources=["drums", "bass", "other", "vocals"], channels=4, depth=4, t_layers=1, t_heads=2,
                         bottom_channels=0, dconv_comp=2, segment=Fraction(3, 1)).eval()
    repo = tmp_path / "My Demucs"
    save_model_to_repo(model, repo, name="mine", fmt="th")
    downloads = tmp_path / "Downloads"
    downloads.mkdir()
    (downloads / "notes.txt").write_text("not a model")

    dlg = window.open_preferences()
    assert "htdemucs" in dlg.model_label.text()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(downloads))
    dlg.choose_model.click()
    text = dlg.status.text()
    assert "Not a Demucs model folder" in text and str(downloads) in text and ".th" in text, text
    assert "htdemucs" in dlg.model_label.text()  # the choice stayed as it was
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(repo))
    dlg.choose_model.click()
    assert dlg.status.text() == "" and str(repo) in dlg.model_label.text()
    dlg.accept()
    assert window.settings.value("separation/model_repo") == str(repo)  # remembered across runs

    mix = _demo_mix(window, tmp_path, seconds=1.5)
    target = tmp_path / "From My Model"
    # shifts=0: no random time shift, so demucs's apply_model below is the exact reference
    worker = window.new_project_from_mix(mix, target, shifts=0, cache_dir=tmp_path / "cache")
    assert worker.options["model_repo"] == str(repo)
    qtbot.waitUntil(lambda: window.adapter.session.project_dir == target.resolve() or window.messages.level == "error",
                    timeout=120_000)
    assert window.adapter.session.project_dir == target.resolve(), window.messages.text
    # the stems are this model's: demucs's own apply_model with it, on the same mix, gives the same audio
    from demucs.apply import apply_model

    audio, sr = sf.read(mix, dtype="float32", always_2d=True)
    wav = torch.from_numpy(audio.T.copy())
    ref = wav.mean(0)
    with torch.no_grad():
        expected = apply_model(model, ((wav - ref.mean()) / ref.std())[None], shifts=0, split=True, overlap=0.25,
                               progress=False)[0] * ref.std() + ref.mean()
    for i, source in enumerate(model.sources):
        got, rate = sf.read(target / "stems" / f"Demo Mix - {source}.wav", dtype="float32", always_2d=True)
        assert rate == sr and got.shape == audio.shape
        assert np.corrcoef(got.T.ravel(), expected[i].numpy().ravel())[0, 1] > 0.99, source


def test_export_dialog_writes_a_decodable_video(window, qtbot, tmp_path):
    import av

    dlg = window.open_export()
    dlg.width_spin.setValue(96)
    dlg.height_spin.setValue(64)
    dlg.fps.setCurrentText("12")
    dlg.start.setValue(1.0)
    dlg.end.setValue(2.5)
    dlg.fade_in.setValue(0.5)
    dlg.fade_out.setValue(0.5)
    assert dlg.encode_speed.currentData() == "balanced"  # the project's (none set: the default)
    dlg.encode_speed.setCurrentIndex(dlg.encode_speed.findData("draft"))
    out = tmp_path / "clip.mp4"
    dlg.out.setText(str(out))
    dlg.export_button.click()
    qtbot.waitUntil(lambda: dlg.result_path is not None, timeout=60_000)
    qtbot.waitUntil(lambda: dlg.worker is None, timeout=10_000)
    assert dlg.open_button.isEnabled()
    # the draft speed reached x264: its options in the stream's SEI are ultrafast's (subme=0, no CABAC)
    sei = re.search(rb"x264 - core \d+.*? options: ([ -~]+)", out.read_bytes())
    assert sei is not None and {"subme=0", "cabac=0"} <= set(sei.group(1).decode().split())
    with av.open(str(out)) as c:
        v = c.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(v)]
        assert c.streams.audio, "the export has no audio stream"
    with av.open(str(out)) as c:
        audio = np.concatenate([f.to_ndarray() for f in c.decode(c.streams.audio[0])], axis=1)
        rate = c.streams.audio[0].codec_context.sample_rate
    assert len(frames) == 18  # 1.5 s at 12 fps
    assert frames[0].shape == (64, 96, 3)
    assert max(float(f.std()) for f in frames) > 5.0  # pictures, not a blank clip
    # the 0.5 s fades: black first and last frames, sound rising from silence and back
    assert frames[0].max() <= 20 and frames[-1].max() <= 20 and frames[9].mean() > frames[0].mean() + 8

    def rms(a: float, b: float) -> float:
        return float(np.sqrt(np.mean(audio[:, int(a * rate):int(b * rate)] ** 2)))

    assert rms(0.0, 0.1) < 0.3 * rms(0.6, 0.9) and rms(1.4, 1.5) < 0.3 * rms(0.6, 0.9)
    dlg.close()


def test_the_export_settings_are_kept_in_the_project_for_the_next_export(window, qtbot, tmp_path):
    """The dialog kept the size in the project but not the frame rate, codec speed or quality: reopened,
    it (and `stembridge render`) came back at 30 fps. Truth: the frame rate read from the exported file."""
    import av

    from bridge.project import load_project

    session = window.adapter.session
    old = session.project.render
    assert old.fps != "12" and old.crf != 30
    dlg = window.open_export()
    dlg.width_spin.setValue(96)
    dlg.height_spin.setValue(64)
    dlg.fps.setCurrentText("12")
    dlg.encode_speed.setCurrentIndex(dlg.encode_speed.findData("draft"))
    dlg.crf.setValue(30)
    dlg.end.setValue(0.5)
    out = tmp_path / "clip.mp4"
    dlg.out.setText(str(out))
    dlg.export_button.click()
    qtbot.waitUntil(lambda: dlg.result_path is not None and dlg.worker is None, timeout=60_000)
    dlg.close()
    with av.open(str(out)) as c:
        rate = c.streams.video[0].average_rate
    assert rate == 12
    session.save()
    saved = load_project(session.project_dir)[0].render
    assert (saved.fps_fraction, saved.encode_speed, saved.crf, saved.width) == (rate, "draft", 30, 96)
    again = window.open_export()
    assert (again.fps.currentText(), again.encode_speed.currentData(), again.crf.value()) == ("12", "draft", 30)
    again.close()
    assert session.undo_label == "export settings"
    session.undo()
    assert (session.project.render.fps, session.project.render.crf) == (old.fps, old.crf)


def test_export_to_a_folder_that_cannot_be_made_says_so_and_keeps_the_dialog(window, tmp_path):
    """An output path under a file (or an unwritable folder) raised out of the Export button's slot."""
    in_the_way = tmp_path / "clip.mp4"
    in_the_way.write_bytes(b"an earlier export")
    dlg = window.open_export()
    dlg.out.setText(str(in_the_way / "again" / "clip.mp4"))
    dlg.start_export()
    assert dlg.worker is None and dlg.export_button.isEnabled()
    assert window.messages.level == "error" and str(in_the_way / "again") in window.messages.text
    assert "choose another output path" in dlg.eta.text()
    assert in_the_way.read_bytes() == b"an earlier export"
    dlg.close()


def _shown_whole(label) -> bool:
    """Every line of the label's text, wrapped at the label's width as Qt draws it, fits inside the
    label, and the label inside its window (a long error was cut off at the dialog's edge)."""
    from PySide6.QtCore import QRect

    r = label.contentsRect()
    needed = label.fontMetrics().boundingRect(QRect(0, 0, r.width(), 100_000),
                                              int(Qt.TextFlag.TextWordWrap), label.text())
    right = label.mapTo(label.window(), r.topRight()).x()
    return needed.width() <= r.width() and needed.height() <= r.height() and right < label.window().width()


@pytest.mark.parametrize("start_s, end_s, says", [
    (8.0, 5.0, ["8.00 s to 5.00 s is empty", "set the end later"]),
    (9999.0, 0.0, ["starts at 9999.00 s", "pick Whole song"]),
])
def test_an_empty_export_region_is_explained_in_the_dialogs_words(window, qtbot, tmp_path, start_s, end_s, says):
    """A region whose end is before its start (or that starts after the song) names the dialog's
    values and the fix, not the CLI's --start/--end, and the whole message can be read."""
    dlg = window.open_export()
    dlg.resize(640, dlg.height())
    dlg.out.setText(str(tmp_path / "clip.mp4"))
    dlg.start.setValue(start_s)
    dlg.end.setValue(end_s)
    dlg.start_export()
    assert dlg.worker is None and dlg.export_button.isEnabled() and not (tmp_path / "clip.mp4").exists()
    text = dlg.eta.text()
    assert all(x in text for x in says) and "--start" not in text, text
    assert f"the song is {window.adapter.session.analysis.duration_seconds:.2f} s long" in text
    assert window.messages.level == "error" and window.messages.text == text
    qtbot.waitUntil(lambda: _shown_whole(dlg.eta), timeout=2_000)
    dlg.close()


def test_a_failed_analysis_is_not_shown_as_analysing(window, qtbot, tmp_path):
    """When the analysis fails (every stem's file unreadable) the message bar says why, the status
    bar stops saying 'analysing…' (it said so for ever) and the tempo box shows no tempo."""
    broken = tmp_path / "broken"
    shutil.copytree(tmp_path / "demo", broken)
    for stem in (broken / "stems").iterdir():
        stem.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 4)  # not audio
    assert window.open_project(broken / "project", watch=False)
    qtbot.waitUntil(lambda: window.messages.level == "error", timeout=30_000)
    qtbot.waitUntil(lambda: "analysing" not in window.status_label.text(), timeout=5_000)
    assert window.adapter.session.analysis is None and "not analysed" in window.status_label.text()
    # no tempo known: the tempo box shows none (it showed '20.50 BPM', its lowest value), and
    # clicking into it and out again sets no tempo (it set 20.5 BPM, an undoable 'set tempo')
    box = window.tempo_bar.tempo
    assert "20.5" not in box.text() and "—" in box.text()
    box.editingFinished.emit()
    assert window.adapter.session.project.rhythm.tempo_bpm is None and not window.adapter.session.can_undo


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
    # the encoder: software by default; the GPU choice only where a hardware encoder opens here
    from bridge.export.presets import encoders_available, is_hardware_encoder

    assert dlg.options()["encoder"] == "auto"
    assert dlg.options()["encode_speed"] == "balanced" and dlg.encode_speed.isEnabled()
    gpu = dlg.encoder.model().item(dlg.encoder.findData("hardware"))
    assert gpu.isEnabled() == any(is_hardware_encoder(n) for n in encoders_available("h264"))
    if "prores" in available_codecs():
        dlg.codec.setCurrentIndex(dlg.codec.findData("prores"))
        assert dlg.out.text().endswith("clip.mov")  # ProRes goes in a MOV
        assert not dlg.crf.isEnabled() and "profile" in dlg.quality_note.text()
        assert "crf" not in dlg.options() and "bitrate" not in dlg.options()
        assert not dlg.encode_speed.isEnabled() and "encode_speed" not in dlg.options()  # ProRes has no preset
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
    # a project that chose an encode speed opens the dialog on it
    window.adapter.command("set_render", encode_speed="small")
    dlg = window.open_export()
    assert dlg.encode_speed.currentData() == "small" and dlg.options()["encode_speed"] == "small"
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
    qtbot.waitUntil(lambda: row.unit.text() == "" and "shader input" in row.amount.toolTip(), timeout=5_000)
    qtbot.waitUntil(lambda: session.params is not None and "shader:tear" in session.params.names, timeout=30_000)
    qtbot.wait(300)  # meters refresh on the timer: must not raise on shader:NAME
    window.undo_action.trigger()


def _click_item(qtbot, grid, item) -> None:
    grid.scrollToItem(item)
    qtbot.mouseClick(grid.viewport(), Qt.MouseButton.LeftButton, pos=grid.visualItemRect(item).center())


def test_look_browser_lists_every_look_and_a_click_sets_it_undoably(window, qtbot):
    """Every shipped look is listed (name and ISF description) after the song's own look; thumbnails
    arrive from the worker; clicking a look switches to the shader engine with it, undo restores."""
    from bridge.visuals.isf import load_isf
    from bridge.visuals.shader_looks import SHIPPED_LOOKS
    from gui.panels.looks import AUTO, AUTO_LABEL

    browser = window.looks
    window.tabs.setCurrentWidget(browser)
    shipped = sorted(p.stem for p in SHIPPED_LOOKS.glob("*.fs"))
    assert list(browser.items) == [AUTO, *shipped]
    assert browser.grid.item(0).text().startswith(AUTO_LABEL)
    for name in shipped:
        text = browser.items[name].text()
        assert text.startswith(name) and load_isf(SHIPPED_LOOKS / f"{name}.fs").description in text
    session = window.adapter.session
    before = session.project.engine
    # a new project takes the shader engine with the song's own look where OpenGL works here
    assert before.name == ("shader" if gl_problem() is None else "procedural") and not before.look
    start_key = AUTO if before.name == "shader" else None
    assert browser.current_key() == start_key
    qtbot.waitUntil(browser.thumbnails_done, timeout=30_000)
    if gl_problem() is None:
        assert set(browser.pixmaps) == set(shipped)
        assert all(browser.pixmaps[n].width() == 192 for n in shipped)
        # the automatic entry shows the thumbnail of the look the song's analysis picks
        assert browser.song_look in shipped and browser.song_look in browser.items[AUTO].text()

    _click_item(qtbot, browser.grid, browser.items["glitch"])
    engine = session.project.engine
    assert (engine.name, engine.look) == ("shader", "glitch")
    assert browser.current_key() == "glitch" and browser.grid.currentItem() is browser.items["glitch"]
    assert browser.items["glitch"].font().bold()
    _click_item(qtbot, browser.grid, browser.items[AUTO])
    assert (session.project.engine.name, session.project.engine.look) == ("shader", None)
    qtbot.waitUntil(window.undo_action.isEnabled, timeout=5_000)  # the edits reach the window on its tick
    window.undo_action.trigger()
    assert session.project.engine.look == "glitch"
    window.undo_action.trigger()
    assert session.project.engine == before
    qtbot.waitUntil(lambda: browser.current_key() == start_key, timeout=5_000)


def test_adding_a_broken_look_shows_the_compiler_message_and_changes_nothing(window, qtbot, tmp_path):
    from bridge.project import PROJECT_FILENAME
    from bridge.visuals.shader_looks import user_looks_dir

    if gl_problem() is not None:
        pytest.skip("compiling a look needs OpenGL 3.3")
    browser = window.looks
    session = window.adapter.session
    saved = session.project_dir / PROJECT_FILENAME
    saved_before = saved.read_bytes()
    before, listed = session.project, list(browser.items)
    broken = tmp_path / "broken.fs"
    broken.write_text('/*{"ISFVSN": "2", "DESCRIPTION": "does not compile"}*/\nvoid main() {\n'
                      "  gl_FragColor = vec4(undefined_thing, 1.0);\n}\n")
    assert not browser.add_look_file(broken)
    assert window.messages.level == "error"
    assert "broken.fs:3" in window.messages.text and "undefined_thing" in window.messages.text
    assert session.project == before and list(browser.items) == listed
    assert not window.undo_action.isEnabled()
    assert not user_looks_dir().exists() or not list(user_looks_dir().iterdir())
    qtbot.wait(300)
    assert saved.read_bytes() == saved_before

    good = tmp_path / "mine.fs"
    good.write_text('/*{"ISFVSN": "2", "DESCRIPTION": "plain red"}*/\n'
                    "void main() { gl_FragColor = vec4(1.0, 0.0, 0.0, 1.0); }\n")
    assert browser.add_look_file(good)
    assert list(browser.items)[-1] == "mine" and "plain red" in browser.items["mine"].text()
    assert (session.project.engine.name, session.project.engine.look) == ("shader", "mine")
    qtbot.waitUntil(lambda: "mine" in browser.pixmaps, timeout=30_000)
    qtbot.waitUntil(window.undo_action.isEnabled, timeout=5_000)
    window.undo_action.trigger()
    assert session.project == before


def test_look_browser_without_opengl_says_so_and_still_lists_the_looks(window, qtbot, monkeypatch):
    from bridge.errors import RenderError
    from bridge.visuals.shader_looks import SHIPPED_LOOKS
    from gui.panels.looks import AUTO

    def no_gl():
        raise RenderError("the shader engine needs OpenGL 3.3, and no context could be created (test)")

    monkeypatch.setattr("bridge.gl.create_gl_context", no_gl)
    browser = window.looks
    browser.pixmaps.clear()
    browser.reload()
    qtbot.waitUntil(lambda: not browser.notice.isHidden(), timeout=10_000)
    assert "OpenGL 3.3" in browser.notice.text()
    assert list(browser.items) == [AUTO, *sorted(p.stem for p in SHIPPED_LOOKS.glob("*.fs"))]
    _click_item(qtbot, browser.grid, browser.items["tunnel"])  # choosing still works
    assert window.adapter.session.project.engine.look == "tunnel"


# --- the mapping editor: delete / duplicate, offset and units, solo / mute, curve view, undo words ----

def _saw_expectation(analysis, times_s, amount, offset):
    """beat.saw with no smoothing, linear: amount · (fraction of the way from one beat to the next) +
    offset, computed here from the analysed beats (not with bridge.mapping)."""
    beats = np.asarray(analysis.beat_grid.beats_s, dtype=np.float64)
    pos = np.interp(times_s, beats, np.arange(beats.size, dtype=np.float64))
    return amount * (pos - np.floor(pos)) + offset


def test_mapping_editor_add_edit_solo_mute_and_curve_view_against_the_beats(window, qtbot):
    from bridge.export.render import section_looks
    from bridge.mapping import PARAMETER_NAMES, PARAMETERS, evaluate_mappings
    from bridge.project import load_project

    session = window.adapter.session
    editor = window.mappings
    editor.stem.setCurrentText("Oscillators (beat / bar)")
    editor.rebuild()
    n0 = len(session.project.mappings)
    qtbot.mouseClick(editor.add_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(editor.rows) and editor.rows[-1].index == n0, timeout=5_000)
    row = editor.rows[-1]
    i = row.source.findData("beat.saw")
    row.source.setCurrentIndex(i)
    row.source.activated.emit(i)
    i = row.target.findText("rotation")
    row.target.setCurrentIndex(i)
    row.target.activated.emit(i)
    row.attack.setValue(0.0)
    row.release.setValue(0.0)
    row.amount.setValue(12.0)
    row.offset.setValue(-3.0)
    m = session.project.mappings[n0]
    assert (m.source, m.target, m.amount, m.offset, m.attack_ms, m.release_ms) == ("beat.saw", "rotation", 12.0, -3.0, 0, 0)
    qtbot.waitUntil(lambda: window.undo_action.text() == "Undo change beat.saw → rotation offset", timeout=5_000)
    qtbot.waitUntil(lambda: row.unit.text() == "°/frame", timeout=5_000)
    assert "-30 … 30 °/frame" in row.amount.toolTip()

    # solo: the preview evaluates only this mapping — rotation is the saw, everything else neutral
    qtbot.mouseClick(row.solo, Qt.MouseButton.LeftButton)
    assert session.mapping_solo == {n0}
    analysis, fps = session.analysis, session.project.render.fps_fraction
    frames = np.arange(int(10 * fps), int(14 * fps))
    expected = np.clip(_saw_expectation(analysis, frames / float(fps), 12.0, -3.0), -30, 30)

    def params_rows():
        p = session.params
        return None if p is None else (p, frames - p.start_frame)

    def soloed() -> bool:
        got = params_rows()
        return got is not None and np.allclose(got[0].column("rotation")[got[1]], expected, atol=1e-4)

    qtbot.waitUntil(soloed, timeout=30_000)
    p, rows = params_rows()
    for name in PARAMETER_NAMES:
        if name != "rotation":
            assert np.allclose(p.column(name)[rows], PARAMETERS[name].neutral), name

    # the curve view: the selected mapping over the seconds around the playhead, updated on edits
    session.seek(12.0)
    qtbot.waitUntil(lambda: editor.curve_view.times.size and abs(editor.curve_view.times[0] - 11.0) < 0.05,
                    timeout=5_000)
    view = editor.curve_view
    assert view.times[-1] == pytest.approx(16.0, abs=0.05)
    assert np.allclose(view.values, np.clip(_saw_expectation(analysis, view.times, 12.0, -3.0), -30, 30), atol=1e-4)
    row.amount.setValue(6.0)
    qtbot.waitUntil(lambda: np.allclose(view.values, _saw_expectation(analysis, view.times, 6.0, -3.0), atol=1e-4),
                    timeout=5_000)
    assert "beat.saw → rotation (°/frame)" in view.title

    # mute (the saved 'enabled') while soloed: nothing drives rotation
    qtbot.mouseClick(row.mute, Qt.MouseButton.LeftButton)
    assert session.project.mappings[n0].enabled is False
    qtbot.waitUntil(lambda: window.undo_action.text() == "Undo mute mapping beat.saw → rotation", timeout=5_000)
    qtbot.waitUntil(lambda: params_rows() is not None and np.allclose(
        params_rows()[0].column("rotation")[params_rows()[1]], 0.0), timeout=30_000)
    qtbot.mouseClick(row.mute, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(row.solo, Qt.MouseButton.LeftButton)  # unsolo: every enabled mapping again
    assert session.mapping_solo == frozenset()
    project = session.project
    whole = evaluate_mappings(project.mappings, analysis, section_looks(project, analysis), fps=fps,
                              stem_roles={s.name: s.role for s in project.stems})
    qtbot.waitUntil(lambda: params_rows() is not None and all(
        np.allclose(params_rows()[0].column(n)[params_rows()[1]], whole.column(n)[frames], atol=1e-5)
        for n in PARAMETER_NAMES), timeout=30_000)

    # saved as edited, with no trace of the solo
    session.save()
    saved = load_project(session.project_dir)[0]
    assert saved.mappings == session.project.mappings and saved.mappings[n0].enabled


def test_mapping_editor_duplicate_and_delete_with_buttons_and_the_delete_key(window, qtbot):
    from bridge.project import load_project

    session = window.adapter.session
    editor = window.mappings
    editor.stem.setCurrentText("Drums")
    editor.rebuild()
    before = list(session.project.mappings)
    shown = [r.index for r in editor.rows]
    assert shown, "the demo maps the drums"
    first = editor.rows[0]
    words = f"{before[first.index].source} → {before[first.index].target}"
    qtbot.mouseClick(first.duplicate, Qt.MouseButton.LeftButton)
    after = session.project.mappings
    assert after == [*before[:first.index + 1], before[first.index], *before[first.index + 1:]]
    qtbot.waitUntil(lambda: window.undo_action.text() == f"Undo duplicate mapping {words}", timeout=5_000)
    assert editor.selected == first.index + 1 and len(editor.rows) == len(shown) + 1
    # the copy is a mapping of its own: editing it leaves the original as it was
    copy = next(r for r in editor.rows if r.index == first.index + 1)
    copy.amount.setValue(0.125)
    assert session.project.mappings[first.index + 1].amount == 0.125
    assert session.project.mappings[first.index] == before[first.index]
    qtbot.waitUntil(lambda: window.undo_action.text() == f"Undo change {words} amount", timeout=5_000)

    # the delete button on the original's row
    orig = next(r for r in editor.rows if r.index == first.index)
    qtbot.mouseClick(orig.delete, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.undo_action.text() == f"Undo delete mapping {words}", timeout=5_000)
    expected = [*before[:first.index], before[first.index].model_copy(update={"amount": 0.125}),
                *before[first.index + 1:]]
    assert session.project.mappings == expected

    # the Delete key on a selected row (focus in its curve box; the key reaches the editor)
    last = editor.rows[-1]
    qtbot.mouseClick(last.curve, Qt.MouseButton.LeftButton)
    last.curve.hidePopup()
    assert editor.selected == last.index
    gone = last.index
    qtbot.keyClick(last.curve, Qt.Key.Key_Delete)
    assert session.project.mappings == [m for j, m in enumerate(expected) if j != gone]
    session.save()
    assert load_project(session.project_dir)[0].mappings == session.project.mappings

    for _ in range(4):  # delete, delete, amount, duplicate
        window.undo_action.trigger()
    assert session.project.mappings == before
    qtbot.waitUntil(lambda: [r.index for r in editor.rows] == shown, timeout=5_000)


def test_mapping_editor_moves_and_duplicates_with_buttons_and_keys(window, qtbot):
    session = window.adapter.session
    editor = window.mappings
    editor.stem.setCurrentText("Drums")
    editor.rebuild()
    before = list(session.project.mappings)
    first = editor.rows[0].index
    editor.rows[0].amount.setFocus()
    qtbot.keyClick(editor.rows[0].amount, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier)  # duplicate
    qtbot.waitUntil(lambda: len(session.project.mappings) == len(before) + 1, timeout=5_000)
    assert editor.selected == first + 1
    editor.rows[1].amount.setValue(0.2)  # tell the copy from the original
    copy = session.project.mappings[first + 1]
    up = next(r for r in editor.rows if r.index == first + 1)
    qtbot.mouseClick(up.up, Qt.MouseButton.LeftButton)
    assert session.project.mappings[first] == copy and session.project.mappings[first + 1] == before[first]
    assert editor.selected == first and editor.rows[0].amount.value() == 0.2
    qtbot.waitUntil(lambda: window.undo_action.text().startswith("Undo move mapping"), timeout=5_000)
    editor.rows[0].amount.setFocus()
    qtbot.keyClick(editor.rows[0].amount, Qt.Key.Key_Down, Qt.KeyboardModifier.AltModifier)
    assert session.project.mappings[first + 1] == copy and editor.selected == first + 1
    for _ in range(4):  # move, move, amount, duplicate
        window.undo_action.trigger()
    assert session.project.mappings == before


def test_the_mix_is_a_source_in_the_mapping_editor(window, qtbot):
    """The default preset moves the picture by the mix's hits (mix.onset → travel): the editor
    lists the mix beside the stems, shows that mapping there, and adds mappings from the mix."""
    from gui.panels.mappings import MIX_ENTRY

    session = window.adapter.session
    editor = window.mappings
    names = [editor.stem.itemText(i) for i in range(editor.stem.count())]
    assert MIX_ENTRY in names
    editor.stem.setCurrentText(MIX_ENTRY)
    editor.rebuild()
    shown = [session.project.mappings[r.index] for r in editor.rows]
    assert any(m.source == "mix.onset" and m.target == "travel" for m in shown)
    before = len(session.project.mappings)
    editor.add_mapping()
    assert len(session.project.mappings) == before + 1
    assert session.project.mappings[-1].source == "mix.rms"
    qtbot.waitUntil(lambda: "mix.rms" in window.undo_action.text(), timeout=5_000)  # the menu follows
    window.undo_action.trigger()
    assert len(session.project.mappings) == before


# --- Connect to your DAW (issue 14 item 4) ------------------------------------------------------

def test_connect_dialog_lists_every_daw_and_protocol(window, qtbot):
    dlg = window.open_connect_daw()
    names = [dlg.choices.item(i).text() for i in range(dlg.choices.count())]
    assert names == ["Ableton Live", "Logic Pro", "REAPER", "Bitwig Studio", "Ardour",
                     "MIDI clock", "MTC", "Ableton Link"]
    dlg.select("Logic Pro")  # Logic: MIDI clock through the IAC bus, with Logic's own settings
    text = dlg.steps.toPlainText()
    assert "IAC Driver" in text and "Synchronization ▸ MIDI" in text and "Clock" in text
    assert not dlg.install_button.isVisibleTo(dlg)
    dlg.select("REAPER")
    assert dlg.install_button.isVisibleTo(dlg)
    assert dlg.status.text().endswith("Not following a DAW (local clock)")
    assert window.open_connect_daw() is dlg


@pytest.mark.parametrize("daw, installed, original", [
    ("REAPER", "stembridge.ReaperOSC", "daw_scripts/reaper/stembridge.ReaperOSC"),
    ("Ableton Live", "StemBridge", "daw_scripts/ableton/StemBridge"),
])
def test_connect_dialog_installs_the_script(window, qtbot, tmp_path, monkeypatch, daw, installed, original):
    from gui.panels.connect import ConnectDawDialog

    monkeypatch.setattr(ConnectDawDialog, "install_dest", tmp_path / "dest")
    dlg = window.open_connect_daw()
    dlg.select(daw)
    qtbot.mouseClick(dlg.install_button, Qt.MouseButton.LeftButton)
    src, dst = REPO / original, tmp_path / "dest" / installed
    files = sorted(p.relative_to(src) for p in src.rglob("*") if p.is_file() and "__pycache__" not in p.parts) \
        if src.is_dir() else [Path()]
    assert files and all((dst / f).read_bytes() == (src / f).read_bytes() for f in files)
    assert str(dst) in dlg.result.text() and "Next:" in dlg.result.text()


def test_banner_waits_for_the_first_osc_message_then_follows(window, qtbot):
    from bridge.transport import osc_protocol as P
    from bridge.transport.osc_io import build_osc_message

    dlg = window.open_connect_daw()
    dlg.select("REAPER")
    window.transport._osc_values["REAPER via OSC"] = "127.0.0.1:0"  # any free port
    qtbot.mouseClick(dlg.follow_button, Qt.MouseButton.LeftButton)
    sources = window.adapter.sync_sources
    assert sources, "the REAPER listener did not start"
    host, port = sources[0].address
    qtbot.wait(300)  # nothing sent yet: still waiting, whatever the ticks do
    assert window.messages.text.startswith("Waiting for REAPER via OSC")
    assert "Following" not in window.messages.text
    assert "Waiting for REAPER via OSC" in dlg.status.text()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(build_osc_message(P.REAPER_TIME, [12.0]), (host, port))
        qtbot.waitUntil(lambda: window.messages.text == "Following REAPER via OSC", timeout=5_000)
        qtbot.waitUntil(lambda: "Receiving from REAPER via OSC" in dlg.status.text(), timeout=2_000)
        assert "last message" in dlg.status.text()
        for t in (12.1, 12.2, 12.3):  # a steady stream: locked
            sock.sendto(build_osc_message(P.REAPER_TIME, [t]), (host, port))
            qtbot.wait(60)
        qtbot.waitUntil(lambda: "Locked to REAPER via OSC" in dlg.status.text(), timeout=2_000)
    window.adapter.disconnect_sync()
    qtbot.waitUntil(lambda: "Not following" in dlg.status.text(), timeout=2_000)


def _dialogs(monkeypatch, *, folders=(), save=None):
    """File dialogs answer from ``folders`` (in order) and ``save``, without showing."""
    answers = list(folders)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(answers.pop(0)))
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(save), ""))


def test_file_new_from_stems_then_recent_projects_survive_a_new_window(window, qtbot, tmp_path, monkeypatch):
    from bridge.project import load_project, resolve_stem_path
    from gui.main_window import MainWindow

    stems = tmp_path / "demo" / "stems"
    target = tmp_path / "fresh project"
    _dialogs(monkeypatch, folders=[stems, target])
    window.new_action.trigger()
    project, project_dir = load_project(target)
    assert project_dir == target.resolve()
    assert sorted(resolve_stem_path(s.path, project_dir) for s in project.stems) == sorted(
        p.resolve() for p in stems.iterdir())
    assert project.mappings, "a new project gets the default mappings"
    assert window.adapter.session.project_dir == target.resolve()
    assert window.windowTitle().startswith("fresh project")
    assert window.recent_projects()[:2] == [str(target.resolve()), str((tmp_path / "demo" / "project").resolve())]
    window.close_project_action.trigger()
    assert window.adapter.session is None and window.status_label.text() == "No project"
    assert not window.tabs.isEnabled() and not window.save_as_action.isEnabled()

    # a later window lists both; a project that has gone is greyed and can be removed with a message
    shutil.rmtree(target)
    w2 = MainWindow(settings=QSettings(window.settings.fileName(), QSettings.Format.IniFormat))
    qtbot.addWidget(w2)
    w2.rebuild_recent_menu()
    entries = {a.data(): a for a in w2.recent_menu.actions() if a.data()}
    assert list(entries) == [str(target.resolve()), str((tmp_path / "demo" / "project").resolve())]
    assert not entries[str(target.resolve())].isEnabled()
    assert "(missing)" in entries[str(target.resolve())].text()
    assert entries[str((tmp_path / "demo" / "project").resolve())].isEnabled()
    w2.remove_missing_action.trigger()
    assert w2.recent_projects() == [str((tmp_path / "demo" / "project").resolve())]
    assert "Removed 1 missing" in w2.messages.text
    assert not w2.open_recent(str(target))
    entries[str((tmp_path / "demo" / "project").resolve())].trigger()
    assert w2.adapter.session is not None and w2.adapter.session.project.name == "stembridge demo"
    assert w2.tabs.isEnabled() and w2.save_as_action.isEnabled()
    w2.close()


def test_file_save_as_copies_the_project_and_leaves_the_original_untouched(window, qtbot, tmp_path, monkeypatch):
    from bridge.project import load_project, resolve_stem_path

    original = tmp_path / "demo" / "project"
    before = (original / "stembridge.json").read_text()
    old_stems = [resolve_stem_path(s.path, original) for s in window.adapter.session.project.stems]
    dest = tmp_path / "saved" / "my song"
    _dialogs(monkeypatch, save=dest)
    window.save_as_action.trigger()
    s = window.adapter.session
    assert s.project_dir == dest.resolve()
    # the copy opens with its analysis from the copied cache and the same stem files
    assert [resolve_stem_path(x.path, dest) for x in s.project.stems] == old_stems
    assert (dest / ".stembridge" / "cache").is_dir()
    qtbot.waitUntil(lambda: s.analysis is not None and len(window.timeline.lanes) == 4, timeout=10_000)
    # edits now go to the copy; the original stays as it was
    window.adapter.command("rename_project", "the copy")
    window.adapter.command("save")
    assert load_project(dest)[0].name == "the copy"
    assert (original / "stembridge.json").read_text() == before
    assert window.recent_projects()[0] == str(dest.resolve())
    # Save As onto a folder with files in it says why not and changes nothing
    _dialogs(monkeypatch, save=original)
    assert not window.save_project_as()
    assert "not an empty folder" in window.messages.text or "itself" in window.messages.text
    assert window.adapter.session.project_dir == dest.resolve()


def test_layout_at_960x640_shows_every_main_widget_and_window_state_is_remembered(window, qtbot, tmp_path):
    from PySide6.QtCore import QRect

    from gui.app import grab_screenshot
    from gui.main_window import MainWindow

    window.resize(960, 640)
    qtbot.waitUntil(lambda: window.size().width() == 960 and window.size().height() == 640, timeout=3_000)
    assert window.minimumSizeHint().width() <= 960 and window.minimumSizeHint().height() <= 640
    area = window.rect()
    for name in ("transport", "tempo_bar", "timeline", "preview", "tabs", "mappings"):
        w = getattr(window, name)
        assert w.isVisible(), name
        assert w.width() > 40 and w.height() > 20, (name, w.size())
        top_left = w.mapTo(window, w.rect().topLeft())
        assert area.contains(QRect(top_left, w.size())), (name, top_left, w.size())
    # the transport's controls all fit (the status line gives way, its text in the tooltip)
    for w in (window.transport.play_button, window.transport.source, window.transport.latency):
        assert window.rect().contains(QRect(w.mapTo(window, w.rect().topLeft()), w.size()))
    shot = grab_screenshot(window, tmp_path / "960x640.png", wait_s=5.0)
    from PySide6.QtGui import QImage

    assert QImage(str(shot)).size().toTuple() == (960, 640)

    # geometry and splitters come back in the next window (offscreen's screen is 800×800 and Qt
    # fits a restored window to the screen, so the height — under 800 — is the exact check)
    window.resize(1100, 700)
    window.main_split.setSizes([250, 350])
    window.top_split.setSizes([300, 700])
    qtbot.wait(50)
    main_sizes, top_sizes = window.main_split.sizes(), window.top_split.sizes()
    window.save_layout()
    w2 = MainWindow(settings=QSettings(window.settings.fileName(), QSettings.Format.IniFormat))
    qtbot.addWidget(w2)
    w2.show()
    qtbot.waitUntil(lambda: w2.size().height() == 700, timeout=3_000)
    assert w2.main_split.sizes() == main_sizes  # same height: the same pixels
    top = w2.top_split.sizes()
    assert top[0] / sum(top) == pytest.approx(top_sizes[0] / sum(top_sizes), abs=0.08)
    w2.close()


def test_effects_tab_adds_sets_bypasses_and_removes_a_lowpass_with_undo_and_save(window, qtbot):
    from bridge.project.schema import FxSlot

    session = window.adapter.session
    tab = window.effects
    window.tabs.setCurrentWidget(tab)
    stem = session.project.stems[0].name
    tab.target.setCurrentText(stem)
    assert tab.stem() == stem
    assert [tab.target.itemText(i) for i in range(tab.target.count())][-1] == "Master (export mix)"
    saved = session.project_dir / "stembridge.json"

    def on_disk() -> list:
        session.save()
        return json.loads(saved.read_text())["stems"][0]["fx"]

    # add, through the Add picker
    tab.plugin.setCurrentIndex(tab.plugin.findText("LowpassFilter"))
    qtbot.mouseClick(tab.add_button, Qt.MouseButton.LeftButton)
    assert session.project.stems[0].fx == [FxSlot(plugin="LowpassFilter")]
    qtbot.waitUntil(lambda: tab.table.rowCount() == 1 and "cutoff_frequency_hz" in tab.param_rows, timeout=5_000)
    assert tab.current_index() == 0
    assert on_disk() == [FxSlot(plugin="LowpassFilter").model_dump(mode="json")]

    # the generic parameter panel: the cutoff with its unit, typed into the spin box
    row = tab.param_rows["cutoff_frequency_hz"]
    assert row.spin.suffix() == " Hz" and row.spin.maximum() >= 20000
    row.spin.setValue(800.0)
    qtbot.waitUntil(lambda: session.project.stems[0].fx[0].parameters == {"cutoff_frequency_hz": 800.0},
                    timeout=5_000)  # sent once the typing/arrows pause
    assert on_disk()[0]["parameters"] == {"cutoff_frequency_hz": 800.0}
    # the slider follows on a log scale: 800 Hz is past the middle of 20 Hz–20 kHz's octaves
    assert row.slider.maximum() / 2 < row.slider.value() < row.slider.maximum()

    # bypass, from the chain list
    tab.table.cellWidget(0, 1).setChecked(True)
    assert session.project.stems[0].fx[0].bypass is True
    assert on_disk()[0]["bypass"] is True
    window.undo_action.trigger()
    assert session.project.stems[0].fx[0].bypass is False
    qtbot.waitUntil(lambda: not tab.table.cellWidget(0, 1).isChecked(), timeout=5_000)  # the list follows undo
    tab.table.cellWidget(0, 1).setChecked(True)

    # remove
    tab.table.setCurrentCell(0, 0)
    qtbot.mouseClick(tab.remove_button, Qt.MouseButton.LeftButton)
    assert session.project.stems[0].fx == []
    assert on_disk() == []
    qtbot.waitUntil(lambda: tab.table.rowCount() == 0, timeout=5_000)

    # undo walks back: removed → bypassed → cutoff → added → nothing
    window.undo_action.trigger()
    assert session.project.stems[0].fx == [FxSlot(plugin="LowpassFilter", bypass=True,
                                                  parameters={"cutoff_frequency_hz": 800.0})]
    window.undo_action.trigger()
    assert session.project.stems[0].fx[0].bypass is False
    window.undo_action.trigger()
    assert session.project.stems[0].fx == [FxSlot(plugin="LowpassFilter")]
    qtbot.waitUntil(lambda: tab.table.rowCount() == 1 and "cutoff_frequency_hz" in tab.param_rows, timeout=5_000)
    qtbot.waitUntil(lambda: tab.param_rows["cutoff_frequency_hz"].spin.value() == pytest.approx(50.0),
                    timeout=5_000)  # the panel follows
    window.undo_action.trigger()
    assert session.project.stems[0].fx == []
    assert on_disk() == []
    assert session.project.master_fx == []


def test_the_plugin_window_is_open_message_goes_when_the_window_closes(window, qtbot, monkeypatch):
    """ZamComp's own window (a real VST3 in its child process, on Xvfb) opened from the Effects tab:
    the message bar says it is open; once it has closed the bar says so at once (it went on saying
    "…'s window is open" for up to 6 s after the window had gone)."""
    from conftest import start_xvfb

    from gui.panels.effects import MASTER

    zamcomp = Path("/usr/lib/vst3/ZamComp.vst3")
    if not zamcomp.exists():
        pytest.skip("no ZamComp VST3 here (Debian: apt install zam-plugins)")
    xvfb, display = start_xvfb()
    monkeypatch.setenv("DISPLAY", display)  # the plugin window's child process shows it there
    try:
        tab = window.effects
        window.tabs.setCurrentWidget(tab)
        tab.target.setCurrentText(MASTER)  # the master chain: no stem to re-analyse
        assert tab.add_effect(str(zamcomp), "ZamComp") == 0
        qtbot.waitUntil(lambda: tab.editor_button.isEnabled(), timeout=5_000)
        qtbot.mouseClick(tab.editor_button, Qt.MouseButton.LeftButton)
        assert window.messages.isVisible() and "ZamComp's window is open" in window.messages.text
        editor, _slot = tab.editors[(None, 0)]
        assert editor.opened.wait(60) and editor.running, editor.wait(1)
        editor.close()  # as the producer closing it: the state is read back and reported
        qtbot.waitUntil(lambda: (None, 0) not in tab.editors, timeout=60_000)
    finally:
        for editor, _slot in tab.editors.values():
            editor.kill()
        xvfb.terminate()
        xvfb.wait(10)
    shown = window.messages.label.text()
    assert window.messages.isVisible() and window.messages.level == "info", shown
    assert "is open" not in shown and "ZamComp's window closed; its settings are kept" in shown
    assert window.adapter.session.project.master_fx[0].raw_state  # what the window left is in the slot


def test_effects_panel_at_1280x800_shows_all_six_reverb_parameters_without_scrolling(window, qtbot):
    """The parameter panel of a Reverb (pedalboard's six: room size, damping, wet and dry level,
    width, freeze mode) in a 1280×800 window: every name and control inside the panel's visible
    area, nothing to scroll (it showed 2.5 of them under the chain's buttons); the search keeps
    the matches and puts them at the top."""
    from PySide6.QtCore import QRect

    tab = window.effects
    window.tabs.setCurrentWidget(tab)
    window.resize(1280, 800)
    qtbot.waitUntil(lambda: window.size().toTuple() == (1280, 800), timeout=3_000)
    tab.target.setCurrentText(window.adapter.session.project.stems[0].name)
    tab.add_effect("Reverb")
    reverb = {"room_size", "damping", "wet_level", "dry_level", "width", "freeze_mode"}
    qtbot.waitUntil(lambda: set(tab.param_rows) == reverb, timeout=5_000)
    qtbot.wait(50)  # laid out
    viewport = tab.scroll.viewport()
    visible = QRect(viewport.mapTo(window, viewport.rect().topLeft()), viewport.size())

    def inside(w) -> bool:
        return w.isVisible() and visible.contains(QRect(w.mapTo(window, w.rect().topLeft()), w.size()))

    assert tab.scroll.verticalScrollBar().maximum() == 0 and tab.scroll.horizontalScrollBar().maximum() == 0
    for name in reverb:
        assert inside(tab.param_labels[name]) and inside(tab.param_rows[name]), name
        assert tab.param_labels[name].text() == name.replace("_", " ")
        row = tab.param_rows[name]  # the value is readable in its field
        assert row.spin.fontMetrics().horizontalAdvance(row.spin.text()) < row.spin.lineEdit().width()
    tab.search.setText("level")
    qtbot.wait(50)
    shown = {n for n in reverb if tab.param_rows[n].isVisible()}
    assert shown == {"wet_level", "dry_level"}
    assert all(inside(tab.param_rows[n]) for n in shown)
    top = min(tab.param_rows[n].mapTo(window, tab.param_rows[n].rect().topLeft()).y() for n in shown)
    assert top - visible.top() < tab.param_rows["wet_level"].height()  # on the first line, not where they were
    tab.search.setText("")
    qtbot.wait(50)
    assert all(inside(tab.param_rows[n]) for n in reverb)


def test_mapping_presets_save_apply_elsewhere_undo_and_delete(window, qtbot, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QInputDialog

    from bridge.project.store import copy_project

    folder = tmp_path / "config" / "mapping_presets"
    monkeypatch.setattr("bridge.mapping.user_presets.user_presets_dir", lambda: folder)
    editor, session = window.mappings, window.adapter.session
    editor.refresh_presets()
    assert not editor.delete_preset_button.isEnabled()  # nothing of the user's yet

    def pick(name: str) -> None:
        editor.preset.setCurrentIndex(editor.preset.findData(name))
        editor.preset.activated.emit(editor.preset.currentIndex())

    pick("strobe")
    saved = list(window.adapter.session.project.mappings)
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("Club night", True))
    editor.save_preset_button.click()
    assert [p.name for p in folder.glob("*.json")] == ["club_night.json"]
    assert editor.preset_names()[-1] == "Club night" and editor.preset.findText("Club night  (yours)") > 0
    pick("default")
    default = list(session.project.mappings)
    assert default != saved
    pick("Club night")
    assert session.project.mappings == saved
    qtbot.waitUntil(lambda: window.undo_action.text() == "Undo apply preset Club night", timeout=5_000)
    window.undo_action.trigger()  # one undo step back to what was there
    assert session.project.mappings == default
    # another project (a copy made before the preset was applied) gets the same mappings
    other = copy_project(session.project_dir, tmp_path / "other")
    assert window.open_project(other, watch=False)
    assert window.adapter.session.project.mappings == default
    pick("Club night")
    assert window.adapter.session.project.mappings == saved
    monkeypatch.setattr(QInputDialog, "getItem", lambda *a, **k: ("Club night", True))
    editor.delete_preset_button.click()
    assert list(folder.glob("*.json")) == [] and "Club night" not in editor.preset_names()
    assert not editor.delete_preset_button.isEnabled()


def test_preview_takes_the_export_presets_aspect_without_stretching(window, qtbot):
    """Picking "Vertical 9:16" in the export dialog makes the preview a vertical frame, drawn at
    its own aspect with bars beside it; undo brings the wide frame back."""
    from gui.panels.preview import BACKGROUND

    session = window.adapter.session
    wide = preview_frame(window).shape
    assert wide[1] > wide[0]
    dlg = window.open_export()
    dlg.preset.setCurrentIndex(dlg.preset.findData("vertical-1080"))
    assert (session.project.render.width, session.project.render.height) == (1080, 1920)
    qtbot.waitUntil(lambda: preview_frame(window).shape[0] > preview_frame(window).shape[1], timeout=30_000)
    h, w, _ = preview_frame(window).shape
    assert h / w == pytest.approx(1920 / 1080, abs=0.02)
    view = window.preview.view
    qtbot.waitUntil(lambda: view.image is not None and view.image.height() > view.image.width(), timeout=5_000)
    rect = view.image_rect()
    assert rect.height() / rect.width() == pytest.approx(1920 / 1080, abs=0.02)
    # the painted widget: background bars left and right of the picture, the picture inside
    shot = view.grab().toImage()
    bg = np.array([int(BACKGROUND[i:i + 2], 16) for i in (1, 3, 5)])

    def column(x: int) -> np.ndarray:
        return np.array([[shot.pixelColor(x, y).red(), shot.pixelColor(x, y).green(), shot.pixelColor(x, y).blue()]
                         for y in range(0, shot.height(), 7)])

    assert rect.left() >= 4  # the pane is wider than a vertical picture: pillarbox bars
    assert (np.abs(column(int(rect.left()) - 2) - bg).max(axis=1) <= 2).all()
    assert (np.abs(column(int(rect.right()) + 2) - bg).max(axis=1) <= 2).all()
    assert (np.abs(column(int(rect.center().x())) - bg).max(axis=1) > 2).any()
    dlg.close()
    qtbot.waitUntil(lambda: window.undo_action.text() == "Undo export for vertical-1080", timeout=5_000)
    window.undo_action.trigger()
    qtbot.waitUntil(lambda: preview_frame(window).shape == wide, timeout=30_000)


def test_layout_at_3840x2160_keeps_rows_together_and_gives_the_room_to_the_views(window, qtbot, tmp_path):
    """On a 4K screen (at 100 %) a mapping row's buttons stay beside its meter (not 2,000 px away),
    the curve view and the preview grow with the window, and every main widget is inside it."""
    from PySide6.QtCore import QRect

    from gui.app import grab_screenshot
    from gui.panels.mappings import METER_MAX_WIDTH

    window.tabs.setCurrentWidget(window.mappings)
    small_curve = window.mappings.curve_view.height()
    window.resize(3840, 2160)
    qtbot.waitUntil(lambda: window.size().toTuple() == (3840, 2160), timeout=3_000)
    qtbot.wait(100)
    area = window.rect()
    for name in ("transport", "tempo_bar", "timeline", "preview", "tabs", "mappings"):
        w = getattr(window, name)
        assert w.isVisible() and area.contains(QRect(w.mapTo(window, w.rect().topLeft()), w.size())), name
    row = window.mappings.rows[0]
    assert row.meter.width() <= METER_MAX_WIDTH
    meter_right = row.meter.mapTo(window, row.meter.rect().topRight()).x()
    delete_left = row.delete.mapTo(window, row.delete.rect().topLeft()).x()
    assert 0 < delete_left - meter_right < 250  # ▲ ▼ Dup ✕ right after the meter
    assert window.mappings.curve_view.height() > max(small_curve, 120)
    assert window.preview.view.image_rect().width() > 1000  # the picture is drawn large, not a thumbnail
    shot = grab_screenshot(window, tmp_path / "4k.png", wait_s=5.0)
    from PySide6.QtGui import QImage

    assert QImage(str(shot)).size().toTuple() == (3840, 2160)


@pytest.mark.parametrize("size", [(1280, 800), (960, 640)], ids=["1280x800", "960x640"])
def test_layout_every_mapping_row_fits_without_sideways_scrolling(window, qtbot, size):
    """A 1280-px laptop window and a 960×640 one: each mapping row of every stem lies inside the
    Mappings panel's visible area (no horizontal scrollbar, the ✕ at the end not cut off), with the
    spin boxes wide enough to show their values and the column headers apart from each other. At
    1280 px a row is one line; at 960 px the curve, attack, release and range go on a second line
    under the source, and the first mapping is shown whole (both lines) without scrolling."""
    from PySide6.QtCore import QRect
    from PySide6.QtWidgets import QLabel

    editor = window.mappings
    window.tabs.setCurrentWidget(editor)
    window.resize(*size)
    qtbot.waitUntil(lambda: window.size().toTuple() == size, timeout=3_000)
    seen = 0
    for i in range(editor.stem.count()):
        editor.stem.setCurrentIndex(i)
        editor.rebuild()
        qtbot.wait(50)  # the new rows are laid out
        viewport = editor.area.viewport()
        visible = QRect(viewport.mapTo(window, viewport.rect().topLeft()), viewport.size())
        assert editor.area.horizontalScrollBar().maximum() == 0, editor.stem.currentText()
        for row in editor.rows[:3]:  # a row below the fold scrolls vertically; only its x matters here
            for w in row.widgets:
                left = w.mapTo(window, w.rect().topLeft()).x()
                assert visible.left() <= left and left + w.width() <= visible.right() + 1, \
                    (editor.stem.currentText(), type(w).__name__, left, w.width(), visible)
            # the values are readable: each spin box's text fits its field
            for spin in (row.amount, row.offset, row.attack, row.release):
                text_w = spin.fontMetrics().horizontalAdvance(spin.text())
                assert text_w < spin.lineEdit().width(), (spin.text(), spin.lineEdit().width())
            # one line at 1280 px (the release beside the amount), two at 960 (the release below it)
            amount_y = row.amount.mapTo(window, row.amount.rect().center()).y()
            release_y = row.release.mapTo(window, row.release.rect().center()).y()
            if size[0] == 1280:
                assert release_y == amount_y
            else:
                assert release_y >= amount_y + row.amount.height()
            seen += 1
        if editor.rows:  # the first mapping, both lines, is inside the list without scrolling
            editor.area.verticalScrollBar().setValue(0)
            qtbot.wait(20)
            for w in editor.rows[0].widgets:
                top = w.mapTo(window, w.rect().topLeft()).y()
                assert visible.top() <= top and top + w.height() <= visible.bottom() + 1, \
                    (editor.stem.currentText(), type(w).__name__, top, w.height(), visible)
        # the column headers do not run together: each one's text ends well before the next begins
        body = editor.area.widget()
        headers = sorted((lab for lab in body.findChildren(QLabel, options=Qt.FindChildOption.FindDirectChildrenOnly)
                          if lab.objectName() == "Header"), key=lambda lab: lab.x())
        assert len(headers) >= 6
        for a, b in zip(headers[:-1], headers[1:], strict=True):
            end_of_text = a.x() + a.contentsMargins().left() + a.fontMetrics().horizontalAdvance(a.text())
            assert b.x() - end_of_text >= 8, (a.text(), b.text(), end_of_text, b.x())
    assert seen >= 4  # the demo's stems have mappings


def test_screenshot_with_a_dialog_draws_it_over_the_dimmed_window(window, qtbot, tmp_path):
    """`stembridge gui --screenshot OUT.png --dialog connect|export` (the README's dialog images):
    the dialog in the middle of the window, the window around it dimmed, the dialog closed after."""
    from PySide6.QtGui import QImage
    from PySide6.QtWidgets import QApplication, QDialog

    from gui.app import grab_screenshot

    plain = QImage(str(grab_screenshot(window, tmp_path / "plain.png", wait_s=5.0)))

    def lightness(img, points) -> np.ndarray:
        return np.array([img.pixelColor(x, y).lightness() for x, y in points], dtype=float)

    corner = [(x, y) for x in range(5, 200, 13) for y in range(60, 300, 11)]
    cx, cy = plain.width() // 2, plain.height() // 2
    middle = [(x, y) for x in range(cx - 150, cx + 150, 9) for y in range(cy - 100, cy + 100, 9)]
    for dialog in ("connect", "export"):
        shot = QImage(str(grab_screenshot(window, tmp_path / f"{dialog}.png", wait_s=5.0, dialog=dialog)))
        assert shot.size() == plain.size() == window.size()
        assert lightness(shot, corner).mean() < 0.75 * lightness(plain, corner).mean()  # the same corner, darker
        assert np.abs(lightness(shot, middle) - lightness(plain, middle)).mean() > 3  # the dialog's own pixels
        assert not [w for w in QApplication.topLevelWidgets() if isinstance(w, QDialog) and w.isVisible()]


def test_effects_slider_drag_is_one_command_one_analysis_one_undo_step(window, qtbot, monkeypatch):
    """A drag sends nothing until release: each command re-captures a plugin's state and re-analyses
    the stem, so one a tick would queue dozens of analyses."""
    from bridge.project.schema import FxSlot

    session = window.adapter.session
    tab = window.effects
    window.tabs.setCurrentWidget(tab)
    stem = session.project.stems[0].name
    tab.target.setCurrentText(stem)
    tab.add_effect("LowpassFilter")
    tab.add_effect("Gain")
    assert session.wait_for_analysis(60)
    commands, analyses = [], []
    set_fx, request = session.set_fx, session._request_analysis
    monkeypatch.setattr(session, "set_fx", lambda *a, **k: (commands.append((a, k)), set_fx(*a, **k))[1])
    monkeypatch.setattr(session, "_request_analysis", lambda reason: (analyses.append(reason), request(reason))[1])

    tab.table.setCurrentCell(0, 0)
    qtbot.waitUntil(lambda: "cutoff_frequency_hz" in tab.param_rows, timeout=5_000)
    row = tab.param_rows["cutoff_frequency_hz"]
    undo_before = session.undo_label
    row.slider.setSliderDown(True)  # the mouse grabs the handle …
    for pos in range(100, 700, 10):  # … and drags across 60 positions
        row.slider.setValue(pos)
    assert commands == [] and session.project.stems[0].fx[0].parameters == {}
    assert row.spin.value() == pytest.approx(row._from_slider(690), rel=1e-3)  # the number follows the drag
    row.slider.setSliderDown(False)  # release
    assert len(commands) == 1 and len(analyses) == 1
    hz = session.project.stems[0].fx[0].parameters["cutoff_frequency_hz"]
    # the log scale: position 690 of 1000 between 20 Hz and 20 kHz
    assert hz == pytest.approx(20.0 * 1000 ** 0.69, rel=1e-2)
    window.undo_action.trigger()
    assert session.project.stems[0].fx[0].parameters == {} and session.undo_label == undo_before

    # arrow keys / the wheel (no drag): a burst of steps is one command after it pauses
    for _ in range(5):
        row.slider.triggerAction(row.slider.SliderAction.SliderSingleStepAdd)
    assert commands[1:] == []
    qtbot.waitUntil(lambda: len(commands) == 2, timeout=5_000)
    assert len(analyses) == 3  # the undo, then the burst
    # a step still waiting when another slot is selected goes to the slot it was made on
    row.slider.triggerAction(row.slider.SliderAction.SliderSingleStepAdd)
    tab.table.setCurrentCell(1, 0)
    qtbot.waitUntil(lambda: "gain_db" in tab.param_rows, timeout=5_000)
    assert commands[-1][0][:2] == (stem, 0) and len(commands) == 3

    # reorder: ▲ moves the Gain before the filter (one undo step), the selection follows it
    qtbot.mouseClick(tab.up_button, Qt.MouseButton.LeftButton)
    assert [s.plugin for s in session.project.stems[0].fx] == ["Gain", "LowpassFilter"]
    assert tab.current_index() == 0 and session.undo_label == f"move Gain up in stem {stem}"
    qtbot.waitUntil(lambda: tab.table.cellWidget(0, 0).text() == "Gain", timeout=5_000)
    window.undo_action.trigger()
    assert [s.plugin for s in session.project.stems[0].fx] == ["LowpassFilter", "Gain"]

    # a built-in has no window of its own: the button is off; without a display the sentence says so
    assert not tab.editor_button.isEnabled()
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.setattr("bridge.plugins.chain.locate_plugin", lambda slot, **k: Path("/usr/lib/vst3/X.vst3"))
    tab.target.setCurrentText("Master (export mix)")
    session.add_fx(None, FxSlot(plugin="/usr/lib/vst3/X.vst3", name="X"))  # a hosted plugin, "installed"
    qtbot.waitUntil(lambda: tab.table.rowCount() == 1, timeout=5_000)
    tab.table.setCurrentCell(0, 0)
    assert tab.editor_button.isEnabled()
    tab.open_editor()
    assert window.messages.level == "error" and "DISPLAY is not set" in window.messages.text
    assert tab.editors == {}


def test_a_session_of_sixteen_stems_scrolls_its_lanes_under_a_fixed_ruler(qtbot):
    """A tracked session has 16–30 stems: at 46 px a lane, the timeline showed the first eight and
    no way to reach the rest. Lanes scroll (bar, wheel over the names) while the ruler and the
    sections stay put: the last lane's own colour comes into view, the section strip keeps its."""
    from PySide6.QtGui import QColor, QWheelEvent

    from gui.widgets.timeline import (
        LABEL_W,
        RULER_H,
        SECTION_COLOURS,
        SECTION_H,
        TimelineWidget,
        build_lane,
    )

    t = TimelineWidget()
    qtbot.addWidget(t)
    t.resize(700, 420)
    t.show()
    qtbot.waitExposed(t)
    level = np.ones(1000)
    colours = [QColor(40, 40 + 10 * i, 60) for i in range(15)] + [QColor(250, 20, 200)]  # the last: magenta
    t.set_lanes([build_lane(f"Track {i + 1}", "other", c, level, np.zeros(1000), np.zeros(0), duration_seconds=10.0)
                 for i, c in enumerate(colours)], duration_seconds=10.0)
    t.set_sections([(0.0, 10.0, "Verse", "")])
    assert t.lane_bar.isVisible() and t.lane_bar.maximum() > 0
    assert t.lane_rect(15).top() > t.height()  # the 16th lane is below the view

    def last_lane_colour_shows() -> bool:
        img = t.grab().toImage()
        r = t.lane_rect(15)
        c = img.pixelColor(2, int(r.center().y())) if 0 < r.center().y() < t.height() else None
        return c is not None and c.red() > 200 and c.blue() > 150 and c.green() < 80  # its colour bar

    assert not last_lane_colour_shows()
    names_pos = QPointF(LABEL_W / 2, RULER_H + SECTION_H + 40)
    for _ in range(20):  # the wheel over the names scrolls the lanes, not the song
        t.wheelEvent(QWheelEvent(names_pos, t.mapToGlobal(names_pos), QPoint(0, 0), QPoint(0, -120),
                                 Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase,
                                 False))
    assert t.lane_bar.value() == t.lane_bar.maximum() and t.view_start_s == 0.0
    assert last_lane_colour_shows()
    assert t.lane_rect(15).bottom() <= t.height() + 1
    img = t.grab().toImage()
    strip = img.pixelColor(LABEL_W + 60, RULER_H + SECTION_H // 2)  # inside the section block
    want = QColor(SECTION_COLOURS[0])
    assert abs(strip.red() - want.red()) + abs(strip.green() - want.green()) + abs(strip.blue() - want.blue()) < 30
    t.lane_bar.setValue(0)
    assert t.lane_rect(0).top() == RULER_H + SECTION_H
