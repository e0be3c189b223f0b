"""The main window: transport bar, message bar, timeline beside the preview, and the editors
(mappings, sections, stems, effects, looks) in tabs below. Keyboard: Space play/pause (with sound: the
playhead follows the audio device), Home to start,
Ctrl+L loop the section at the playhead, Ctrl+= / Ctrl+- zoom, Ctrl+0 whole song, Ctrl+Z / Ctrl+Shift+Z undo/redo, Ctrl+E export."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPushButton,
    QSplitter,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from gui.panels import audio_file_filter
from gui.panels.effects import EffectsPanel
from gui.panels.export import ExportDialog
from gui.panels.looks import LookBrowser
from gui.panels.mappings import MappingEditor
from gui.panels.preferences import (
    PreferencesDialog,
    restore_audio_preferences,
    restore_preview_preferences,
    restore_separation_preferences,
    separation_options,
)
from gui.panels.preview import PreviewPane
from gui.panels.sections import SectionEditor
from gui.panels.stems import StemsPanel
from gui.panels.tempo import TempoBar, tempo_text
from gui.panels.transport import TransportBar
from gui.session_adapter import SessionAdapter
from gui.widgets.timeline import TimelineWidget

#: How many projects File ▸ Open Recent keeps.
RECENT_MAX = 8


class MessageBar(QFrame):
    """A non-blocking, de-duplicated message line: the same text again bumps a counter instead of
    stacking; it hides itself after a while (errors stay until closed)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("MessageBar")
        row = QHBoxLayout(self)
        row.setContentsMargins(12, 6, 8, 6)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton(text="✕")
        close.clicked.connect(self.hide)
        self.action = QPushButton()  # what the message suggests, one click away ("Locate missing stems…")
        self.action.clicked.connect(self._run_action)
        self.action.hide()
        self._action_slot = None
        row.addWidget(self.label, 1)
        row.addWidget(self.action)
        row.addWidget(close)
        self.text = ""
        self.level = ""
        self.count = 0
        self._hide = QTimer(self, singleShot=True, interval=6000)
        self._hide.timeout.connect(self.hide)
        self.hide()

    def show_message(self, level: str, text: str, action: tuple[str, object] | None = None) -> None:
        """Show ``text``; ``action`` = (button label, callable) adds a button that does what it says."""
        self._action_slot = None if action is None else action[1]
        self.action.setText("" if action is None else action[0])
        self.action.setVisible(action is not None)
        if text == self.text and self.isVisible():
            self.count += 1
        else:
            self.text, self.level, self.count = text, level, 1
        self.setProperty("level", level)
        self.style().unpolish(self)
        self.style().polish(self)
        self.label.setText(text + (f"  (×{self.count})" if self.count > 1 else ""))
        self.show()
        if level == "error":
            self._hide.stop()
        else:
            self._hide.start()


    def _run_action(self) -> None:
        slot = self._action_slot
        self.hide()
        if slot is not None:
            slot()


