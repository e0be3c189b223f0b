"""Export dialog: where the video goes (a size/fps preset), engine, model, resolution, fps, codec,
encoder, encode speed and quality (CRF or bit rate), region (whole song, the loop region, a section,
start/end), fades → a video via ``render_project`` on a worker thread, with progress, ETA, cancel,
"Open video" and "Show in folder" (which say in the message bar why when they cannot)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from PySide6.QtCore import QProcess, QThread, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QStandardItemModel
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

from bridge.session import CODECS, DEFAULT_ENCODE_SPEED, ENCODE_SPEED_PRESETS, PRESETS
from gui.panels import double_spin, int_spin
from gui.session_adapter import SessionAdapter

CUSTOM = "Custom"


def _row(*widgets: QWidget) -> QHBoxLayout:
    row = QHBoxLayout()
    for w in widgets:
        row.addWidget(w, 1 if isinstance(w, QLineEdit) else 0)
    if not any(isinstance(w, QLineEdit) for w in widgets):
        # spin boxes and their labels side by side at their own size: without this the room left went
        # to the labels and "640 ×" stood 200 px from "360" (seen in the real-window walk-through)
        row.addStretch(1)
    return row


class RenderWorker(QThread):
    """Runs render_project off the GUI thread; progress arrives as a queued signal."""

    progressed = Signal(int, int, str)
    succeeded = Signal(str)
    failed = Signal(str)

    def __init__(self, project, project_dir: Path, out_path: Path, *, analysis, options: dict) -> None:
        super().__init__()
        from bridge.session import CancelToken

        self.project, self.project_dir, self.out_path = project, project_dir, out_path
        self.analysis, self.options = analysis, options
        self.cancel = CancelToken()

    def run(self) -> None:
        from bridge.session import BridgeError, Cancelled, render_project

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
        self.preset = QComboBox()
        self.preset.addItem(CUSTOM, None)
        for p in PRESETS.values():
            self.preset.addItem(p.label, p.name)
        self.engine = QComboBox()
        self.engine.addItems(["procedural", "shader", "lcm"])
        self.model = QLineEdit()
        self.model.setPlaceholderText("Hugging Face id or folder (lcm only)")
        self.width_spin = int_spin(16, 7680, step=2)
        self.height_spin = int_spin(16, 4320, step=2)
        size = _row(self.width_spin, QLabel("×"), self.height_spin)
        self.fps = QComboBox()
        self.fps.setEditable(True)
        self.fps.addItems(["24", "25", "30", "30000/1001", "60"])
        self.codec = QComboBox()
        self._fill_codecs()
        self.encoder = QComboBox()
        self.encoder.addItem("Software (the same file on every machine)", "auto")
        self.encoder.addItem("GPU (hardware encoder)", "hardware")
        self.encoder.setToolTip("Software: x264 / x265, what the quality settings are for. GPU: NVENC on NVIDIA "
                                "(constant quality from the CRF too), VideoToolbox on a Mac, Quick Sync, AMF or "
                                "VA-API (at a bit rate) — faster")
        self.encode_speed = QComboBox()
        for key, label in (("draft", "Draft — fastest, biggest file"), ("balanced", "Balanced"),
                           ("small", "Small file — slowest")):
            self.encode_speed.addItem(f"{label} (preset {ENCODE_SPEED_PRESETS[key]})", key)
        self.encode_speed.setCurrentIndex(self.encode_speed.findData(DEFAULT_ENCODE_SPEED))
        self.encode_speed.setToolTip(
            "How hard the software encoder (x264 / x265) works per frame; the CRF sets the picture quality either way. "
            "x264 alone at 720p on 2 CPU cores (CRF 20): Draft 8 CPU-ms a frame, 5.3 Mb/s; Balanced 17 ms, "
            "4.1 Mb/s; Small file 24 ms, 2.3 Mb/s. A whole 720p shader export at Draft ran 1.05–1.7× as fast as "
            "at Balanced, with 60 % more bits: for drafts. GPU encoders and ProRes ignore it")
        self.quality_mode = QComboBox()
        self.quality_mode.addItem("Constant quality (CRF)", "crf")
        self.quality_mode.addItem("Bit rate", "bitrate")
        self.crf = int_spin(0, 51, value=20)
        self.crf.setToolTip("Lower = better and bigger: H.264 18 ≈ visually lossless, 23 its default; "
                            "HEVC looks the same about 4 higher")
        self.bitrate = double_spin(0.1, 2000, value=12.0, decimals=1, suffix=" Mb/s")
        self.quality_note = QLabel("")
        self.quality_note.setObjectName("Dim")
        quality = _row(self.quality_mode, self.crf, self.bitrate, self.quality_note)
        self.region = QComboBox()
        self.start = double_spin(0, 1e5, suffix=" s")
        self.end = double_spin(0, 1e5, suffix=" s", special="song end")
        rng = _row(self.start, QLabel("to"), self.end)
        self.fade_in = double_spin(0, 60, value=0.0, decimals=1, step=0.5, suffix=" s", special="none")
        self.fade_in.setToolTip("Picture from black and sound from silence at the start of the video")
        self.fade_out = double_spin(0, 60, value=0.0, decimals=1, step=0.5, suffix=" s", special="none")
        self.fade_out.setToolTip("Picture to black and sound to silence at the end of the video")
        fades = _row(QLabel("in"), self.fade_in, QLabel("out"), self.fade_out)
        self.out = QLineEdit()
        browse = QPushButton("…")
        browse.clicked.connect(self._browse)
        out_row = _row(self.out, browse)
        form.addRow("For", self.preset)
        form.addRow("Engine", self.engine)
        form.addRow("Model", self.model)
        form.addRow("Resolution", size)
        form.addRow("Frame rate", self.fps)
        form.addRow("Codec", self.codec)
        form.addRow("Encoder", self.encoder)
        form.addRow("Encode speed", self.encode_speed)
        form.addRow("Quality", quality)
        form.addRow("Region", self.region)
        form.addRow("", rng)
        form.addRow("Fades", fades)
        form.addRow("Output", out_row)
        if project is not None:
            self.engine.setCurrentText(project.engine.name)
            self.model.setText(project.engine.model or "")
            self.width_spin.setValue(project.render.width)
            self.height_spin.setValue(project.render.height)
            self.fps.setCurrentText(project.render.fps)
            self.out.setText(str(s.project_dir / "exports" / f"{project.name or 'render'}.mp4"))
            index = self.codec.findData(project.render.video_codec)
            if index >= 0 and self._codec_enabled(index):
                self.codec.setCurrentIndex(index)
            if self.encoder.findData(project.render.encoder) < 0:  # one encoder, by its FFmpeg name
                self.encoder.addItem(project.render.encoder, project.render.encoder)
            self.encoder.setCurrentIndex(self.encoder.findData(project.render.encoder))
            self.encode_speed.setCurrentIndex(self.encode_speed.findData(project.render.encode_speed))
            if project.render.video_bitrate:
                self.quality_mode.setCurrentIndex(1)
                self.bitrate.setValue(project.render.video_bitrate / 1e6)
            if project.render.crf is not None:
                self.crf.setValue(project.render.crf)
        self._fill_regions()
        self._match_preset()
        self._codec_changed()
        self.preset.currentIndexChanged.connect(self._preset_picked)
        for spin in (self.width_spin, self.height_spin):
            spin.valueChanged.connect(self._match_preset)
            spin.valueChanged.connect(self._size_changed)
        self.fps.currentTextChanged.connect(self._match_preset)
        self.codec.currentIndexChanged.connect(self._codec_changed)
        self.quality_mode.currentIndexChanged.connect(self._quality_mode_changed)
        self.region.currentIndexChanged.connect(self._region_picked)
        self.start.valueChanged.connect(self._match_region)
        self.end.valueChanged.connect(self._match_region)

        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.eta = QLabel("")
        self.eta.setObjectName("Dim")
        self.eta.setWordWrap(True)  # an encoder's or the range's message is longer than the dialog is wide
        self.buttons = QDialogButtonBox()
        self.export_button = self.buttons.addButton("Export", QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button = self.buttons.addButton("Cancel", QDialogButtonBox.ButtonRole.RejectRole)
        self.open_button = self.buttons.addButton("Open video", QDialogButtonBox.ButtonRole.ActionRole)
        self.open_button.setEnabled(False)
        self.folder_button = self.buttons.addButton("Show in folder", QDialogButtonBox.ButtonRole.ActionRole)
        self.folder_button.setEnabled(False)
        self.folder_button.clicked.connect(self.show_in_folder)
        self.export_button.clicked.connect(self.start_export)
        self.cancel_button.clicked.connect(self.cancel_or_close)
        self.open_button.clicked.connect(self.open_result)

        col = QVBoxLayout(self)
        col.addLayout(form)
        col.addWidget(self.progress)
        col.addWidget(self.eta)
        col.addWidget(self.buttons)
        self._t0 = 0.0

    # -- presets, codecs, quality, region ------------------------------------------------------
    def _fill_codecs(self) -> None:
        """Every codec, those without an encoder in this FFmpeg build greyed out and saying so."""
        from bridge.session import available_codecs

        try:
            available = set(available_codecs())
        except Exception:  # noqa: BLE001 - no PyAV at all: the export itself will say so
            available = set()
        model = self.codec.model()
        for key, spec in CODECS.items():
            suffix = spec.default_suffix.lstrip(".").upper()
            self.codec.addItem(f"{spec.label} ({suffix})" if key in available
                               else f"{spec.label} — not in this FFmpeg build", key)
            if key not in available and isinstance(model, QStandardItemModel):
                item = model.item(self.codec.count() - 1)
                item.setEnabled(False)
                item.setToolTip("PyAV's FFmpeg has no encoder for it here; install the PyAV wheel from PyPI "
                                "(pip install --force-reinstall av), which includes libx264 and libx265")

    def _codec_enabled(self, index: int) -> bool:
        model = self.codec.model()
        return not isinstance(model, QStandardItemModel) or model.item(index).isEnabled()

    def _fill_regions(self) -> None:
        self.region.blockSignals(True)
        self.region.clear()
        self.region.addItem("Whole song", (0.0, 0.0))
        s = self.adapter.session
        loop = getattr(getattr(s, "audio", None), "loop", None) if s is not None else None
        if loop is not None:
            self.region.addItem(f"Loop region ({loop[0]:.2f} – {loop[1]:.2f} s)", (float(loop[0]), float(loop[1])))
        resolved = None if s is None else s.timeline_sections()
        if resolved is not None:
            for i, sec in enumerate(resolved[0]):
                self.region.addItem(f"Section {i + 1}: {sec.name} ({sec.start_s:.2f} – {sec.end_s:.2f} s)",
                                    (float(sec.start_s), float(sec.end_s)))
        self.region.addItem(CUSTOM, None)
        self.region.blockSignals(False)
        self._match_region()

    def _preset_picked(self) -> None:
        name = self.preset.currentData()
        if name is None:
            return
        p = PRESETS[name]
        for w in (self.width_spin, self.height_spin, self.fps):
            w.blockSignals(True)
        self.width_spin.setValue(p.width)
        self.height_spin.setValue(p.height)
        self.fps.setCurrentText(p.fps)
        for w in (self.width_spin, self.height_spin, self.fps):
            w.blockSignals(False)
        self._size_changed(label=f"export for {p.name}")

    def _size_changed(self, *_: object, label: str | None = None) -> None:
        """The project's output size follows the dialog, so the preview shows the frame being
        exported (a vertical preset: a vertical preview, letterboxed, never stretched). One undo step."""
        s = self.adapter.session
        size = (self.width_spin.value(), self.height_spin.value())
        if s is None or (s.project.render.width, s.project.render.height) == size:
            return
        self.adapter.command("set_render", width=size[0], height=size[1],
                             label=label or f"export size {size[0]}×{size[1]}")

    def _match_preset(self) -> None:
        """Show the preset the size and fps are (Custom when none)."""
        size = (self.width_spin.value(), self.height_spin.value(), self.fps.currentText().strip())
        index = 0
        for i in range(1, self.preset.count()):
            p = PRESETS[self.preset.itemData(i)]
            if (p.width, p.height, p.fps) == size:
                index = i
                break
        self.preset.blockSignals(True)
        self.preset.setCurrentIndex(index)
        self.preset.blockSignals(False)

    def _codec_changed(self) -> None:
        spec = CODECS[self.codec.currentData()]
        for w in (self.quality_mode, self.crf, self.bitrate, self.encode_speed):
            w.setEnabled(spec.has_quality)
        self.quality_note.setText("" if spec.has_quality else "set by the ProRes 422 profile")
        if spec.has_quality and self.quality_mode.currentData() == "crf" and not self._crf_touched():
            self.crf.setValue(spec.default_crf)
        self._quality_mode_changed()
        self._fill_encoders()
        out = Path(self.out.text()) if self.out.text().strip() else None
        if out is not None and out.suffix.lower() not in spec.suffixes:
            self.out.setText(str(out.with_suffix(spec.default_suffix)))

    def _fill_encoders(self) -> None:
        """The GPU choice greyed out, saying why, where no hardware encoder of the codec opens here."""
        from bridge.session import encoders_available, is_hardware_encoder

        spec = CODECS[self.codec.currentData()]
        try:
            hardware = [n for n in encoders_available(spec.key) if is_hardware_encoder(n)]
        except Exception:  # noqa: BLE001 - no PyAV at all: the export itself will say so
            hardware = []
        model = self.encoder.model()
        if isinstance(model, QStandardItemModel):
            item = model.item(self.encoder.findData("hardware"))
            item.setEnabled(bool(hardware))
            item.setToolTip(f"{spec.label} on {hardware[0]}" if hardware else
                            f"No hardware {spec.label} encoder opens on this machine (NVENC needs an NVIDIA GPU "
                            "with a video encoder and its driver — data-centre GPUs such as the H100/H200 have none; "
                            "VideoToolbox a Mac)")
        if not hardware and self.encoder.currentData() == "hardware":
            self.encoder.setCurrentIndex(self.encoder.findData("auto"))

    def _crf_touched(self) -> bool:
        return self.crf.value() not in {c.default_crf for c in CODECS.values()}

    def _quality_mode_changed(self) -> None:
        by_rate = self.quality_mode.currentData() == "bitrate"
        self.crf.setVisible(not by_rate)
        self.bitrate.setVisible(by_rate)

    def _region_picked(self) -> None:
        span = self.region.currentData()
        if span is None:
            return
        for w in (self.start, self.end):
            w.blockSignals(True)
        self.start.setValue(span[0])
        self.end.setValue(span[1])
        for w in (self.start, self.end):
            w.blockSignals(False)

    def _match_region(self) -> None:
        span = (round(self.start.value(), 2), round(self.end.value(), 2))
        index = self.region.count() - 1
        for i in range(self.region.count() - 1):
            data = self.region.itemData(i)
            if data is not None and (round(data[0], 2), round(data[1], 2)) == span:
                index = i
                break
        self.region.blockSignals(True)
        self.region.setCurrentIndex(index)
        self.region.blockSignals(False)

    def _browse(self) -> None:
        spec = CODECS[self.codec.currentData()]
        kinds = " ".join(f"*{x}" for x in spec.suffixes)
        path, _ = QFileDialog.getSaveFileName(self, "Export video", self.out.text(), f"{spec.label} video ({kinds})")
        if path:
            self.out.setText(path)

    def options(self) -> dict:
        opts: dict = {"width": self.width_spin.value(), "height": self.height_spin.value(),
                      "fps": self.fps.currentText(), "engine_name": self.engine.currentText(),
                      "codec": self.codec.currentData(), "encoder": self.encoder.currentData()}
        if CODECS[opts["codec"]].has_quality:
            opts["encode_speed"] = self.encode_speed.currentData()
            if self.quality_mode.currentData() == "bitrate":
                opts["bitrate"] = int(round(self.bitrate.value() * 1e6))
            else:
                opts["crf"] = self.crf.value()
        if self.model.text().strip():
            opts["model"] = self.model.text().strip()
        if self.start.value() > 0:
            opts["start_s"] = self.start.value()
        if self.end.value() > 0:
            opts["end_s"] = self.end.value()
        if self.fade_in.value() > 0:
            opts["fade_in_s"] = self.fade_in.value()
        if self.fade_out.value() > 0:
            opts["fade_out_s"] = self.fade_out.value()
        return opts

    def range_problem(self) -> str | None:
        """Why the region cannot be exported, in the dialog's words (None when it can). The engine
        checks the range too, but names the CLI's flags (--start, --end) the dialog does not have."""
        s = self.adapter.session
        a = None if s is None else s.analysis
        start, end = self.start.value(), self.end.value()  # end 0: "song end"
        song = f"the song is {a.duration_seconds:.2f} s long" if a is not None else None
        if a is not None and start >= a.duration_seconds:
            return (f"The region starts at {start:.2f} s, at or after the song's end ({song}); "
                    "set the start earlier or pick Whole song.")
        if end > 0 and start >= end:
            return (f"The region {start:.2f} s to {end:.2f} s is empty: its end must come after its start"
                    f"{f' ({song})' if song else ''}; set the end later or the start earlier.")
        return None

    def _keep_settings(self) -> bool:
        """The project keeps what this export used (frame rate, codec, encoder, speed, quality), as the
        size already is: reopened, the dialog and `stembridge render` use them again (they came back
        at the project's old 30 fps). One undo step; False (with the session's message) when refused."""
        s = self.adapter.session
        o, r = self.options(), s.project.render
        wanted = {"fps": o["fps"].strip(), "video_codec": o["codec"], "encoder": o["encoder"]}
        if CODECS[o["codec"]].has_quality:
            wanted.update(encode_speed=o["encode_speed"], crf=o.get("crf"), video_bitrate=o.get("bitrate"))
        changes = {k: v for k, v in wanted.items() if getattr(r, k) != v}
        if not changes:
            return True
        before = s.project
        self.adapter.command("set_render", label="export settings", **changes)
        return s.project is not before

    def start_export(self) -> None:
        s = self.adapter.session
        if s is None or self.worker is not None:
            return
        problem = self.range_problem()
        if problem is not None:
            self._on_failed(problem)
            return
        if not self._keep_settings():
            return
        out = Path(self.out.text()).expanduser()
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:  # a file in the way, no permission, a read-only disk: say so, don't raise
            self._on_failed(f"Cannot make the folder {out.parent} for the video ({e.strerror or e}); "
                            "choose another output path.")
            return
        self.result_path = None
        self.open_button.setEnabled(False)
        self.folder_button.setEnabled(False)
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
        self.folder_button.setEnabled(True)
        self.adapter.message.emit("info", f"Exported {path}")
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

    def _result_or_say_why(self) -> Path | None:
        path = self.result_path
        if path is None:
            self.adapter.message.emit("error", "Nothing exported yet: press Export first.")
            return None
        if not path.is_file():
            self.adapter.message.emit("error", f"The exported video is no longer at {path} (moved or deleted); "
                                               "export again.")
            return None
        return path

    def open_result(self) -> bool:
        """Open the video in the system's player; says in the message bar why when it cannot."""
        path = self._result_or_say_why()
        if path is None:
            return False
        if not QDesktopServices.openUrl(QUrl.fromLocalFile(str(path))):
            self.adapter.message.emit("error", f"Could not open {path.name}: no application is set to play "
                                               f"{path.suffix} files on this system. The video is at {path}.")
            return False
        return True

    def show_in_folder(self) -> bool:
        """Show the video in the file manager (selected where the platform allows); or say why not."""
        path = self._result_or_say_why()
        if path is None:
            return False
        if sys.platform == "darwin":
            ok = QProcess.startDetached("open", ["-R", str(path)])
        elif sys.platform == "win32":
            ok = QProcess.startDetached("explorer", [f"/select,{path}"])
        else:  # freedesktop: open the folder (selecting the file needs the file manager's D-Bus API)
            ok = QDesktopServices.openUrl(QUrl.fromLocalFile(str(path.parent)))
        if isinstance(ok, tuple):  # PySide6 returns (ok, pid) for startDetached
            ok = ok[0]
        if not ok:
            self.adapter.message.emit("error", f"Could not show the folder: no file manager answered here. "
                                               f"The video is at {path}.")
            return False
        return True

    def closeEvent(self, event) -> None:
        if self.worker is not None:
            self.worker.cancel.cancel()
            self.worker.wait(10_000)
        super().closeEvent(event)
