"""The app's audio playback, offscreen (pytest-qt): Space/Play with no audio device says why and the
playhead still runs; the preferences pick the device and buffer size and are remembered; the
playhead is the sample the device plays now (a fake device whose clock the test drives, so the
expected positions are exact and independent of how busy the machine is), and it runs with a real
PortAudio device (JACK's dummy backend)."""

from __future__ import annotations

import os

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
    from bridge.playback.player import output_devices

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


class _FakeDevice:
    """A sounddevice stand-in with one output whose clock the test drives: ``time`` is the stream's
    clock (PortAudio's ``Stream.time``), :meth:`pump` runs the player's callback for blocks as
    PortAudio would (``currentTime`` = the device clock at the callback, ``outputBufferDacTime``
    = that plus the output latency). Nothing here reads the wall clock."""

    RATE = 48_000
    BLOCK = 256
    LATENCY_S = 0.15  # the device's output latency: what a sample waits before it is heard
    T0 = 100.0  # the device clock when the stream starts (any value: it is not the wall clock)

    class PortAudioError(Exception):
        pass

    def __init__(self) -> None:
        import types

        self.streams: list = []
        self.default = types.SimpleNamespace(device=(None, 0))
        fake = self

        class OutputStream:
            def __init__(self, *, samplerate, blocksize, device: int, channels, dtype, latency, callback):
                self.samplerate, self.channels, self.callback = float(samplerate), channels, callback
                self.latency = _FakeDevice.LATENCY_S
                self.time = _FakeDevice.T0
                self.active = False
                fake.streams.append(self)

            def start(self):
                self.active = True

            def abort(self):
                self.active = False

            def close(self):
                pass

        self.OutputStream = OutputStream

    def query_hostapis(self):
        return [{"name": "Fake"}]

    def query_devices(self):
        return [{"index": 0, "name": "fake output", "hostapi": 0, "max_output_channels": 2,
                 "default_samplerate": float(self.RATE), "default_low_output_latency": self.LATENCY_S}]

    def pump(self, blocks: int) -> None:
        """The device asks for ``blocks`` blocks, one after the other, its clock running on."""
        import types

        import numpy as np

        stream = self.streams[-1]
        status = types.SimpleNamespace(output_underflow=False)
        for _ in range(blocks):
            info = types.SimpleNamespace(currentTime=stream.time, outputBufferDacTime=stream.time + self.LATENCY_S)
            stream.callback(np.zeros((self.BLOCK, stream.channels), np.float32), self.BLOCK, info, status)
            stream.time += self.BLOCK / self.RATE


def test_the_playhead_is_the_sample_the_device_plays_now(qtbot, project_dir, tmp_path, monkeypatch):
    """The playhead drawn is the song time of the sample reaching the speaker at the device's clock,
    output latency included. A fake device (its clock driven by the test) and a frozen wall clock:
    only the device's clock can move the playhead, so the expected positions are exact, computed
    here from the seek point, the device clock and its latency (not read back from the player)."""
    monkeypatch.setenv("STEMBRIDGE_LOG_DIR", str(tmp_path / "logs"))
    dev = _FakeDevice()
    monkeypatch.setattr("bridge.playback.player.import_sounddevice", lambda **_: dev)
    w = _window(qtbot, project_dir, tmp_path / "settings.ini")
    try:
        session = w.adapter.session
        monkeypatch.setattr(session.clock, "_time_fn", lambda: 5_000.0)  # the wall clock stands still

        def shown_after_a_tick() -> float:
            with qtbot.waitSignal(w.adapter.tick, timeout=10_000) as tick:
                pass
            assert w.timeline.playhead_s == max(0.0, tick.args[0].position_seconds)
            return w.timeline.playhead_s

        def heard(device_time: float) -> float:  # the truth: seek point + time since the first sample was heard
            return 2.0 + max(0.0, device_time - (dev.T0 + dev.LATENCY_S))

        session.seek(2.0)
        w.transport.play_button.click()
        assert session.audio.player is not None and session.audio.player.device.name == "fake output"
        assert shown_after_a_tick() == pytest.approx(2.0, abs=1e-9)  # nothing played yet
        dev.pump(18)  # 96 ms of blocks handed over: all still inside the 150 ms of output latency
        assert dev.streams[-1].time < dev.T0 + dev.LATENCY_S
        assert shown_after_a_tick() == pytest.approx(2.0, abs=1e-9)  # nothing heard yet: not ahead of the sound
        tol = 1e-6  # seconds; a block is 5.3 ms, the latency 150 ms: any other clock is far outside this
        for blocks, between in ((38, 0.0), (17, 0.37 * dev.BLOCK / dev.RATE), (5, 0.9 * dev.BLOCK / dev.RATE)):
            dev.pump(blocks)
            dev.streams[-1].time += between  # the device clock also runs between callbacks
            assert shown_after_a_tick() == pytest.approx(heard(dev.streams[-1].time), abs=tol)
        # pause: the playhead stays at the sample heard at that moment while the device runs on
        t_pause = dev.streams[-1].time
        w.transport.play_button.click()
        assert not session.audio.player.playing and not w.messages.isVisible()
        dev.pump(20)
        assert shown_after_a_tick() == pytest.approx(heard(t_pause), abs=tol)
    finally:
        w.close()


def test_with_a_real_device_the_playhead_runs_with_the_audio(qtbot, project_dir, tmp_path, monkeypatch):
    """The same through PortAudio and a real (JACK dummy) device: the stream opens there, the
    playhead runs on from the seek point while it plays, and once paused it is exactly the position
    the player holds. How far the drawn playhead trails the device under load is a benchmark's
    business (the exact following is the fake-device test above)."""
    import shutil

    monkeypatch.setenv("STEMBRIDGE_LOG_DIR", str(tmp_path / "logs"))
    if shutil.which("jackd") is None:
        pytest.skip("jackd is not installed (Debian: apt-get install jackd2)")
    from bridge.playback.player import import_sounddevice

    sd = import_sounddevice()
    with jack_server("stembridge-guiaudio"):
        try:
            w = _window(qtbot, project_dir, tmp_path / "settings.ini")
            try:
                w.adapter.session.seek(2.0)
                w.transport.play_button.click()
                player = w.adapter.session.audio.player
                assert player is not None and player.device.host_api.startswith("JACK")
                qtbot.waitUntil(lambda: w.timeline.playhead_s > 2.1, timeout=30_000)
                w.transport.play_button.click()
                assert not player.playing and not w.messages.isVisible()
                held = player.position_s()
                assert held > 2.1
                qtbot.waitUntil(lambda: abs(w.timeline.playhead_s - held) < 1e-6, timeout=10_000)
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
