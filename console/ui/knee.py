"""A front-view knee diagram on which the therapist marks the treatment points.

Click to place a numbered point, click a point to remove it (the rest renumber). Points are kept
as normalised integers 0–1000 (the record forbids floats): ``x`` 0 = medial edge … 1000 = lateral
edge of the drawing, ``y`` 0 = proximal (thigh) … 1000 = distal (shin). The drawing is a
schematic — medial on the left, lateral (fibula side) on the right — the same for either knee.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPaintEvent,
    QPen,
    QTransform,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from console.ui import theme

SCALE = 1000
HIT_RADIUS = 35  # in normalised units: a click this close to a point removes it
MAX_POINTS = 20

_BONE = QColor("#F3EBDD")
_BONE_EDGE = QColor("#8C7B63")
_TENDON = QColor("#E9C9B5")
_POINT = QColor(theme.DANGER)


def _femur() -> QPainterPath:
    path = QPainterPath(QPointF(400, 0))
    path.lineTo(600, 0)
    path.cubicTo(610, 200, 700, 300, 720, 390)
    path.cubicTo(735, 450, 690, 480, 640, 478)
    path.cubicTo(580, 476, 560, 440, 500, 440)
    path.cubicTo(440, 440, 420, 476, 360, 478)
    path.cubicTo(310, 480, 265, 450, 280, 390)
    path.cubicTo(300, 300, 390, 200, 400, 0)
    return path


def _tibia() -> QPainterPath:
    path = QPainterPath(QPointF(290, 505))
    path.cubicTo(380, 490, 620, 490, 710, 505)
    path.cubicTo(715, 560, 660, 620, 600, 680)
    path.lineTo(580, 1000)
    path.lineTo(420, 1000)
    path.lineTo(400, 680)
    path.cubicTo(340, 620, 285, 560, 290, 505)
    return path


def _fibula() -> QPainterPath:
    path = QPainterPath(QPointF(705, 560))
    path.cubicTo(760, 545, 790, 590, 760, 625)
    path.lineTo(745, 1000)
    path.lineTo(712, 1000)
    path.lineTo(712, 640)
    path.cubicTo(690, 615, 690, 575, 705, 560)
    return path


class KneeDiagram(QWidget):
    """Clickable knee schematic; ``points_changed`` fires after every add or removal."""

    points_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._points: list[tuple[int, int]] = []
        self.setMinimumSize(260, 300)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setAccessibleName("knee diagram: click to mark a treatment point")
        self.setToolTip("Click to mark a treatment point; click a point to remove it.")

    # ------------------------------------------------------------------ values
    def points(self) -> list[dict[str, int]]:
        """The marked points in order, numbered from 1, as the record stores them."""
        return [{"n": i + 1, "x": x, "y": y} for i, (x, y) in enumerate(self._points)]

    def set_points(self, points: list[dict[str, int]]) -> None:
        cleaned: list[tuple[int, int]] = []
        for point in points:
            x, y = int(point["x"]), int(point["y"])
            if not (0 <= x <= SCALE and 0 <= y <= SCALE):
                raise ValueError(f"a knee point must lie within 0–{SCALE}, got ({x}, {y})")
            cleaned.append((x, y))
        self._points = cleaned
        self.points_changed.emit()
        self.update()

    def add_point(self, x: int, y: int) -> bool:
        """Add a point (normalised); False when outside the diagram or the list is full."""
        if not (0 <= x <= SCALE and 0 <= y <= SCALE) or len(self._points) >= MAX_POINTS:
            return False
        self._points.append((x, y))
        self.points_changed.emit()
        self.update()
        return True

    def remove_near(self, x: int, y: int) -> bool:
        """Remove the point nearest to (x, y) if one is within reach."""
        best: int | None = None
        best_d2 = HIT_RADIUS**2
        for i, (px, py) in enumerate(self._points):
            d2 = (px - x) ** 2 + (py - y) ** 2
            if d2 <= best_d2:
                best, best_d2 = i, d2
        if best is None:
            return False
        del self._points[best]
        self.points_changed.emit()
        self.update()
        return True

    def remove_last(self) -> None:
        if self._points:
            self._points.pop()
            self.points_changed.emit()
            self.update()

    def clear(self) -> None:
        if self._points:
            self._points.clear()
            self.points_changed.emit()
            self.update()

    # ------------------------------------------------------------------ geometry
    def _frame(self) -> QRectF:
        side = min(self.width(), self.height()) - 40
        return QRectF((self.width() - side) / 2, 28, side, side)

    def _to_widget(self) -> QTransform:
        frame = self._frame()
        transform = QTransform()
        transform.translate(frame.left(), frame.top())
        transform.scale(frame.width() / SCALE, frame.height() / SCALE)
        return transform

    def to_normalised(self, pos: QPointF) -> tuple[int, int]:
        inverse, _ = self._to_widget().inverted()
        point = inverse.map(pos)
        return round(point.x()), round(point.y())

    def to_widget(self, x: int, y: int) -> QPointF:
        return self._to_widget().map(QPointF(x, y))

    # ------------------------------------------------------------------ Qt overrides
    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(360, 400)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() != Qt.MouseButton.LeftButton:
            return
        x, y = self.to_normalised(event.position())
        if not self.remove_near(x, y):
            self.add_point(x, y)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), QColor(theme.PANEL))
        frame = self._frame()
        painter.setPen(QColor(theme.MUTED))
        painter.drawText(
            QRectF(frame.left(), 4, frame.width(), 20), Qt.AlignmentFlag.AlignLeft, "medial"
        )
        painter.drawText(
            QRectF(frame.left(), 4, frame.width(), 20), Qt.AlignmentFlag.AlignRight, "lateral"
        )

        painter.save()
        painter.setTransform(self._to_widget(), combine=True)
        edge = QPen(_BONE_EDGE, 4)
        painter.setPen(edge)
        painter.setBrush(_BONE)
        painter.drawPath(_femur())
        painter.drawPath(_tibia())
        painter.drawPath(_fibula())
        painter.setPen(QPen(QColor(theme.MUTED), 3, Qt.PenStyle.DashLine))
        painter.drawLine(QPointF(250, 490), QPointF(750, 490))  # joint line
        painter.setPen(QPen(_BONE_EDGE, 3))
        painter.setBrush(_TENDON)
        painter.drawRoundedRect(QRectF(462, 480, 76, 170), 30, 30)  # patellar tendon
        painter.setBrush(QColor("#EADFC9"))
        painter.drawEllipse(QPointF(500, 395), 88, 105)  # patella
        painter.restore()

        painter.setPen(QColor(theme.MUTED))
        small = QFont(self.font())
        small.setPointSizeF(max(7.0, self.font().pointSizeF() - 2))
        painter.setFont(small)
        joint = self.to_widget(760, 490)
        painter.drawText(
            QRectF(joint.x() + 2, joint.y() - 9, 90, 18), Qt.AlignmentFlag.AlignLeft, "joint line"
        )

        bold = QFont(self.font())
        bold.setBold(True)
        painter.setFont(bold)
        radius = max(9.0, frame.width() / 40)
        for i, (x, y) in enumerate(self._points):
            centre = self.to_widget(x, y)
            painter.setPen(QPen(QColor("white"), 2))
            painter.setBrush(_POINT)
            painter.drawEllipse(centre, radius, radius)
            painter.drawText(
                QRectF(centre.x() - radius, centre.y() - radius, 2 * radius, 2 * radius),
                Qt.AlignmentFlag.AlignCenter,
                str(i + 1),
            )
        painter.end()
