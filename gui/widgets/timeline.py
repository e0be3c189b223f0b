"""The timeline: one lane per stem (level overview + a feature curve + onsets), the bar/beat grid,
section blocks with their prompts and a playhead.

A plain QWidget. Each lane's overview is a min/max-style envelope of its RMS curve (and of the
selected feature) reduced once to :data:`ENVELOPE_BINS` columns; a repaint rasterises the columns in
view with numpy into one image per lane (cached until the view changes), so a playhead-only repaint
is a few image blits and a zoom/scroll costs the same for a 5-minute song as for a loop. Grid lines
are drawn only where visible, and beats only when they are at least :data:`MIN_BEAT_SPACING_PX` apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QImage, QPainter, QPainterPath
from PySide6.QtWidgets import QScrollBar, QSizePolicy, QWidget

#: Columns of each lane's precomputed envelope (whole song): ~1 per pixel on a 4k screen at 2 min
#: per screen of a 5-minute song; zoomed further in, a column repeats its bin.
ENVELOPE_BINS = 16384
MIN_BEAT_SPACING_PX = 7.0
LABEL_W = 132
RULER_H = 22
SECTION_H = 38
MIN_LANE_H = 46
#: Width of the lanes' scroll bar, shown over their right edge when they do not all fit (a tracked
#: session's 16–30 stems): the wheel over the names, or Shift+wheel anywhere, scrolls them too.
LANE_SCROLL_W = 12

ROLE_COLOURS = {
    "drums": "#ff8a3d", "bass": "#5aa9ff", "vocals": "#ff5fa2", "guitar": "#ffd23f",
    "piano": "#b48cff", "other": "#3ddc97",
}
SECTION_COLOURS = ("#2f4b7c", "#665191", "#a05195", "#d45087", "#2f7c6e", "#7c6a2f")


def role_colour(role: str) -> QColor:
    return QColor(ROLE_COLOURS.get(role, "#9aa5b1"))


def envelope(curve: np.ndarray, *, bins: int = ENVELOPE_BINS) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin maximum of ``curve`` (shape (n,)), normalised to the curve's peak.

    Returns (bin centre fractions in [0, 1], values in [0, 1]), both shape (m,), m = min(n, bins).
    Maximum (not mean) so a short hit stays visible however far the view is zoomed out.
    """
    curve = np.nan_to_num(np.asarray(curve, dtype=np.float64))
    n = curve.size
    if n == 0:
        return np.zeros(0), np.zeros(0)
    m = min(n, bins)
    edges = np.linspace(0, n, m + 1).astype(np.int64)
    values = np.maximum.reduceat(curve, edges[:-1])
    peak = float(values.max()) or 1.0
    centres = (edges[:-1] + edges[1:]) / 2.0 / n
    return centres, values / peak


@dataclass
class Lane:
    """One stem's overview: envelopes over the whole song at :data:`ENVELOPE_BINS` columns."""

    name: str
    role: str
    colour: QColor
    t_s: np.ndarray        # bin centres, seconds, shape (m,)
    level: np.ndarray      # level envelope in [0, 1] (sqrt-compressed), shape (m,)
    feature: np.ndarray    # selected feature envelope in [0, 1], shape (m,)
    onsets_s: np.ndarray   # onset times, seconds, sorted
    muted: bool = False

    @property
    def extent_seconds(self) -> float:
        return float(self.t_s[-1] - self.t_s[0]) if self.t_s.size else 0.0


def build_lane(name: str, role: str, colour: QColor, level_curve: np.ndarray, feature_curve: np.ndarray,
               onsets_s: np.ndarray, *, duration_seconds: float, muted: bool = False) -> Lane:
    t, lv = envelope(level_curve)
    _, fv = envelope(feature_curve)
    # sqrt: compress quiet detail upward so a soft pad is still a visible shape beside the drums
    return Lane(name, role, colour, t * duration_seconds, np.sqrt(lv), fv,
                np.sort(np.asarray(onsets_s, dtype=np.float64)), muted)


