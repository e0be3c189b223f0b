"""Mapping editor: per stem, each mapping as one row (two lines when the editor is too narrow for
one: curve, attack/release and range on the second) — mute, solo, source feature → target parameter,
amount and offset (in the target's unit, shown beside them), curve, attack/release, range (clamp), duplicate, delete — with
a live meter of the target parameter at the playhead, a plot of the selected mapping's output over
the seconds around the playhead, and the mapping presets. Every change is a Session command (slider
drags coalesce into one undo step); solo is monitoring (Session.set_mapping_solo: the preview
evaluates only the soloed mappings; not saved). Keys: Delete removes the selected mapping, Ctrl+D
duplicates it, Alt+Up/Down move it.
"""

from __future__ import annotations

from math import ceil, floor

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPointF, Qt
from PySide6.QtGui import QColor, QKeySequence, QPainter, QPen, QPolygonF, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from bridge.session import (
    MIX,
    OSCILLATOR_SHAPES,
    PARAMETER_NAMES,
    PARAMETERS,
    STEM_FEATURES,
    unit_of,
)
from gui.session_adapter import SessionAdapter

CURVES = ("linear", "exp", "smoothstep")
OSCILLATORS = "Oscillators (beat / bar)"
#: The stem picker's entry for the mix as heard (mapping sources ``mix.FEATURE``).
MIX_ENTRY = "Mix (all stems, as heard)"
#: A mapping row's columns, left to right, and the header over each ("" = none: the M and S buttons
#: name themselves, as in a DAW; "range" spans min and max).
COLUMNS = ("marker", "mute", "solo", "source", "arrow", "target", "amount", "offset", "unit", "curve", "attack",
           "release", "lo", "hi", "meter", "up", "down", "duplicate", "delete")
HEADERS = {"source": "source", "target": "target", "amount": "amount", "offset": "offset", "unit": "unit",
           "curve": "curve", "attack": "attack", "release": "release", "lo": "range", "meter": "value"}
#: The columns that move to a row's second line (its detail line) when the editor is too narrow for
#: one line (a 960-px window): the curve's shape, the smoothing and the range, set once and seldom
#: touched while playing; the source, target, amount, offset and the live value stay on the first line.
SECONDARY = ("curve", "attack", "release", "lo", "hi")
#: Widest amount/offset spin box (px; "-100.000" and its arrows) and attack/release/range one: with
#: these and the grid's spacing a mapping row fits a 1280-px window without a scrollbar.
ROW_SPIN_WIDTH = 80
ROW_SMALL_SPIN_WIDTH = 70
ROW_SPACING = 4
#: Room (px) after each header's text and after the unit, so neighbouring labels ("UNIT", "CURVE")
#: never run together.
LABEL_GAP = 10
#: The value meter's widest (px): past it a wide window's room goes after the row, not into the meter.
METER_MAX_WIDTH = 420
#: The curve view shows the selected mapping from CURVE_BEFORE_S before the playhead to CURVE_SPAN_S later.
CURVE_BEFORE_S = 1.0
CURVE_SPAN_S = 5.0


def _spin(lo: float, hi: float, step: float, decimals: int, suffix: str = "") -> QDoubleSpinBox:
    s = QDoubleSpinBox()
    s.setRange(lo, hi)
    s.setSingleStep(step)
    s.setDecimals(decimals)
    s.setSuffix(suffix)
    s.setKeyboardTracking(False)
    s.setMaximumWidth(ROW_SPIN_WIDTH)  # a row of nineteen columns fits a 1280-px window
    return s


def _tool(text: str, tip: str, *, checkable: bool = False) -> QToolButton:
    b = QToolButton()
    b.setText(text)
    b.setToolTip(tip)
    b.setCheckable(checkable)
    b.setAutoRaise(True)
    return b


def _min_width(w: QWidget) -> int:
    """The least width (px) a layout gives ``w`` (Qt's qSmartMinSize: the minimum size hint when
    the widget may shrink, else its size hint; a set minimum wins; never past its maximum)."""
    w.ensurePolished()
    policy = w.sizePolicy().horizontalPolicy()
    if policy == QSizePolicy.Policy.Ignored:
        least = 0
    elif policy.value & QSizePolicy.PolicyFlag.ShrinkFlag.value:
        least = w.minimumSizeHint().width()
    else:
        least = max(w.sizeHint().width(), w.minimumSizeHint().width())
    if w.minimumWidth() > 0:
        least = w.minimumWidth()
    return min(least, w.maximumWidth())


