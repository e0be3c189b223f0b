"""Tempo bar: the one BPM readout (with its meter and where it comes from), and the rhythm
corrections — set tempo, ×2, ÷2, the detection's other readings ("or 168.1?": one click takes
the best, its arrow lists them), meter, "Downbeat here" (at the playhead, or right-click on the
timeline), tap tempo, reset.

Every button is one Session command (``double_tempo``, ``set_meter``, ``set_downbeat``,
``tap_tempo``…; undoable, autosaved); this widget holds no rhythm logic. The readout comes from
:meth:`bridge.session.Session.tempo_readout` — the DAW's tempo while following one, else the
project's beat grid — the same source the transport bar and the status bar show.
"""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QMenu,
    QToolButton,
    QWidget,
)

from bridge.session import api
from gui.session_adapter import SOURCE_LABELS, SessionAdapter

#: Meters offered (the first entry detects it). 6/8 and 12/8 are compound: counted in dotted beats.
METERS = ("Auto meter", "4/4", "3/4", "2/4", "5/4", "7/4", "6/8", "12/8", "7/8", "9/8")
#: BeatGrid.source → how the readout names it.
GRID_SOURCES = {"detected": "detected", "corrected": "corrected", "project": "project tempo", "midi": "tempo map"}


def tempo_text(session) -> str:
    """"167.00 BPM · 4/4 · corrected" — the app's one BPM readout ("— BPM" before any analysis); in
    beats as tapped, with the quarter-note tempo beside it where a beat is not a quarter:
    "80.00 BPM (♩ = 120.00) · 6/8 · tempo map"; the span where the song's tempo changes:
    "80.00–160.00 BPM · 4/4 · detected"."""
    readout = None if session is None else session.tempo_readout()
    if readout is None:
        return "— BPM"
    bpm, source = readout
    a = session.analysis
    meter = session.project.rhythm.meter
    if meter is None and a is not None:  # the grid's own label where it has one (6/8 vs 2/4)
        meter = getattr(a.beat_grid, "meter_label", None) or f"{a.beat_grid.beats_per_bar} beats/bar"
    where = GRID_SOURCES.get(source) or SOURCE_LABELS.get(source, source)
    grid = None if a is None or source != a.beat_grid.source else a.beat_grid
    # a song whose tempo changes: its slowest and fastest, not one mean tempo it never has
    tempo = f"{bpm:.2f} BPM" if grid is None else api.tempo_span_text(grid)
    if grid is not None and grid.quarters_per_beat != 1.0:  # dotted beats (6/8), eighths (7/8)
        tempo += f" (♩ = {grid.quarter_tempo_bpm:.2f})"  # also the quarter-note tempo a DAW shows
    return " · ".join(x for x in (tempo, meter, where) if x)


