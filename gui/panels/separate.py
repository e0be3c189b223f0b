""""Separate a mix…": Demucs on a worker thread (torch is imported there, never at startup), with a
progress dialog and cancel; the separated stems are then added to the project like dropped files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QThread, Signal
from PySide6.QtWidgets import QFileDialog, QProgressDialog, QWidget


class SeparateWorker(QThread):
    progressed = Signal(int, int, str)
    succeeded = Signal(list)
    failed = Signal(str)

    def __init__(self, mix_path: Path, out_dir: Path, options: dict[str, Any] | None = None) -> None:
        super().__init__()
        from bridge.jobs import CancelToken

        self.mix_path, self.out_dir = mix_path, out_dir
        self.options = dict(options or {})  # separate_mix_to_folder's: model, model_repo, cache_dir…
        self.cancel = CancelToken()

    def run(self) -> None:
        from bridge.errors import BridgeError, Cancelled

        try:
            from bridge.separation import separate_mix_to_folder

            paths = separate_mix_to_folder(self.mix_path, self.out_dir, cancel=self.cancel,
                                           progress=lambda d, t, label="": self.progressed.emit(int(d), int(t), label),
                                           **self.options)
        except Cancelled:
            self.failed.emit("Separation cancelled; nothing was written.")
        except BridgeError as e:
            self.failed.emit(str(e))
        except Exception as e:  # noqa: BLE001 - shown to the user, logged
            import logging

            logging.getLogger(__name__).exception("separation failed")
            self.failed.emit(f"{type(e).__name__}: {e}")
        else:
            self.succeeded.emit([str(p) for p in paths])


def separate_mix_dialog(panel: QWidget, mix_path: Path | None = None, **options: Any) -> SeparateWorker | None:
    """Ask for a mix (unless given), separate it into ``<project>/separated/<mix name>/`` and add the
    stems through ``panel.add_files``. ``options`` go to :func:`bridge.separation.separate_mix_to_folder`
    (default: the released htdemucs). Returns the running worker."""
    adapter = panel.adapter
    if adapter.session is None:
        adapter.message.emit("error", "Open a project before separating a mix into it.")
        return None
    if mix_path is None:
        name, _ = QFileDialog.getOpenFileName(panel, "Separate a mix into stems", "",
                                              "Audio (*.wav *.aif *.aiff *.flac *.mp3 *.ogg)")
        if not name:
            return None
        mix_path = Path(name)
    out_dir = adapter.session.project_dir / "separated" / mix_path.stem
    worker = SeparateWorker(mix_path, out_dir, options)
    dialog = QProgressDialog(f"Separating {mix_path.name}…", "Cancel", 0, 0, panel)
    dialog.setWindowTitle("Separate a mix")
    dialog.setMinimumDuration(0)
    dialog.canceled.connect(worker.cancel.cancel)

    def progress(done: int, total: int, label: str) -> None:
        dialog.setMaximum(max(1, total))
        dialog.setValue(done)
        if label:
            dialog.setLabelText(f"Separating {mix_path.name}: {label}")

    def done(paths: list) -> None:
        dialog.close()
        added = panel.add_files([Path(p) for p in paths])
        adapter.message.emit("info", f"Separated {mix_path.name}: added {', '.join(added) or 'no new stems'}")

    def failed(message: str) -> None:
        dialog.close()
        adapter.message.emit("error", message)

    worker.progressed.connect(progress)
    worker.succeeded.connect(done)
    worker.failed.connect(failed)
    panel._separate_worker = worker  # keep it alive while it runs
    worker.start()
    dialog.show()
    return worker
