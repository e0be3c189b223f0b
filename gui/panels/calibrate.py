"""Transport ▸ Calibrate speaker time…: a square flashes on every beat of the position stembridge
follows; with the DAW's metronome on, the producer nudges the offset until flash and click coincide,
then saves it for this sync setup (bridge.transport.calibration). The offset applies while the
slider moves (the clock's latency), so the flash answers at once; Cancel puts the old one back.

Flash only: while a DAW is followed the app is silent (the DAW plays the song and its metronome is
the click to line up with); with the local clock the app's own audio follows the sound card's
clock, already compensated for the device's latency.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QSlider,
    QVBoxLayout,
)

from bridge.session import MAX_LATENCY_MS, BridgeError, beat_flash

SLIDER_RANGE_MS = 300


class CalibrationDialog(QDialog):
    def __init__(self, adapter, transport_bar, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Calibrate speaker time")
        self.adapter, self.transport_bar = adapter, transport_bar
        self.original_ms = float(transport_bar.latency.value())
        self.key = transport_bar.setup_key()
        intro = QLabel(
            f"<p>Following: <b>{adapter.sync_label}</b>. Turn on the DAW's metronome and press play there.</p>"
            "<p>The square flashes on every beat of the position stembridge shows. Move the slider until "
            "the flash and the click happen together (right: the flash comes earlier), then Save: the "
            "offset is kept for this DAW and used by the playhead and the preview.</p>")
        intro.setWordWrap(True)
        self.flash = QFrame()
        self.flash.setObjectName("CalibrationFlash")
        self.flash.setMinimumSize(160, 160)
        self.level = 0.0
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(-SLIDER_RANGE_MS, SLIDER_RANGE_MS)
        self.slider.setValue(int(round(self.original_ms)))
        self.value = QDoubleSpinBox()
        self.value.setRange(-MAX_LATENCY_MS, MAX_LATENCY_MS)
        self.value.setDecimals(0)
        self.value.setSuffix(" ms")
        self.value.setValue(self.original_ms)
        self.slider.valueChanged.connect(lambda v: self.value.setValue(float(v)))
        self.value.valueChanged.connect(self._apply)
        row = QHBoxLayout()
        row.addWidget(QLabel("Nudge"))
        row.addWidget(self.slider, 1)
        row.addWidget(self.value)
        self.result = QLabel()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.flash, 1, Qt.AlignmentFlag.AlignHCenter)
        layout.addLayout(row)
        layout.addWidget(self.result)
        layout.addWidget(buttons)
        adapter.tick.connect(self.on_tick)
        self._paint(0.0)

    def _apply(self, value: float) -> None:
        if int(round(value)) != self.slider.value() and abs(value) <= SLIDER_RANGE_MS:
            self.slider.blockSignals(True)
            self.slider.setValue(int(round(value)))
            self.slider.blockSignals(False)
        self.adapter.set_latency_ms(value)

    def on_tick(self, state) -> None:
        """Brightness from the followed position (the offset included: it is the clock's)."""
        level = beat_flash(state.position_beats) if state.playing else 0.0
        if abs(level - self.level) > 0.02 or (level == 0.0) != (self.level == 0.0):
            self._paint(level)

    def _paint(self, level: float) -> None:
        self.level = level
        v = int(40 + 215 * level)
        self.flash.setStyleSheet(f"#CalibrationFlash {{ background: rgb({v}, {v}, {v}); border-radius: 8px; }}")

    def save(self) -> None:
        try:
            self.transport_bar.store_latency(self.value.value())
        except (BridgeError, OSError) as e:
            self.result.setText(f"Not saved: {e}")
            return
        self.accept()

    def reject(self) -> None:
        self.adapter.set_latency_ms(self.original_ms)
        super().reject()

    def done(self, result: int) -> None:
        try:
            self.adapter.tick.disconnect(self.on_tick)
        except (RuntimeError, TypeError):
            pass
        super().done(result)
