"""The alarm signal in the top bar: the highest active alarm, its priority colour, acknowledge.

Colours follow IEC 60601-1-8 (high red, medium yellow/amber, low cyan). Alarms latch in the
``AlarmBoard`` until acknowledged; the banner only shows them and forwards the acknowledgement
(which the board reports to its listener, so it is audited).
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

from console.alarms import Alarm, AlarmPriority

_STYLE = {
    AlarmPriority.HIGH: ("#C62828", "white", "HIGH"),
    AlarmPriority.MEDIUM: ("#F2B600", "#1D2A33", "MEDIUM"),
    AlarmPriority.LOW: ("#7FD3E6", "#1D2A33", "LOW"),
}


class AlarmBanner(QFrame):
    acknowledge_requested = Signal(str)  # the alarm's key

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("alarmBanner")
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.more = QLabel()
        self.ack = QPushButton("Acknowledge")
        self.ack.setToolTip(
            "Acknowledge the alarm shown (Ctrl+K); it is recorded in the audit trail"
        )
        self.ack.setShortcut("Ctrl+K")
        self.ack.clicked.connect(self._acknowledge)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 4, 6, 4)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.more)
        layout.addWidget(self.ack)
        self._shown: Alarm | None = None
        self.label.setMinimumWidth(220)
        self._show_none()

    @property
    def shown_alarm(self) -> Alarm | None:
        return self._shown

    def show_alarms(self, active: Sequence[Alarm]) -> None:
        """Show the first (highest priority) of ``active`` and how many more wait."""
        top = active[0] if active else None
        if top == self._shown and self.more.text() == self._more_text(active):
            return
        self._shown = top
        if top is None:
            self._show_none()
            return
        background, foreground, name = _STYLE[top.priority]
        kind = "technical alarm" if top.technical else "alarm"
        self.setStyleSheet(f"#alarmBanner {{ background: {background}; border-radius: 6px; }}")
        # On the labels themselves, so they measure (and wrap) with the bold font they draw.
        style = f"color: {foreground}; font-weight: bold;"
        self.label.setStyleSheet(style)
        self.more.setStyleSheet(style)
        self.label.setText(f"{name} {kind}: {top.message}")
        self.more.setText(self._more_text(active))
        self.ack.show()

    def _show_none(self) -> None:
        self.setStyleSheet("#alarmBanner { background: transparent; border: none; }")
        self.label.setText("No active alarms")
        self.label.setStyleSheet("color: #56656F;")
        self.more.setText("")
        self.ack.hide()

    @staticmethod
    def _more_text(active: Sequence[Alarm]) -> str:
        return f"+{len(active) - 1} more" if len(active) > 1 else ""

    def _acknowledge(self) -> None:
        if self._shown is not None:
            self.acknowledge_requested.emit(self._shown.key)
