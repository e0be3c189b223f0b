"""Effects tab: the effect chain of one stem (or the master, the export mix) and a generic parameter
panel for the selected slot.

Every change is a Session command (add_fx / remove_fx / set_fx / move_fx / set_fx_state), so it is
undoable and saved; the panel rebuilds from the project after each change, undo included.

A slider drag is one command, sent on release (while it moves only the number beside it follows):
each command re-captures a hosted plugin's state and a stem's change re-analyses the stem, so one a
tick would queue dozens of analyses. Arrow keys, the wheel and the wet/dry spin boxes are coalesced
the same way: one command :data:`DEBOUNCE_MS` after the last step.

"Plugin window" opens a hosted plugin's own editor in a child process (bridge.plugins.editor): the
app keeps running while it is open; its state comes back as one undo step when it closes.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSlider,
    QSplitter,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

from bridge.session import BUILTIN_EFFECTS
from gui.panels import double_spin
from gui.session_adapter import SessionAdapter

MASTER = "Master (export mix)"
#: Built-ins offered first in the Add menu (the rest follow).
COMMON = ("LowpassFilter", "HighpassFilter", "Compressor", "Gain", "Reverb", "Delay", "Limiter")
COLUMNS = ("Effect", "Bypass", "Wet/dry")
SLIDER_STEPS = 1000
#: Quiet time after the last arrow/wheel/spin step before the change is sent as a command.
DEBOUNCE_MS = 300
#: A parameter column's least width (px: its name, a slider worth dragging, the value with its
#: unit); a wider pane shows its parameters in two or more columns, so more fit without scrolling.
PARAM_COLUMN_MIN_WIDTH = 330
#: Space (px) between a parameter's control and the next column's name.
PARAM_GAP = 16
SEARCH_MAX_WIDTH = 220


class Debouncer(QObject):
    """Holds the latest value and calls ``send(value)`` once, ``ms`` after the last :meth:`push`
    (or at once on :meth:`flush`)."""

    def __init__(self, send, ms: int = DEBOUNCE_MS, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.send = send
        self._value = None
        self._pending = False
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(ms)
        self.timer.timeout.connect(self.flush)

    def push(self, value) -> None:
        self._value, self._pending = value, True
        self.timer.start()

    def cancel(self) -> None:
        self.timer.stop()
        self._pending = False

    def flush(self) -> None:
        self.timer.stop()
        if self._pending:
            self._pending = False
            self.send(self._value)


def _add_choices() -> list[tuple[str, tuple[str, str | None]]]:
    """(label, (plugin, name) as add_fx takes them): the built-ins, then the scanned plugins."""
    out = [(n, (n, None)) for n in COMMON] + [(n, (n, None)) for n in BUILTIN_EFFECTS if n not in COMMON]
    try:
        from bridge.session import known_plugins

        out += [(f"{p.name} ({p.format})", (p.path, p.name)) for p in known_plugins().plugins]
    except Exception:  # noqa: BLE001 - an unreadable cache only hides the scanned plugins
        pass
    return out


class ParamRow(QWidget):
    """One float parameter: a slider (log for frequencies) and a spin box with its unit."""

    def __init__(self, info, commit, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.info = info
        self.commit = commit
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, SLIDER_STEPS)
        span = abs(info.maximum - info.minimum)
        decimals = 0 if span >= 1000 else 1 if span >= 50 else 2 if span >= 2 else 3
        self.spin = double_spin(info.minimum, info.maximum, value=info.value, decimals=decimals,
                                step=info.step or span / 100 or 0.01, suffix=f" {info.unit}" if info.unit else "")
        self.slider.setValue(self._to_slider(info.value))
        self.slider.valueChanged.connect(self._slid)
        self.slider.sliderReleased.connect(self._released)
        self.spin.valueChanged.connect(self._typed)
        self.debounce = Debouncer(lambda v: self.commit(self.info.name, v, True), parent=self)
        row.addWidget(self.slider, 1)
        row.addWidget(self.spin)

    def _to_slider(self, v: float) -> int:
        lo, hi = self.info.minimum, self.info.maximum
        if hi <= lo:
            return 0
        if self.info.log and lo > 0:
            f = (math.log(max(v, lo)) - math.log(lo)) / (math.log(hi) - math.log(lo))
        else:
            f = (v - lo) / (hi - lo)
        return round(min(1.0, max(0.0, f)) * SLIDER_STEPS)

    def _from_slider(self, pos: int) -> float:
        lo, hi, f = self.info.minimum, self.info.maximum, pos / SLIDER_STEPS
        if self.info.log and lo > 0:
            return math.exp(math.log(lo) + f * (math.log(hi) - math.log(lo)))
        return lo + f * (hi - lo)

    def show_value(self, v: float) -> None:
        """Show ``v`` (from the project: after an edit elsewhere, or undo) without a command."""
        if self.slider.isSliderDown() or self.debounce.timer.isActive():
            return  # the producer is moving it: their value wins until it is sent
        for w in (self.spin, self.slider):
            w.blockSignals(True)
        if abs(self.spin.value() - v) > 10 ** -self.spin.decimals() / 2:
            self.spin.setValue(v)
            self.slider.setValue(self._to_slider(v))
        for w in (self.spin, self.slider):
            w.blockSignals(False)

    def _slid(self, pos: int) -> None:
        self.spin.blockSignals(True)
        self.spin.setValue(self._from_slider(pos))
        self.spin.blockSignals(False)
        if not self.slider.isSliderDown():  # arrow keys, page steps, the wheel: coalesced
            self.debounce.push(self.spin.value())

    def _released(self) -> None:
        """The end of a drag: its one command."""
        self.debounce.cancel()
        self.commit(self.info.name, self.spin.value(), False)

    def _typed(self, v: float) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(self._to_slider(v))
        self.slider.blockSignals(False)
        self.debounce.push(v)  # Enter commits once; held spin arrows become one command


class _ParamGrid(QWidget):
    """The parameter pane's body: says when its width changes (the columns reflow)."""

    widthChanged = Signal(int)

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt)
        super().resizeEvent(event)
        if event.size().width() != event.oldSize().width():
            self.widthChanged.emit(event.size().width())


