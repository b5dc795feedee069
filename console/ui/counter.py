"""The large live pulse counter and progress bar of the delivery screen.

It shows the workflow's own count (the unit's counts summed over load segments), never an
estimate of its own, so what the therapist sees is what the record will hold.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QProgressBar, QVBoxLayout, QWidget

from console.ui import theme


def format_count(delivered: int, target: int) -> str:
    """``1,234 / 2,000`` — thousands separated so a glance cannot misread it."""
    return f"{delivered:,} / {target:,}"


class PulseCounter(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.count_label = QLabel(format_count(0, 0))
        self.count_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.count_label.setObjectName("pulseCount")
        self.count_label.setStyleSheet(
            f"font-size: 54pt; font-weight: bold; color: {theme.TEXT};"
            "font-family: 'DejaVu Sans Mono', monospace;"
        )
        self.caption = QLabel("pulses delivered")
        self.caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.caption.setProperty("role", "muted")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("%p %")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.count_label)
        layout.addWidget(self.caption)
        layout.addWidget(self.progress)
        self.setAccessibleName("pulse counter")

    def show_count(self, delivered: int, target: int) -> None:
        text = format_count(delivered, target)
        if text == self.count_label.text():
            return
        self.count_label.setText(text)
        self.progress.setRange(0, max(target, 1))
        self.progress.setValue(min(delivered, max(target, 1)))
