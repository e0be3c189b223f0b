"""The app's audio playback, offscreen (pytest-qt): Space/Play with no audio device says why and the
playhead still runs; the preferences pick the device and buffer size and are remembered; with a
device (JACK's dummy backend) the playhead follows what the device plays."""

from __future__ import annotations

import os
import time

import pytest
from conftest import jack_server

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QSettings  # noqa: E402


def _window(qtbot, project_dir, settings_path):
    from gui.app import create_app
    from gui.main_window import MainWindow

    create_app(install_error_hook=False)
    w = MainWindow(settings=QSettings(str(settings_path), QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    w.show()
    assert w.open_project(project_dir, watch=False)
    return w


def _outputs() -> list:
    from bridge.errors import BridgeError
    from bridge.playback import output_devices

    try:
        return output_devices(rescan=True)
    except BridgeError:
        return []


def test_play_without_an_audio_device_says_why_and_the_playhead_still_runs(qtbot, project_dir, tmp_path,
                                                                           monkeypatch):
    monkeypatch.setenv("STEMBRIDGE_LOG_DIR", str(tmp_path / "logs"))
    if _outputs():
        pytest.skip("this machine has an audio output; the no-device case needs none")
    w = _window(qtbot, project_dir, tmp_path / "settings.ini")
    try:
        start = w.timeline.playhead_s
        w.transport.play_button.click()
        qtbot.waitUntil(lambda: w.messages.isVisible() and "No audio output device" in w.messages.text,
                        timeout=5_000)
        assert w.messages.level == "error" and "Preferences ▸ Audio" in w.messages.text
        qtbot.waitUntil(lambda: w.timeline.playhead_s > start + 0.2, timeout=5_000)
        w.transport.play_button.click()
        assert not w.adapter.session.transport().playing
    finally:
        w.close()


def test_preferences_set_the_buffer_size_and_are_remembered(qtbot, project_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("STEMBRIDGE_LOG_DIR", str(tmp_path / "logs"))
    w = _window(qtbot, project_dir, tmp_path / "settings.ini")
    try:
        dlg = w.open_preferences()
        assert dlg.device.itemText(0) == "System default"
        dlg.buffer.setCurrentIndex(dlg.buffer.findData(512))
        dlg.play_audio.setChecked(False)
        dlg.accept()
        audio = w.adapter.session.audio
        assert audio.blocksize == 512 and not audio.enabled
    finally:
        w.close()
    again = _window(qtbot, project_dir, tmp_path / "settings.ini")
    try:
        assert again.adapter.audio_blocksize == 512 and not again.adapter.audio_enabled
        assert again.adapter.session.audio.blocksize == 512 and not again.adapter.session.audio.enabled
    finally:
        again.close()


def test_with_a_device_the_playhead_follows_the_audio(qtbot, project_dir, tmp_path, monkeypatch):
    import shutil

    monkeypatch.setenv("STEMBRIDGE_LOG_DIR", str(tmp_path / "logs"))
    if shutil.which("jackd") is None:
        pytest.skip("jackd is not installed (Debian: apt-get install jackd2)")
    from bridge.playback import import_sounddevice

    sd = import_sounddevice()
    with jack_server("stembridge-guiaudio"):
        try:
            w = _window(qtbot, project_dir, tmp_path / "settings.ini")
            try:
                w.adapter.session.seek(2.0)
                w.transport.play_button.click()
                player = w.adapter.session.audio.player
                assert player is not None and player.device.host_api.startswith("JACK")
                qtbot.waitUntil(lambda: w.timeline.playhead_s > 2.3, timeout=5_000)
                # the playhead drawn comes from the device's clock: never ahead of what it has played
                # (how far behind depends on how busy the machine is: that is a benchmark's business)
                shown, heard = w.timeline.playhead_s, player.position_s()
                assert 0.0 <= heard - shown
                time.sleep(0.05)
                w.transport.play_button.click()
                assert not player.playing and not w.messages.isVisible()
                qtbot.waitUntil(lambda: abs(w.timeline.playhead_s - player.position_s()) < 1e-6, timeout=2_000)
            finally:
                w.close()
        finally:
            sd._terminate()  # let go of the server before it stops (PortAudio aborts otherwise)
    sd._initialize()


def test_loop_the_section_at_the_playhead_and_solo_a_stem(qtbot, project_dir, tmp_path, monkeypatch):

    monkeypatch.setenv("STEMBRIDGE_LOG_DIR", str(tmp_path / "logs"))
    w = _window(qtbot, project_dir, tmp_path / "settings.ini")
    try:
        s = w.adapter.session
        qtbot.waitUntil(lambda: len(w.timeline.sections) == 2, timeout=10_000)  # intro 0–4 s, verse 4 s–end
        s.seek(3.5)
        w.toggle_loop()  # Transport ▸ Loop the section at the playhead (Ctrl+L)
        assert s.audio.loop == (0.0, 4.0) and "Looping intro" in w.messages.text
        s.set_audio(enabled=False)  # the playhead loops with or without sound
        w.transport.play_button.click()
        qtbot.waitUntil(lambda: w.timeline.playhead_s < 1.0 and s.transport().playing, timeout=5_000)
        w.transport.play_button.click()
        w.toggle_loop()  # Transport ▸ Loop the section at the playhead (Ctrl+L)
        assert s.audio.loop is None and w.messages.text == "Loop off"
        # solo in the stems panel: only the playback hears it, the project is unchanged
        solo_column = 5
        w.stems.table.cellWidget(1, solo_column).setChecked(True)
        assert s.audio.solo == {s.project.stems[1].name} and not s.dirty
        w.stems.table.cellWidget(1, solo_column).setChecked(False)
        assert s.audio.solo == frozenset()
    finally:
        w.close()


def test_preferences_show_cap_and_clear_the_preview_disk_cache(qtbot, project_dir, tmp_path, monkeypatch):
    import numpy as np

    from bridge.project import cache_dir

    monkeypatch.setenv("STEMBRIDGE_LOG_DIR", str(tmp_path / "logs"))
    folder = cache_dir(project_dir) / "preview"
    paths = []
    for i in range(3):  # frames an earlier run left
        key = f"{i:02x}" * 16
        path = folder / key[:2] / f"{key}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, np.zeros((216, 384, 3), np.uint8), allow_pickle=False)
        paths.append(path)
    w = _window(qtbot, project_dir, tmp_path / "settings.ini")
    try:
        dlg = w.open_preferences()
        assert dlg.cache_size.value() == 2.0  # GB, the default
        used = w.adapter.preview_cache_usage()
        assert used >= 3 * 384 * 216 * 3
        assert dlg.cache_use.text() == f"This project uses {used / 1024 ** 2:.1f} MB"
        dlg.clear_cache.click()
        assert not any(p.exists() for p in paths)
        assert "uses" in dlg.cache_use.text() and w.adapter.preview_cache_usage() < used
        dlg.cache_size.setValue(0.5)
        dlg.accept()
        assert w.adapter.session.preview_cache_usage()[1] == 1024 ** 3 // 2
    finally:
        w.close()
    again = _window(qtbot, project_dir, tmp_path / "settings.ini")
    try:
        assert again.adapter.preview_cache_bytes == 1024 ** 3 // 2
        assert again.adapter.session.preview_cache_usage()[1] == 1024 ** 3 // 2
        again.adapter.close()
        dlg = again.open_preferences()
        assert dlg.cache_use.text() == "No project open" and not dlg.clear_cache.isEnabled()
        dlg.reject()
    finally:
        again.close()
