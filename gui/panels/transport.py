"""Transport bar: sync source picker + status line, latency offset, local play/pause, position."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QHBoxLayout, QLabel, QToolButton, QWidget

from gui.session_adapter import SYNC_SOURCES, SessionAdapter


class TransportBar(QWidget):
    def __init__(self, adapter: SessionAdapter, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.adapter = adapter
        self.setObjectName("TransportBar")
        row = QHBoxLayout(self)
        row.setContentsMargins(10, 6, 10, 6)
        row.setSpacing(10)

        self.play_button = QToolButton(text="▶")
        self.play_button.setObjectName("PlayButton")
        self.play_button.setToolTip("Play / pause the local clock (Space)")
        self.play_button.clicked.connect(self.toggle_play)
        self.stop_button = QToolButton(text="■")
        self.stop_button.setToolTip("Stop and return to the start (Home)")
        self.stop_button.clicked.connect(self.stop)
        self.position = QLabel("0:00.00")
        self.position.setObjectName("Position")
        self.position.setMinimumWidth(96)

        self.source = QComboBox()
        self.source.addItems(list(SYNC_SOURCES))
        self.source.setToolTip("Which DAW the timeline follows (daw_scripts/README.md says what to enable in the DAW)")
        self.source.activated.connect(lambda i: self.adapter.connect_sync(self.source.itemText(i)))
        self.status = QLabel("Local clock · 120.00 BPM · 1.1.1 · stopped")
        self.status.setObjectName("SyncStatus")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.latency = QDoubleSpinBox()
        self.latency.setRange(-500.0, 500.0)
        self.latency.setDecimals(0)
        self.latency.setSingleStep(5.0)
        self.latency.setSuffix(" ms")
        self.latency.setToolTip("Latency offset: positive shows a later position, to line up with what you hear")
        self.latency.valueChanged.connect(self.adapter.set_latency_ms)

        for w in (self.play_button, self.stop_button, self.position):
            row.addWidget(w)
        row.addSpacing(12)
        row.addWidget(QLabel("Sync"))
        row.addWidget(self.source)
        row.addWidget(self.status, 1)
        row.addWidget(QLabel("Latency"))
        row.addWidget(self.latency)
        adapter.tick.connect(self.on_tick)

    def toggle_play(self) -> None:
        s = self.adapter.session
        if s is None:
            return
        self.adapter.command("pause" if s.transport().playing else "play")

    def stop(self) -> None:
        self.adapter.command("pause")
        self.adapter.command("seek", 0.0)

    def on_tick(self, state) -> None:
        t = max(0.0, state.position_seconds)
        self.position.setText(f"{int(t // 60)}:{t % 60:05.2f}")
        self.play_button.setText("❚❚" if state.playing else "▶")
        text = self.adapter.status_text(state)
        if text != self.status.text():
            self.status.setText(text)
