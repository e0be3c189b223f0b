"""Mapping editor: per stem, each mapping as one row — source feature → target parameter, amount,
curve, attack/release, range (clamp) — with a live meter of the target parameter at the playhead,
and the mapping presets. Every change is a Session command (slider drags coalesce into one undo step).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from bridge.mapping.params import PARAMETER_NAMES, PARAMETERS
from gui.session_adapter import SessionAdapter

FEATURES = ("rms", "low", "mid", "high", "onset", "centroid", "chroma", "onsets")
OSC_FEATURES = ("sin", "saw", "square", "tri", "pulse")
CURVES = ("linear", "exp", "smoothstep")
OSCILLATORS = "Oscillators (beat / bar)"
HEADERS = ("on", "source", "", "target", "amount", "curve", "attack", "release", "range min", "range max", "value")


def _spin(lo: float, hi: float, step: float, decimals: int, suffix: str = "") -> QDoubleSpinBox:
    s = QDoubleSpinBox()
    s.setRange(lo, hi)
    s.setSingleStep(step)
    s.setDecimals(decimals)
    s.setSuffix(suffix)
    s.setKeyboardTracking(False)
    return s


class MappingRow:
    """The widgets of one mapping (index into project.mappings)."""

    def __init__(self, editor: MappingEditor, index: int, grid: QGridLayout, r: int) -> None:
        self.editor, self.index = editor, index
        self.enabled = QCheckBox()
        self.source = QComboBox()
        self.target = QComboBox()
        self.target.addItems(editor.current_targets)
        self.amount = _spin(-100, 100, 0.05, 3)
        self.curve = QComboBox()
        self.curve.addItems(CURVES)
        self.attack = _spin(0, 10000, 5, 0, " ms")
        self.release = _spin(0, 10000, 10, 0, " ms")
        self.lo = _spin(-1000, 1000, 0.05, 2)
        self.hi = _spin(-1000, 1000, 0.05, 2)
        self.lo.setSpecialValueText("—")
        self.hi.setSpecialValueText("—")
        self.meter = QProgressBar()
        self.meter.setRange(0, 1000)
        self.meter.setTextVisible(False)
        self.meter.setMaximumHeight(10)
        self.meter.setMinimumWidth(60)
        self.widgets = (self.enabled, self.source, QLabel("→"), self.target, self.amount, self.curve,
                        self.attack, self.release, self.lo, self.hi, self.meter)
        for c, w in enumerate(self.widgets):
            grid.addWidget(w, r, c)
        self.enabled.toggled.connect(lambda v: self._set(enabled=v))
        self.source.activated.connect(lambda i: self._set(source=self.source.itemData(i)))
        self.target.activated.connect(lambda i: self._set(target=self.target.itemText(i)))
        self.amount.valueChanged.connect(lambda v: self._set(coalesce=True, amount=v))
        self.curve.activated.connect(lambda i: self._set(curve=self.curve.itemText(i)))
        self.attack.valueChanged.connect(lambda v: self._set(coalesce=True, attack_ms=v))
        self.release.valueChanged.connect(lambda v: self._set(coalesce=True, release_ms=v))
        self.lo.valueChanged.connect(self._clamp_changed)
        self.hi.valueChanged.connect(self._clamp_changed)

    def _set(self, *, coalesce: bool = False, **changes) -> None:
        self.editor.adapter.command("update_mapping", self.index, coalesce=coalesce, **changes)

    def _clamp_changed(self) -> None:
        lo, hi = self.lo.value(), self.hi.value()
        if lo == self.lo.minimum() or hi == self.hi.minimum():
            self._set(clamp=None)
        elif lo <= hi:
            self._set(coalesce=True, clamp=(lo, hi))

    def show(self, mapping, source_items: list[tuple[str, str]]) -> None:
        for w in self.widgets:
            w.blockSignals(True)
        self.enabled.setChecked(mapping.enabled)
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
        self.amount.setValue(mapping.amount)
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


class MappingEditor(QWidget):
    def __init__(self, adapter: SessionAdapter, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.adapter = adapter
        self.rows: list[MappingRow] = []
        self.current_targets: list[str] = list(PARAMETER_NAMES)
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
        self.preset.activated.connect(self.apply_preset)
        top.addWidget(QLabel("Stem"))
        top.addWidget(self.stem)
        top.addWidget(self.add_button)
        top.addStretch(1)
        top.addWidget(self.preset)
        col.addLayout(top)
        self.area = QScrollArea()
        self.area.setWidgetResizable(True)
        self.area.setFrameShape(QScrollArea.Shape.NoFrame)
        col.addWidget(self.area, 1)
        self._structure: tuple | None = None
        adapter.projectChanged.connect(self.on_project_changed)
        adapter.tick.connect(self.on_tick)

    # -- structure ----------------------------------------------------------------------------
    def _stem_names(self) -> list[str]:
        s = self.adapter.session
        return [st.name for st in s.project.stems] + [OSCILLATORS] if s else []

    def _indices(self) -> list[int]:
        s = self.adapter.session
        if s is None:
            return []
        stem = self.stem.currentText()
        if stem == OSCILLATORS:
            return [i for i, m in enumerate(s.project.mappings) if m.source.split(".")[0] in ("beat", "bar")]
        return [i for i, m in enumerate(s.project.mappings) if m.source.split(".")[0] == stem]

    def _source_items(self) -> list[tuple[str, str]]:
        stem = self.stem.currentText()
        if stem == OSCILLATORS:
            return [(f"{c}.{f}", f"{c}.{f}") for c in ("beat", "bar") for f in OSC_FEATURES]
        return [(f, f"{stem}.{f}") for f in FEATURES]

    def on_project_changed(self, event) -> None:
        s = self.adapter.session
        if s is None:
            return
        if self.preset.count() == 1:
            from bridge.mapping.presets import PRESETS

            self.preset.addItems(list(PRESETS))
        names = self._stem_names()
        if [self.stem.itemText(i) for i in range(self.stem.count())] != names:
            current = self.stem.currentText()
            self.stem.clear()
            self.stem.addItems(names)
            if current in names:
                self.stem.setCurrentText(current)
        self.rebuild(force=False)

    @property
    def targets(self) -> list[str]:
        """Visual parameters, then the inputs of the project's shader look (``shader:NAME``)."""
        s = self.adapter.session
        extra: list[str] = []
        if s is not None and s.project.engine.name == "shader":
            from bridge.visuals.shader import shader_targets

            extra = shader_targets(s.project.engine.look)
        return [*PARAMETER_NAMES, *extra]

    def rebuild(self, *, force: bool = True) -> None:
        s = self.adapter.session
        if s is None:
            return
        indices = self._indices()
        structure = (self.stem.currentText(), tuple(indices), s.project.engine.name, s.project.engine.look)
        if force or structure != self._structure:
            self._structure = structure
            body = QWidget()
            grid = QGridLayout(body)
            grid.setContentsMargins(0, 4, 0, 4)
            grid.setHorizontalSpacing(8)
            for c, h in enumerate(HEADERS):
                lab = QLabel(h.upper())
                lab.setObjectName("Header")
                grid.addWidget(lab, 0, c)
            self.current_targets = self.targets  # read the look once per rebuild, not per row
            self.rows = [MappingRow(self, i, grid, r + 1) for r, i in enumerate(indices)]
            if not indices:
                grid.addWidget(QLabel("No mappings from this stem yet: “+ Mapping” adds one."), 1, 0, 1, len(HEADERS))
            grid.setRowStretch(len(indices) + 2, 1)
            grid.setColumnStretch(len(HEADERS) - 1, 1)
            self.area.setWidget(body)
        items = self._source_items()
        for row in self.rows:
            row.show(s.project.mappings[row.index], items)

    # -- actions ------------------------------------------------------------------------------
    def add_mapping(self) -> None:
        stem = self.stem.currentText()
        source = "beat.sin" if stem == OSCILLATORS else f"{stem}.rms"
        self.adapter.command("add_mapping", source, "pulse", amount=0.5)

    def apply_preset(self, i: int) -> None:
        if i <= 0 or self.adapter.session is None:
            return
        from bridge.mapping.presets import PRESETS

        name = self.preset.itemText(i)
        self.preset.setCurrentIndex(0)
        self.adapter.command("set_mappings", PRESETS[name](self.adapter.session.project.stems),
                             label=f"preset {name}")

    # -- live meters --------------------------------------------------------------------------
    def on_tick(self, state) -> None:
        s = self.adapter.session
        if s is None or not self.rows or not self.isVisible():
            return
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