class TempoBar(QWidget):
    def __init__(self, adapter: SessionAdapter, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.adapter = adapter
        self.setObjectName("TempoBar")
        row = QHBoxLayout(self)
        row.setContentsMargins(10, 2, 10, 2)
        row.setSpacing(6)

        self.readout = QLabel("— BPM")
        self.readout.setObjectName("TempoReadout")
        # at least this wide, but it gives way (its text clipped, whole in the tooltip) before the
        # buttons do, so the bar fits a 960-pixel window with the other-reading button shown
        self.readout.setMinimumWidth(150)
        self.tempo = QDoubleSpinBox()
        self.tempo.setRange(20.5, 399.0)
        self.tempo.setDecimals(2)
        self.tempo.setSuffix(" BPM")
        self.tempo.setKeyboardTracking(False)  # one edit when typing is done, not one per digit
        # no tempo known yet (analysing, or it failed): the box sits at its lowest value, shown as none
        self.tempo.setSpecialValueText("— BPM")
        self.tempo.setValue(self.tempo.minimum())
        self.tempo.setToolTip("The song's tempo: beats and bars are then placed at exactly this tempo")
        self.tempo.editingFinished.connect(self._tempo_edited)
        self.double = self._button("×2", "Double the tempo (it was read at half speed)", "double_tempo")
        self.half = self._button("÷2", "Halve the tempo (it was read at double speed)", "half_tempo")
        # The tracker's next-best readings (Session.other_tempo_readings): one button takes the best,
        # its menu lists them all; hidden while there are none.
        self.reading = QToolButton()
        self.reading.setObjectName("TempoReading")
        self.reading.clicked.connect(lambda: self._use_reading(0))
        self.reading.hide()
        self._reading_factors: list[float] = []
        self._readings_shown: list[tuple[float, float]] | None = None
        self.meter = QComboBox()
        self.meter.addItems(list(METERS))
        self.meter.setToolTip("Time signature (6/8 and 12/8 count dotted beats)")
        self.meter.activated.connect(self._meter_chosen)
        self.downbeat = self._button("Downbeat here", "Bar 1 starts at the playhead", "set_downbeat")
        self.tap = self._button("Tap", "Tap on every beat (3 taps or more): the tempo is the median interval",
                                "tap_tempo")
        self.reset = self._button("Reset", "Forget the tempo corrections (back to the detected rhythm)",
                                  "reset_rhythm")

        row.addWidget(QLabel("Tempo"))
        row.addWidget(self.readout)
        for w in (self.tempo, self.double, self.half, self.reading, self.meter, self.downbeat, self.tap, self.reset):
            row.addWidget(w)
        row.addStretch(1)

        adapter.projectChanged.connect(lambda _e: self.refresh())
        adapter.analysisChanged.connect(self.refresh)
        adapter.tick.connect(self._on_tick)
        #: The value the box last showed (None: no tempo). Leaving the box unedited sets nothing,
        #: even where it follows the playhead and no longer holds the grid's one tempo.
        self._shown_bpm: float | None = None
        self._tip_grid = None  # the beat grid the box's tooltip describes

    def attach_timeline(self, timeline) -> None:
        """Right-click on the timeline: "Set downbeat here" at the clicked time."""
        self._timeline = timeline
        timeline.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        timeline.customContextMenuRequested.connect(self._timeline_menu)

    def timeline_menu(self, pos: QPoint) -> QMenu:
        """The timeline's context menu for a click at ``pos`` (widget coordinates)."""
        seconds = max(0.0, float(self._timeline.seconds_at(pos.x())))
        menu = QMenu(self._timeline)
        act = menu.addAction(f"Set downbeat here ({int(seconds // 60)}:{seconds % 60:05.2f})")
        act.triggered.connect(lambda: self.adapter.command("set_downbeat", seconds))
        act.setEnabled(self.downbeat.isEnabled())
        return menu

    def _timeline_menu(self, pos: QPoint) -> None:
        self.timeline_menu(pos).popup(self._timeline.mapToGlobal(pos))

    def _button(self, text: str, tip: str, command: str) -> QToolButton:
        b = QToolButton(text=text)
        b.setToolTip(tip)
        b.clicked.connect(lambda: self.adapter.command(command))
        return b

    def _tempo_edited(self) -> None:
        s = self.adapter.session
        if s is None:
            return
        if self._shown_bpm is None and self.tempo.value() == self.tempo.minimum():
            return  # focus left the empty box: no tempo was typed (it set the lowest one, 20.5 BPM)
        if self._shown_bpm is None or abs(self._shown_bpm - self.tempo.value()) >= 0.005:
            self.adapter.command("set_tempo_bpm", self.tempo.value())

    def use_daw_tempo(self) -> None:
        """Transport ▸ Use the DAW's tempo as the grid (Session.adopt_daw_tempo; undoable)."""
        what = self.adapter.command("adopt_daw_tempo")
        if what is not None:
            self.adapter.message.emit("info", f"The beat grid is now {what}")

    def _use_reading(self, index: int) -> None:
        if index < len(self._reading_factors):
            self.adapter.command("use_tempo_reading", self._reading_factors[index])

    def _refresh_readings(self, session) -> None:
        from bridge.session.api import reading_relation

        readings = session.other_tempo_readings()
        if readings == self._readings_shown:  # every edit refreshes the bar; the readings change with the analysis
            return
        self._readings_shown = readings
        self._reading_factors = [f for _, f in readings]
        if not readings:
            self.reading.hide()
            return
        lines = []
        menu = QMenu(self.reading) if len(readings) > 1 else None
        grid = session.analysis.beat_grid
        for i, (_bpm, f) in enumerate(readings):
            lines.append(f"{api.tempo_span_text(grid, f)} ({reading_relation(f)})")
            if menu is not None:
                menu.addAction(f"Use {lines[-1]}").triggered.connect(lambda _c=False, i=i: self._use_reading(i))
        span, first = grid.tempo_span, readings[0][1]
        self.reading.setText(f"or {readings[0][0]:.1f}?" if span is None
                             else f"or {span[0] * first:.0f}–{span[1] * first:.0f}?")
        old = self.reading.menu()
        self.reading.setMenu(menu)
        if old is not None:
            old.deleteLater()  # one menu per analysis, not one more each time
        self.reading.setPopupMode(QToolButton.ToolButtonPopupMode.MenuButtonPopup if menu is not None
                                  else QToolButton.ToolButtonPopupMode.DelayedPopup)
        self.reading.setToolTip("The next most likely readings of this song's beat: " + "; ".join(lines)
                                + ". Click to use the first (the arrow lists all; undoable). Which octave of a "
                                "beat to count is partly a convention, so check it against the song.")
        self.reading.show()

    def _meter_chosen(self, index: int) -> None:
        self.adapter.command("set_meter", None if index == 0 else self.meter.itemText(index))

    def _on_tick(self, state) -> None:
        self._refresh_readout()
        s = self.adapter.session
        if s is not None and s.analysis is not None and s.analysis.beat_grid.tempo_span is not None:
            self._show_tempo(s, state.position_seconds)  # a changing tempo: the one at the playhead

    def _show_tempo(self, session, at_seconds: float) -> None:
        """The box shows the song's tempo: where it changes (80 → 160), the tempo at the playhead, as
        a DAW's tempo field does (not the grid's one mean tempo, which the song never has); typing
        there sets one tempo for the whole song, and the tooltip says so."""
        if self.tempo.hasFocus():  # never under the producer's typing
            return
        readout = session.tempo_readout(at_seconds)
        shown = None if readout is None else round(float(readout[0]), 2)
        grid = None if session.analysis is None else session.analysis.beat_grid
        if grid is not self._tip_grid:  # once per grid, not on every tick
            self._tip_grid = grid
            self.tempo.setToolTip(
                "The song's tempo: beats and bars are then placed at exactly this tempo"
                if grid is None or grid.tempo_span is None else
                f"The song's tempo at the playhead; it changes ({api.tempo_span_text(grid)}). "
                "Typing a tempo here sets that one tempo for the whole song (undo with Ctrl+Z)")
        if shown == self._shown_bpm and (shown is not None or self.tempo.value() == self.tempo.minimum()):
            return
        self._shown_bpm = shown
        self.tempo.blockSignals(True)  # (a project opened after another kept that one's tempo)
        self.tempo.setValue(self.tempo.minimum() if shown is None else shown)
        self.tempo.blockSignals(False)

    def _refresh_readout(self) -> None:
        text = tempo_text(self.adapter.session)
        if text != self.readout.text():
            self.readout.setText(text)
            self.readout.setToolTip(text)

    def refresh(self) -> None:
        """Show the session's state (after an edit, undo or a new analysis)."""
        s = self.adapter.session
        self._refresh_readout()
        if s is None:
            self.reading.hide()
            self._readings_shown = None
            return
        meter = s.project.rhythm.meter
        self.meter.setCurrentIndex(METERS.index(meter) if meter in METERS else 0)
        self._show_tempo(s, s.transport().position_seconds)
        detected = s.project.tempo.source == "detect"  # a DAW tempo / tempo map is corrected in the DAW
        for w in (self.tempo, self.double, self.half, self.meter, self.downbeat, self.tap, self.reset):
            w.setEnabled(detected)
        self._refresh_readings(s)
