"""Charts an admin would rather look at than read, drawn with QPainter (no QtCharts needed).

Each chart draws exactly the figures it is given (``console.admin.charts``) with its numbers
written on it, so a chart never shows a trend the data does not hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QGridLayout, QLineEdit, QSizePolicy, QVBoxLayout, QWidget

from console.admin.charts import AdverseRate, ChartData, PainChange, WeekCount
from console.admin.context import AdminServices
from console.auth import SignedInUser
from console.ui import theme
from console.ui.admin.story_page import parse_day
from console.ui.admin.tasks import BackgroundTasks
from console.ui.widgets import Notice, button, label, panel

EPAT_COLOUR = QColor(theme.PRIMARY)
EMTT_COLOUR = QColor(theme.PLOT_TEMPERATURE)
BEFORE_COLOUR = QColor("#9DB4C0")
AFTER_COLOUR = QColor(theme.OK)
AXIS = QColor(theme.MUTED)
MODALITY_COLOURS = {"epat": EPAT_COLOUR, "emtt": EMTT_COLOUR}


class _Chart(QWidget):
    title = ""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(240)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAutoFillBackground(True)
        palette = self.palette()
        palette.setColor(self.backgroundRole(), QColor(theme.PANEL))
        self.setPalette(palette)

    def _frame(self, painter: QPainter) -> QRectF:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QColor(theme.TEXT))
        font = QFont(self.font())
        font.setBold(True)
        painter.setFont(font)
        painter.drawText(
            QRectF(10, 4, self.width() - 20, 22), Qt.AlignmentFlag.AlignLeft, self.title
        )
        painter.setFont(self.font())
        return QRectF(54, 34, max(10, self.width() - 74), max(10, self.height() - 74))

    @staticmethod
    def _empty(painter: QPainter, area: QRectF, text: str) -> None:
        painter.setPen(AXIS)
        painter.drawText(area, Qt.AlignmentFlag.AlignCenter, text)

    @staticmethod
    def _y_axis(
        painter: QPainter, area: QRectF, top: float, suffix: str = "", steps: int = 4
    ) -> None:
        """Grid lines and labels at ``steps`` equal intervals up to ``top`` (chosen by the
        caller so that every label is a whole number)."""
        painter.setPen(QPen(AXIS, 1))
        painter.drawLine(area.bottomLeft(), area.bottomRight())
        for i in range(steps + 1):
            value = top * i / steps
            y = area.bottom() - area.height() * i / steps
            painter.setPen(QPen(QColor(theme.BORDER), 1, Qt.PenStyle.DotLine))
            painter.drawLine(int(area.left()), int(y), int(area.right()), int(y))
            painter.setPen(AXIS)
            painter.drawText(
                QRectF(0, y - 9, area.left() - 6, 18),
                Qt.AlignmentFlag.AlignRight,
                f"{value:g}{suffix}",
            )

    @staticmethod
    def _legend(painter: QPainter, x: float, y: float, items: Sequence[tuple[str, QColor]]) -> None:
        for text, colour in items:
            painter.fillRect(QRectF(x, y + 3, 12, 12), colour)
            painter.setPen(QColor(theme.TEXT))
            painter.drawText(QRectF(x + 16, y, 140, 18), Qt.AlignmentFlag.AlignLeft, text)
            x += 24 + painter.fontMetrics().horizontalAdvance(text)


class WeeklySessionsChart(_Chart):
    """Treatment sessions per week, stacked by modality."""

    title = "Treatment sessions per week"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.weeks: tuple[WeekCount, ...] = ()

    def set_weeks(self, weeks: Sequence[WeekCount]) -> None:
        self.weeks = tuple(weeks)
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt override)
        painter = QPainter(self)
        area = self._frame(painter)
        if not self.weeks or all(w.total == 0 for w in self.weeks):
            self._empty(painter, area, "no treatment sessions in this range")
            return
        top = max(4, max(w.total for w in self.weeks))
        top = (top + 3) // 4 * 4
        self._y_axis(painter, area, top)
        slot = area.width() / len(self.weeks)
        bar = max(2.0, slot * 0.7)
        every = max(1, int(60 // max(slot, 1)) + 1)
        for i, week in enumerate(self.weeks):
            x = area.left() + i * slot + (slot - bar) / 2
            y = area.bottom()
            for modality, count in week.counts:
                height = area.height() * count / top
                painter.fillRect(QRectF(x, y - height, bar, height), MODALITY_COLOURS[modality])
                y -= height
            if i % every == 0:
                painter.setPen(AXIS)
                painter.drawText(
                    QRectF(x - 20, area.bottom() + 4, 70, 18),
                    Qt.AlignmentFlag.AlignLeft,
                    week.week_start.strftime("%d %b"),
                )
        self._legend(
            painter, area.left(), area.bottom() + 22, (("EPAT", EPAT_COLOUR), ("EMTT", EMTT_COLOUR))
        )


class AdverseEventChart(_Chart):
    """Share of treatment sessions with an adverse event, per modality, with the kinds."""

    title = "Sessions with adverse events"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rates: tuple[AdverseRate, ...] = ()

    def set_rates(self, rates: Sequence[AdverseRate]) -> None:
        self.rates = tuple(rates)
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt override)
        painter = QPainter(self)
        area = self._frame(painter)
        if not self.rates or all(r.sessions == 0 for r in self.rates):
            self._empty(painter, area, "no treatment sessions in this range")
            return
        highest = float(max(r.percent for r in self.rates))
        top = min(100.0, max(20.0, -(-highest // 20) * 20))  # 20, 40 … 100: whole labels
        self._y_axis(painter, area, top, " %")
        slot = area.width() / len(self.rates)
        bar = min(120.0, slot * 0.5)
        for i, rate in enumerate(self.rates):
            x = area.left() + i * slot + (slot - bar) / 2
            height = area.height() * float(rate.percent) / top
            painter.fillRect(
                QRectF(x, area.bottom() - height, bar, height), MODALITY_COLOURS[rate.modality]
            )
            painter.setPen(QColor(theme.TEXT))
            painter.drawText(
                QRectF(x - 40, area.bottom() - height - 20, bar + 80, 18),
                Qt.AlignmentFlag.AlignCenter,
                f"{rate.percent} % ({rate.with_adverse_events} of {rate.sessions})",
            )
            kinds = ", ".join(f"{k} {n}" for k, n in rate.by_kind) or "none"
            painter.setPen(AXIS)
            painter.drawText(
                QRectF(area.left() + i * slot, area.bottom() + 4, slot, 34),
                Qt.AlignmentFlag.AlignHCenter | Qt.TextFlag.TextWordWrap,
                f"{rate.modality.upper()}: {kinds}",
            )


class PainChart(_Chart):
    """Mean pain (NRS 0–10) before and after, per protocol."""

    title = "Mean pain before → after, per protocol (NRS 0–10)"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.changes: tuple[PainChange, ...] = ()

    def set_changes(self, changes: Sequence[PainChange]) -> None:
        self.changes = tuple(changes)
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt override)
        painter = QPainter(self)
        area = self._frame(painter)
        area.setBottom(area.bottom() - 30)
        if not self.changes:
            self._empty(painter, area, "no sessions with both pain scores in this range")
            return
        self._y_axis(painter, area, 10.0, steps=5)
        slot = area.width() / len(self.changes)
        bar = min(46.0, slot * 0.32)
        for i, change in enumerate(self.changes):
            left = area.left() + i * slot + slot / 2 - bar - 2
            for j, (value, colour) in enumerate(
                ((change.mean_before, BEFORE_COLOUR), (change.mean_after, AFTER_COLOUR))
            ):
                x = left + j * (bar + 4)
                height = area.height() * float(value) / 10
                painter.fillRect(QRectF(x, area.bottom() - height, bar, height), colour)
                painter.setPen(QColor(theme.TEXT))
                painter.drawText(
                    QRectF(x - 10, area.bottom() - height - 18, bar + 20, 16),
                    Qt.AlignmentFlag.AlignCenter,
                    str(value),
                )
            painter.setPen(AXIS)
            painter.drawText(
                QRectF(area.left() + i * slot, area.bottom() + 4, slot, 36),
                Qt.AlignmentFlag.AlignHCenter,
                painter.fontMetrics().elidedText(
                    change.protocol_id, Qt.TextElideMode.ElideMiddle, int(slot) - 4
                )
                + f"\n(n={change.sessions})",
            )
        self._legend(
            painter,
            area.left(),
            area.bottom() + 42,
            (("before", BEFORE_COLOUR), ("after", AFTER_COLOUR)),
        )


class ChartsPage(QWidget):
    def __init__(
        self, services: AdminServices, user: SignedInUser, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.services = services
        self.user = user
        self.tasks = BackgroundTasks(self, workers=1, name="charts")
        self.data: ChartData | None = None
        self.notice = Notice()
        self.notice.setObjectName("chartsNotice")
        self.from_edit = QLineEdit()
        self.from_edit.setObjectName("chartsFrom")
        self.from_edit.setPlaceholderText("from (default: 26 weeks before 'to')")
        self.to_edit = QLineEdit()
        self.to_edit.setObjectName("chartsTo")
        self.to_edit.setPlaceholderText("to (default: the latest session)")
        self.refresh_button = button("&Show", role="primary", name="chartsShow")
        self.caption = label("", "muted")
        self.caption.setObjectName("chartsCaption")
        self.weekly = WeeklySessionsChart()
        self.adverse = AdverseEventChart()
        self.pain = PainChart()
        bar, bar_layout = panel()
        grid = QGridLayout()
        grid.addWidget(label("From", "muted", wrap=False), 0, 0)
        grid.addWidget(self.from_edit, 0, 1)
        grid.addWidget(label("To", "muted", wrap=False), 0, 2)
        grid.addWidget(self.to_edit, 0, 3)
        grid.addWidget(self.refresh_button, 0, 4)
        grid.setColumnStretch(5, 1)
        bar_layout.addLayout(grid)
        bar_layout.addWidget(self.caption)
        charts = QWidget()
        charts_layout = QGridLayout(charts)
        charts_layout.setContentsMargins(0, 0, 0, 0)
        charts_layout.addWidget(self.weekly, 0, 0, 1, 2)
        charts_layout.addWidget(self.adverse, 1, 0)
        charts_layout.addWidget(self.pain, 1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.notice)
        layout.addWidget(bar)
        layout.addWidget(charts, 1)
        self.refresh_button.clicked.connect(self.load)

    def load(self) -> None:
        try:
            start, end = parse_day(self.from_edit.text()), parse_day(self.to_edit.text())
        except ValueError as exc:
            self.notice.show_lines("Charts", [str(exc)], "refuse")
            return
        self.notice.clear()
        self.tasks.submit(
            lambda: self.services.charts.data(self.user, start, end), self.show_data, self._error
        )

    def show_data(self, data: ChartData) -> None:
        self.data = data
        self.caption.setText(
            f"{data.sessions:,} treatment sessions (pulses delivered) dated "
            f"{data.start.isoformat()} to {data.end.isoformat()}"
        )
        self.weekly.set_weeks(data.weeks)
        self.adverse.set_rates(data.adverse)
        self.pain.set_changes(data.pain)

    def _error(self, exc: BaseException) -> None:
        self.notice.show_lines("Charts", [str(exc) or type(exc).__name__], "refuse")

    def shutdown(self) -> None:
        self.tasks.shutdown()


def monday_of(day: date) -> date:
    return day - timedelta(days=day.weekday())
