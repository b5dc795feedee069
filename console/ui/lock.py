"""Inactivity lock: hide patient data after a quiet spell, never interrupt delivery.

``InactivityMonitor`` watches the application's input events and says when the console has been
idle for the configured time. ``LockOverlay`` covers the screen area (not the top bar with the
emergency stop) and asks for the signed-in user's password. Nothing underneath is stopped: the
workflow, the device worker and the live counters keep running; while locked the overlay shows
the delivery's progress without any patient data.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QEvent, QObject, QTimer, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from console.ui import theme
from console.ui.estop import ESTOP_KEY_NAME

DEFAULT_LOCK_AFTER_S = 300.0

_USER_INPUT = frozenset(
    {
        QEvent.Type.KeyPress,
        QEvent.Type.MouseButtonPress,
        QEvent.Type.MouseButtonDblClick,
        QEvent.Type.Wheel,
        QEvent.Type.TouchBegin,
    }
)


class InactivityMonitor(QObject):
    """Emits ``idle`` once after ``timeout_s`` without user input while ``enabled``."""

    idle = Signal()

    def __init__(self, timeout_s: float = DEFAULT_LOCK_AFTER_S, parent: QObject | None = None):
        super().__init__(parent)
        if not timeout_s > 0:
            raise ValueError(f"the lock timeout must be > 0 seconds, got {timeout_s!r}")
        self.timeout_s = timeout_s
        self.enabled = False
        self._last_input = time.monotonic()
        self._timer = QTimer(self)
        self._timer.setInterval(int(min(1.0, timeout_s / 4) * 1000) or 1)
        self._timer.timeout.connect(self._check)
        self._timer.start()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt override)
        if event.type() in _USER_INPUT:
            self._last_input = time.monotonic()
        return False

    def poke(self) -> None:
        """Count as activity now (e.g. after unlocking)."""
        self._last_input = time.monotonic()

    @property
    def idle_for_s(self) -> float:
        return time.monotonic() - self._last_input

    def _check(self) -> None:
        if self.enabled and self.idle_for_s >= self.timeout_s:
            self.enabled = False  # the owner re-enables it after unlocking
            self.idle.emit()


class LockOverlay(QFrame):
    """Opaque cover over the screens; ``unlock_requested`` carries the typed password."""

    unlock_requested = Signal(str)

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("lockOverlay")
        self.setStyleSheet(f"#lockOverlay {{ background: {theme.BACKGROUND}; }}")
        self.setAutoFillBackground(True)
        card = QFrame()
        card.setProperty("role", "panel")
        card.setFixedWidth(560)
        title = QLabel("Console locked")
        title.setProperty("role", "title")
        self.who = QLabel()
        self.who.setWordWrap(True)
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setPlaceholderText("password")
        self.password.setAccessibleName("password to unlock")
        self.unlock = QPushButton("Unlock")
        self.unlock.setProperty("role", "primary")
        self.error = QLabel()
        self.error.setProperty("role", "error")
        self.error.setWordWrap(True)
        self.delivery = QLabel()
        self.delivery.setWordWrap(True)
        self.delivery.setObjectName("lockDeliveryStatus")
        note = QLabel(
            f"The emergency stop above stays available (key {ESTOP_KEY_NAME}). "
            "Locking never interrupts a delivery."
        )
        note.setProperty("role", "muted")
        note.setWordWrap(True)
        inner = QVBoxLayout(card)
        inner.setContentsMargins(24, 20, 24, 20)
        inner.setSpacing(10)
        for widget in (
            title,
            self.who,
            self.password,
            self.unlock,
            self.error,
            self.delivery,
            note,
        ):
            inner.addWidget(widget)
        row = QHBoxLayout()  # stretches, not an alignment flag: wrapped labels get their height
        row.addStretch(1)
        row.addWidget(card)
        row.addStretch(1)
        outer = QVBoxLayout(self)
        outer.addStretch(1)
        outer.addLayout(row)
        outer.addStretch(2)
        self.unlock.clicked.connect(self._submit)
        self.password.returnPressed.connect(self._submit)
        parent.installEventFilter(self)
        self.hide()

    def lock(self, user_name: str) -> None:
        self.who.setText(f"Signed in: {user_name}. Enter your password to unlock.")
        self.password.clear()
        self.error.clear()
        self.setGeometry(self.parentWidget().rect())
        self.show()
        self.raise_()
        self.password.setFocus()

    def show_error(self, message: str) -> None:
        self.error.setText(message)
        self.password.clear()
        self.password.setFocus()

    def show_delivery(self, text: str) -> None:
        """A line about the running session, without patient data (may be empty)."""
        self.delivery.setText(text)

    def _submit(self) -> None:
        self.unlock_requested.emit(self.password.text())

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt override)
        if watched is self.parentWidget() and event.type() == QEvent.Type.Resize:
            self.setGeometry(self.parentWidget().rect())
        return False
