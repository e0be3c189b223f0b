"""QApplication setup: dark theme, logging to the platform log folder, one de-duplicated dialog for
unexpected exceptions, and :func:`run_gui` (what ``stembridge`` / ``stembridge gui`` call).

Importing this module imports Qt and the bridge's light modules only (never torch, diffusers,
demucs or transformers): the window must paint within 1.5 s of launch.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from logging.handlers import RotatingFileHandler
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QSettings, Qt, QTimer
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication, QMessageBox

log = logging.getLogger("gui")

ORG, APP = "stembridge", "stembridge"
_SET_UP = False

STYLESHEET = """
QWidget { font-size: 10pt; }
QMainWindow, QDialog { background: #1a1c21; }
#TransportBar { background: #111317; border-bottom: 1px solid #2a2e36; }
#TransportBar QLabel { color: #9aa3b0; }
#Position { font-family: monospace; font-size: 15pt; color: #f2f4f8; }
#SyncStatus { color: #e6e9ee; font-weight: 600; }
#PlayButton { min-width: 34px; min-height: 26px; font-size: 13pt; background: #2b5fd9; color: white;
              border-radius: 4px; }
QToolButton { background: #262a31; border: 1px solid #323741; border-radius: 4px; padding: 3px 8px; color: #dfe3ea; }
QToolButton:hover, QPushButton:hover { background: #313641; }
QPushButton { background: #262a31; border: 1px solid #323741; border-radius: 4px; padding: 4px 12px; color: #dfe3ea; }
QComboBox, QLineEdit, QSpinBox, QDoubleSpinBox { background: #121418; border: 1px solid #323741; border-radius: 3px;
              padding: 2px 6px; color: #e6e9ee; selection-background-color: #2b5fd9; }
QComboBox:disabled, QLineEdit:disabled, QSpinBox:disabled, QDoubleSpinBox:disabled {
              background: #181a1f; border-color: #282c34; color: #5b6470; }
QPushButton:disabled, QToolButton:disabled { background: #1f2228; border-color: #2a2e36; color: #5b6470; }
QTabWidget::pane { border: 1px solid #2a2e36; border-radius: 4px; top: -1px; background: #1d2026; }
QTabBar::tab { background: #16181d; color: #9aa3b0; padding: 6px 16px; border: 1px solid #2a2e36;
               border-bottom: none; border-top-left-radius: 4px; border-top-right-radius: 4px; margin-right: 2px; }
QTabBar::tab:selected { background: #1d2026; color: #f2f4f8; }
QTableWidget { background: #1d2026; gridline-color: #2a2e36; border: none; }
QHeaderView::section { background: #16181d; color: #8b95a3; border: none; border-bottom: 1px solid #2a2e36;
                       padding: 4px; font-size: 8pt; text-transform: uppercase; }
#Header { color: #6c7684; font-size: 8pt; font-weight: 600; }
#Dim { color: #7d8794; }
#Badge { color: #1a1c21; background: #ffd23f; border-radius: 3px; padding: 1px 6px; }
#BadgeBad { color: white; background: #d9434f; border-radius: 3px; padding: 1px 6px; }
QProgressBar { background: #121418; border: 1px solid #2a2e36; border-radius: 3px; color: #cfd5de;
               text-align: center; font-size: 8pt; }
QProgressBar::chunk { background: #3ddc97; border-radius: 2px; }
#KeyframeBar::chunk { background: #23654b; }
#MessageBar { background: #24303f; border-bottom: 1px solid #2f4b7c; }
#MessageBar[level="error"] { background: #3b1f24; border-bottom: 1px solid #d9434f; }
#MessageBar QLabel { color: #f2f4f8; }
QSplitter::handle { background: #1a1c21; }
QCheckBox::indicator { width: 13px; height: 13px; border: 1px solid #566070; border-radius: 3px; background: #121418; }
QCheckBox::indicator:checked { background: #3ddc97; border-color: #3ddc97; }
QStatusBar { background: #111317; color: #8b95a3; }
QScrollArea, QScrollArea > QWidget > QWidget { background: #1d2026; }
"""


def dark_palette() -> QPalette:
    p = QPalette()
    roles = {
        QPalette.ColorRole.Window: "#1a1c21", QPalette.ColorRole.WindowText: "#e6e9ee",
        QPalette.ColorRole.Base: "#121418", QPalette.ColorRole.AlternateBase: "#1d2026",
        QPalette.ColorRole.Text: "#e6e9ee", QPalette.ColorRole.Button: "#262a31",
        QPalette.ColorRole.ButtonText: "#e6e9ee", QPalette.ColorRole.Highlight: "#2b5fd9",
        QPalette.ColorRole.HighlightedText: "#ffffff", QPalette.ColorRole.ToolTipBase: "#262a31",
        QPalette.ColorRole.ToolTipText: "#e6e9ee", QPalette.ColorRole.PlaceholderText: "#6c7684",
        QPalette.ColorRole.Link: "#5aa9ff",
    }
    for role, colour in roles.items():
        p.setColor(role, QColor(colour))
    p.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor("#5b6470"))
    p.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor("#5b6470"))
    return p


def log_dir() -> Path:
    """The platform log folder (``platformdirs.user_log_dir``), created on demand."""
    from platformdirs import user_log_dir

    d = Path(os.environ.get("STEMBRIDGE_LOG_DIR") or user_log_dir(APP, ORG))
    d.mkdir(parents=True, exist_ok=True)
    return d


def setup_logging() -> Path | None:
    """Log to ``<log dir>/stembridge.log`` (rotating). Returns the file, or None if it cannot be written."""
    try:
        path = log_dir() / "stembridge.log"
        handler = RotatingFileHandler(path, maxBytes=2_000_000, backupCount=3, encoding="utf-8")
    except OSError:
        return None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    return path


class ErrorReporter:
    """``sys.excepthook`` for the GUI: logs every unexpected exception and shows each distinct one
    once (a bug in a 40 Hz slot must not open 40 dialogs a second)."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, str]] = set()
        self.dialog: QMessageBox | None = None

    def __call__(self, exc_type, exc, tb) -> None:
        log.error("unexpected error", exc_info=(exc_type, exc, tb))
        where = traceback.extract_tb(tb)[-1] if tb is not None else None
        key = (exc_type.__name__, f"{where.filename}:{where.lineno}" if where else str(exc))
        if key in self.seen or QApplication.instance() is None:
            return
        self.seen.add(key)
        self.dialog = QMessageBox(QMessageBox.Icon.Critical, "stembridge — unexpected error",
                                  f"{exc_type.__name__}: {exc}\n\nThe details are in the log: {log_dir()}")
        self.dialog.setDetailedText("".join(traceback.format_exception(exc_type, exc, tb)))
        self.dialog.setWindowModality(Qt.WindowModality.NonModal)
        self.dialog.show()


def create_app(argv: list[str] | None = None, *, install_error_hook: bool = True) -> QApplication:
    """The QApplication (reused when one exists), themed, with logging and (unless
    ``install_error_hook`` is False, e.g. under pytest-qt, which has its own) the error hook."""
    QCoreApplication.setOrganizationName(ORG)
    QCoreApplication.setApplicationName(APP)
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    app.setStyle("Fusion")
    app.setPalette(dark_palette())
    app.setStyleSheet(STYLESHEET)
    global _SET_UP
    if not _SET_UP:
        setup_logging()
        if install_error_hook:
            sys.excepthook = ErrorReporter()
        _SET_UP = True
    return app


#: Dialogs ``--screenshot`` can show over the window: name → the MainWindow method that opens it.
SCREENSHOT_DIALOGS = {"connect": "open_connect_daw", "export": "open_export", "preferences": "open_preferences"}


def grab_screenshot(window, out_path: str | Path, *, wait_s: float = 20.0, at_fraction: float = 0.42,
                    dialog: str | None = None) -> Path:
    """Wait (events running) until the analysis and preview are ready, put the playhead at
    ``at_fraction`` of the song, then save the window as a PNG. ``dialog`` (a key of
    :data:`SCREENSHOT_DIALOGS`): open that dialog and draw it over the middle of the window, as a
    user sees it (a top-level dialog is not part of the window's own grab)."""
    from bridge.session import atomic_output

    app = QApplication.instance()
    deadline = time.monotonic() + wait_s
    s = window.adapter.session
    while s is not None and time.monotonic() < deadline:
        app.processEvents()
        if s.analysis is not None and window.timeline.lanes:
            break
        time.sleep(0.02)
    if s is not None and s.analysis is not None:
        s.seek(s.analysis.duration_seconds * at_fraction)
        while time.monotonic() < deadline:
            app.processEvents()
            st = s.preview_status()
            if st is None or (st.keyframes_total and not st.pass_active and st.keyframes_pending == 0):
                break
            time.sleep(0.02)
    opened = None
    if dialog is not None:
        if dialog not in SCREENSHOT_DIALOGS:
            raise ValueError(f"--dialog {dialog!r}: pick one of {', '.join(SCREENSHOT_DIALOGS)}")
        opened = getattr(window, SCREENSHOT_DIALOGS[dialog])()
        if opened is None:  # e.g. export without a project: the message bar says why
            raise RuntimeError(f"the {dialog} dialog could not be opened: {window.messages.text}")
    end = time.monotonic() + 0.3
    while time.monotonic() < end:  # a few ticks so every panel shows the final state
        app.processEvents()
        time.sleep(0.01)
    image = window.grab()
    if opened is not None:
        _draw_dialog_over(image, opened)
        opened.close()
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(out) as tmp:
        if not image.save(str(tmp), "PNG"):
            raise OSError(f"could not write a PNG to {out}")
    os.chmod(out, 0o644)  # atomic_output's temp file is private (mkstemp); a README image is not
    return out


def _draw_dialog_over(image, dialog) -> None:
    """Paint ``dialog`` centred on ``image`` (a grab of the window, dimmed), with the title bar a
    window manager would draw (offscreen there is none)."""
    from PySide6.QtCore import QRect
    from PySide6.QtGui import QPainter, QPen

    # at least a comfortable size, as a user would open it up (its steps and forms unscrolled)
    dialog.resize(max(dialog.width(), 720), max(dialog.height(), 420))
    QApplication.instance().processEvents()
    shot = dialog.grab()
    dpr = image.devicePixelRatio() or 1.0
    sw, sh = shot.width() / (shot.devicePixelRatio() or 1.0), shot.height() / (shot.devicePixelRatio() or 1.0)
    title_h = 30
    x = int(max(0, (image.width() / dpr - sw) / 2))
    y = int(max(title_h, (image.height() / dpr - sh - title_h) / 2 + title_h))
    painter = QPainter(image)
    painter.fillRect(image.rect(), QColor(0, 0, 0, 120))  # the window dimmed behind the dialog
    bar = QRect(x, y - title_h, int(sw), title_h)
    painter.fillRect(bar, QColor("#2a2e36"))
    painter.setPen(QColor("#e6e9ee"))
    painter.drawText(bar.adjusted(12, 0, 0, 0), int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft),
                     dialog.windowTitle())
    painter.drawPixmap(x, y, shot)
    painter.setPen(QPen(QColor("#4a5160"), 1))
    painter.drawRect(QRect(x - 1, y - title_h - 1, int(sw) + 1, int(sh) + title_h + 1))
    painter.end()


def run_gui(project_dir: str | Path | None = None, *, screenshot: str | Path | None = None,
            size: tuple[int, int] = (1600, 980), dialog: str | None = None, tab: str | None = None) -> int:
    """Open the app (on ``project_dir``, else the last project). With ``screenshot``, save the main
    window (``size`` pixels; with ``dialog``, that dialog open over it) as a PNG and exit (works with
    ``QT_QPA_PLATFORM=offscreen``). ``tab``: the editor tab to show (its title, any case). Returns
    the exit code."""
    t0 = time.perf_counter()
    app = create_app()
    from gui.main_window import MainWindow

    if screenshot is not None:
        # a screenshot is the default layout, and leaves the user's layout and last project alone
        import tempfile

        settings = QSettings(str(Path(tempfile.mkdtemp(prefix="stembridge-shot-")) / "settings.ini"),
                             QSettings.Format.IniFormat)
    else:
        settings = QSettings()
    window = MainWindow(settings=settings)
    if screenshot is not None:
        window.resize(*size)
    if tab is not None:
        titles = [window.tabs.tabText(i) for i in range(window.tabs.count())]
        matches = [i for i, t in enumerate(titles) if t.replace("&", "").lower() == tab.lower()]
        if not matches:
            from bridge.session import BridgeError

            raise BridgeError(f"no tab {tab!r}; the tabs are: {', '.join(t.replace('&', '') for t in titles)}")
        window.tabs.setCurrentIndex(matches[0])
    window.show()
    QTimer.singleShot(0, lambda: log.info("first paint after %.2f s (Qt platform %s)", time.perf_counter() - t0,
                                          QApplication.platformName()))
    target = project_dir or settings.value("last_project")
    if target:
        # after the first paint: opening a project starts threads and reads files
        def open_it() -> None:
            if not window.open_project(target) and project_dir is None:
                settings.remove("last_project")

        if screenshot is not None:
            open_it()
        else:
            QTimer.singleShot(30, open_it)
    if screenshot is not None:
        try:
            path = grab_screenshot(window, screenshot, dialog=dialog)
            print(path)
        finally:
            window.close()
            window.deleteLater()
            app.processEvents()
        return 0
    return app.exec()


def main(argv: list[str] | None = None) -> int:
    """``python -m gui.app [PROJECT_DIR]``."""
    args = sys.argv[1:] if argv is None else argv
    return run_gui(args[0] if args else None)


if __name__ == "__main__":
    sys.exit(main())
