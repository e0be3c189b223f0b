"""Stems panel: one row per stem (name, role, gain, offset, mute, solo, status badge); drop audio files or
a folder onto it to add stems. A file that does not decode shows an error and changes nothing (the
Session validates before it edits). "Locate missing stems…" finds stems that moved (``stembridge relink``)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QThread, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

from bridge.session import STANDARD_ROLES
from gui.panels import audio_file_filter, double_spin
from gui.session_adapter import SessionAdapter

COLUMNS = ("Stem", "Role", "Gain", "Offset", "Mute", "Solo", "Status")


class StemsPanel(QWidget):
    def __init__(self, adapter: SessionAdapter, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.adapter = adapter
        self.setAcceptDrops(True)
        col = QVBoxLayout(self)
        col.setContentsMargins(8, 8, 8, 8)
        top = QHBoxLayout()
        add = QPushButton("+ Add stems…")
        add.clicked.connect(self.choose_files)
        remove = QPushButton("Remove")
        remove.clicked.connect(self.remove_selected)
        separate = QPushButton("Separate a mix…")
        separate.setToolTip("Split a full mix into drums, bass, vocals and other with Demucs (needs stembridge[ai])")
        separate.clicked.connect(self.separate_mix)
        self.locate = QPushButton("Locate missing stems…")
        self.locate.setToolTip("Moved the stems? Pick the folder they are in now: each missing file is found "
                               "there (or in its sub-folders) by its content or its name")
        self.locate.clicked.connect(lambda: self.locate_missing())
        self.locate.setEnabled(False)
        hint = QLabel("Drop audio files or a folder here")
        hint.setObjectName("Dim")
        top.addWidget(add)
        top.addWidget(remove)
        top.addWidget(separate)
        top.addWidget(self.locate)
        top.addWidget(hint)
        top.addStretch(1)
        col.addLayout(top)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        col.addWidget(self.table, 1)
        adapter.projectChanged.connect(self.refresh)
        adapter.stemFilesChanged.connect(self.refresh)

    @property
    def rebounced(self) -> frozenset[str]:
        """Stems the DAW re-bounced since the project was opened (Session.rebounced_stems)."""
        s = self.adapter.session
        return frozenset() if s is None else s.rebounced_stems

    # -- adding -------------------------------------------------------------------------------
    def add_files(self, paths: list[Path]) -> list[str]:
        """Add each audio file (a folder: the audio files in it) as a stem. Returns the names added;
        a file that fails shows the Session's error and is skipped."""
        from bridge.session import stem_files

        files = self.adapter.call(stem_files, paths)  # a folder: the stems in it, as bridge.stems finds them
        added = []
        for f in files or []:
            name = self.adapter.command("add_stem", f)
            if name is not None:
                added.append(name)
        return added

    def choose_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Add stems", "", audio_file_filter())
        if files:
            self.add_files([Path(f) for f in files])

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.add_files(paths)

    def separate_mix(self) -> None:
        from gui.panels.separate import separate_mix_dialog

        separate_mix_dialog(self)

    def locate_missing(self, folder: str | Path | None = None):
        """Find the missing stems' files in a folder (asked for unless given) on a worker thread behind
        a progress dialog (Cancel stops the search); what is found becomes one undoable edit, and a
        message says what was found and what was not. Returns the running worker (None when nothing to do)."""
        s = self.adapter.session
        if s is None:
            return None
        if not s.missing_stems:
            self.adapter.message.emit("info", "No stem is missing: every file is where the project says.")
            return None
        if folder is None:
            folder = QFileDialog.getExistingDirectory(self, "Where are the stems now?", str(s.project_dir.parent))
            if not folder:
                return None
        from gui.panels.separate import start_with_progress

        worker = RelinkWorker(s, Path(folder))

        def done(result: list) -> None:
            from bridge.session import describe_relink

            plan = result[0]
            if plan.found:
                self.adapter.command("apply_relink", plan)
            lines = describe_relink(plan)
            level = "info" if plan.complete and not plan.changed else "error"
            head = (f"Found {len(plan.found)} of {len(plan.found) + len(plan.not_found) + len(plan.ambiguous)} "
                    f"missing files in {plan.folder}" + (" (Undo puts them back)" if plan.found else ""))
            self.adapter.message.emit(level, head + ": " + "; ".join(lines))

        self._relink_worker = worker  # keep it alive while it runs
        return start_with_progress(worker, self, "Locate missing stems", f"Looking in {folder}", done,
                                   lambda message: self.adapter.message.emit("error", message))

    def remove_selected(self) -> None:
        r = self.table.currentRow()
        s = self.adapter.session
        if s is not None and 0 <= r < len(s.project.stems):
            self.adapter.command("remove_stem", s.project.stems[r].name)

    def set_solo(self, name: str, on: bool) -> None:
        s = self.adapter.session
        if s is None:
            return
        names = {st.name for st in s.project.stems}
        solo = (set(s.audio.solo) & names) | {name} if on else (set(s.audio.solo) & names) - {name}
        self.adapter.command("set_solo", solo)

    # -- showing ------------------------------------------------------------------------------
    def refresh(self, event=None) -> None:
        s = self.adapter.session
        if s is None or (event is not None and "stems" not in event.parts):
            return
        stems = list(s.project.stems)
        missing = s.missing_stems
        self.locate.setEnabled(bool(missing))
        self.table.setRowCount(len(stems))
        for r, st in enumerate(stems):
            name = QLabel(st.name)
            name.setToolTip(st.path)
            role = QComboBox()
            role.setEditable(True)
            role.addItems(STANDARD_ROLES)
            role.setCurrentText(st.role)
            role.activated.connect(lambda _i, n=st.name, w=role: self.adapter.command("set_stem_role", n, w.currentText()))
            gain = double_spin(-96, 24, value=st.gain_db, decimals=1, suffix=" dB")
            gain.valueChanged.connect(lambda v, n=st.name: self.adapter.command("set_stem_gain", n, v, coalesce=True))
            offset = double_spin(-3600, 3600, value=st.offset_seconds, decimals=3, step=0.01, suffix=" s")
            offset.valueChanged.connect(lambda v, n=st.name: self.adapter.command("set_stem_offset", n, v, coalesce=True))
            mute = QCheckBox()
            mute.setChecked(st.muted)
            mute.toggled.connect(lambda v, n=st.name: self.adapter.command("set_stem_muted", n, v))
            solo = QCheckBox()
            solo.setChecked(st.name in s.audio.solo)
            solo.setToolTip("Hear only the soloed stems while playing (not saved, not in the export)")
            solo.toggled.connect(lambda v, n=st.name: self.set_solo(n, v))
            badge = QLabel("missing" if st.name in missing else ("re-bounced" if st.name in self.rebounced else "ok"))
            badge.setObjectName("BadgeBad" if st.name in missing else ("Badge" if st.name in self.rebounced else "Dim"))
            badge.setAlignment(Qt.AlignmentFlag.AlignCenter)
            for c, w in enumerate((name, role, gain, offset, mute, solo, badge)):
                self.table.setCellWidget(r, c, w)


class RelinkWorker(QThread):
    """:meth:`Session.plan_relink` on its own thread (a music library can take seconds to walk);
    the signals of :class:`gui.panels.separate.SeparateWorker`, so the same progress dialog runs it."""

    progressed = Signal(int, int, str)
    succeeded = Signal(list)
    failed = Signal(str)

    def __init__(self, session, folder: Path) -> None:
        super().__init__()
        from bridge.session import CancelToken

        self.session, self.folder = session, folder
        self.cancel = CancelToken()

    def run(self) -> None:
        from bridge.session import BridgeError, Cancelled

        try:
            plan = self.session.plan_relink(self.folder, cancel=self.cancel)
        except Cancelled:
            self.failed.emit("Search cancelled; nothing changed.")
        except (BridgeError, OSError) as e:
            self.failed.emit(str(e))
        else:
            self.succeeded.emit([plan])
