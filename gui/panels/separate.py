""""Separate a mix…" and File ▸ "New project from a mix…": Demucs on a worker thread (torch is imported
there, never at startup), with a progress dialog and cancel. Separated stems are added to the open project
like dropped files; a new project from a mix is opened once it is made."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QThread, Signal
from PySide6.QtWidgets import QFileDialog, QProgressDialog, QWidget

from gui.panels import audio_file_filter

#: Added to "model not available" in the app, whose user may never have typed a command.
_ONLINE_HINT = ("\n  In the app: connect to the internet and try again (the weights download once, then work "
                "offline), or choose a folder with model files you copied in Edit ▸ Preferences ▸ Separation "
                "model")


class SeparateWorker(QThread):
    progressed = Signal(int, int, str)
    succeeded = Signal(list)
    failed = Signal(str)
    cancelled_text = "Separation cancelled; nothing was written."
    model_hint = (_ONLINE_HINT + ", or split the mix in a terminal with the model files you copied: stembridge "
                  "separate MIX_FILE -o STEMS_DIR --model-repo DIR, then drop the stems on the Stems tab.")

    def __init__(self, mix_path: Path, out_dir: Path, options: dict[str, Any] | None = None) -> None:
        super().__init__()
        from bridge.session import CancelToken

        self.mix_path, self.out_dir = mix_path, out_dir
        self.options = dict(options or {})  # separate_mix_to_folder's: model, model_repo, cache_dir…
        self.cancel = CancelToken()

    def work(self, progress) -> list[Path]:
        """The job (on this thread); returns the paths to hand to ``succeeded``."""
        from bridge.session import separate_mix_to_folder

        return separate_mix_to_folder(self.mix_path, self.out_dir, cancel=self.cancel, progress=progress,
                                      **self.options)

    def run(self) -> None:
        from bridge.session import BridgeError, Cancelled

        try:
            paths = self.work(lambda d, t, label="": self.progressed.emit(int(d), int(t), label))
        except Cancelled:
            self.failed.emit(self.cancelled_text)
        except BridgeError as e:
            from bridge.session import ModelNotAvailable

            self.failed.emit(str(e) + (self.model_hint if isinstance(e, ModelNotAvailable) else ""))
        except Exception as e:  # noqa: BLE001 - shown to the user, logged
            import logging

            logging.getLogger(__name__).exception("separation failed")
            self.failed.emit(f"{type(e).__name__}: {e}")
        else:
            self.succeeded.emit([str(p) for p in paths])


def separate_mix_dialog(panel: QWidget, mix_path: Path | None = None, **options: Any) -> SeparateWorker | None:
    """Ask for a mix (unless given), separate it into ``<project>/separated/<mix name>/`` and add the
    stems through ``panel.add_files``. ``options`` go to :func:`bridge.separation.separate_mix_to_folder`
    (default: the model chosen in Preferences, else the released htdemucs). Returns the running worker."""
    adapter = panel.adapter
    if adapter.session is None:
        adapter.message.emit("error", "Open a project before separating a mix into it.")
        return None
    if mix_path is None:
        name, _ = QFileDialog.getOpenFileName(panel, "Separate a mix into stems", "",
                                              audio_file_filter())
        if not name:
            return None
        mix_path = Path(name)
    out_dir = adapter.session.project_dir / "separated" / mix_path.stem
    if "model" not in options and "model_repo" not in options:
        from gui.panels.preferences import separation_options

        options.update(separation_options(adapter))
    worker = SeparateWorker(mix_path, out_dir, options)

    def done(paths: list) -> None:
        added = panel.add_files([Path(p) for p in paths])
        adapter.message.emit("info", f"Separated {mix_path.name}: added {', '.join(added) or 'no new stems'}")

    panel._separate_worker = worker  # keep it alive while it runs
    return start_with_progress(worker, panel, "Separate a mix", f"Separating {mix_path.name}", done,
                               lambda message: adapter.message.emit("error", message))


def start_with_progress(worker: SeparateWorker, parent: QWidget, title: str, text: str, done, failed) -> SeparateWorker:
    """Start ``worker`` behind a progress dialog whose Cancel cancels it; ``done(paths)`` or
    ``failed(message)`` run on the GUI thread once it ends (the dialog closed first)."""
    dialog = QProgressDialog(f"{text}…", "Cancel", 0, 0, parent)
    dialog.setWindowTitle(title)
    dialog.setMinimumDuration(0)
    dialog.canceled.connect(worker.cancel.cancel)
    worker.dialog = dialog

    def progress(done_units: int, total: int, label: str) -> None:
        dialog.setMaximum(max(1, total))
        dialog.setValue(done_units)
        if label:
            dialog.setLabelText(f"{text}: {label}")

    def succeeded(paths: list) -> None:
        dialog.close()
        done(paths)

    def on_failed(message: str) -> None:
        dialog.close()
        failed(message)

    worker.progressed.connect(progress)
    worker.succeeded.connect(succeeded)
    worker.failed.connect(on_failed)
    worker.start()
    dialog.show()
    return worker


class NewProjectFromMixWorker(SeparateWorker):
    """Separate a mix into ``<project>/stems`` and create the project there
    (:func:`bridge.project.create.new_project_from_mix`: all or nothing)."""

    cancelled_text = "New project cancelled; nothing was written."
    model_hint = (_ONLINE_HINT + ", or make the project in a terminal with the model files you copied: stembridge "
                  "new PROJECT_DIR --mix MIX_FILE --model-repo DIR, then File ▸ Open project.")

    def work(self, progress) -> list[Path]:
        from bridge.session import new_project_from_mix

        result = new_project_from_mix(self.out_dir, self.mix_path, separation=self.options, progress=progress,
                                      cancel=self.cancel)
        self.skipped = list(result.skipped)
        return [result.project_dir]
