"""The emergency stop: a red button that is never disabled and a key that works everywhere.

The key (Esc) is caught by an application-wide event filter before any widget or dialog sees it,
so it works from every screen, every dialog and the lock screen — whenever a unit is connected.
With no unit connected Esc keeps its ordinary meaning (close a dialog), and the button explains
that there is nothing to stop.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, QSize, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QPushButton, QSizePolicy, QWidget

ESTOP_KEY = Qt.Key.Key_Escape
ESTOP_KEY_NAME = "Esc"
ESTOP_TOOLTIP = (
    "EMERGENCY STOP: stops the unit at once and latches it in fault. "
    f"Key: {ESTOP_KEY_NAME}, from any screen or dialog while a unit is connected."
)


class EmergencyStopButton(QPushButton):
    """Large, red, always enabled; ``triggered`` fires on click."""

    triggered = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("EMERGENCY STOP", parent)
        self.setProperty("role", "estop")
        self.setObjectName("emergencyStop")
        self.setToolTip(ESTOP_TOOLTIP)
        self.setAccessibleName("emergency stop")
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # never steals focus from a form
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Expanding)
        self.clicked.connect(self.triggered)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        """Never narrower than its words: a crowded top bar squeezes something else."""
        return self.sizeHint().expandedTo(QSize(230, 56))

    def setEnabled(self, enabled: bool) -> None:  # noqa: N802 (Qt override)
        """The emergency stop cannot be disabled; it also sits under no widget that ever is."""
        super().setEnabled(True)


class EmergencyKeyFilter(QObject):
    """Application event filter: Esc → ``trigger()`` while ``unit_connected()`` is true."""

    def __init__(
        self,
        trigger: Callable[[], None],
        unit_connected: Callable[[], bool],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._trigger = trigger
        self._unit_connected = unit_connected

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt override)
        kind = event.type()
        if kind not in (QEvent.Type.KeyPress, QEvent.Type.ShortcutOverride):
            return False
        assert isinstance(event, QKeyEvent)
        if event.key() != ESTOP_KEY or not self._unit_connected():
            return False
        if kind is QEvent.Type.ShortcutOverride:
            event.accept()  # the key press that follows must reach this filter, not a shortcut
            return True
        if not event.isAutoRepeat():
            self._trigger()
        return True