def _argb(colour: QColor, alpha: int | None = None) -> np.uint32:
    """Premultiplied ARGB32 of ``colour`` (alpha 0–255)."""
    a = colour.alpha() if alpha is None else alpha
    return np.uint32((a << 24) | (colour.red() * a // 255 << 16) | (colour.green() * a // 255 << 8)
                     | (colour.blue() * a // 255))


def render_lane(lane: Lane, *, t0_s: float, px_per_s: float, width_px: int, height_px: int) -> np.ndarray:
    """The lane as a premultiplied ARGB32 image, shape (height_px, width_px), uint32.

    Rasterised with numpy, one column per pixel (max of the bins under it), so the cost depends on
    the widget's size only, not on the song's length or the zoom: QPainter's polygon filler took
    ~100 ms for one 4k-point envelope on the CI machine."""
    w, h = int(width_px), int(height_px)
    n = lane.t_s.size
    if n == 0 or w <= 0 or h <= 0:
        return np.zeros((max(h, 0), max(w, 0)), dtype=np.uint32)
    edges_s = t0_s + np.arange(w + 1) / px_per_s
    starts = np.clip(np.searchsorted(lane.t_s, edges_s[:-1]), 0, n - 1)
    inside = (edges_s[1:] >= lane.t_s[0]) & (edges_s[:-1] <= lane.t_s[-1])
    level = (np.maximum.reduceat(lane.level, starts) * inside).astype(np.float32)
    feature = (np.maximum.reduceat(lane.feature, starts) * inside).astype(np.float32)
    colour = QColor(lane.colour)
    dim = 0.35 if lane.muted else 1.0
    rows = np.arange(h, dtype=np.float32)[:, None] + 0.5
    # the feature: a connected line in the lower part (each column spans from the previous y)
    y = (h - 3) - feature * (h * 0.8)
    prev = np.concatenate([y[:1], y[:-1]])
    lo, hi = np.minimum(y, prev) - 0.6, np.maximum(y, prev) + 0.6
    line = (rows >= lo) & (rows <= hi)
    line &= inside
    # level: a symmetric envelope around the lane's middle
    level_mask = np.abs(rows - h * 0.5) <= level * (h * 0.40)
    img = np.where(line, _argb(colour.lighter(140), int(255 * dim)),
                   np.where(level_mask, _argb(colour, int(95 * dim)), np.uint32(0))).astype(np.uint32, copy=False)
    # onsets: ticks along the top
    counts, _ = np.histogram(lane.onsets_s, bins=edges_s)
    tick_rows = slice(2, max(3, int(2 + h * 0.12)))
    ticks = img[tick_rows]
    ticks[:, counts > 0] = np.where(ticks[:, counts > 0] == 0, _argb(QColor(255, 255, 255), int(80 * dim)),
                                    ticks[:, counts > 0])
    return img


class TimelineWidget(QWidget):
    """Lanes, grid, sections and playhead. Feed it with :meth:`set_lanes_from_analysis`,
    :meth:`set_sections` and :meth:`set_playhead`; it emits ``seekRequested(seconds)`` on click/drag."""

    seekRequested = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumHeight(RULER_H + SECTION_H + 2 * MIN_LANE_H)
        self.setMouseTracking(False)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.lanes: list[Lane] = []
        self.duration_seconds = 0.0
        self.beats_s = np.zeros(0)
        self.downbeats_s = np.zeros(0)
        self.sections: list[tuple[float, float, str, str]] = []  # (start_s, end_s, name, prompt)
        self.sections_detected = False
        self.playhead_s = 0.0
        self.follow = True
        self.view_start_s = 0.0
        self.view_span_s = 30.0
        self.feature_name = "onset"
        self._dragging = False
        self._lane_images: dict[str, tuple] = {}
        self.lane_bar = QScrollBar(Qt.Orientation.Vertical, self)
        self.lane_bar.setCursor(Qt.CursorShape.ArrowCursor)
        self.lane_bar.valueChanged.connect(self.update)
        self.lane_bar.hide()

    # -- data ---------------------------------------------------------------------------------
    def set_lanes(self, lanes: list[Lane], *, duration_seconds: float, beats_s=(), downbeats_s=()) -> None:
        first = not self.lanes
        self.lanes = lanes
        self._lane_images = {}
        self.duration_seconds = float(duration_seconds)
        self.beats_s = np.asarray(beats_s, dtype=np.float64)
        self.downbeats_s = np.asarray(downbeats_s, dtype=np.float64)
        if first and self.duration_seconds > 0:
            self.view_start_s, self.view_span_s = 0.0, self.duration_seconds
        self._fit_lane_bar()
        self.update()

    def set_lanes_from_analysis(self, analysis, stems) -> None:
        """Build lanes for ``stems`` (StemSpec, in project order) from a SongAnalysis."""
        lanes = []
        for spec in stems:
            f = analysis.stems.get(spec.name)
            if f is None:
                continue
            curve = f.curves.get(self.feature_name)
            feature = curve if curve is not None and curve.ndim == 1 else f.curves["rms"]
            lanes.append(build_lane(spec.name, spec.role, role_colour(spec.role), f.curves["rms"], feature,
                                    f.onsets_s, duration_seconds=f.duration_seconds, muted=spec.muted))
        self.set_lanes(lanes, duration_seconds=analysis.duration_seconds,
                       beats_s=analysis.beat_grid.beats_s, downbeats_s=analysis.beat_grid.downbeats_s)

    def set_sections(self, sections: list[tuple[float, float, str, str]], *, detected: bool = False) -> None:
        """(start_s, end_s, name, caption) per section; the caption (Session.section_captions) says
        what the section looks like in the project's engine. ``detected``: drawn paler."""
        self.sections = sections
        self.sections_detected = detected
        self.update()

    def set_playhead(self, seconds: float, *, playing: bool = False) -> None:
        if abs(seconds - self.playhead_s) < 1e-6:
            return
        self.playhead_s = float(seconds)
        if self.follow and playing and not (self.view_start_s <= seconds <= self.view_start_s + self.view_span_s):
            self.view_start_s = max(0.0, seconds - 0.1 * self.view_span_s)  # page like a DAW
        self.update()

    # -- view ---------------------------------------------------------------------------------
    def _px_per_s(self) -> float:
        return max(1.0, self.width() - LABEL_W) / max(self.view_span_s, 1e-3)

    def x_of(self, seconds: float) -> float:
        return float(LABEL_W + (float(seconds) - self.view_start_s) * self._px_per_s())

    def seconds_at(self, x: float) -> float:
        return self.view_start_s + (x - LABEL_W) / self._px_per_s()

    def zoom(self, factor: float, *, anchor_s: float | None = None) -> None:
        """Zoom by ``factor`` (>1 zooms in) around ``anchor_s`` (default the playhead)."""
        anchor = self.playhead_s if anchor_s is None else anchor_s
        full = max(self.duration_seconds, 1.0)
        span = float(np.clip(self.view_span_s / factor, 0.5, full))
        frac = (anchor - self.view_start_s) / self.view_span_s if self.view_span_s else 0.5
        self.view_span_s = span
        self.scroll_to(anchor - frac * span)

    def scroll_to(self, start_s: float) -> None:
        self.view_start_s = float(np.clip(start_s, 0.0, max(0.0, self.duration_seconds - self.view_span_s)))
        self.update()

    def _lane_height(self) -> float:
        return max(MIN_LANE_H, (self.height() - RULER_H - SECTION_H) / max(1, len(self.lanes)))

    def _fit_lane_bar(self) -> None:
        """Show the lanes' scroll bar when they are taller than the room below the sections."""
        top = RULER_H + SECTION_H
        room = max(0, self.height() - top)
        overflow = int(np.ceil(len(self.lanes) * self._lane_height() - room))
        self.lane_bar.setRange(0, max(0, overflow))
        self.lane_bar.setPageStep(max(1, room))
        self.lane_bar.setSingleStep(int(MIN_LANE_H))
        self.lane_bar.setGeometry(self.width() - LANE_SCROLL_W, top, LANE_SCROLL_W, room)
        self.lane_bar.setVisible(overflow > 0)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit_lane_bar()

    def lane_rect(self, i: int) -> QRectF:
        """Where lane ``i`` is drawn, scrolled by the lanes' scroll bar (it may lie outside the view)."""
        h = self._lane_height()
        return QRectF(0, RULER_H + SECTION_H + i * h - self.lane_bar.value(), self.width(), h)

    def scroll_lanes(self, pixels: float) -> None:
        """Scroll the lanes down by ``pixels`` (up when negative), within their range."""
        self.lane_bar.setValue(int(round(self.lane_bar.value() + pixels)))

    # -- input --------------------------------------------------------------------------------
    def wheelEvent(self, event) -> None:
        dy = event.angleDelta().y() or event.angleDelta().x()
        over_names = event.position().x() < LABEL_W and event.position().y() > RULER_H + SECTION_H
        if self.lane_bar.maximum() > 0 and (over_names or event.modifiers() & Qt.KeyboardModifier.ShiftModifier):
            self.scroll_lanes(-dy / 120.0 * MIN_LANE_H)
        elif event.modifiers() & (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.MetaModifier):
            self.zoom(1.0 + dy / 600.0 if dy > 0 else 1.0 / (1.0 - dy / 600.0),
                      anchor_s=self.seconds_at(event.position().x()))
        else:
            self.scroll_to(self.view_start_s - dy / 120.0 * 0.1 * self.view_span_s)
        event.accept()

    def mousePressEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton and event.position().x() > LABEL_W:
            self._dragging = True
            self.seekRequested.emit(max(0.0, self.seconds_at(event.position().x())))

    def mouseMoveEvent(self, event) -> None:
        if self._dragging:
            self.seekRequested.emit(max(0.0, self.seconds_at(event.position().x())))

    def mouseReleaseEvent(self, event) -> None:
        self._dragging = False

    # -- painting -----------------------------------------------------------------------------
    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        w, h = self.width(), self.height()
        p.fillRect(0, 0, w, h, QColor("#16181d"))
        pps = self._px_per_s()
        t0, t1 = self.view_start_s, self.view_start_s + self.view_span_s
        small = QFont(self.font())
        small.setPointSizeF(max(7.0, small.pointSizeF() * 0.85))

        # lane backgrounds, grid, then each lane's image (lanes clipped below the sections: scrolled)
        lanes_area = QRectF(0, RULER_H + SECTION_H, w, max(0, h - RULER_H - SECTION_H))
        p.setClipRect(lanes_area)
        for i in range(len(self.lanes)):
            r = self.lane_rect(i)
            p.fillRect(QRectF(LABEL_W, r.top(), w - LABEL_W, r.height()),
                       QColor("#1b1e24") if i % 2 == 0 else QColor("#1e2128"))
        p.setClipping(False)
        self._paint_grid(p, t0, t1, pps, h)
        plot_w = max(0, w - LABEL_W)
        p.setClipRect(lanes_area)
        for i, lane in enumerate(self.lanes):
            r = self.lane_rect(i)
            if r.bottom() < lanes_area.top() or r.top() > lanes_area.bottom():
                continue
            key = (lane.name, id(lane), lane.muted, round(t0, 9), round(pps, 9), plot_w, int(r.height()))
            cached = self._lane_images.get(lane.name)
            if cached is None or cached[0] != key:
                arr = render_lane(lane, t0_s=t0, px_per_s=pps, width_px=plot_w, height_px=int(r.height()))
                qimg = QImage(arr.data, arr.shape[1], arr.shape[0], 4 * arr.shape[1],
                              QImage.Format.Format_ARGB32_Premultiplied)
                cached = (key, arr, qimg)  # arr keeps the pixels alive as long as the QImage
                self._lane_images[lane.name] = cached
            p.drawImage(QPointF(LABEL_W, int(r.top())), cached[2])
        p.setClipping(False)

        self._paint_sections(p, t0, t1, w)
        self._paint_labels(p, small)

        # playhead
        x = self.x_of(self.playhead_s)
        if LABEL_W <= x <= w:
            p.fillRect(QRectF(int(x), 0, 2, h), QColor("#ffffff"))
            tri = QPainterPath()
            tri.moveTo(int(x) - 5, 0)
            tri.lineTo(int(x) + 7, 0)
            tri.lineTo(int(x) + 1, 8)
            tri.closeSubpath()
            p.fillPath(tri, QBrush(QColor("#ffffff")))
        p.end()

    def _paint_grid(self, p: QPainter, t0: float, t1: float, pps: float, h: int) -> None:
        p.fillRect(QRectF(0, 0, self.width(), RULER_H), QColor("#101215"))
        def visible(a: np.ndarray) -> np.ndarray:
            lo, hi = np.searchsorted(a, [t0, t1])
            return a[lo:hi].tolist()
        # Opaque 1-px fillRects, not alpha-blended drawLine: a full-height blended line costs
        # ~0.2 ms each in the raster engine, and a zoomed view shows hundreds.
        beats = self.beats_s
        if beats.size > 1 and np.median(np.diff(beats)) * pps >= MIN_BEAT_SPACING_PX:
            beat_colour = QColor("#252930")
            for b in visible(beats):
                p.fillRect(QRectF(int(self.x_of(b)), RULER_H, 1, h - RULER_H), beat_colour)
        downs = self.downbeats_s
        bar_every = 1
        if downs.size > 1:
            bar_px = float(np.median(np.diff(downs))) * pps
            while bar_px * bar_every < 44:
                bar_every *= 2
        bar_colour, text_colour = QColor("#343944"), QColor("#8b95a3")
        p.setPen(text_colour)
        first_bar = int(np.searchsorted(downs, t0))
        for k, d in enumerate(visible(downs)):
            bar_no = first_bar + k + 1
            if (bar_no - 1) % bar_every == 0:
                x = int(self.x_of(d))
                p.fillRect(QRectF(x, RULER_H - 8, 1, h - RULER_H + 8), bar_colour)
                p.drawText(QPointF(x + 3, RULER_H - 7), str(bar_no))

    def _paint_sections(self, p: QPainter, t0: float, t1: float, w: int) -> None:
        top = RULER_H
        p.fillRect(QRectF(LABEL_W, top, w - LABEL_W, SECTION_H), QColor("#131519"))
        p.setClipRect(QRectF(LABEL_W, top, w - LABEL_W, SECTION_H))
        for i, (a, b, name, caption) in enumerate(self.sections):
            if b < t0 or a > t1:
                continue
            x0, x1 = self.x_of(a), self.x_of(b)
            colour = QColor(SECTION_COLOURS[i % len(SECTION_COLOURS)])
            if self.sections_detected:
                colour.setAlpha(110)
            rect = QRectF(x0 + 1, top + 3, max(1.0, x1 - x0 - 2), SECTION_H - 6)
            path = QPainterPath()
            path.addRoundedRect(rect, 4, 4)
            p.fillPath(path, colour)
            p.setPen(QColor("#f2f4f8"))
            inner = rect.adjusted(6, 1, -4, -1)
            bold = QFont(self.font())
            bold.setBold(True)
            p.setFont(bold)
            title = name or f"Section {i + 1}"
            fm = p.fontMetrics()
            p.drawText(inner, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop,
                       fm.elidedText(title, Qt.TextElideMode.ElideRight, int(inner.width())))
            p.setFont(self.font())
            p.setPen(QColor(235, 238, 245, 190))
            fm = p.fontMetrics()
            p.drawText(inner, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom,
                       fm.elidedText(caption, Qt.TextElideMode.ElideRight, int(inner.width())))
        p.setClipping(False)

    def _paint_labels(self, p: QPainter, small: QFont) -> None:
        p.fillRect(QRectF(0, 0, LABEL_W, self.height()), QColor("#121418"))
        p.setPen(QColor("#6c7684"))
        p.setFont(small)
        p.drawText(QRectF(10, 0, LABEL_W - 12, RULER_H), Qt.AlignmentFlag.AlignVCenter, "BAR")
        p.drawText(QRectF(10, RULER_H, LABEL_W - 12, SECTION_H), Qt.AlignmentFlag.AlignVCenter, "SECTIONS")
        p.setClipRect(QRectF(0, RULER_H + SECTION_H, self.width(), max(0, self.height() - RULER_H - SECTION_H)))
        for i, lane in enumerate(self.lanes):
            r = self.lane_rect(i)
            p.fillRect(QRectF(0, r.top() + 6, 4, r.height() - 12), lane.colour)
            p.fillRect(QRectF(0, int(r.bottom()), self.width(), 1), QColor("#2c3038"))
            bold = QFont(self.font())
            bold.setBold(True)
            p.setFont(bold)
            p.setPen(QColor("#e8ebf0") if not lane.muted else QColor("#6c7684"))
            p.drawText(QRectF(14, r.top() + 4, LABEL_W - 18, r.height() / 2), Qt.AlignmentFlag.AlignBottom,
                       p.fontMetrics().elidedText(lane.name, Qt.TextElideMode.ElideRight, LABEL_W - 20))
            p.setFont(small)
            p.setPen(QColor("#8b95a3"))
            p.drawText(QRectF(14, r.top() + r.height() / 2 + 2, LABEL_W - 18, r.height() / 2 - 4),
                       Qt.AlignmentFlag.AlignTop, lane.role + (" · muted" if lane.muted else ""))
        p.setClipping(False)
        p.setFont(self.font())
