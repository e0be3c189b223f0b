"""Connect to your DAW: pick the DAW (or sync protocol), read its steps, install its script where the
DAW allows it (Live's remote script, REAPER's OSC pattern file: bridge/daw_install.py, as the CLI's
``stembridge daw-scripts install``), follow it, and watch a status line go waiting → receiving →
locked with the last message's age (:meth:`SessionAdapter.sync_status`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
)


@dataclass(frozen=True)
class DawChoice:
    name: str
    sync_label: str | None  # a key of SYNC_SOURCES; None: Ableton Link (the checkbox)
    install: str | None  # bridge.daw_install script name, or None
    steps: str  # HTML


CHOICES: tuple[DawChoice, ...] = (
    DawChoice("Ableton Live", "Ableton Live via StemBridge script", "live", """
<ol><li>Click <b>Install script</b> (copies the StemBridge remote script into Live's User Library,
folder <i>Remote Scripts</i>).</li>
<li>Restart Live. <i>Settings (Preferences) ▸ Link, Tempo &amp; MIDI ▸ Control Surface</i>: choose
<b>StemBridge</b> in a free slot; Input and Output: <b>None</b>. Live's status bar shows
“StemBridge: sending the transport to 127.0.0.1:9031”.</li>
<li>Click <b>Follow</b> and press play in Live.</li></ol>"""),
    DawChoice("Logic Pro", "MIDI clock…", None, """
<p>Logic sends no transport over OSC: stembridge follows its MIDI clock (or MTC).</p>
<ol><li><i>Logic Pro ▸ Settings ▸ Advanced</i>: turn on <b>Enable Complete Features</b>.</li>
<li>Port: <b>Logic Pro Virtual Out</b> (no setup), or the IAC bus: <i>Audio MIDI Setup ▸ Window ▸ Show
MIDI Studio</i>, double-click <b>IAC Driver</b>, tick <b>Device is online</b> (“IAC Driver Bus 1”).</li>
<li><i>File ▸ Project Settings ▸ Synchronization ▸ MIDI</i>: in a destination row pick that port and
tick <b>Clock</b> (or <b>MTC</b>; its frame rate is under <i>Synchronization ▸ General</i>). Leave
<b>PDC</b> ticked. Do not pick “All”.</li>
<li>Click <b>Follow</b> (MIDI clock; for MTC choose “MTC” here), pick the port in the transport bar,
press play in Logic.</li></ol>"""),
    DawChoice("REAPER", "REAPER via OSC", "reaper", """
<ol><li>Click <b>Install script</b> (copies <i>stembridge.ReaperOSC</i> into the <i>OSC</i> folder of
REAPER's resource path).</li>
<li><i>Options ▸ Preferences ▸ Control/OSC/web ▸ Add</i>: Control surface mode <b>OSC (Open Sound
Control)</b>; Pattern config <b>stembridge</b>; Mode <b>Configure device IP + local port</b>;
Device IP <b>127.0.0.1</b>, Device port <b>9032</b>; Local listen port: anything free.</li>
<li>Click <b>Follow</b> and press play in REAPER.</li></ol>"""),
    DawChoice("Bitwig Studio", "Bitwig via DrivenByMoss", None, """
<ol><li>Install the DrivenByMoss extension.</li>
<li><i>Settings ▸ Controllers ▸ Add controller ▸ Open Sound Control ▸ OSC</i>: receive port
<b>8000</b>, send to host <b>127.0.0.1</b>, port <b>9000</b>.</li>
<li>Click <b>Follow</b> and press play in Bitwig.</li></ol>"""),
    DawChoice("Ardour", "Ardour via OSC", None, """
<ol><li><i>Edit ▸ Preferences ▸ Control Surfaces</i>: enable <b>Open Sound Control (OSC)</b>
(port 3819, reply port mode <b>Auto</b>).</li>
<li>Click <b>Follow</b>: stembridge registers itself with Ardour; press play. Ardour sends no tempo:
it is derived from the position within about half a second.</li></ol>"""),
    DawChoice("MIDI clock", "MIDI clock…", None, """
<ol><li>In the DAW, send MIDI clock + Song Position Pointer to a virtual MIDI port (macOS: IAC Driver;
Windows: loopMIDI; Linux: an ALSA or JACK port).</li>
<li>Click <b>Follow</b>, then pick that port in the transport bar.</li></ol>"""),
    DawChoice("MTC", "MTC…", None, """
<ol><li>In the DAW, send MIDI Time Code to a virtual MIDI port.</li>
<li>Click <b>Follow</b>, then pick that port in the transport bar. MTC gives the position only:
the tempo comes from the project's analysis.</li></ol>"""),
    DawChoice("Ableton Link", None, None, """
<ol><li>Switch <b>Link</b> on in the DAW (Live: control bar, and <i>Settings ▸ Link, Tempo &amp;
MIDI ▸ Start Stop Sync</i> on).</li>
<li>Click <b>Follow</b> (needs <code>pip install "stembridge[link]"</code>). Link gives tempo and the
bar phase, not the song position: add a DAW source for that.</li></ol>"""),
)


