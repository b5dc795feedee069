"""The bar above every screen: who, which patient, session state, alarms, the EMERGENCY STOP.

It is outside the area the lock overlay covers, so the emergency stop and the alarms stay
visible and usable on every screen, the lock screen included.
"""

from __future__ import annotations

from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QWidget

from console.ui import theme
from console.ui.alarm_banner import AlarmBanner
from console.ui.estop import EmergencyStopButton
from console.ui.widgets import button, label

_STATE_COLOURS = {
    "screening": theme.PRIMARY,
    "planned": theme.PRIMARY,
    "connected": theme.PRIMARY_DARK,
    "armed": theme.CAUTION,
    "delivering": theme.OK,
    "paused": theme.CAUTION,
    "faulted": theme.DANGER,
}


class TopBar(QFrame):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("topBar")
        self.setStyleSheet(
            f"#topBar {{ background: {theme.PANEL}; border-bottom: 1px solid {theme.BORDER}; }}"
        )
        self.user_label = label("not signed in", "muted", wrap=False)  # the title says the app
        self.user_label.setObjectName("topUser")
        self.patient_label = label("", wrap=False)
        self.patient_label.setObjectName("topPatient")
        self.state_label = QLabel("")
        self.state_label.setObjectName("topState")
        self.alarms = AlarmBanner()
        # No Alt letters up here: the bar is on every screen, its letters would clash there.
        self.lock_button = button("Lock", name="lockNow", tooltip="Lock the screen now (Ctrl+L)")
        self.lock_button.setShortcut("Ctrl+L")
        self.logout_button = button("Sign out", name="signOut")
        self.estop = EmergencyStopButton()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(14, 8, 14, 8)
        layout.setSpacing(14)
        layout.addWidget(self.user_label)
        layout.addWidget(self.patient_label)
        layout.addWidget(self.state_label)
        layout.addWidget(self.alarms, 1)
        layout.addWidget(self.lock_button)
        layout.addWidget(self.logout_button)
        layout.addWidget(self.estop)
        self._state: str | None = None
        self.show_state(None)

    def show_user(self, text: str) -> None:
        self.user_label.setText(text)

    def show_patient(self, pseudonym: str | None) -> None:
        self.patient_label.setText(f"Patient <b>{pseudonym}</b>" if pseudonym else "")

    def show_state(self, state: str | None) -> None:
        if state == self._state and state is not None:
            return  # a style sheet change re-polishes the widget: only when the state changes
        self._state = state
        if not state:
            self.state_label.setText("")
            self.state_label.setStyleSheet("")
            return
        colour = _STATE_COLOURS.get(state, theme.MUTED)
        self.state_label.setText(state.upper())
        self.state_label.setStyleSheet(
            f"background: {colour}; color: white; font-weight: bold; border-radius: 10px;"
            "padding: 3px 12px;"
        )
