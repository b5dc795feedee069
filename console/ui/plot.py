"""A small live strip chart drawn with QPainter (there is no QtCharts in PySide6-Essentials).

Samples go into a ring buffer; repaints are coalesced to at most ``MAX_FPS`` per second so a fast
status stream never floods the event loop. The y scale widens to show any value that falls
outside it (a reading is never clipped out of sight) and a dashed line can mark the set value.
"""

from __future__ import annotations

import math
from collections import deque

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, QTimer
from PySide6.QtGui import QColor, QFont, QPainter, QPaintEvent, QPen, QPolygonF
from PySide6.QtWidgets import QSizePolicy, QWidget

from console.ui import theme

MAX_FPS = 25
_REPAINT_INTERVAL_MS = 1000 // MAX_FPS


def _nice_ceiling(value: float) -> float:
    """The next 'round' number ≥ value (1, 2, 2.5, 5 × 10^n) for a readable axis."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        candidate = step * 10**exponent
        if candidate >= value:
            return candidate
    return 10 ** (exponent + 1)


class LivePlot(QWidget):
    """One measured quantity against time, the newest sample at the right edge."""

    def __init__(
        self,
        title: str,
        unit: str,
        colour: str,
        *,
        y_max: float,
        window_s: float = 30.0,
        capacity: int = 4096,
        decimals: int = 1,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.title = title
        self.unit = unit
        self._colour = QColor(colour)
        self._initial_y_max = y_max
        self._y_max = y_max
        self._window_s = window_s
        self._decimals = decimals
        self._samples: deque[tuple[float, float]] = deque(maxlen=capacity)
        self._reference: float | None = None
        self._repaint_pending = False
        self.repaints = 0  # how many times the chart was painted (the throttle is testable)
        self.setMinimumSize(280, 140)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAccessibleName(f"{title} ({unit}) live plot")

    # ------------------------------------------------------------------ data
    @property
    def sample_count(self) -> int:
        return len(self._samples)

    @property
    def latest(self) -> float | None:
        return self._samples[-1][1] if self._samples else None

    @property
    def y_max(self) -> float:
        return self._y_max

    def add(self, t_s: float, value: float) -> None:
        """Append one sample (monotonic seconds, value in ``unit``); repaint soon, not now."""
        self._samples.append((t_s, value))
        if value > self._y_max:
            self._y_max = _nice_ceiling(value * 1.1)
        self._schedule_repaint()

    def set_reference(self, value: float | None) -> None:
        """Show the set value as a dashed line (None hides it)."""
        self._reference = value
        if value is not None and value > self._y_max:
            self._y_max = _nice_ceiling(value * 1.1)
        self._schedule_repaint()

    def clear(self) -> None:
        self._samples.clear()
        self._y_max = self._initial_y_max
        self._schedule_repaint()

    def _schedule_repaint(self) -> None:
        if not self._repaint_pending:
            self._repaint_pending = True
            QTimer.singleShot(_REPAINT_INTERVAL_MS, self._flush)

    def _flush(self) -> None:
        self._repaint_pending = False
        self.update()

    # ------------------------------------------------------------------ drawing
    def sizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        return QSize(460, 190)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt override)
        self.repaints += 1
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), QColor(theme.PANEL))
        painter.setPen(QPen(QColor(theme.BORDER), 1))
        painter.drawRect(self.rect().adjusted(0, 0, -1, -1))

        title_font = QFont(self.font())
        title_font.setBold(True)
        painter.setFont(title_font)
        painter.setPen(QColor(theme.TEXT))
        latest = self.latest
        reading = "—" if latest is None else f"{latest:.{self._decimals}f} {self.unit}"
        painter.drawText(
            QRectF(12, 6, self.width() - 24, 22), Qt.AlignmentFlag.AlignLeft, self.title
        )
        painter.setPen(self._colour)
        painter.drawText(QRectF(12, 6, self.width() - 24, 22), Qt.AlignmentFlag.AlignRight, reading)

        label_font = QFont(self.font())
        label_font.setPointSizeF(max(7.0, self.font().pointSizeF() - 2))
        painter.setFont(label_font)
        area = QRectF(52, 34, self.width() - 64, self.height() - 56)
        if area.width() <= 10 or area.height() <= 10:
            painter.end()
            return
        self._draw_grid(painter, area)
        self._draw_reference(painter, area)
        self._draw_series(painter, area)
        painter.end()

    def _draw_grid(self, painter: QPainter, area: QRectF) -> None:
        grid = QPen(QColor("#E1E7EC"), 1)
        for i in range(5):
            y = area.bottom() - area.height() * i / 4
            painter.setPen(grid)
            painter.drawLine(QPointF(area.left(), y), QPointF(area.right(), y))
            painter.setPen(QColor(theme.MUTED))
            value = self._y_max * i / 4
            painter.drawText(
                QRectF(0, y - 8, area.left() - 6, 16),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                f"{value:g}",
            )
        painter.setPen(QColor(theme.MUTED))
        painter.drawText(
            QRectF(area.left(), area.bottom() + 2, area.width(), 16),
            Qt.AlignmentFlag.AlignLeft,
            f"−{self._window_s:g} s",
        )
        painter.drawText(
            QRectF(area.left(), area.bottom() + 2, area.width(), 16),
            Qt.AlignmentFlag.AlignRight,
            "now",
        )
        painter.setPen(QPen(QColor(theme.BORDER), 1))
        painter.drawRect(area)

    def _draw_reference(self, painter: QPainter, area: QRectF) -> None:
        if self._reference is None:
            return
        y = area.bottom() - area.height() * self._reference / self._y_max
        pen = QPen(QColor(theme.MUTED), 1, Qt.PenStyle.DashLine)
        painter.setPen(pen)
        painter.drawLine(QPointF(area.left(), y), QPointF(area.right(), y))
        painter.drawText(
            QRectF(area.left() + 4, y - 16, 160, 14),
            Qt.AlignmentFlag.AlignLeft,
            f"set {self._reference:.{self._decimals}f}",
        )

    def _draw_series(self, painter: QPainter, area: QRectF) -> None:
        if not self._samples:
            return
        newest = self._samples[-1][0]
        oldest_shown = newest - self._window_s
        # A Python list turned into a polygon once: QPolygonF.append in PySide6 6.x mis-counts
        # references to None and crashes the interpreter after a few thousand calls.
        points = [
            QPointF(
                area.right() - area.width() * (newest - t) / self._window_s,
                area.bottom() - area.height() * min(max(value, 0.0), self._y_max) / self._y_max,
            )
            for t, value in self._samples
            if t >= oldest_shown
        ]
        painter.setPen(QPen(self._colour, 2))
        if len(points) == 1:
            painter.drawEllipse(points[0], 2, 2)
        else:
            painter.drawPolyline(QPolygonF(points))