class ConnectDawDialog(QDialog):
    #: Where "Install script" copies to; None: the DAW's standard folder (tests set a tmp folder).
    install_dest: Path | None = None

    def __init__(self, adapter, transport_bar, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Connect to your DAW")
        self.adapter, self.transport_bar = adapter, transport_bar
        self.choices = QListWidget()
        self.choices.addItems([c.name for c in CHOICES])
        self.choices.setMaximumWidth(170)
        self.steps = QTextBrowser()
        self.steps.setOpenExternalLinks(True)
        self.install_button = QPushButton("Install script")
        self.install_button.clicked.connect(self.install)
        self.follow_button = QPushButton("Follow")
        self.follow_button.clicked.connect(self.follow)
        self.result = QLabel()
        self.result.setWordWrap(True)
        self.status = QLabel()
        self.status.setObjectName("DawStatus")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)

        right = QVBoxLayout()
        right.addWidget(self.steps, 1)
        row = QHBoxLayout()
        row.addWidget(self.install_button)
        row.addWidget(self.follow_button)
        row.addStretch(1)
        right.addLayout(row)
        right.addWidget(self.result)
        top = QHBoxLayout()
        top.addWidget(self.choices)
        top.addLayout(right, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(top, 1)
        layout.addWidget(self.status)
        layout.addWidget(buttons)
        self.resize(720, 420)

        self.choices.currentRowChanged.connect(self._show_choice)
        self.choices.setCurrentRow(0)
        self._timer = QTimer(self)
        self._timer.setInterval(250)
        self._timer.timeout.connect(self.refresh_status)
        self._timer.start()
        self.refresh_status()

    def choice(self) -> DawChoice:
        return CHOICES[max(0, self.choices.currentRow())]

    def select(self, name: str) -> None:
        self.choices.setCurrentRow([c.name for c in CHOICES].index(name))

    def _show_choice(self, row: int) -> None:
        c = CHOICES[max(0, row)]
        self.steps.setHtml(c.steps)
        self.install_button.setVisible(c.install is not None)
        self.follow_button.setText(f"Follow {c.name}")
        self.result.clear()

    def install(self) -> None:
        from bridge.session import BridgeError, install_daw_script

        c = self.choice()
        if c.install is None:
            return
        try:
            done = install_daw_script(c.install, self.install_dest)
        except BridgeError as e:
            self.result.setText(f"Not installed: {e}")
            return
        self.result.setText(f"Installed: {done.path}\nNext: {done.script.next_steps}")

    def follow(self) -> None:
        c = self.choice()
        if c.sync_label is None:
            self.transport_bar.link.setChecked(True)  # its slot connects Link (or says why not)
        else:
            self.transport_bar.choose_source(c.sync_label)
        self.refresh_status()

    def refresh_status(self) -> None:
        phase, _ = self.adapter.sync_status()
        light = {"off": "○", "waiting": "◌", "receiving": "◐", "locked": "●"}[phase]
        text = f"{light} {self.adapter.sync_status_text()}"
        if text != self.status.text():
            self.status.setText(text)
