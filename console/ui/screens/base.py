"""What every screen has: a header, an inline notice for refusals and errors, busy handling.

Refusals and device errors are shown inline, never in a modal dialog: a modal dialog would block
clicks on the emergency-stop button of the main window.
"""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QPushButton, QScrollArea, QVBoxLayout, QWidget

from console.ui.widgets import Notice, label


class Screen(QWidget):
    """A page of the flow. Subclasses fill ``body`` and list their action buttons."""

    title = ""

    def __init__(self, title: str, subtitle: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = title
        self.title_label = label(title, "title")
        self.subtitle_label = label(subtitle, "subtitle")
        self.subtitle_label.setVisible(bool(subtitle))
        self.notice = Notice()
        self.notice.setObjectName("screenNotice")
        content = QWidget()
        self.body = QVBoxLayout(content)
        self.body.setContentsMargins(0, 0, 0, 0)
        self.body.setSpacing(12)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setWidget(content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(24, 18, 24, 18)
        outer.setSpacing(10)
        outer.addWidget(self.title_label)
        outer.addWidget(self.subtitle_label)
        outer.addWidget(self.notice)
        outer.addWidget(self.scroll, 1)
        self.actions: list[QPushButton] = []
        self._busy = False

    @property
    def busy(self) -> bool:
        return self._busy

    def set_busy(self, busy: bool) -> None:
        """While a call is in flight every action button waits; afterwards each is re-judged."""
        self._busy = busy
        if busy:
            for action in self.actions:
                action.setEnabled(False)
        else:
            self.update_actions()

    def update_actions(self) -> None:
        """Enable the action buttons that make sense now (guidance only: the workflow decides)."""
        for action in self.actions:
            action.setEnabled(True)

    def reveal(self, widget: QWidget) -> None:
        """Scroll so that ``widget`` (the next thing to read or do) is in view.

        Deferred to the next turn of the event loop, when the layout has made room for
        whatever just appeared.
        """
        QTimer.singleShot(0, lambda: self.scroll.ensureWidgetVisible(widget, 0, 40))

    def set_heading(self, title: str, subtitle: str = "") -> None:
        self.title_label.setText(title)
        self.subtitle_label.setText(subtitle)
        self.subtitle_label.setVisible(bool(subtitle))

    def show_refusal(self, title: str, reasons: list[str]) -> None:
        self.notice.show_lines(f"{title}: not possible now", reasons, "refuse")

    def show_error(self, title: str, message: str, advice: str) -> None:
        lines = [message] + ([f"What to do: {advice}"] if advice else [])
        self.notice.show_lines(f"{title} failed", lines, "refuse")

    def show_info(self, heading: str, lines: list[str] | None = None) -> None:
        self.notice.show_lines(heading, lines or [], "ok")

    def clear_notice(self) -> None:
        self.notice.clear()
