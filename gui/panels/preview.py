"""Preview pane: the frame for "now" from ``Session.frame_at``, an fps readout and keyframe progress."""

from __future__ import annotations

import time
from collections import deque

import numpy as np
from PySide6.QtCore import QRectF
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QSizePolicy, QVBoxLayout, QWidget

from gui.session_adapter import SessionAdapter

#: What shows around the frame (letterbox/pillarbox bars).
BACKGROUND = "#0b0c0f"


class FrameView(QWidget):
    """Paints one RGB frame letterboxed into the widget."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.image: QImage | None = None
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(240, 135)

    def set_frame(self, frame: np.ndarray) -> None:
        h, w, _ = frame.shape
        data = np.ascontiguousarray(frame)
        # copy(): the QImage must own its pixels (the array is the Session's shared cache entry)
        self.image = QImage(data.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
        self.update()

    def image_rect(self) -> QRectF:
        """Where the frame is drawn: as large as fits, centred, at the frame's own aspect (a vertical
        export shows as a vertical picture with bars beside it, never stretched)."""
        if self.image is None:
            return QRectF()
        iw, ih = self.image.width(), self.image.height()
        scale = min(self.width() / iw, self.height() / ih)
        w, h = iw * scale, ih * scale
        return QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(BACKGROUND))
        if self.image is not None:
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            p.drawImage(self.image_rect(), self.image)
        p.end()


class PreviewPane(QWidget):
    def __init__(self, adapter: SessionAdapter, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.adapter = adapter
        self.frame: np.ndarray | None = None
        self._shown_at: deque[float] = deque(maxlen=30)
        self._last_key: tuple | None = None
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(4)
        self.view = FrameView()
        col.addWidget(self.view, 1)
        row = QHBoxLayout()
        self.fps = QLabel("— fps")
        self.fps.setObjectName("Dim")
        self.keyframes = QProgressBar()
        self.keyframes.setObjectName("KeyframeBar")  # a darker fill: its light text must read on it
        self.keyframes.setTextVisible(True)
        self.keyframes.setFormat("keyframes %v/%m")
        self.keyframes.setMaximumHeight(14)
        row.addWidget(self.fps)
        row.addWidget(self.keyframes, 1)
        col.addLayout(row)
        adapter.tick.connect(self.on_tick)
        adapter.previewChanged.connect(self._invalidate)

    def _invalidate(self) -> None:
        self._last_key = None

    def on_tick(self, state) -> None:
        s = self.adapter.session
        if s is None or s.scheduler is None:
            return
        st = s.preview_status()
        key = (round(state.position_seconds, 4), st.generation if st else None, st.keyframes_done if st else None)
        if key != self._last_key:  # stopped and nothing new: keep the frame, save the CPU
            self._last_key = key
            self.frame = s.frame_at(max(0.0, state.position_seconds))
            self.view.set_frame(self.frame)
            now = time.monotonic()
            self._shown_at.append(now)
        if not state.playing:
            self.fps.setText("paused")
        elif len(self._shown_at) >= 2 and time.monotonic() - self._shown_at[-1] < 0.5:
            span = self._shown_at[-1] - self._shown_at[0]
            self.fps.setText(f"{(len(self._shown_at) - 1) / span:4.1f} fps" if span > 0 else "— fps")
        else:
            self.fps.setText("— fps")
        if st is not None:
            self.keyframes.setMaximum(max(1, st.keyframes_total))
            self.keyframes.setValue(st.keyframes_done)
