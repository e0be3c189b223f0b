"""Look browser: the shader engine's looks as a grid of thumbnails, each with its name and one-line
description (the ISF DESCRIPTION). "Song's own look (automatic)" comes first (the look the song's
analysis picks, bridge/visuals/character.py). Clicking a look sets the project's engine to the
shader engine with that look (one undoable step, through the Session); "Add look…" imports an ISF
.fs file — one that does not compile shows the compiler's message and changes nothing.

Thumbnails (bridge/visuals/thumbnails.py, cached per .fs content) render on a worker thread and
appear as they are ready; without OpenGL the browser says so and still lists every look.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt, QThread, Signal
from PySide6.QtGui import QColor, QFont, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from bridge.session import THUMBNAIL_SIZE
from gui.session_adapter import SessionAdapter

#: The key of the first entry: no look chosen, the song's own (``engine.look`` None).
AUTO = ""
AUTO_LABEL = "Song's own look (automatic)"
KEY_ROLE = Qt.ItemDataRole.UserRole


class ThumbnailWorker(QThread):
    """Renders (or takes from the cache) the thumbnail of each (name, .fs path), off the GUI thread."""

    ready = Signal(str, str)        # look name, PNG path
    failed = Signal(str, str)       # look name, why (e.g. the compiler's message)
    unavailable = Signal(str)       # no OpenGL here: why and how to fix it

    def __init__(self, looks: list[tuple[str, Path]]) -> None:
        super().__init__()
        self.looks = list(looks)
        self._stop = False

    def stop(self) -> None:
        self._stop = True

    def run(self) -> None:
        from bridge.session import BridgeError, create_gl_context, thumbnail

        try:
            create_gl_context().release()
        except BridgeError as e:
            self.unavailable.emit(str(e))
            return
        for name, path in self.looks:
            if self._stop:
                return
            try:
                self.ready.emit(name, str(thumbnail(path)))
            except BridgeError as e:
                self.failed.emit(name, str(e))
            except Exception as e:  # noqa: BLE001 - one bad look must not stop the others' thumbnails
                import logging

                logging.getLogger(__name__).exception("thumbnail of %s failed", name)
                self.failed.emit(name, f"{type(e).__name__}: {e}")


def _placeholder(text: str) -> QPixmap:
    w, h = THUMBNAIL_SIZE
    pix = QPixmap(w, h)
    pix.fill(QColor(40, 40, 46))
    p = QPainter(pix)
    p.setPen(QColor(150, 150, 160))
    p.drawText(pix.rect(), Qt.AlignmentFlag.AlignCenter, text)
    p.end()
    return pix


class LookBrowser(QWidget):
    """See the module docstring. ``items``: look name (AUTO for the automatic entry) → list item."""

    def __init__(self, adapter: SessionAdapter, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.adapter = adapter
        self.items: dict[str, QListWidgetItem] = {}
        self.descriptions: dict[str, str] = {}
        self.pixmaps: dict[str, QPixmap] = {}
        self.song_look: str | None = None  # the look the song's analysis picks
        self.worker: ThumbnailWorker | None = None
        self.gl_problem: str | None = None

        col = QVBoxLayout(self)
        col.setContentsMargins(8, 8, 8, 8)
        top = QHBoxLayout()
        self.current_label = QLabel()
        add = QPushButton("Add look…")
        add.setToolTip("Import an ISF fragment shader (.fs) into your looks")
        add.clicked.connect(self.choose_file)
        top.addWidget(self.current_label, 1)
        top.addWidget(add)
        col.addLayout(top)
        self.notice = QLabel()
        self.notice.setObjectName("Dim")
        self.notice.setWordWrap(True)
        self.notice.hide()
        col.addWidget(self.notice)
        self.grid = QListWidget()
        self.grid.setViewMode(QListView.ViewMode.IconMode)
        self.grid.setResizeMode(QListView.ResizeMode.Adjust)
        self.grid.setMovement(QListView.Movement.Static)
        self.grid.setIconSize(QSize(*THUMBNAIL_SIZE))
        self.grid.setGridSize(QSize(THUMBNAIL_SIZE[0] + 24, THUMBNAIL_SIZE[1] + 78))
        self.grid.setWordWrap(True)
        self.grid.setUniformItemSizes(True)
        self.grid.setSpacing(6)
        self.grid.itemClicked.connect(self._on_clicked)
        col.addWidget(self.grid, 1)

        adapter.projectChanged.connect(lambda _e=None: self.refresh())
        adapter.analysisChanged.connect(self.refresh_song_look)
        self.reload()

    # -- the list ------------------------------------------------------------------------------
    def reload(self) -> None:
        """List the looks (shipped and the user's) and start their thumbnails."""
        from bridge.session import BridgeError, available_looks, load_isf

        self.grid.clear()
        self.items.clear()
        looks = available_looks()
        self.items[AUTO] = self._add_item(AUTO, AUTO_LABEL, "")
        for name, path in looks.items():
            try:
                description = load_isf(path).description
            except BridgeError as e:
                description = f"(cannot be read: {e})"
            self.descriptions[name] = description
            self.items[name] = self._add_item(name, name, description)
        for name, pix in self.pixmaps.items():
            if name in self.items:
                self.items[name].setIcon(QIcon(pix))
        self.refresh_song_look()
        self.refresh()
        self._start_thumbnails(list(looks.items()))

    def _add_item(self, key: str, title: str, description: str) -> QListWidgetItem:
        item = QListWidgetItem(QIcon(_placeholder("rendering…" if self.gl_problem is None else title)), "")
        item.setData(KEY_ROLE, key)
        item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        self._set_text(item, title, description)
        self.grid.addItem(item)
        return item

    @staticmethod
    def _set_text(item: QListWidgetItem, title: str, description: str) -> None:
        item.setText(f"{title}\n{description}" if description else title)
        item.setToolTip(f"<b>{title}</b><br>{description}" if description else title)

    def _start_thumbnails(self, looks: list[tuple[str, Path]]) -> None:
        self.shutdown()
        self.worker = ThumbnailWorker(looks)
        self.worker.ready.connect(self._on_thumbnail)
        self.worker.failed.connect(self._on_thumbnail_failed)
        self.worker.unavailable.connect(self._on_no_gl)
        self.worker.start()

    def shutdown(self) -> None:
        """Stop the thumbnail worker (after the look it is rendering) and wait for it."""
        if self.worker is not None:
            self.worker.stop()
            self.worker.wait()
            self.worker = None

    def thumbnails_done(self) -> bool:
        return self.worker is None or self.worker.isFinished()

    def _on_thumbnail(self, name: str, png: str) -> None:
        pix = QPixmap(png)
        if pix.isNull():
            return
        self.pixmaps[name] = pix
        if name in self.items:
            self.items[name].setIcon(QIcon(pix))
        if name == self.song_look:
            self.items[AUTO].setIcon(QIcon(pix))

    def _on_thumbnail_failed(self, name: str, message: str) -> None:
        if name in self.items:
            self.items[name].setIcon(QIcon(_placeholder("does not compile")))
            self.items[name].setToolTip(message)

    def _on_no_gl(self, message: str) -> None:
        self.gl_problem = message
        self.notice.setText(f"No thumbnails: {message}")
        self.notice.show()
        for key, item in self.items.items():
            item.setIcon(QIcon(_placeholder(AUTO_LABEL if key == AUTO else key)))

    # -- the project ---------------------------------------------------------------------------
    def refresh_song_look(self) -> None:
        """The automatic entry names the look the song's analysis picks (once there is one)."""
        s = self.adapter.session
        look = None
        if s is not None and s.analysis is not None:
            from bridge.session import default_look

            try:
                look = default_look(s.analysis)
            except Exception:  # noqa: BLE001 - an analysis without curves: the entry just says "automatic"
                look = None
        self.song_look = look
        item = self.items.get(AUTO)
        if item is None:
            return
        self._set_text(item, AUTO_LABEL, f"picked from the music: {look}" if look
                       else "picked from the music once the song is analysed")
        if look in self.pixmaps:
            item.setIcon(QIcon(self.pixmaps[look]))

    def current_key(self) -> str | None:
        """The entry the project uses: a look name, AUTO, or None (another engine, or a look file
        that is not in the list)."""
        s = self.adapter.session
        if s is None or s.project.engine.name != "shader":
            return None
        look = s.project.engine.look
        if not look:
            return AUTO
        return look if look in self.items else None

    def refresh(self) -> None:
        """Highlight the project's look."""
        s = self.adapter.session
        key = self.current_key()
        for k, item in self.items.items():
            font = QFont(item.font())
            font.setBold(k == key)
            item.setFont(font)
        self.grid.blockSignals(True)
        if key is not None:
            self.grid.setCurrentItem(self.items[key])
        else:
            self.grid.clearSelection()
        self.grid.blockSignals(False)
        if s is None:
            self.current_label.setText("No project open")
        elif s.project.engine.name != "shader":
            self.current_label.setText(f"Engine: {s.project.engine.name}. Pick a look to render with the shader engine.")
        elif key == AUTO:
            self.current_label.setText(f"Look: the song's own ({self.song_look or 'automatic'})")
        else:
            self.current_label.setText(f"Look: {s.project.engine.look}")

    def _on_clicked(self, item: QListWidgetItem) -> None:
        self.choose(item.data(KEY_ROLE))

    def choose(self, key: str) -> None:
        """Use look ``key`` (AUTO: the song's own) with the shader engine: one undoable edit."""
        self.adapter.command("set_engine", name="shader", look=key or None)
        self.refresh()

    # -- adding looks --------------------------------------------------------------------------
    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Add an ISF look", "", "ISF shaders (*.fs);;All files (*)")
        if path:
            self.add_look_file(path)

    def add_look_file(self, path: str | Path) -> bool:
        """Import an .fs file into the user's looks and use it. A shader that does not parse or
        compile shows why (the compiler's FILE:LINE message) and changes nothing."""
        from bridge.session import BridgeError, add_look

        try:
            installed = add_look(path)
        except BridgeError as e:
            self.adapter.message.emit("error", f"Look not added: {e}")
            return False
        self.reload()
        name = installed[0].stem
        self.adapter.message.emit("info", f"Added look {name!r} ({installed[0]})")
        if self.adapter.session is not None:
            self.choose(name)
        return True