class EffectsPanel(QWidget):
    #: (stem or None, slot index, slot when opened, EditorResult): a plugin window closed (from its reader thread)
    editorClosed = Signal(object, int, object, object)

    def __init__(self, adapter: SessionAdapter, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.adapter = adapter
        self.editors: dict[tuple, object] = {}  # (stem, index) -> EditorWindow, while open
        self.editorClosed.connect(self._editor_closed, Qt.ConnectionType.QueuedConnection)
        self.param_rows: dict[str, QWidget] = {}
        self._shown: tuple | None = None  # (stem, index, plugin, name) the parameter panel shows
        self._table_shape: tuple | None = None
        # Left: the chain (what it belongs to, the Add picker, the slots, their order). Right: the
        # selected slot's parameters, full height (an 800-px-high window shows 2.5 of them when
        # the chain's buttons ran across the top), flowing into columns when the pane is wide.
        col = QVBoxLayout(self)
        col.setContentsMargins(8, 8, 8, 8)
        split = QSplitter(Qt.Orientation.Horizontal)
        left = QWidget()
        lcol = QVBoxLayout(left)
        lcol.setContentsMargins(0, 0, 0, 0)
        top = QHBoxLayout()
        top.addWidget(QLabel("Chain of"))
        self.target = QComboBox()
        self.target.setToolTip("A stem's chain is applied before analysis and in playback/export; the "
                               "master chain on the export mix")
        self.target.currentIndexChanged.connect(lambda _i: self.refresh())
        top.addWidget(self.target, 1)
        lcol.addLayout(top)
        adding = QHBoxLayout()  # under the list, as a DAW's device list has its + and − buttons
        adding.setSpacing(4)
        self.plugin = QComboBox()
        self.plugin.setToolTip("Pedalboard's built-in effects, then your scanned plugins "
                               "(stembridge plugins scan)")
        self.plugin.setMinimumContentsLength(10)  # a long plugin name does not widen the chain's pane
        self.plugin.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        adding.addWidget(self.plugin, 1)
        self.add_button = QPushButton("+ Add")
        self.add_button.clicked.connect(self.add_selected)
        adding.addWidget(self.add_button)
        self.remove_button = QPushButton("✕")
        self.remove_button.setToolTip("Remove the selected effect from the chain")
        self.remove_button.clicked.connect(self.remove_selected)
        self.up_button = QPushButton("▲")
        self.up_button.setToolTip("Move the selected effect earlier in the chain (the audio runs top to bottom)")
        self.up_button.clicked.connect(lambda: self.move_selected(-1))
        self.down_button = QPushButton("▼")
        self.down_button.setToolTip("Move the selected effect later in the chain")
        self.down_button.clicked.connect(lambda: self.move_selected(1))
        self.editor_button = QPushButton("Plugin window")
        self.editor_button.setToolTip("Open the selected plugin's own editor window (the app keeps running; "
                                      "its settings come back when you close it)")
        self.editor_button.clicked.connect(self.open_editor)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        header = self.table.horizontalHeader()  # the effect's name gets the room, not the wet/dry box
        header.setSectionResizeMode(0, header.ResizeMode.Stretch)
        header.setSectionResizeMode(1, header.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, header.ResizeMode.Fixed)  # cell widgets do not size their column
        header.resizeSection(2, double_spin(0, 100, value=100, decimals=0, suffix=" % wet").sizeHint().width() + 8)
        self.table.currentCellChanged.connect(lambda *_: self.show_params())
        lcol.addWidget(self.table, 1)
        for b in (self.remove_button, self.up_button, self.down_button):
            b.setStyleSheet("QPushButton { padding: 4px 8px; }")
            adding.addWidget(b)
        lcol.addLayout(adding)
        split.addWidget(left)
        right = QWidget()
        rcol = QVBoxLayout(right)
        rcol.setContentsMargins(0, 0, 0, 0)
        head = QHBoxLayout()
        self.title = QLabel("Select an effect to edit its parameters")
        self.title.setObjectName("Dim")
        self.title.setMinimumWidth(40)  # a long plugin name gives way to the search box
        head.addWidget(self.title, 1)
        head.addWidget(self.editor_button)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search parameters")
        self.search.setClearButtonEnabled(True)
        self.search.setMaximumWidth(SEARCH_MAX_WIDTH)
        self.search.textChanged.connect(self._filter)
        head.addWidget(self.search, 1)
        rcol.addLayout(head)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.params = _ParamGrid()
        self.params.widthChanged.connect(lambda _w: self._place_params())
        body = QVBoxLayout(self.params)
        body.setContentsMargins(0, 0, 0, 0)
        self.grid = QGridLayout()
        body.addLayout(self.grid)
        body.addStretch(1)  # the parameters stay at the top
        self.grid.setContentsMargins(4, 2, 4, 2)
        self.grid.setHorizontalSpacing(PARAM_GAP)
        self.grid.setVerticalSpacing(2)
        self.param_labels: dict[str, QLabel] = {}
        self._columns = 0  # how many parameter columns the grid holds now
        self.scroll.setWidget(self.params)
        rcol.addWidget(self.scroll, 1)
        split.addWidget(right)
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 1)  # a wider window widens the parameters, not the chain
        split.setSizes([320, 680])
        col.addWidget(split, 1)
        for label, what in _add_choices():
            self.plugin.addItem(label, what)
        adapter.projectChanged.connect(self._on_project)

    # -- where ---------------------------------------------------------------------------------
    def stem(self) -> str | None:
        """The chain being edited: a stem's name, None for the master."""
        text = self.target.currentText()
        return None if text == MASTER or not text else text

    def _chain(self) -> list:
        s = self.adapter.session
        if s is None:
            return []
        stem = self.stem()
        if stem is not None and stem not in {st.name for st in s.project.stems}:
            return []
        return s.fx_chain(stem)

    def current_index(self) -> int | None:
        r = self.table.currentRow()
        return r if 0 <= r < len(self._chain()) else None

    # -- commands ------------------------------------------------------------------------------
    def add_effect(self, plugin: str, name: str | None = None) -> int | None:
        index = self.adapter.command("add_fx", self.stem(), plugin, name=name)
        if index is not None:
            self.table.setCurrentCell(index, 0)
        return index

    def add_selected(self) -> None:
        what = self.plugin.currentData()
        if what:
            self.add_effect(*what)

    def remove_selected(self) -> None:
        i = self.current_index()
        if i is not None:
            self.adapter.command("remove_fx", self.stem(), i)

    def move_selected(self, step: int) -> None:
        i = self.current_index()
        if i is None or not 0 <= i + step < len(self._chain()):
            return
        self.adapter.command("move_fx", self.stem(), i, i + step)
        self.table.setCurrentCell(i + step, 0)

    def open_editor(self) -> None:
        """The selected plugin's own window, in a child process; a sentence instead when it cannot open."""
        from bridge.session import BridgeError, open_editor

        i = self.current_index()
        if i is None:
            return
        stem, slot = self.stem(), self._chain()[i]
        key = (stem, i)
        if key in self.editors and self.editors[key][0].running:
            self.adapter.message.emit("info", f"{slot.label}'s window is already open")
            return
        try:
            editor = open_editor(
                slot, lambda result, stem=stem, i=i, slot=slot: self.editorClosed.emit(stem, i, slot, result))
        except BridgeError as e:
            self.adapter.message.emit("error", str(e))
            return
        self.editors[key] = (editor, slot)
        self.adapter.message.emit("info", f"{slot.label}'s window is open; close it to keep its settings")

    def _editor_closed(self, stem, index: int, opened, result) -> None:
        if self.editors.pop((stem, index), None) is None:
            return  # applied by close_editors already
        self._apply_editor_result(stem, index, opened, result)

    def _apply_editor_result(self, stem, index: int, opened, result) -> None:
        if result.error is not None:
            self.adapter.message.emit("error", result.error)
            return
        s = self.adapter.session
        if s is None:
            return
        chain = s.fx_chain(stem) if stem is None or stem in {x.name for x in s.project.stems} else []
        now = chain[index] if index < len(chain) else None
        if now is None or (now.plugin, now.name) != (opened.plugin, opened.name):
            self.adapter.message.emit("error", f"{opened.label} was moved or removed while its window was open; "
                                               "what was set in the window is not kept")
            return
        # Replaces "…'s window is open" at once: that sentence stayed up to 6 s after the window
        # had closed. A refused state replaces this one with the error (adapter.command).
        changed = ", ".join(result.changed)
        self.adapter.message.emit("info", f"{opened.label}'s window closed; its settings are kept "
                                          + (f"(changed: {changed})" if changed else "(no parameter changed)"))
        self.adapter.command("set_fx_state", stem, index, result.raw_state, result.parameters)

    def close_editors(self, wait_s: float = 5.0) -> None:
        """Close every open plugin window and keep what was set in it (the app is quitting: the
        results are applied here, before the session closes, not from the event loop)."""
        for editor, _slot in self.editors.values():
            editor.close()
        for (stem, index), (editor, slot) in list(self.editors.items()):
            result = editor.wait(wait_s)
            if result is None:
                editor.kill()
            else:
                self._apply_editor_result(stem, index, slot, result)
        self.editors.clear()

    def set_param(self, name: str, value, coalesce: bool = False, *, target: tuple | None = None) -> None:
        """Set a parameter of the selected slot, or of ``target`` = (stem, index): the slot a panel row
        was built for (a debounced change may arrive after the selection moved on)."""
        stem, i = target if target is not None else (self.stem(), self.current_index())
        if i is not None:
            self.adapter.command("set_fx", stem, i, parameters={name: value}, coalesce=coalesce)

    # -- showing -------------------------------------------------------------------------------
    def _on_project(self, event=None) -> None:
        if event is None or {"stems", "master_fx"} & set(event.parts):
            self.refresh()

    def refresh(self) -> None:
        s = self.adapter.session
        if s is None:
            return
        names = [st.name for st in s.project.stems] + [MASTER]
        if [self.target.itemText(i) for i in range(self.target.count())] != names:
            keep = self.target.currentText()
            self.target.blockSignals(True)
            self.target.clear()
            self.target.addItems(names)
            self.target.setCurrentIndex(max(0, names.index(keep)) if keep in names else 0)
            self.target.blockSignals(False)
        stem = self.stem()
        chain = self._chain()
        row = self.table.currentRow()
        self.table.blockSignals(True)
        shape = (stem, [slot.label for slot in chain])
        if shape != self._table_shape:  # a different chain: new rows
            self._table_shape = shape
            self.table.setRowCount(len(chain))
            for r, slot in enumerate(chain):
                name = QLabel(slot.label)
                name.setToolTip(slot.plugin)
                bypass = QCheckBox()
                bypass.toggled.connect(lambda v, i=r: self.adapter.command("set_fx", stem, i, bypass=v))
                mix = double_spin(0, 100, decimals=0, step=5, suffix=" % wet")
                mix.debounce = Debouncer(lambda v, i=r: self.adapter.command("set_fx", stem, i, mix=v / 100,
                                                                              coalesce=True), parent=mix)
                mix.valueChanged.connect(mix.debounce.push)
                for c, w in enumerate((name, bypass, mix)):
                    self.table.setCellWidget(r, c, w)
        for r, slot in enumerate(chain):  # the values, in place (a row being edited keeps its widgets)
            bypass, mix = self.table.cellWidget(r, 1), self.table.cellWidget(r, 2)
            for w in (bypass, mix):
                w.blockSignals(True)
            bypass.setChecked(slot.bypass)
            if not mix.debounce.timer.isActive():
                mix.setValue(slot.mix * 100)
            for w in (bypass, mix):
                w.blockSignals(False)
        if chain:
            self.table.setCurrentCell(min(max(row, 0), len(chain) - 1), 0)
        self.table.blockSignals(False)
        self.show_params()

    def show_params(self) -> None:
        """Rebuild the parameter panel for the selected slot (unless it already shows that slot)."""
        from bridge.session import BridgeError, describe_parameters

        i = self.current_index()
        slot = self._chain()[i] if i is not None else None
        key = (self.stem(), i, None if slot is None else (slot.plugin, slot.name))
        if key == self._shown and slot is not None:  # the same slot: its values, in place
            self.title.setText(f"{slot.label}" + ("  (bypassed)" if slot.bypass else ""))
            try:
                for info in describe_parameters(slot):
                    self._show_value(info.name, info.value)
            except BridgeError:
                pass
            return
        for w in list(self.param_rows.values()):  # a change still waiting goes to the slot it was made on
            if isinstance(w, ParamRow):
                w.debounce.flush()
        if self._shown == key:  # …whose refresh has built this panel already
            return
        self._shown = key
        self.editor_button.setEnabled(slot is not None and not slot.is_builtin)
        for w in (*self.param_rows.values(), *self.param_labels.values()):
            self.grid.removeWidget(w)
            w.deleteLater()
        self.param_rows, self.param_labels = {}, {}
        self._columns = 0
        if slot is None:
            self.title.setText("Select an effect to edit its parameters")
            return
        self.title.setText(f"{slot.label}" + ("  (bypassed)" if slot.bypass else ""))
        try:
            infos = describe_parameters(slot)
        except BridgeError as e:
            self.title.setText(f"{slot.label}: {e}")
            return
        target = (self.stem(), i)
        for info in infos:
            if info.kind == "bool":
                w = QCheckBox()
                w.setChecked(bool(info.value))
                w.toggled.connect(lambda v, n=info.name: self.set_param(n, v, target=target))
            elif info.kind == "choice":
                w = QComboBox()
                w.addItems(info.choices)
                w.setCurrentText(str(info.value))
                w.activated.connect(lambda _i, n=info.name, c=w: self.set_param(n, c.currentText(), target=target))
            else:
                w = ParamRow(info, lambda n, v, c, t=target: self.set_param(n, v, c, target=t))
            label = QLabel(info.name.replace("_", " "))
            label.setToolTip(info.name)
            self.param_labels[info.name] = label
            self.param_rows[info.name] = w
        self._filter(self.search.text())

    def _show_value(self, name: str, value) -> None:
        w = self.param_rows.get(name)
        if w is None:
            return
        w.blockSignals(True)
        if isinstance(w, ParamRow):
            w.show_value(float(value))
        elif isinstance(w, QCheckBox):
            w.setChecked(bool(value))
        elif isinstance(w, QComboBox):
            w.setCurrentText(str(value))
        w.blockSignals(False)

    def _filter(self, text: str) -> None:
        self._place_params(force=True)

    def param_columns(self) -> int:
        """How many label + control columns fit the parameter pane's width (at least one)."""
        return max(1, (self.params.width() + PARAM_GAP) // (PARAM_COLUMN_MIN_WIDTH + PARAM_GAP))

    def _place_params(self, *, force: bool = False) -> None:
        """Lay the parameters that match the search out left to right, top to bottom, in as many
        columns as fit; the others are hidden. Runs again when the pane's width changes the count."""
        columns = self.param_columns()
        if force or columns != self._columns:
            self._place_params_in(columns)

    def _place_params_in(self, columns: int) -> None:
        self._columns = columns
        text = self.search.text().strip().lower()
        for name, w in self.param_rows.items():
            for x in (self.param_labels[name], w):
                self.grid.removeWidget(x)
                x.hide()
        for c in range(self.grid.columnCount()):
            self.grid.setColumnStretch(c, 0)
        shown = [n for n in self.param_rows if not text or text in n.lower()]
        for k, name in enumerate(shown):
            r, c = divmod(k, columns)
            self.grid.addWidget(self.param_labels[name], r, 2 * c)
            self.grid.addWidget(self.param_rows[name], r, 2 * c + 1)
            self.param_labels[name].show()
            self.param_rows[name].show()
        for c in range(columns):
            self.grid.setColumnStretch(2 * c + 1, 1)
        if columns > 1 and self.params.layout().minimumSize().width() > self.params.width():
            self._place_params_in(columns - 1)  # long names: fewer columns rather than a sideways scroll
