"""Small building blocks the screens share: titles, panels, buttons, notices, reason lists."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from console.session.interlocks import Interlock
from console.session.ports import Finding
from console.ui import theme


def set_text(widget: QLabel, text: str) -> None:
    """Set a label's text only when it changed (no needless re-layout at 20 updates a second)."""
    if widget.text() != text:
        widget.setText(text)


def label(text: str = "", role: str | None = None, *, wrap: bool = True) -> QLabel:
    widget = QLabel(text)
    if role:
        widget.setProperty("role", role)
    widget.setWordWrap(wrap)
    return widget


def button(
    text: str,
    *,
    role: str | None = None,
    tooltip: str = "",
    name: str | None = None,
) -> QPushButton:
    """A push button; put ``&`` before a letter in ``text`` for its Alt shortcut."""
    widget = QPushButton(text)
    if role:
        widget.setProperty("role", role)
    if tooltip:
        widget.setToolTip(tooltip)
    if name:
        widget.setObjectName(name)
    return widget


def panel(*, role: str = "panel") -> tuple[QFrame, QVBoxLayout]:
    frame = QFrame()
    frame.setProperty("role", role)
    layout = QVBoxLayout(frame)
    layout.setContentsMargins(16, 14, 16, 14)
    layout.setSpacing(8)
    return frame, layout


def button_row(*buttons: QWidget, stretch_first: bool = True) -> QWidget:
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    if stretch_first:
        layout.addStretch(1)
    for widget in buttons:
        layout.addWidget(widget)
    return row


_SEVERITY_ROLE = {
    "block": "notice-danger",
    "refuse": "notice-danger",
    "refused": "notice-danger",
    "override_required": "notice-caution",
    "warning": "notice-info",
    "warn": "notice-info",
    "allow": "notice-info",
    "ok": "notice-info",
}


class Notice(QFrame):
    """A coloured box with a heading and a list of lines (every reason, none dropped)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setProperty("role", "notice-info")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 10, 14, 10)
        self.heading = label("", "section")
        self.body = label("")
        self.body.setTextFormat(Qt.TextFormat.RichText)
        self.body.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.heading)
        layout.addWidget(self.body)
        self.lines: list[str] = []
        self._shown: tuple[str, list[str], str] | None = None
        self.hide()

    def show_lines(self, heading: str, lines: Iterable[str], severity: str = "warning") -> None:
        lines = list(lines)
        role = _SEVERITY_ROLE.get(severity, "notice-info")
        if (heading, lines, role) == self._shown and self.isVisibleTo(self.parentWidget()):
            return  # unchanged: no re-layout, no re-polish (snapshots arrive 20 times a second)
        self._shown = (heading, lines, role)
        self.lines = lines
        self.setProperty("role", role)
        self.style().unpolish(self)
        self.style().polish(self)
        self.heading.setText(heading)
        items = "".join(f"<li>{escape(line)}</li>" for line in self.lines)
        self.body.setText(f"<ul style='margin-left:-20px'>{items}</ul>" if items else "")
        self.body.setVisible(bool(items))
        self.show()

    def clear(self) -> None:
        self.lines = []
        self._shown = None
        self.hide()


def finding_line(finding: Finding) -> str:
    """``CI-COAG (override required): message — eligible from 2025-03-01``."""
    severity = finding.severity.replace("_", " ")
    message = finding.message
    if message.startswith(f"{finding.rule}:"):  # some rules name themselves already
        message = message[len(finding.rule) + 1 :].lstrip()
    text = f"{finding.rule} ({severity}): {message}"
    if finding.eligible_from is not None:
        text += f" — first eligible date {finding.eligible_from.isoformat()}"
    return text


class InterlockList(QWidget):
    """The arming checklist: each interlock with a tick or a cross and its reason."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(4)
        self.rows: list[QLabel] = []
        self._shown: tuple[Interlock, ...] = ()

    def show_interlocks(self, interlocks: Sequence[Interlock]) -> None:
        if tuple(interlocks) == self._shown and self.rows:
            return
        self._shown = tuple(interlocks)
        for row in self.rows:
            row.deleteLater()
        self.rows = []
        for interlock in interlocks:
            mark, colour = ("✔", theme.OK) if interlock.held else ("✘", theme.DANGER)
            row = QLabel(
                f"<span style='color:{colour}; font-weight:bold'>{mark}</span> "
                f"<b>{escape(interlock.name)}</b> — {escape(interlock.reason)}"
            )
            row.setTextFormat(Qt.TextFormat.RichText)
            row.setWordWrap(True)
            row.setProperty("held", interlock.held)
            self._layout.addWidget(row)
            self.rows.append(row)


class ReasonBox(QWidget):
    """A written reason with a live character count (overrides need at least ``minimum``)."""

    def __init__(self, placeholder: str, minimum: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.minimum = minimum
        self.edit = QPlainTextEdit()
        self.edit.setPlaceholderText(placeholder)
        self.edit.setFixedHeight(70)
        self.edit.setTabChangesFocus(True)
        self.count = label("", "muted")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.edit)
        layout.addWidget(self.count)
        self.edit.textChanged.connect(self._count)
        self._count()

    def text(self) -> str:
        return self.edit.toPlainText()

    def set_text(self, text: str) -> None:
        self.edit.setPlainText(text)

    def _count(self) -> None:
        n = len(self.text().strip())
        self.count.setText(f"{n} characters (at least {self.minimum})")


class AbortBox(QWidget):
    """'Abort session…' opens an inline reason field; an abort always needs a reason."""

    abort_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.open_button = button(
            "A&bort session…",
            role="caution",
            name="abortOpen",
            tooltip="End the session early with a written reason (recorded)",
        )
        self.reason = QLineEdit()
        self.reason.setObjectName("abortReason")
        self.reason.setPlaceholderText("Why is the session aborted? (required)")
        self.confirm = button("Confirm abort", role="caution", name="abortConfirm")
        self.cancel = button("Keep session", name="abortCancel")
        self.form = QWidget()
        form_layout = QHBoxLayout(self.form)
        form_layout.setContentsMargins(0, 0, 0, 0)
        form_layout.addWidget(self.reason, 1)
        form_layout.addWidget(self.confirm)
        form_layout.addWidget(self.cancel)
        self.form.hide()
        self.open_button.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.addWidget(self.open_button)
        self._layout.addWidget(self.form, 1)
        self._layout.addStretch(1)  # closed: the button keeps its own width
        self.open_button.clicked.connect(self._open)
        self.cancel.clicked.connect(self._close)
        self.confirm.clicked.connect(lambda: self.abort_requested.emit(self.reason.text()))
        self.reason.returnPressed.connect(self.confirm.click)

    def _open(self) -> None:
        self.form.show()
        self.open_button.hide()
        self._layout.setStretch(2, 0)
        self.reason.setFocus()

    def _close(self) -> None:
        self.form.hide()
        self.reason.clear()
        self.open_button.show()
        self._layout.setStretch(2, 1)

    def reset(self) -> None:
        self._close()

    def set_available(self, available: bool) -> None:
        self.open_button.setEnabled(available)
        self.confirm.setEnabled(available)
