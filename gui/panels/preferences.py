"""Preferences (the producer's, kept across runs in QSettings, not in the project): audio playback
on/off, the output device and the buffer size."""

from __future__ import annotations

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from gui.session_adapter import SessionAdapter

DEFAULT_DEVICE = "System default"


def restore_audio_preferences(settings: QSettings, adapter: SessionAdapter) -> None:
    """Put the last run's audio preferences on the adapter (sessions opened from now on use them)."""
    enabled = str(settings.value("audio/enabled", "true")).lower() == "true"
    device = str(settings.value("audio/device", "") or "") or None
    try:
        blocksize = max(0, int(settings.value("audio/blocksize", 0)))
    except (TypeError, ValueError):
        blocksize = 0  # a hand-edited entry: automatic
    adapter.audio_enabled, adapter.audio_device, adapter.audio_blocksize = enabled, device, blocksize


def save_audio_preferences(settings: QSettings, adapter: SessionAdapter) -> None:
    settings.setValue("audio/enabled", adapter.audio_enabled)
    settings.setValue("audio/device", adapter.audio_device or "")
    settings.setValue("audio/blocksize", adapter.audio_blocksize)


class PreferencesDialog(QDialog):
    def __init__(self, adapter: SessionAdapter, settings: QSettings, parent: QWidget | None = None) -> None:
        from bridge.playback import BUFFER_SIZES

        super().__init__(parent)
        self.adapter = adapter
        self.settings = settings
        self.setWindowTitle("Preferences")
        col = QVBoxLayout(self)
        form = QFormLayout()
        self.play_audio = QCheckBox("Play the song's mix (Space)")
        self.play_audio.setToolTip("Gains, mutes and offsets as in the export. While a DAW is the sync "
                                   "source the app stays silent: the DAW plays the song.")
        self.play_audio.setChecked(adapter.audio_enabled)
        form.addRow("Audio", self.play_audio)
        self.device = QComboBox()
        self.device.setObjectName("AudioDevice")
        form.addRow("Output device", self.device)
        self.buffer = QComboBox()
        self.buffer.setObjectName("AudioBuffer")
        self.buffer.setToolTip("Frames per audio callback: smaller = less latency, larger = fewer dropouts. "
                               "The playhead is compensated for the device's latency either way.")
        for size in BUFFER_SIZES:
            self.buffer.addItem("Automatic" if size == 0 else f"{size} samples", size)
        self.buffer.setCurrentIndex(max(0, self.buffer.findData(adapter.audio_blocksize)))
        form.addRow("Buffer size", self.buffer)
        col.addLayout(form)
        self.status = QLabel()
        self.status.setObjectName("Dim")
        self.status.setWordWrap(True)
        col.addWidget(self.status)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        col.addWidget(buttons)
        self.fill_devices()

    def fill_devices(self) -> None:
        """List the outputs PortAudio sees now (or say why there are none)."""
        from bridge.errors import BridgeError
        from bridge.playback import output_devices

        self.device.clear()
        self.device.addItem(DEFAULT_DEVICE, None)
        try:
            devices = output_devices(rescan=True)
        except BridgeError as e:  # PlaybackError (no PortAudio) or MissingDependency (no sounddevice)
            self.status.setText(str(e))
            devices = []
        else:
            self.status.setText("" if devices else "No audio output device found: connect or enable a sound "
                                "card, or start your sound server, then open Preferences again.")
        for d in devices:
            self.device.addItem(d.label + ("  (default)" if d.is_default else ""), d.label)
        chosen = self.adapter.audio_device
        index = self.device.findData(chosen) if chosen else 0
        if chosen and index < 0:  # remembered but not plugged in now: keep it, say so
            self.device.addItem(f"{chosen} (not available)", chosen)
            index = self.device.count() - 1
        self.device.setCurrentIndex(max(0, index))
        player = self.adapter.session.audio.player if self.adapter.session is not None else None
        if player is not None:
            self.status.setText(f"Playing on {player.device.label} at {player.sample_rate} Hz, output "
                                f"latency {player.output_latency_s * 1000:.1f} ms (compensated).")

    def accept(self) -> None:
        self.adapter.set_audio_preferences(enabled=self.play_audio.isChecked(), device=self.device.currentData(),
                                           blocksize=int(self.buffer.currentData()))
        save_audio_preferences(self.settings, self.adapter)
        super().accept()
