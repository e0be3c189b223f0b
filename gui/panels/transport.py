"""Transport bar: sync source picker (with its OSC [HOST:]PORT or MIDI input port, and an Ableton Link
checkbox) + status line, latency offset, local play/pause, position. The sync setup is remembered
across runs (QSettings) and followed again whenever a project opens. The latency offset is kept per
sync setup (bridge.transport.calibration, shared with the command line): switching the DAW brings
back that DAW's offset (Transport ▸ Calibrate speaker time… measures it)."""

from __future__ import annotations

import json

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSizePolicy,
    QToolButton,
    QWidget,
)

from bridge.session import (
    BridgeError,
    load_latencies,
    option_name,
    save_latencies,
    save_latency,
    setup_key,
)
from gui.session_adapter import LOCAL_LABEL, MIDI_SOURCES, SYNC_SOURCES, SessionAdapter

#: OSC entries whose value is where the DAW listens (we send subscriptions there); the others
#: name the local port we listen on.
_DAW_ADDRESS_SOURCES = ("Ableton Live via AbletonOSC", "Ardour via OSC")
_NO_MIDI_PORTS = (
    "No MIDI input ports found. Make the DAW send MIDI clock / MTC to a port first (Logic: Project "
    "Settings ▸ Synchronization ▸ MIDI, destination the IAC Driver bus; enable the IAC Driver in "
    "Audio MIDI Setup), then pick the entry again."
)


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
        self.play_button.setToolTip("Play / pause the song with its sound (Space); silent while following a DAW")
        self.play_button.clicked.connect(self.toggle_play)
        self.stop_button = QToolButton(text="■")
        self.stop_button.setToolTip("Stop and return to the start (Home)")
        self.stop_button.clicked.connect(self.stop)
        self.position = QLabel("0:00.00")
        self.position.setObjectName("Position")
        self.position.setMinimumWidth(96)

        self.source = QComboBox()
        self.source.addItems(list(SYNC_SOURCES))
        self.source.setToolTip("Which DAW the timeline follows (Transport ▸ Connect to your DAW… says what to enable in the DAW)")
        self.source.activated.connect(lambda i: self.choose_source(self.source.itemText(i)))
        # the chosen entry's value: an OSC [HOST:]PORT (editable) or a MIDI input port (picked)
        self.osc_address = QLineEdit()
        self.osc_address.setObjectName("OscAddress")
        self.osc_address.setPlaceholderText("[host:]port")
        self.osc_address.setMaximumWidth(140)
        self.osc_address.editingFinished.connect(self._on_osc_address_edited)
        self.osc_address.hide()
        self._osc_values: dict[str, str] = {}  # label → what the producer typed, kept across switches
        self._preferred_midi_port = ""  # the port picked last time (restored from the settings)
        self.midi_port = QComboBox()
        self.midi_port.setObjectName("MidiPort")
        self.midi_port.setToolTip("MIDI input port the DAW sends its clock / timecode to")
        self.midi_port.setMinimumWidth(160)
        self.midi_port.activated.connect(lambda i: self._connect(self.source.currentText(), self.midi_port.itemText(i)))
        self.midi_port.hide()
        self.link = QCheckBox("Link")
        self.link.setToolTip("Also join the Ableton Link session on this network (tempo and phase; "
                             'needs pip install "stembridge[link]")')
        self.link.toggled.connect(self._on_link_toggled)
        self.status = QLabel("Local clock · 120.00 BPM · 1.1.1 · stopped")
        self.status.setObjectName("SyncStatus")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # a narrow window (960 px) cuts the status line short instead of widening the window;
        # the whole line stays in its tooltip
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.status.setMinimumWidth(60)

        self.latency = QDoubleSpinBox()
        self.latency.setRange(-500.0, 500.0)
        self.latency.setDecimals(0)
        self.latency.setSingleStep(5.0)
        self.latency.setSuffix(" ms")
        self.latency.setToolTip("Latency offset: positive shows a later position, to line up with what you hear")
        self.latency.valueChanged.connect(self._on_latency_changed)
        self._latencies: dict[str, float] = load_latencies()  # setup key → ms (calibration file)

        for w in (self.play_button, self.stop_button, self.position):
            row.addWidget(w)
        row.addSpacing(12)
        row.addWidget(QLabel("Sync"))
        row.addWidget(self.source)
        row.addWidget(self.osc_address)
        row.addWidget(self.midi_port)
        row.addWidget(self.link)
        row.addWidget(self.status, 1)
        row.addWidget(QLabel("Latency"))
        row.addWidget(self.latency)
        adapter.tick.connect(self.on_tick)

    # -- sync source ------------------------------------------------------------------------------
    def choose_source(self, label: str) -> None:
        """The producer picked ``label`` in the sync picker: show its value field and connect."""
        self.source.setCurrentText(label)
        if label in MIDI_SOURCES:
            self.osc_address.hide()
            ports = self.adapter.midi_input_ports()  # None: the adapter already said why
            if ports is not None and not ports:
                self.adapter.message.emit("error", f"{label.rstrip('…')}: {_NO_MIDI_PORTS}")
            if not ports:
                self.midi_port.hide()
                self.source.setCurrentText(LOCAL_LABEL)
                self._connect(LOCAL_LABEL, None)
                return
            previous = self.midi_port.currentText() or self._preferred_midi_port
            self.midi_port.clear()
            self.midi_port.addItems(ports)
            if previous in ports:
                self.midi_port.setCurrentText(previous)
            self.midi_port.show()
            self._connect(label, self.midi_port.currentText())
            return
        self.midi_port.hide()
        option, default = SYNC_SOURCES[label]
        if option is None:
            self.osc_address.hide()
            self._connect(label, None)
            return
        self.osc_address.setText(self._osc_values.get(label, default or ""))
        self.osc_address.setToolTip(
            "Where the DAW listens, HOST:PORT" if label in _DAW_ADDRESS_SOURCES
            else "The local UDP port the DAW sends to, [HOST:]PORT"
        )
        self.osc_address.show()
        self._connect(label, self.osc_address.text())

    def _on_osc_address_edited(self) -> None:
        label = self.source.currentText()
        if label in MIDI_SOURCES or SYNC_SOURCES[label][0] is None:
            return
        text = self.osc_address.text().strip() or (SYNC_SOURCES[label][1] or "")
        self.osc_address.setText(text)
        self._osc_values[label] = text
        if (self.adapter.sync_label, self.adapter.sync_value) != (label, text):
            self._connect(label, text)

    def _on_link_toggled(self, checked: bool) -> None:
        label = self.source.currentText()
        value = (self.midi_port.currentText() if label in MIDI_SOURCES
                 else self.osc_address.text() if SYNC_SOURCES[label][0] is not None else None)
        self.adapter.connect_sync(label, value, link=checked)
        self._show_link()
        self._show_latency()

    def _connect(self, label: str, value: str | None) -> None:
        self.adapter.connect_sync(label, value)
        self._show_link()
        self._show_latency()

    # -- latency offset, per sync setup ---------------------------------------------------------------
    def setup_key(self) -> str:
        """The calibration key of the setup the picker shows (its source, plus Link when ticked)."""
        label = self.source.currentText()
        source = SYNC_SOURCES.get(label, (None, None))[0]
        return setup_key(None if source is None else option_name(source), link=self.link.isChecked())

    def _on_latency_changed(self, value: float) -> None:
        self.adapter.set_latency_ms(value)
        self._latencies[self.setup_key()] = float(value)

    def _show_latency(self) -> None:
        """The offset stored for the setup now followed (0 when it was never set)."""
        value = self._latencies.get(self.setup_key(), 0.0)
        self.latency.blockSignals(True)
        self.latency.setValue(value)
        self.latency.blockSignals(False)
        self.adapter.set_latency_ms(self.latency.value())

    def store_latency(self, value: float) -> None:
        """Keep ``value`` as this setup's offset now (the calibration dialog's Save)."""
        key = self.setup_key()
        save_latency(key, value)
        self._latencies[key] = float(value)
        self._show_latency()

    def _show_link(self) -> None:
        """The checkbox says whether Link is really on (it is dropped when aalink is missing)."""
        if self.link.isChecked() != self.adapter.link_enabled:
            self.link.blockSignals(True)
            self.link.setChecked(self.adapter.link_enabled)
            self.link.blockSignals(False)

    def reconnect(self) -> None:
        """Follow the picker's current choice again, with its latency offset (a project was opened:
        its session and clock are new)."""
        self.adapter.link_enabled = self.link.isChecked()
        self.choose_source(self.source.currentText())

    # -- settings (the sync setup is the producer's, not the project's: kept across runs) ------------
    def save_settings(self, settings: QSettings) -> None:
        settings.setValue("sync/source", self.source.currentText())
        settings.setValue("sync/osc_values", json.dumps(self._osc_values))
        settings.setValue("sync/midi_port", self.midi_port.currentText() or self._preferred_midi_port)
        settings.setValue("sync/link", self.link.isChecked())
        try:  # the calibration file, shared with the command line
            save_latencies(self._latencies)
        except (BridgeError, OSError) as e:  # a read-only config folder, or a value the file refuses
            self.adapter.message.emit("error", f"The latency offsets were not saved: {e}")

    def restore_settings(self, settings: QSettings) -> None:
        """Put back the last run's sync setup; it connects when a project opens (:meth:`reconnect`)."""
        try:
            values = json.loads(str(settings.value("sync/osc_values", "{}")))
            self._osc_values = {str(k): str(v) for k, v in values.items() if k in SYNC_SOURCES}
        except (ValueError, AttributeError):
            self._osc_values = {}  # a hand-edited or damaged entry: start from the defaults
        self._preferred_midi_port = str(settings.value("sync/midi_port", "") or "")
        label = str(settings.value("sync/source", LOCAL_LABEL))
        self.source.setCurrentText(label if label in SYNC_SOURCES else LOCAL_LABEL)
        self.link.blockSignals(True)
        self.link.setChecked(str(settings.value("sync/link", "false")).lower() == "true")
        self.link.blockSignals(False)
        self._latencies = load_latencies()
        try:  # before per-setup offsets there was one, for whatever was followed: keep it for that
            old = settings.value("sync/latency_ms", None)
            if old is not None:
                self._latencies.setdefault(self.setup_key(), float(old))
                settings.remove("sync/latency_ms")
        except (TypeError, ValueError):
            pass
        self._show_latency()

    # -- local transport ----------------------------------------------------------------------------
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
            self.status.setToolTip(text)
