"""Export dialog: engine, model, resolution, fps, codec, range → MP4 via ``render_project`` on a
worker thread, with progress, ETA, cancel and "open the result"."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QThread, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from gui.panels import double_spin, int_spin
from gui.session_adapter import SessionAdapter


def _row(*widgets: QWidget) -> QHBoxLayout:
    row = QHBoxLayout()
    for w in widgets:
        row.addWidget(w, 1 if isinstance(w, QLineEdit) else 0)
    return row


class RenderWorker(QThread):
    """Runs render_project off the GUI thread; progress arrives as a queued signal."""

    progressed = Signal(int, int, str)
    succeeded = Signal(str)
    failed = Signal(str)

    def __init__(self, project, project_dir: Path, out_path: Path, *, analysis, options: dict) -> None:
        super().__init__()
        from bridge.jobs import CancelToken

        self.project, self.project_dir, self.out_path = project, project_dir, out_path
        self.analysis, self.options = analysis, options
        self.cancel = CancelToken()

    def run(self) -> None:
        from bridge.errors import BridgeError, Cancelled
        from bridge.export.render import render_project

        try:
            path = render_project(self.project, self.project_dir, self.out_path, analysis=self.analysis,
                                  progress=lambda d, t, label="": self.progressed.emit(int(d), int(t), label),
                                  cancel=self.cancel, **self.options)
        except Cancelled:
            self.failed.emit("Export cancelled; nothing was written.")
        except BridgeError as e:
            self.failed.emit(str(e))
        except Exception as e:  # noqa: BLE001 - reported in the dialog (and logged), never lost in a thread
            import logging

            logging.getLogger(__name__).exception("export failed")
            self.failed.emit(f"{type(e).__name__}: {e}")
        else:
            self.succeeded.emit(str(path))


class ExportDialog(QDialog):
    finished_path = Signal(str)

    def __init__(self, adapter: SessionAdapter, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.adapter = adapter
        self.setWindowTitle("Export video")
        self.setMinimumWidth(460)
        self.worker: RenderWorker | None = None
        self.result_path: Path | None = None
        s = adapter.session
        project = s.project if s is not None else None

        form = QFormLayout()
        self.engine = QComboBox()
        self.engine.addItems(["procedural", "lcm"])
        self.model = QLineEdit()
        self.model.setPlaceholderText("Hugging Face id or folder (lcm only)")
        self.width_spin = int_spin(16, 7680, step=2)
        self.height_spin = int_spin(16, 4320, step=2)
        size = _row(self.width_spin, QLabel("×"), self.height_spin)
        self.fps = QComboBox()
        self.fps.setEditable(True)
        self.fps.addItems(["24", "25", "30", "30000/1001", "60"])
        self.codec = QComboBox()
        self.codec.addItems(["H.264 (MP4)"])
        self.start = double_spin(0, 1e5, suffix=" s")
        self.end = double_spin(0, 1e5, suffix=" s", special="song end")
        rng = _row(self.start, QLabel("to"), self.end)
        self.out = QLineEdit()
        browse = QPushButton("…")
        browse.clicked.connect(self._browse)
        out_row = _row(self.out, browse)
        form.addRow("Engine", self.engine)
        form.addRow("Model", self.model)
        form.addRow("Resolution", size)
        form.addRow("Frame rate", self.fps)
        form.addRow("Codec", self.codec)
        form.addRow("Range", rng)
        form.addRow("Output", out_row)
        if project is not None:
            self.engine.setCurrentText(project.engine.name)
            self.model.setText(project.engine.model or "")
            self.width_spin.setValue(project.render.width)
            self.height_spin.setValue(project.render.height)
            self.fps.setCurrentText(project.render.fps)
            self.out.setText(str(s.project_dir / "exports" / f"{project.name or 'render'}.mp4"))

        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.eta = QLabel("")
        self.eta.setObjectName("Dim")
        self.buttons = QDialogButtonBox()
        self.export_button = self.buttons.addButton("Export", QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button = self.buttons.addButton("Cancel", QDialogButtonBox.ButtonRole.RejectRole)
        self.open_button = self.buttons.addButton("Open video", QDialogButtonBox.ButtonRole.ActionRole)
        self.open_button.setEnabled(False)
        self.export_button.clicked.connect(self.start_export)
        self.cancel_button.clicked.connect(self.cancel_or_close)
        self.open_button.clicked.connect(self.open_result)

        col = QVBoxLayout(self)
        col.addLayout(form)
        col.addWidget(self.progress)
        col.addWidget(self.eta)
        col.addWidget(self.buttons)
        self._t0 = 0.0

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export video", self.out.text(), "MP4 video (*.mp4)")
        if path:
            self.out.setText(path)

    def options(self) -> dict:
        opts: dict = {"width": self.width_spin.value(), "height": self.height_spin.value(),
                      "fps": self.fps.currentText(), "engine_name": self.engine.currentText()}
        if self.model.text().strip():
            opts["model"] = self.model.text().strip()
        if self.start.value() > 0:
            opts["start_s"] = self.start.value()
        if self.end.value() > 0:
            opts["end_s"] = self.end.value()
        return opts

    def start_export(self) -> None:
        s = self.adapter.session
        if s is None or self.worker is not None:
            return
        out = Path(self.out.text()).expanduser()
        out.parent.mkdir(parents=True, exist_ok=True)
        self.result_path = None
        self.open_button.setEnabled(False)
        self.export_button.setEnabled(False)
        self.eta.setText("Starting…")
        self._t0 = time.monotonic()
        self.worker = RenderWorker(s.project, s.project_dir, out, analysis=s.analysis, options=self.options())
        self.worker.progressed.connect(self._on_progress)
        self.worker.succeeded.connect(self._on_done)
        self.worker.failed.connect(self._on_failed)
        self.worker.finished.connect(self._on_thread_finished)
        self.worker.start()

    def _on_progress(self, done: int, total: int, label: str) -> None:
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(done)
        elapsed = time.monotonic() - self._t0
        if done > 0 and total > 0:
            eta = elapsed * (total - done) / done
            self.eta.setText(f"{done}/{total} frames · {elapsed:.0f} s elapsed · about {eta:.0f} s left")

    def _on_done(self, path: str) -> None:
        self.result_path = Path(path)
        self.progress.setValue(self.progress.maximum())
        self.eta.setText(f"Done in {time.monotonic() - self._t0:.1f} s: {path}")
        self.open_button.setEnabled(True)
        self.finished_path.emit(path)

    def _on_failed(self, message: str) -> None:
        self.eta.setText(message)
        self.adapter.message.emit("error", message)

    def _on_thread_finished(self) -> None:
        self.worker = None
        self.export_button.setEnabled(True)
        self.cancel_button.setText("Close")

    def cancel_or_close(self) -> None:
        if self.worker is not None:
            self.worker.cancel.cancel()
            self.eta.setText("Cancelling…")
        else:
            self.reject()

    def open_result(self) -> None:
        if self.result_path is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.result_path)))

    def closeEvent(self, event) -> None:
        if self.worker is not None:
            self.worker.cancel.cancel()
            self.worker.wait(10_000)
        super().closeEvent(event)