def _target_tip(target: str) -> str:
    spec = PARAMETERS.get(target)
    if spec is None:
        return f"{target}: added to the shader input's default (in the input's own scale)"
    unit = f" {spec.unit}" if spec.unit else ""
    return f"{target}: {spec.doc}. Range {spec.minimum:g} … {spec.maximum:g}{unit}."


class MappingRow:
    """The widgets of one mapping (index into project.mappings), on grid line ``r`` of the editor;
    ``compact``: the :data:`SECONDARY` columns go on a detail line below (grid line ``r + 1``),
    under the source and target, each with its name beside it."""

    def __init__(self, editor: MappingEditor, index: int, grid: QGridLayout, r: int, *,
                 compact: bool = False) -> None:
        self.editor, self.index = editor, index
        self.marker = QLabel("")
        self.marker.setFixedWidth(12)
        self.mute = _tool("M", "Mute this mapping (saved: the mapping's 'enabled' is off)", checkable=True)
        self.solo = _tool("S", "Solo: the preview shows only the soloed mappings (monitoring, not saved)",
                          checkable=True)
        self.source = QComboBox()
        self.target = QComboBox()
        self.target.addItems(editor.current_targets)
        self.amount = _spin(-100, 100, 0.05, 3)
        self.offset = _spin(-100, 100, 0.05, 3)
        self.unit = QLabel("")  # the unit of amount, offset and range: the target's
        self.unit.setContentsMargins(0, 0, LABEL_GAP, 0)
        self.curve = QComboBox()
        self.curve.addItems(CURVES)
        self.attack = _spin(0, 10000, 5, 0, " ms")
        self.release = _spin(0, 10000, 10, 0, " ms")
        self.lo = _spin(-1000, 1000, 0.05, 2)
        self.hi = _spin(-1000, 1000, 0.05, 2)
        for w in (self.lo, self.hi, self.attack, self.release):
            w.setMaximumWidth(ROW_SMALL_SPIN_WIDTH)
        self.lo.setSpecialValueText("—")
        self.hi.setSpecialValueText("—")
        self.meter = QProgressBar()
        self.meter.setRange(0, 1000)
        self.meter.setTextVisible(False)
        self.meter.setMaximumHeight(10)
        self.meter.setMinimumWidth(40)
        self.meter.setMaximumWidth(METER_MAX_WIDTH)  # on a 4K screen the row's buttons stay beside it
        self.up = _tool("▲", "Move up (Alt+Up)")
        self.down = _tool("▼", "Move down (Alt+Down)")
        for b in (self.up, self.down, self.mute, self.solo):
            on = {"M": "#d9534f", "S": "#e8c547"}.get(b.text(), "#3ddc97")  # mute red, solo yellow
            b.setStyleSheet("QToolButton { padding: 3px 5px; }"
                            f"QToolButton:checked {{ background: {on}; color: #111; }}")
        self.duplicate = _tool("Dup", "Duplicate this mapping (Ctrl+D)")
        self.delete = _tool("✕", "Delete this mapping (Delete)")
        self.columns = {"marker": self.marker, "mute": self.mute, "solo": self.solo, "source": self.source,
                        "arrow": QLabel("→"), "target": self.target, "amount": self.amount, "offset": self.offset,
                        "unit": self.unit, "curve": self.curve, "attack": self.attack, "release": self.release,
                        "lo": self.lo, "hi": self.hi, "meter": self.meter, "up": self.up, "down": self.down,
                        "duplicate": self.duplicate, "delete": self.delete}
        self.compact = compact
        self.detail: QWidget | None = None  # the detail line (compact only)
        labels: list[QWidget] = []
        for c, name in enumerate(COLUMNS):
            if not (compact and name in SECONDARY):
                grid.addWidget(self.columns[name], r, c)
        if compact:
            self.detail = QWidget()
            line = QHBoxLayout(self.detail)
            line.setContentsMargins(0, 0, 0, 6)  # a gap before the next mapping's first line
            line.setSpacing(ROW_SPACING)
            for text, w in (("curve", self.curve), ("attack", self.attack), ("release", self.release),
                            ("range", self.lo), ("…", self.hi)):
                lab = QLabel(text.upper())
                lab.setObjectName("Header")
                if text != "curve":
                    lab.setContentsMargins(LABEL_GAP if text != "…" else 0, 0, 0, 0)
                labels.append(lab)
                line.addWidget(lab)
                line.addWidget(w)
            line.addStretch(1)
            grid.addWidget(self.detail, r + 1, COLUMNS.index("source"), 1, len(COLUMNS) - COLUMNS.index("source"))
        #: every widget of the row, both lines (what a click selects the mapping by)
        self.widgets = (*self.columns.values(), *labels, *([self.detail] if self.detail else []))
        for w in self.widgets:
            w.installEventFilter(editor.selector)
        self.mute.toggled.connect(lambda v: self._set(enabled=not v))
        self.solo.toggled.connect(lambda v: editor.set_solo(self.index, v))
        self.source.activated.connect(lambda i: self._set(source=self.source.itemData(i)))
        self.target.activated.connect(lambda i: self._set(target=self.target.itemText(i)))
        self.amount.valueChanged.connect(lambda v: self._set(coalesce=True, amount=v))
        self.offset.valueChanged.connect(lambda v: self._set(coalesce=True, offset=v))
        self.curve.activated.connect(lambda i: self._set(curve=self.curve.itemText(i)))
        self.attack.valueChanged.connect(lambda v: self._set(coalesce=True, attack_ms=v))
        self.release.valueChanged.connect(lambda v: self._set(coalesce=True, release_ms=v))
        self.lo.valueChanged.connect(self._clamp_changed)
        self.hi.valueChanged.connect(self._clamp_changed)
        self.up.clicked.connect(lambda: editor.move_mapping(self.index, -1))
        self.down.clicked.connect(lambda: editor.move_mapping(self.index, +1))
        self.duplicate.clicked.connect(lambda: editor.duplicate_mapping(self.index))
        self.delete.clicked.connect(lambda: editor.delete_mapping(self.index))

    def _set(self, *, coalesce: bool = False, **changes) -> None:
        self.editor.select(self.index)
        self.editor.adapter.command("update_mapping", self.index, coalesce=coalesce, **changes)

    def _clamp_changed(self) -> None:
        lo, hi = self.lo.value(), self.hi.value()
        if lo == self.lo.minimum() or hi == self.hi.minimum():
            self._set(clamp=None)
        elif lo <= hi:
            self._set(coalesce=True, clamp=(lo, hi))

    def set_selected(self, on: bool) -> None:
        self.marker.setText("▶" if on else "")

    def show(self, mapping, source_items: list[tuple[str, str]], soloed: bool) -> None:
        for w in self.widgets:
            w.blockSignals(True)
        self.mute.setChecked(not mapping.enabled)
        self.solo.setChecked(soloed)
        self.source.clear()
        for label, value in source_items:
            self.source.addItem(label, value)
        i = self.source.findData(mapping.source)
        if i < 0:
            self.source.addItem(mapping.source, mapping.source)
            i = self.source.count() - 1
        self.source.setCurrentIndex(i)
        if self.target.findText(mapping.target) < 0:  # e.g. shader:NAME of another look
            self.target.addItem(mapping.target)
        self.target.setCurrentText(mapping.target)
        tip = _target_tip(mapping.target)
        self.unit.setText(unit_of(mapping.target))
        self.unit.setToolTip(tip)
        for w in (self.lo, self.hi):
            w.setToolTip(f"The mapping's output is kept in this range (— = none). {tip}")
        self.amount.setToolTip(f"Amount: the output at full source level. {tip}")
        self.offset.setToolTip(f"Offset: added to the output (amount × curve + offset). {tip}")
        self.target.setToolTip(tip)
        self.amount.setValue(mapping.amount)
        self.offset.setValue(mapping.offset)
        self.curve.setCurrentText(mapping.curve)
        self.attack.setValue(mapping.attack_ms)
        self.release.setValue(mapping.release_ms)
        if mapping.clamp is None:
            self.lo.setValue(self.lo.minimum())
            self.hi.setValue(self.hi.minimum())
        else:
            self.lo.setValue(mapping.clamp[0])
            self.hi.setValue(mapping.clamp[1])
        for w in self.widgets:
            w.blockSignals(False)


