"""Section editor: one row per section — name, start/end, prompt, seed, transition (cut / crossfade /
melt) and its length, and the shader look (auto: chosen from the music)."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

from bridge.session import SECTION_TRANSITIONS, available_looks
from gui.panels import double_spin, int_spin
from gui.session_adapter import SessionAdapter

COLUMNS = ("Name", "Start", "End", "Prompt", "Seed", "Transition", "Beats", "Look")
#: The Look column's first entry: the section's look is chosen from the music.
AUTO_LOOK = "auto"
#: The tooltip of the first section's (disabled) transition controls.
FIRST_SECTION_TRANSITION = ("The first section has no section before it to transition from, so its transition "
                            "does nothing. To fade the video in from black, use the fade-in of File ▸ Export video… "
                            "(Fades: in), or stembridge render --fade-in S.")

#: The Remove button's tooltip while no row is picked.
REMOVE_TIP = "Click a section's row (its name, for one) to remove it"


class SectionEditor(QWidget):
    def __init__(self, adapter: SessionAdapter, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.adapter = adapter
        col = QVBoxLayout(self)
        col.setContentsMargins(8, 8, 8, 8)
        top = QHBoxLayout()
        self.adopt = QPushButton("Use detected sections")
        self.adopt.setToolTip("Make the sections found in the music the project's editable sections")
        self.adopt.clicked.connect(lambda: self.adapter.command("adopt_detected_sections"))
        self.import_daw = QPushButton("Import DAW markers")
        self.import_daw.setToolTip("Make the followed DAW's markers the sections, names kept (Live's locators via "
                                   "the StemBridge script or AbletonOSC, REAPER's markers and regions); a section named like a marker "
                                   "keeps its prompt. Undo restores the old sections.")
        self.import_daw.clicked.connect(lambda: self.adapter.import_daw_markers())
        self.add = QPushButton("+ Section at playhead")
        self.add.clicked.connect(self.add_at_playhead)
        self.remove = QPushButton("Remove")
        self.remove.clicked.connect(self.remove_selected)
        self.remove.setEnabled(False)  # until a row is picked (clicked with none, it did nothing and said nothing)
        self.remove.setToolTip(REMOVE_TIP)
        top.addWidget(self.adopt)
        top.addWidget(self.import_daw)
        top.addWidget(self.add)
        top.addWidget(self.remove)
        top.addStretch(1)
        col.addLayout(top)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        col.addWidget(self.table, 1)
        self.table.currentCellChanged.connect(lambda *_: self._update_remove())
        self._shown = None
        self._first = None
        adapter.projectChanged.connect(self.refresh)
        adapter.analysisChanged.connect(self._analysis_arrived)

    def refresh(self, event=None) -> None:
        s = self.adapter.session
        if s is None or (event is not None and "sections" not in event.parts and self._shown is not None):
            return
        sections = list(s.project.sections)
        self._shown = sections
        looks = list(available_looks())
        first = self._first = s.first_section_index()
        self.table.setRowCount(len(sections))
        for r, sec in enumerate(sections):
            unit = " s" if sec.unit == "seconds" else " beats"
            name = QLineEdit(sec.name)
            name.editingFinished.connect(lambda r=r, w=name: self._update(r, name=w.text()))
            start = double_spin(0, 1e6, value=sec.start, suffix=unit)
            start.valueChanged.connect(lambda v, r=r: self.adapter.command("move_section", r, v))
            end = QLabel("song end" if sec.end is None else f"{sec.end:.2f}{unit}")
            prompt = QLineEdit(sec.prompt)
            prompt.setPlaceholderText("describe the look of this section…")
            prompt.editingFinished.connect(lambda r=r, w=prompt: self._prompt(r, w.text()))
            seed = int_spin(0, 2**31 - 1, value=sec.seed)
            seed.valueChanged.connect(lambda v, r=r: self._update(r, seed=v))
            kind = QComboBox()
            kind.addItems(SECTION_TRANSITIONS)
            kind.setCurrentText(sec.transition)
            kind.setToolTip("How the picture enters this section: cut on its start, crossfade the looks, "
                            "or melt the old picture away (over the beats beside)")
            kind.currentTextChanged.connect(lambda v, r=r: self._update(r, transition=v))
            trans = double_spin(0, 64, value=sec.transition_beats, suffix=" beats")
            trans.valueChanged.connect(lambda v, r=r: self._update(r, transition_beats=v))
            if r == first:  # kept in the project: it applies once a section is put before this one
                for w in (kind, trans):
                    w.setEnabled(False)
                    w.setToolTip(FIRST_SECTION_TRANSITION)
            look = QComboBox()
            look.addItems([AUTO_LOOK, *looks])
            if sec.look and sec.look not in looks:
                look.addItem(sec.look)  # a file of the producer's
            look.setCurrentText(sec.look or AUTO_LOOK)
            look.setToolTip("The shader engine's look in this section; auto: chosen from the music "
                            "(a related look per section, the loudest hit harder)")
            look.currentTextChanged.connect(lambda v, r=r: self._update(r, look=None if v == AUTO_LOOK else v))
            for c, w in enumerate((name, start, end, prompt, seed, kind, trans, look)):
                self.table.setCellWidget(r, c, w)
        self._update_remove()

    def _update_remove(self) -> None:
        r = self.table.currentRow()
        self.remove.setEnabled(0 <= r < self.table.rowCount())
        name = self.table.cellWidget(r, 0) if self.remove.isEnabled() else None
        self.remove.setToolTip(f"Remove section '{name.text()}' (undoable)" if name is not None else REMOVE_TIP)

    def _analysis_arrived(self) -> None:
        """Starts in beats were placed at the project's tempo until the beat grid came; with it the
        section that plays first can be another one. Rebuild the rows then (only then: a rebuild
        takes the focus from a name or prompt being typed)."""
        s = self.adapter.session
        if s is not None and self._shown is not None and s.first_section_index() != self._first:
            self.refresh()

    def _update(self, index: int, **changes) -> None:
        s = self.adapter.session
        if s is None or index >= len(s.project.sections):
            return
        current = s.project.sections[index]
        if all(getattr(current, k) == v for k, v in changes.items()):
            return
        self.adapter.command("update_section", index, **changes)

    def _prompt(self, index: int, text: str) -> None:
        s = self.adapter.session
        if s is not None and index < len(s.project.sections) and s.project.sections[index].prompt != text:
            self.adapter.command("set_prompt", index, text)

    def add_at_playhead(self) -> None:
        s = self.adapter.session
        if s is not None:
            self.adapter.command("add_section", round(max(0.0, s.transport().position_seconds), 2),
                                 prompt="", name=f"Section {len(s.project.sections) + 1}")

    def remove_selected(self) -> None:
        r = self.table.currentRow()
        if r >= 0:
            self.adapter.command("remove_section", r)
