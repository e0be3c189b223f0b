"""Preferences (the producer's, kept across runs in QSettings, not in the project): audio playback
on/off, the output device and the buffer size; the size cap of the preview's disk cache (with the
open project's current use and a Clear button); the Demucs model that splits a mix into stems (the
released htdemucs, or a folder of model files copied to this machine, checked when picked)."""

from __future__ import annotations

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from gui.session_adapter import SessionAdapter

DEFAULT_DEVICE = "System default"
MIB = 1024 ** 2
GIB = 1024 ** 3


def restore_audio_preferences(settings: QSettings, adapter: SessionAdapter) -> None:
    """Put the last run's audio preferences on the adapter (sessions opened from now on use them)."""
    enabled = str(settings.value("audio/enabled", "true")).lower() == "true"
    device = str(settings.value("audio/device", "") or "") or None
    try:
        blocksize = max(0, int(settings.value("audio/blocksize", 0)))
    except (TypeError, ValueError):
        blocksize = 0  # a hand-edited entry: automatic
    adapter.audio_enabled, adapter.audio_device, adapter.audio_blocksize = enabled, device, blocksize


def restore_preview_preferences(settings: QSettings, adapter: SessionAdapter) -> None:
    """Put the remembered preview-cache cap on the adapter (a hand-edited bad entry: the default)."""
    value = settings.value("preview/cache_bytes")
    if value is None:
        return
    try:
        adapter.preview_cache_bytes = max(0, int(value))
    except (TypeError, ValueError):
        pass


def save_preview_preferences(settings: QSettings, adapter: SessionAdapter) -> None:
    settings.setValue("preview/cache_bytes", adapter.preview_cache_bytes)


def restore_separation_preferences(settings: QSettings, adapter: SessionAdapter) -> None:
    """Put the remembered Demucs model folder on the adapter (an empty entry: the released model)."""
    adapter.separation_model_repo = str(settings.value("separation/model_repo", "") or "") or None


def save_separation_preferences(settings: QSettings, adapter: SessionAdapter) -> None:
    settings.setValue("separation/model_repo", adapter.separation_model_repo or "")


def separation_options(adapter: SessionAdapter) -> dict:
    """The model options for :func:`bridge.separation.separate_mix_to_folder` from the preferences."""
    return {"model_repo": adapter.separation_model_repo} if adapter.separation_model_repo else {}


def check_model_folder(folder: str) -> str | None:
    """None when ``folder`` holds one Demucs model (or one bag of them); else what is wrong and the fix,
    in the app's words. Reads file names only: no torch, nothing loaded."""
    from bridge.session.api import SeparationError, resolve_model_spec

    try:
        resolve_model_spec(model_repo=folder)
    except SeparationError as e:
        why = str(e).replace("--model-repo ", "", 1).replace("pick one with --model NAME",
                                                              "keep one model (or one bag) per folder")
        return f"Not a Demucs model folder: {why}"
    return None


def format_bytes(n: int) -> str:
    if n >= GIB:
        return f"{n / GIB:.2f} GB"
    return f"{n / MIB:.1f} MB"


def save_audio_preferences(settings: QSettings, adapter: SessionAdapter) -> None:
    settings.setValue("audio/enabled", adapter.audio_enabled)
    settings.setValue("audio/device", adapter.audio_device or "")
    settings.setValue("audio/blocksize", adapter.audio_blocksize)


class PreferencesDialog(QDialog):
    def __init__(self, adapter: SessionAdapter, settings: QSettings, parent: QWidget | None = None) -> None:
        from bridge.session import BUFFER_SIZES

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
        self.cache_size = QDoubleSpinBox()
        self.cache_size.setObjectName("PreviewCacheSize")
        self.cache_size.setRange(0.0, 1024.0)
        self.cache_size.setDecimals(1)
        self.cache_size.setSingleStep(0.5)
        self.cache_size.setSuffix(" GB")
        self.cache_size.setToolTip("Rendered preview frames kept on disk per project (about 250 kB each); "
                                   "above this the least recently used are deleted and rendered again "
                                   "when needed. 0 keeps none on disk.")
        self.cache_size.setValue(adapter.preview_cache_bytes / GIB)
        form.addRow("Preview cache", self.cache_size)
        cache_row = QHBoxLayout()
        self.cache_use = QLabel()
        self.cache_use.setObjectName("PreviewCacheUse")
        cache_row.addWidget(self.cache_use, 1)
        self.clear_cache = QPushButton("Clear")
        self.clear_cache.setToolTip("Delete this project's rendered preview frames on disk now")
        self.clear_cache.clicked.connect(self.on_clear_cache)
        cache_row.addWidget(self.clear_cache)
        form.addRow("", cache_row)
        model_row = QHBoxLayout()
        self.model_repo = adapter.separation_model_repo
        self.model_label = QLabel()
        self.model_label.setObjectName("SeparationModel")
        self.model_label.setWordWrap(True)
        model_row.addWidget(self.model_label, 1)
        self.choose_model = QPushButton("Choose folder…")
        self.choose_model.setToolTip("A folder with a Demucs model's files copied to this machine (<signature>.th "
                                     "or .safetensors, plus <name>.yaml for a bag of models): separation then "
                                     "needs no download")
        self.choose_model.clicked.connect(lambda: self.on_choose_model())
        model_row.addWidget(self.choose_model)
        self.released_model = QPushButton("Use htdemucs")
        self.released_model.setToolTip("The released htdemucs model (downloaded once, then kept)")
        self.released_model.clicked.connect(lambda: self.set_model_repo(None))
        model_row.addWidget(self.released_model)
        form.addRow("Separation model", model_row)
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
        self.show_cache_use()
        self.set_model_repo(self.model_repo)

    def set_model_repo(self, folder: str | None) -> None:
        self.model_repo = folder
        self.model_label.setText(f"Local folder: {folder}" if folder else
                                 "htdemucs (released; downloaded once, then works offline)")
        self.released_model.setEnabled(folder is not None)

    def on_choose_model(self, folder: str | None = None) -> bool:
        """Pick a Demucs model folder (asked for unless given); a folder that holds no Demucs model is
        refused with the reason in the dialog, and the choice stays as it was. True when taken."""
        if folder is None:
            folder = QFileDialog.getExistingDirectory(self, "Choose the folder with the Demucs model files",
                                                      self.model_repo or "")
            if not folder:
                return False
        problem = check_model_folder(folder)
        if problem is not None:
            self.status.setText(problem)
            return False
        self.status.setText("")
        self.set_model_repo(folder)
        return True

    def show_cache_use(self) -> None:
        used = self.adapter.preview_cache_usage()
        self.clear_cache.setEnabled(used is not None)
        self.cache_use.setText("No project open" if used is None else f"This project uses {format_bytes(used)}")

    def on_clear_cache(self) -> None:
        self.adapter.clear_preview_cache()
        self.show_cache_use()

    def fill_devices(self) -> None:
        """List the outputs PortAudio sees now (or say why there are none)."""
        from bridge.session import BridgeError, output_devices

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
        self.adapter.separation_model_repo = self.model_repo
        save_separation_preferences(self.settings, self.adapter)
        limit = int(round(self.cache_size.value() * GIB))
        if abs(limit - self.adapter.preview_cache_bytes) >= 0.05 * GIB:  # not just the 0.1 GB display rounding
            self.adapter.set_preview_cache_limit(limit)
            save_preview_preferences(self.settings, self.adapter)
        super().accept()
