"""Inputs that cannot change by accident (IEC 62366): one application-wide event filter.

- The mouse wheel over a combo box, spin box or date edit that does not have the keyboard
  focus scrolls the page (the scroll area around it) instead (the defect: scrolling the
  screening turned the implant answer from "none" to "pacemaker"). A focused box still takes
  the wheel: the user chose it.
- Alt+key never types into a text field: with no Alt shortcut of that letter, Qt would insert
  the letter (the defect: Alt+O typed "o" into a recorded reason). Shortcuts themselves are
  matched before the key press reaches the field, so they keep working.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QPointF, Qt
from PySide6.QtGui import QKeyEvent, QWheelEvent
from PySide6.QtWidgets import (
    QAbstractScrollArea,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QLineEdit,
    QPlainTextEdit,
    QTextEdit,
    QWidget,
)

_WHEEL_GUARDED = (QComboBox, QAbstractSpinBox)
_TEXT_FIELDS = (QLineEdit, QPlainTextEdit, QTextEdit)


class InputGuard(QObject):
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt override)
        kind = event.type()
        if kind == QEvent.Type.Wheel and isinstance(watched, QWidget):
            box = _guarded_box(watched)
            if box is not None and not box.hasFocus():
                if isinstance(event, QWheelEvent):
                    _scroll_page(box, event)  # the page scrolls, the value stays
                return True
        elif kind == QEvent.Type.Polish and isinstance(watched, _WHEEL_GUARDED):
            watched.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # the wheel never gives focus
        elif (
            kind == QEvent.Type.KeyPress
            and isinstance(event, QKeyEvent)
            and event.modifiers() & Qt.KeyboardModifier.AltModifier
            and not event.modifiers() & Qt.KeyboardModifier.ControlModifier  # AltGr on Windows
            and event.text()
            and _text_field(watched)
        ):
            return True
        return False


def _scroll_page(box: QWidget, event: QWheelEvent) -> None:
    """Give the wheel to the scroll area around ``box`` (a forwarded, non-spontaneous wheel
    event would not propagate to it by itself)."""
    area = box.parentWidget()
    while area is not None and not isinstance(area, QAbstractScrollArea):
        area = area.parentWidget()
    if area is None:
        return
    viewport = area.viewport()
    position = QPointF(viewport.mapFromGlobal(event.globalPosition().toPoint()))
    forwarded = QWheelEvent(
        position,
        event.globalPosition(),
        event.pixelDelta(),
        event.angleDelta(),
        event.buttons(),
        event.modifiers(),
        event.phase(),
        event.inverted(),
    )
    QApplication.sendEvent(viewport, forwarded)


def _guarded_box(widget: QWidget) -> QWidget | None:
    """The combo/spin box ``widget`` is or belongs to (a spin box's inner line edit)."""
    current: QWidget | None = widget
    for _ in range(2):
        if current is None:
            return None
        if isinstance(current, _WHEEL_GUARDED):
            return current
        current = current.parentWidget()
    return None


def _text_field(watched: QObject) -> bool:
    if isinstance(watched, _TEXT_FIELDS):
        return True
    parent = watched.parent() if isinstance(watched, QWidget) else None
    return isinstance(parent, (QPlainTextEdit, QTextEdit))  # their viewport gets the keys


def install_input_guard(app: QApplication) -> InputGuard:
    """Install the one guard on ``app`` (idempotent: a second call returns the first)."""
    existing = app.findChild(InputGuard)
    if isinstance(existing, InputGuard):
        return existing
    guard = InputGuard(app)
    app.installEventFilter(guard)
    return guard