class MainWindow(QMainWindow):
    def __init__(self, adapter: SessionAdapter | None = None, *, settings: QSettings | None = None) -> None:
        super().__init__()
        self.adapter = adapter or SessionAdapter(self)
        self.settings = settings if settings is not None else QSettings()
        self.setWindowTitle("stembridge")
        self.resize(1480, 900)

        self.transport = TransportBar(self.adapter)
        self.messages = MessageBar()
        self.timeline = TimelineWidget()
        self.preview = PreviewPane(self.adapter)
        self.mappings = MappingEditor(self.adapter)
        self.sections = SectionEditor(self.adapter)
        self.stems = StemsPanel(self.adapter)
        self.effects = EffectsPanel(self.adapter)
        self.looks = LookBrowser(self.adapter)
        self.tempo_bar = TempoBar(self.adapter)

        self.top_split = QSplitter(Qt.Orientation.Horizontal)
        self.top_split.addWidget(self.timeline)
        self.top_split.addWidget(self.preview)
        self.top_split.setStretchFactor(0, 3)
        self.top_split.setStretchFactor(1, 2)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.mappings, "Mappings")
        self.tabs.addTab(self.sections, "Sections")
        self.tabs.addTab(self.stems, "Stems")
        self.tabs.addTab(self.effects, "Effects")
        self.tabs.addTab(self.looks, "Looks")
        self.main_split = QSplitter(Qt.Orientation.Vertical)
        self.main_split.addWidget(self.top_split)
        self.main_split.addWidget(self.tabs)
        self.main_split.setStretchFactor(0, 3)
        self.main_split.setStretchFactor(1, 2)
        self.main_split.setSizes([560, 320])
        self.top_split.setSizes([900, 560])

        central = QWidget()
        col = QVBoxLayout(central)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(0)
        col.addWidget(self.transport)
        col.addWidget(self.tempo_bar)
        col.addWidget(self.messages)
        body = QWidget()
        inner = QVBoxLayout(body)
        inner.setContentsMargins(8, 8, 8, 8)
        inner.addWidget(self.main_split)
        col.addWidget(body, 1)
        self.setCentralWidget(central)
        self.status_label = QLabel("No project")
        self.statusBar().addWidget(self.status_label, 1)

        self._build_actions()
        a = self.adapter
        a.message.connect(self.show_message)
        a.tick.connect(self._on_tick)
        a.analysisChanged.connect(self.refresh_timeline)
        a.projectChanged.connect(self._on_project_changed)
        self.timeline.seekRequested.connect(lambda t: a.command("seek", t))
        self.tempo_bar.attach_timeline(self.timeline)  # right-click: "Set downbeat here"
        self._restore_layout()

    #: Messages that name one of these get its button ("Locate missing stems…" moves stems back in place).
    MESSAGE_ACTIONS = ("Locate missing stems…",)

    def show_message(self, level: str, text: str) -> None:
        """The message bar, with a button for what the message suggests when the app can do it."""
        action = None
        if self.MESSAGE_ACTIONS[0] in text and self.adapter.session is not None and self.adapter.session.missing_stems:
            action = (self.MESSAGE_ACTIONS[0], lambda: self.stems.locate_missing())
        self.messages.show_message(level, text, action)

    # -- actions ------------------------------------------------------------------------------
    def _action(self, menu, text: str, shortcut, slot) -> QAction:
        act = QAction(text, self)
        if shortcut:
            act.setShortcut(QKeySequence(shortcut))
        act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        act.triggered.connect(slot)
        menu.addAction(act)
        self.addAction(act)
        return act

    def _build_actions(self) -> None:
        bar = self.menuBar()
        f = bar.addMenu("&File")
        self.new_action = self._action(f, "New project from stems…", QKeySequence.StandardKey.New,
                                       self.new_project_from_stems)
        self.new_from_mix_action = self._action(f, "New project from a mix…", "Ctrl+Shift+N",
                                                lambda: self.new_project_from_mix())
        self.open_action = self._action(f, "Open project…", QKeySequence.StandardKey.Open, self.choose_project)
        self.recent_menu = f.addMenu("Open Recent")
        self.recent_menu.aboutToShow.connect(self.rebuild_recent_menu)
        self.rebuild_recent_menu()
        self.save_as_action = self._action(f, "Save project as…", QKeySequence.StandardKey.SaveAs, self.save_project_as)
        self.close_project_action = self._action(f, "Close project", QKeySequence.StandardKey.Close,
                                                 self.close_project)
        f.addSeparator()
        self._action(f, "Export video…", "Ctrl+E", self.open_export)
        f.addSeparator()
        self._set_project_open(False)
        self._action(f, "Quit", QKeySequence.StandardKey.Quit, self.close)
        e = bar.addMenu("&Edit")
        self.undo_action = self._action(e, "Undo", QKeySequence.StandardKey.Undo, lambda: self.adapter.command("undo"))
        self.redo_action = self._action(e, "Redo", "Ctrl+Shift+Z", lambda: self.adapter.command("redo"))
        self.undo_action.setEnabled(False)
        self.redo_action.setEnabled(False)
        e.addSeparator()
        self._action(e, "Preferences…", "Ctrl+,", self.open_preferences)
        v = bar.addMenu("&View")
        self._action(v, "Zoom in", "Ctrl+=", lambda: self.timeline.zoom(1.5))
        self._action(v, "Zoom out", "Ctrl+-", lambda: self.timeline.zoom(1 / 1.5))
        self._action(v, "Whole song", "Ctrl+0", self.fit_song)
        self._action(v, "Looks", "Ctrl+Shift+L", lambda: self.tabs.setCurrentWidget(self.looks))
        t = bar.addMenu("&Transport")
        self._action(t, "Play / pause", "Space", self.transport.toggle_play)
        self._action(t, "Return to start", "Home", self.transport.stop)
        self._action(t, "Loop the section at the playhead", "Ctrl+L", self.toggle_loop)
        t.addSeparator()
        self._action(t, "Connect to your DAW…", "Ctrl+Shift+D", self.open_connect_daw)
        self._action(t, "Calibrate speaker time…", None, self.open_calibration)
        self._action(t, "Use the DAW's tempo as the grid", None, self.tempo_bar.use_daw_tempo)

    def toggle_loop(self) -> None:
        """Loop the section under the playhead (sound and playhead); again: stop looping."""
        s = self.adapter.session
        if s is None:
            return
        if s.audio.loop is not None:
            self.adapter.command("set_loop", None)
            self.messages.show_message("info", "Loop off")
            return
        t = max(0.0, s.transport().position_seconds)
        block = next((b for b in self.timeline.sections if b[0] <= t < b[1]), None)
        if block is None:
            self.messages.show_message("error", "No section under the playhead to loop: wait for the analysis "
                                       "or add a section (Sections ▸ + Section at playhead).")
            return
        start, end, name = block[0], block[1], block[2]
        self.adapter.command("set_loop", start, end)
        if s.audio.loop is not None:
            self.messages.show_message("info", f"Looping {name or 'the section'} {start:.2f}–{end:.2f} s "
                                       "(Ctrl+L again to stop)")

    def fit_song(self) -> None:
        self.timeline.view_span_s = max(1.0, self.timeline.duration_seconds)
        self.timeline.scroll_to(0.0)

    # -- project ------------------------------------------------------------------------------
    def open_project(self, project_dir: str | Path, **session_options) -> bool:
        from bridge.session import BridgeError

        try:
            self.adapter.open(project_dir, **session_options)
        except BridgeError as e:
            self.messages.show_message("error", str(e))
            return False
        self.transport.reconnect()  # the new session follows the DAW the picker names
        s = self.adapter.session
        self.settings.setValue("last_project", str(s.project_dir))
        self.add_recent(s.project_dir)
        self._set_project_open(True)
        self.setWindowTitle(f"{s.project.name} — stembridge")
        self._on_project_changed(None)
        self.refresh_timeline()
        return True

    def choose_project(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Open a stembridge project folder")
        if d:
            self.open_project(d)

    # -- File menu: new, recent, save as, close ------------------------------------------------
    def recent_projects(self) -> list[str]:
        value = self.settings.value("recent_projects") or []
        return [value] if isinstance(value, str) else [str(v) for v in value]

    def _set_recent(self, paths: list[str]) -> None:
        if paths:
            self.settings.setValue("recent_projects", paths[:RECENT_MAX])
        else:
            self.settings.remove("recent_projects")
        self.settings.sync()

    def add_recent(self, project_dir: str | Path) -> None:
        path = str(Path(project_dir).resolve())
        self._set_recent([path] + [p for p in self.recent_projects() if p != path])

    def rebuild_recent_menu(self) -> None:
        """The last projects, newest first; one whose folder is gone is shown greyed ("missing")."""
        from bridge.session import project_file

        m = self.recent_menu
        m.clear()
        recent = self.recent_projects()
        missing = []
        for path in recent:
            ok = project_file(path).is_file()
            act = m.addAction(f"{Path(path).name} — {path}" + ("" if ok else "  (missing)"))
            act.setData(path)
            act.setEnabled(ok)
            if ok:
                act.triggered.connect(lambda _=False, p=path: self.open_recent(p))
            else:
                act.setToolTip(f"{project_file(path)} no longer exists")
                missing.append(path)
        if not recent:
            m.addAction("No recent projects").setEnabled(False)
        m.addSeparator()
        self.remove_missing_action = m.addAction("Remove missing projects", self.remove_missing_recent)
        self.remove_missing_action.setEnabled(bool(missing))
        m.addAction("Clear recent projects", lambda: self._set_recent([])).setEnabled(bool(recent))

    def open_recent(self, path: str) -> bool:
        from bridge.session import project_file

        if not project_file(path).is_file():
            self._set_recent([p for p in self.recent_projects() if p != path])
            self.messages.show_message("error", f"{path} is gone (no {project_file(path).name} there); "
                                       "removed it from Open Recent.")
            return False
        return self.open_project(path)

    def remove_missing_recent(self) -> list[str]:
        from bridge.session import project_file

        recent = self.recent_projects()
        gone = [p for p in recent if not project_file(p).is_file()]
        self._set_recent([p for p in recent if p not in gone])
        if gone:
            self.messages.show_message("info", f"Removed {len(gone)} missing project(s) from Open Recent: "
                                       + ", ".join(gone))
        return gone

    def new_project_from_stems(self) -> bool:
        """Pick a folder of stems, then the (new or empty) project folder; create the project and open it."""
        from bridge.session import BridgeError, new_project

        stems = QFileDialog.getExistingDirectory(self, "New project: pick the folder of stems (WAV/FLAC/AIFF…)")
        if not stems:
            return False
        target = QFileDialog.getExistingDirectory(self, "New project: pick a new or empty folder for the project")
        if not target:
            return False
        self.statusBar().showMessage(f"Reading the stems in {stems}…")
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            result = new_project(target, stems)
        except BridgeError as e:
            self.messages.show_message("error", str(e))
            return False
        finally:
            QApplication.restoreOverrideCursor()
            self.statusBar().clearMessage()
        if not self.open_project(result.project_dir):
            return False
        if result.skipped:
            self.messages.show_message("warning", f"Skipped {len(result.skipped)} file(s): " + "; ".join(result.skipped))
        return True

    def new_project_from_mix(self, mix_path: str | Path | None = None, project_dir: str | Path | None = None,
                             **separation):
        """Pick one audio file (a full mix) and a new or empty project folder; split the mix into
        ``<project>/stems`` with Demucs on a worker (progress, Cancel) and open the new project.
        ``separation``: options for :func:`bridge.separation.separate_mix_to_folder` (model,
        model_repo, cache_dir…; default: the model chosen in Preferences, else the released htdemucs). Without the model's weights the
        message bar says what is missing and how to get it, and nothing is left on disk.
        Returns the running worker (None when the user backed out)."""
        from gui.panels.separate import NewProjectFromMixWorker, start_with_progress

        if mix_path is None:
            name, _ = QFileDialog.getOpenFileName(self, "New project from a mix: pick the full mix", "",
                                                  audio_file_filter())
            if not name:
                return None
            mix_path = name
        if project_dir is None:
            project_dir = QFileDialog.getExistingDirectory(
                self, "New project from a mix: pick a new or empty folder for the project")
            if not project_dir:
                return None
        mix = Path(mix_path)
        if "model" not in separation and "model_repo" not in separation:
            separation.update(separation_options(self.adapter))
        worker = NewProjectFromMixWorker(mix, Path(project_dir), separation)

        def done(paths: list) -> None:
            if not self.open_project(paths[0]):
                return
            skipped = getattr(worker, "skipped", [])
            self.messages.show_message(
                "warning" if skipped else "info",
                f"New project from {mix.name}: {len(self.adapter.session.project.stems)} stems separated by Demucs"
                + (f"; left out {len(skipped)}: " + "; ".join(skipped) if skipped else ""))

        self._mix_worker = worker  # kept alive while it runs
        return start_with_progress(worker, self, "New project from a mix", f"Separating {mix.name}", done,
                                   lambda message: self.messages.show_message("error", message))

    def save_project_as(self) -> bool:
        """Copy the open project (stembridge.json + its analysis cache) to a new folder and open the copy;
        the original stays as it was saved."""
        from bridge.session import BridgeError, copy_project

        s = self.adapter.session
        if s is None:
            self.messages.show_message("error", "Open a project before saving it under another name.")
            return False
        suggestion = str(Path(s.project_dir).with_name(Path(s.project_dir).name + " copy"))
        target, _ = QFileDialog.getSaveFileName(self, "Save the project as (a new folder)", suggestion)
        if not target:
            return False
        try:
            s.save()  # the copy carries the edits made so far
            dest = copy_project(s.project_dir, target)
        except BridgeError as e:
            self.messages.show_message("error", str(e))
            return False
        if not self.open_project(dest):
            return False
        self.messages.show_message("info", f"Saved as {dest}; editing the copy now.")
        return True

    def close_project(self) -> None:
        """Close the project (edits are saved); the window stays, empty, until one is opened."""
        if self.adapter.session is None:
            return
        self.adapter.close()
        self.settings.remove("last_project")
        self.timeline.set_lanes([], duration_seconds=0.0)
        self.timeline.set_sections([])
        self.setWindowTitle("stembridge")
        self.status_label.setText("No project")
        self.undo_action.setEnabled(False)
        self.redo_action.setEnabled(False)
        self._set_project_open(False)

    def _set_project_open(self, is_open: bool) -> None:
        """Save As, Close and the editors work on an open project; without one they are greyed."""
        self.save_as_action.setEnabled(is_open)
        self.close_project_action.setEnabled(is_open)
        self.tabs.setEnabled(is_open)
        self.tempo_bar.setEnabled(is_open)

    def open_export(self) -> ExportDialog | None:
        if self.adapter.session is None:
            self.messages.show_message("error", "Open a project before exporting.")
            return None
        dlg = ExportDialog(self.adapter, self)
        dlg.show()
        return dlg

    def open_connect_daw(self):
        """Transport ▸ Connect to your DAW…: one dialog, raised again if already open."""
        from gui.panels.connect import ConnectDawDialog

        dlg = getattr(self, "_connect_dialog", None)
        if dlg is None:
            dlg = self._connect_dialog = ConnectDawDialog(self.adapter, self.transport, self)
        dlg.show()
        dlg.raise_()
        return dlg

    def open_calibration(self):
        """Transport ▸ Calibrate speaker time…: flash on the beat, nudge, save per sync setup."""
        from gui.panels.calibrate import CalibrationDialog

        dlg = CalibrationDialog(self.adapter, self.transport, self)
        dlg.show()
        return dlg

    def open_preferences(self) -> PreferencesDialog:
        dlg = PreferencesDialog(self.adapter, self.settings, self)
        dlg.show()
        return dlg

    # -- updates ------------------------------------------------------------------------------
    def _on_tick(self, state) -> None:
        self.timeline.set_playhead(max(0.0, state.position_seconds), playing=state.playing)

    def _on_project_changed(self, event) -> None:
        s = self.adapter.session
        if s is None:
            return
        if event is not None:
            self.undo_action.setEnabled(event.can_undo)
            self.redo_action.setEnabled(event.can_redo)
            self.undo_action.setText(f"Undo {event.undo_label}" if event.undo_label else "Undo")
            self.redo_action.setText(f"Redo {event.redo_label}" if event.redo_label else "Redo")
            if {"stems"} & event.parts:
                self.refresh_timeline()
            if {"sections"} & event.parts:
                self.refresh_sections()
        self._update_status()

    def _update_status(self) -> None:
        s = self.adapter.session
        if s is None:
            return
        a = s.analysis
        n_stems = len(s.project.stems)
        parts = [s.project.name, f"{n_stems} stem{'' if n_stems == 1 else 's'}"]
        if a is not None:
            parts.append(f"{a.duration_seconds // 60:.0f}:{a.duration_seconds % 60:04.1f} · {tempo_text(s)}")
        elif s.status()["analysing"]:
            parts.append("analysing…")
        else:  # it failed: the message bar says why
            parts.append("not analysed")
        self.status_label.setText("   ·   ".join(parts))

    def refresh_timeline(self) -> None:
        s = self.adapter.session
        if s is None or s.analysis is None:
            self._update_status()
            return
        self.timeline.set_lanes_from_analysis(s.analysis, s.project.stems)
        self.refresh_sections()
        self._update_status()

    def refresh_sections(self) -> None:
        """Draw the sections as bridge resolves them (Session.timeline_sections: the export's own
        resolution on the beat grid), or the detected ones when the project has none."""
        s = self.adapter.session
        resolved = None if s is None else s.timeline_sections()
        if resolved is None:
            return
        looks, detected = resolved
        captions = s.section_captions() or ("",) * len(looks)
        self.timeline.set_sections([(x.start_s, x.end_s, x.name, c) for x, c in zip(looks, captions, strict=True)],
                                   detected=detected)

    # -- layout persistence -------------------------------------------------------------------
    def _restore_layout(self) -> None:
        geo = self.settings.value("window/geometry")
        if geo is not None:
            self.restoreGeometry(geo)
        for name, split in (("window/main_split", self.main_split), ("window/top_split", self.top_split)):
            state = self.settings.value(name)
            if state is not None:
                split.restoreState(state)
        self.transport.restore_settings(self.settings)
        restore_audio_preferences(self.settings, self.adapter)
        restore_preview_preferences(self.settings, self.adapter)
        restore_separation_preferences(self.settings, self.adapter)

    def save_layout(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/main_split", self.main_split.saveState())
        self.settings.setValue("window/top_split", self.top_split.saveState())
        self.transport.save_settings(self.settings)
        self.settings.sync()

    def closeEvent(self, event) -> None:
        self.save_layout()
        self.looks.shutdown()
        self.effects.close_editors()
        self.adapter.close()
        super().closeEvent(event)