class _RowSelector(QObject):
    """Clicking or focusing any widget of a row selects its mapping (for the curve view and Delete)."""

    def __init__(self, editor: MappingEditor) -> None:
        super().__init__(editor)
        self.editor = editor

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt)
        if event.type() in (QEvent.Type.MouseButtonPress, QEvent.Type.FocusIn):
            for row in self.editor.rows:
                if obj in row.widgets:
                    self.editor.select(row.index)
                    break
        return False


class MappingCurve(QWidget):
    """The selected mapping's output (its target column, evaluated with that mapping alone) over
    ``times`` (seconds): a QPainter plot with the playhead as a vertical line."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(60)  # a 640-px-high window keeps a whole two-line mapping row above it
        self.setMaximumHeight(360)
        self.times = np.zeros(0)
        self.values = np.zeros(0)
        self.title = "Select a mapping to see its curve"
        self.playhead_s = 0.0
        self.muted = False

    def set_curve(self, times: np.ndarray, values: np.ndarray, title: str, *, muted: bool = False) -> None:
        self.times, self.values, self.title, self.muted = times, values, title, muted
        self.update()

    def clear(self, title: str) -> None:
        self.set_curve(np.zeros(0), np.zeros(0), title)

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt)
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        w, h = self.width(), self.height()
        p.fillRect(0, 0, w, h, QColor(18, 20, 26))
        p.setPen(QColor(170, 175, 185))
        p.drawText(6, 14, self.title)
        if self.times.size < 2:
            return
        top, bottom = 20.0, h - 6.0
        t0, t1 = float(self.times[0]), float(self.times[-1])
        lo, hi = float(np.min(self.values)), float(np.max(self.values))
        if hi - lo < 1e-9:
            lo, hi = lo - 0.5, hi + 0.5
        x = (self.times - t0) / ((t1 - t0) or 1.0) * (w - 1)
        y = bottom - (self.values - lo) / (hi - lo) * (bottom - top)
        p.setPen(QColor(90, 95, 105))
        span = f"{lo:.3g} … {hi:.3g}"
        p.drawText(w - 6 - p.fontMetrics().horizontalAdvance(span), 14, span)
        colour = QColor(120, 120, 120) if self.muted else QColor(90, 200, 255)
        p.setPen(QPen(colour, 1.5))
        p.drawPolyline(QPolygonF([QPointF(a, b) for a, b in zip(x.tolist(), y.tolist(), strict=True)]))
        if t0 <= self.playhead_s <= t1:
            px = (self.playhead_s - t0) / ((t1 - t0) or 1.0) * (w - 1)
            p.setPen(QPen(QColor(255, 200, 80), 1.0))
            p.drawLine(QPointF(px, top), QPointF(px, bottom))


class MappingEditor(QWidget):
    def __init__(self, adapter: SessionAdapter, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.adapter = adapter
        self.rows: list[MappingRow] = []
        self.selected: int | None = None  # index into project.mappings
        self.selector = _RowSelector(self)
        self._curve_key: tuple | None = None  # what the curve view shows (mapping, window)
        self.current_targets: list[str] = list(PARAMETER_NAMES)
        self.compact = False  # rows on two lines (the editor is too narrow for one): see fit_rows
        col = QVBoxLayout(self)
        col.setContentsMargins(8, 8, 8, 8)
        top = QHBoxLayout()
        self.stem = QComboBox()
        self.stem.setMinimumWidth(160)
        self.stem.activated.connect(lambda _: self.rebuild())
        self.add_button = QPushButton("+ Mapping")
        self.add_button.clicked.connect(self.add_mapping)
        self.preset = QComboBox()
        self.preset.addItem("Apply preset…")
        self.preset.setToolTip("Replace the mappings with a preset (undo with Ctrl+Z); your own presets "
                               "are listed after the shipped ones")
        self.preset.activated.connect(self.apply_preset)
        self.save_preset_button = QPushButton("Save preset…")
        self.save_preset_button.setToolTip("Save these mappings as your own preset (kept for every project)")
        self.save_preset_button.clicked.connect(lambda: self.save_preset())
        self.delete_preset_button = QPushButton("Delete preset…")
        self.delete_preset_button.setToolTip("Delete one of your own presets")
        self.delete_preset_button.clicked.connect(lambda: self.delete_preset())
        top.addWidget(QLabel("Stem"))
        top.addWidget(self.stem)
        top.addWidget(self.add_button)
        top.addStretch(1)
        top.addWidget(self.preset)
        top.addWidget(self.save_preset_button)
        top.addWidget(self.delete_preset_button)
        col.addLayout(top)
        self.area = QScrollArea()
        self.area.setWidgetResizable(True)
        self.area.setFrameShape(QScrollArea.Shape.NoFrame)
        col.addWidget(self.area, 3)
        self.curve_view = MappingCurve()
        col.addWidget(self.curve_view, 1)  # a tall editor (a 4K screen) gives the curve room too
        self._structure: tuple | None = None
        self._headers: list[tuple[int, QLabel]] = []  # (column, header label) as built
        for keys, slot in (("Ctrl+D", self.duplicate_mapping), ("Alt+Up", lambda: self.move_mapping(None, -1)),
                           ("Alt+Down", lambda: self.move_mapping(None, 1))):
            QShortcut(QKeySequence(keys), self, context=Qt.ShortcutContext.WidgetWithChildrenShortcut,
                      activated=slot)
        adapter.projectChanged.connect(self.on_project_changed)
        adapter.analysisChanged.connect(self.refresh_curve)
        adapter.tick.connect(self.on_tick)

    # -- structure ----------------------------------------------------------------------------
    def _stem_names(self) -> list[str]:
        s = self.adapter.session
        if not s:
            return []
        names = [st.name for st in s.project.stems]
        mix = [] if any(n.casefold() == MIX for n in names) else [MIX_ENTRY]
        return names + mix + [OSCILLATORS]

    def _prefix(self) -> str:
        """The source prefix of the picked entry: a stem's name, or ``mix``."""
        stem = self.stem.currentText()
        return MIX if stem == MIX_ENTRY else stem

    def _indices(self) -> list[int]:
        """The mappings of the picked entry, as bridge reads their sources (Session.mapping_indices:
        by stem name in any case or by role; the mix; the oscillators)."""
        s = self.adapter.session
        if s is None:
            return []
        if self.stem.currentText() == OSCILLATORS:
            return s.mapping_indices(oscillators=True)
        return s.mapping_indices(self._prefix())

    def _source_items(self) -> list[tuple[str, str]]:
        stem = self.stem.currentText()
        # what the engine resolves, from its own lists (a stem's features, the drum parts inside a
        # drums stem included; every oscillator shape)
        if stem == OSCILLATORS:
            return [(f"{c}.{f}", f"{c}.{f}") for c in ("beat", "bar") for f in OSCILLATOR_SHAPES]
        return [(f, f"{self._prefix()}.{f}") for f in STEM_FEATURES]

    def on_project_changed(self, event) -> None:
        s = self.adapter.session
        if s is None:
            return
        if self.preset.count() == 1:
            self.refresh_presets()
        names = self._stem_names()
        if [self.stem.itemText(i) for i in range(self.stem.count())] != names:
            current = self.stem.currentText()
            self.stem.clear()
            self.stem.addItems(names)
            if current in names:
                self.stem.setCurrentText(current)
        self.rebuild(force=False)
        self.refresh_curve()

    @property
    def targets(self) -> list[str]:
        """Visual parameters, then the inputs of the project's shader look (``shader:NAME``)."""
        s = self.adapter.session
        extra: list[str] = []
        if s is not None and s.project.engine.name == "shader":
            from bridge.session import shader_targets

            extra = shader_targets(s.project.engine.look)
        return [*PARAMETER_NAMES, *extra]

    def rebuild(self, *, force: bool = True) -> None:
        s = self.adapter.session
        if s is None:
            return
        indices = self._indices()
        structure = (self.stem.currentText(), tuple(indices), s.project.engine.name, s.project.engine.look,
                     self.compact)
        if force or structure != self._structure:
            self._structure = structure
            body = QWidget()
            grid = QGridLayout(body)
            grid.setContentsMargins(0, 4, 0, 4)
            grid.setHorizontalSpacing(ROW_SPACING)
            compact = self.compact
            self._headers = []
            for c, name in enumerate(COLUMNS):
                h = HEADERS.get(name)
                if not h or (compact and name in SECONDARY):
                    continue
                lab = QLabel(h.upper())
                lab.setObjectName("Header")
                lab.setContentsMargins(0, 0, LABEL_GAP, 0)  # "UNIT" and "CURVE" apart, not one word
                self._headers.append((c, lab))
                if name == "lo":  # one header over min and max: two headers would widen both columns
                    lab.setToolTip("The mapping's output is kept between min and max (— = no limit)")
                    grid.addWidget(lab, 0, c, 1, 2)
                else:
                    grid.addWidget(lab, 0, c)
            self.current_targets = self.targets  # read the look once per rebuild, not per row
            lines = 2 if compact else 1
            self.rows = [MappingRow(self, i, grid, 1 + lines * r, compact=compact) for r, i in enumerate(indices)]
            if self.selected not in indices:
                self.selected = indices[0] if indices else None
            if not indices:
                grid.addWidget(QLabel("No mappings from this stem yet: “+ Mapping” adds one."), 1, 0, 1, len(COLUMNS))
            grid.setRowStretch(lines * len(indices) + 2, 1)
            grid.setColumnStretch(COLUMNS.index("meter"), 1)
            grid.setColumnStretch(len(COLUMNS), 1)  # room past METER_MAX_WIDTH goes after the row's buttons
            self.area.setWidget(body)
            self.area.setMinimumHeight(self._first_mapping_height(grid))
        items = self._source_items()
        solo = s.mapping_solo
        for row in self.rows:
            row.show(s.project.mappings[row.index], items, row.index in solo)
            row.set_selected(row.index == self.selected)
        self.refresh_curve()
        self.fit_rows()

    # -- one line or two ----------------------------------------------------------------------
    def _first_mapping_height(self, grid: QGridLayout) -> int:
        """The height (px) that shows the headers and the first mapping whole (both its lines):
        the list's least height, so a short window (640 px) scrolls the rows, not a row in half."""
        spacing = max(0, grid.verticalSpacing())
        top, _, _, bottom = grid.getContentsMargins()
        heights = [max((lab.sizeHint().height() for _, lab in self._headers), default=0)]
        if self.rows:
            row = self.rows[0]
            heights.append(max(w.sizeHint().height() for n, w in row.columns.items()
                               if not (row.compact and n in SECONDARY)))
            if row.detail is not None:
                heights.append(row.detail.sizeHint().height())
        return top + bottom + sum(heights) + spacing * (len(heights) - 1) + 2 * self.area.frameWidth()

    def one_line_width(self) -> int:
        """The narrowest (px) the rows can be laid out on one line: per column the widest minimum
        of its widgets (the header's included), plus the spacing between columns — what the grid
        needs in one-line mode, measured from the rows' own widgets whichever mode shows them."""
        widest: dict[int, int] = {}
        for row in self.rows:
            for c, name in enumerate(COLUMNS):
                widest[c] = max(widest.get(c, 0), _min_width(row.columns[name]))
        for c, lab in self._headers:
            if COLUMNS[c] != "lo":  # spans min and max, both wider than it
                widest[c] = max(widest.get(c, 0), _min_width(lab))
        used = [w for w in widest.values() if w > 0]
        return sum(used) + ROW_SPACING * max(0, len(used) - 1)

    def available_width(self) -> int:
        """The width (px) the rows get: the scroll area's, less a vertical scrollbar (counted
        whether shown or not, so a second line that brings one cannot flip the mode back)."""
        return self.area.width() - 2 * self.area.frameWidth() - self.area.verticalScrollBar().sizeHint().width()

    def fit_rows(self) -> None:
        """Two-line rows (:data:`SECONDARY` on a detail line) when one line would not fit the
        editor's width, one line when it does; rebuilds when that changes."""
        if not self.rows:
            return
        compact = self.one_line_width() > self.available_width()
        if compact != self.compact:
            self.compact = compact
            self.rebuild()

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt)
        super().resizeEvent(event)
        self.fit_rows()

    # -- actions ------------------------------------------------------------------------------
    def add_mapping(self) -> None:
        stem = self.stem.currentText()
        source = "beat.sin" if stem == OSCILLATORS else f"{self._prefix()}.rms"
        self.adapter.command("add_mapping", source, "pulse", amount=0.5)

    def select(self, index: int | None) -> None:
        if index == self.selected:
            return
        self.selected = index
        for row in self.rows:
            row.set_selected(row.index == index)
        self.refresh_curve()

    def delete_mapping(self, index: int | None = None) -> None:
        """Delete a mapping (the selected one by default); the row that takes its place is selected."""
        index = self.selected if index is None else index
        if index is None:
            return
        shown = [r.index for r in self.rows]
        pos = shown.index(index) if index in shown else 0
        self.selected = None
        self.adapter.command("remove_mapping", index)
        self.rebuild(force=False)
        if self.rows:
            self.select(self.rows[min(pos, len(self.rows) - 1)].index)

    def duplicate_mapping(self, index: int | None = None) -> None:
        """Duplicate a mapping (the selected one by default) and select the copy."""
        index = self.selected if index is None else index
        if index is None:
            return
        copy = self.adapter.command("duplicate_mapping", index)
        self.rebuild(force=False)
        if copy is not None:
            self.select(copy)

    def move_mapping(self, index: int | None, step: int) -> None:
        """Move a mapping (the selected one by default) one row up (step −1) or down among this
        stem's rows: to the project position of the row it passes."""
        index = self.selected if index is None else index
        shown = [r.index for r in self.rows]
        if index not in shown:
            return
        pos = shown.index(index) + step
        if not 0 <= pos < len(shown):
            return
        to = shown[pos]
        self.adapter.command("move_mapping", index, to)
        self.selected = to
        self.rebuild(force=False)

    def set_solo(self, index: int, on: bool) -> None:
        s = self.adapter.session
        if s is None:
            return
        solo = set(s.mapping_solo)
        solo = solo | {index} if on else solo - {index}
        self.adapter.command("set_mapping_solo", sorted(solo))

    def keyPressEvent(self, event) -> None:  # noqa: N802 (Qt)
        """Delete/Backspace delete the selected mapping (when the focus is not in a spin box's text:
        keys it does not use reach the editor)."""
        if event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) and self.selected is not None:
            self.delete_mapping()
        else:
            super().keyPressEvent(event)

    # -- curve view ---------------------------------------------------------------------------
    def curve_window(self, playhead_s: float, duration_s: float) -> tuple[float, float]:
        t0 = max(0.0, min(playhead_s - CURVE_BEFORE_S, duration_s - CURVE_SPAN_S))
        return t0, min(duration_s, t0 + CURVE_SPAN_S)

    def refresh_curve(self, *, force: bool = False) -> None:
        """Evaluate the selected mapping alone (Session.mapping_curve) over the curve
        window around the playhead; the view is redrawn when the mapping or the window changed."""
        s = self.adapter.session
        view = self.curve_view
        if s is None or self.selected is None or self.selected >= len(s.project.mappings):
            self._curve_key = None
            view.clear("Select a mapping to see its curve")
            return
        analysis = s.analysis
        m = s.project.mappings[self.selected]
        if analysis is None:
            self._curve_key = None
            view.clear(f"{m.source} → {m.target}: waiting for the analysis")
            return
        project = s.project
        fps = project.render.fps_fraction
        t0, t1 = self.curve_window(s.transport().position_seconds, analysis.duration_seconds)
        start = int(floor(t0 * fps))
        n = max(2, int(ceil(t1 * fps)) - start)
        key = (m, start, n, fps, id(analysis), project.stems)
        if key == self._curve_key and not force:
            return
        self._curve_key = key
        from bridge.session import BridgeError

        try:
            values = s.mapping_curve(self.selected, start_frame=start, n_frames=n)
        except BridgeError as e:
            view.clear(f"{m.source} → {m.target}: {e}")
            return
        times = (start + np.arange(n)) / float(fps)
        unit = unit_of(m.target)
        title = (f"{m.source} → {m.target}{f' ({unit})' if unit else ''}"
                 f"{'  — muted' if not m.enabled else ''}   {times[0]:.1f}–{times[-1]:.1f} s")
        view.set_curve(times, values, title, muted=not m.enabled)

    # -- presets ------------------------------------------------------------------------------
    def refresh_presets(self) -> None:
        """The picker lists the shipped presets, then the producer's own (item data: the name)."""
        presets = self.adapter.command("mapping_presets")
        if presets is None:
            return
        shipped, own = presets
        self.preset.clear()
        self.preset.addItem("Apply preset…")
        for name in shipped:
            self.preset.addItem(name, name)
        if own:
            self.preset.insertSeparator(self.preset.count())
            for name in own:
                self.preset.addItem(f"{name}  (yours)", name)
        self.delete_preset_button.setEnabled(bool(own))

    def preset_names(self) -> list[str]:
        return [self.preset.itemData(i) for i in range(self.preset.count()) if self.preset.itemData(i)]

    def apply_preset(self, i: int) -> None:
        name = self.preset.itemData(i)
        self.preset.setCurrentIndex(0)
        if name and self.adapter.session is not None:
            self.adapter.command("apply_mapping_preset", name)

    def save_preset(self, name: str | None = None) -> bool:
        """Save the project's mappings as the producer's own preset (asks for a name; asks before
        replacing one of the same name)."""
        if self.adapter.session is None:
            return False
        if name is None:
            name, ok = QInputDialog.getText(self, "Save mapping preset", "Name for these mappings:")
            if not ok or not name.strip():
                return False
        _, own = self.adapter.command("mapping_presets") or ([], [])
        overwrite = any(n.casefold() == name.strip().casefold() for n in own)
        if overwrite and QMessageBox.question(
                self, "Replace preset", f"Replace your preset {name.strip()!r} with these mappings?"
        ) != QMessageBox.StandardButton.Yes:
            return False
        path = self.adapter.command("save_mapping_preset", name, overwrite=overwrite)
        if path is None:
            return False
        self.refresh_presets()
        self.adapter.message.emit("info", f"Saved mapping preset {name.strip()!r} ({path})")
        return True

    def delete_preset(self, name: str | None = None) -> bool:
        """Delete one of the producer's own presets (picked from a list)."""
        _, own = self.adapter.command("mapping_presets") or ([], [])
        if not own:
            self.adapter.message.emit("info", "You have no saved mapping presets to delete.")
            return False
        if name is None:
            name, ok = QInputDialog.getItem(self, "Delete mapping preset", "Delete your preset:", own, 0, False)
            if not ok:
                return False
        if self.adapter.command("delete_mapping_preset", name) is None:
            return False
        self.refresh_presets()
        self.adapter.message.emit("info", f"Deleted mapping preset {name!r}")
        return True

    # -- live meters --------------------------------------------------------------------------
    def on_tick(self, state) -> None:
        s = self.adapter.session
        if s is None or not self.rows or not self.isVisible():
            return
        self.curve_view.playhead_s = state.position_seconds
        solo = s.mapping_solo  # a solo is not a project change: follow one made elsewhere
        for row in self.rows:
            if row.solo.isChecked() != (row.index in solo):
                row.solo.blockSignals(True)
                row.solo.setChecked(row.index in solo)
                row.solo.blockSignals(False)
        if self._curve_key is not None and s.analysis is not None:
            t0, t1 = self.curve_window(state.position_seconds, s.analysis.duration_seconds)
            _, start, n, fps, _, _ = self._curve_key
            if abs(start - int(floor(t0 * fps))) > fps // 2:  # the playhead moved on: follow it
                self.refresh_curve()
        self.curve_view.update()
        params = s.params
        if params is None or len(params) == 0:
            return
        frame = int(max(0.0, state.position_seconds) * params.fps) - params.start_frame
        j = int(np.clip(frame, 0, len(params) - 1))
        for row in self.rows:
            m = s.project.mappings[row.index] if row.index < len(s.project.mappings) else None
            if m is None:
                continue
            if m.target not in params.names:  # disabled: not evaluated
                row.meter.setValue(0)
                continue
            value = float(params.column(m.target)[j])
            spec = PARAMETERS.get(m.target)
            if spec is None:  # shader:NAME: what is added to the input's default
                frac = min(1.0, abs(value))
            else:
                frac = (value - spec.minimum) / ((spec.maximum - spec.minimum) or 1.0)
            row.meter.setValue(int(np.clip(frac, 0, 1) * 1000))
            row.meter.setToolTip(f"{m.target} = {value:.3f} at the playhead")
