"""Drive the real main window the way a therapist does: click, type, wait for the screen.

Shared by the GUI tests, the screenshot script (docs/screenshots.py) and the GUI benchmarks, so
all three go through the same buttons. Every step waits for the GUI's own answer (a screen, a
state, an enabled button) rather than sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QPushButton, QWidget

from console.session.states import SessionState
from console.ui.main_window import MainWindow
from tests.console.session_helpers import CLEAN_ANSWERS  # the answers the session tests use

TIMEOUT_S = 15.0


#: A short test dose (below knee-pt-epat's 1,500 pulses) so a simulated session takes seconds;
#: it needs an override reason, which exercises that path too.
SHORT_DOSE = {"pulses": "300", "frequency_hz": "10"}
SHORT_DOSE_REASON = "test dose: a short session to exercise the unit, not a treatment"


def pump_events(seconds: float) -> None:
    """Process Qt events for ``seconds`` while letting the other threads run.

    Not ``QTest.qWait``: PySide6 keeps the GIL through it, which starves the device threads
    (heartbeats stop, the unit's watchdog trips).
    """
    deadline = time.monotonic() + seconds
    while True:
        QApplication.processEvents()
        if time.monotonic() >= deadline:
            return
        time.sleep(0.002)


def describe(window: MainWindow) -> str:
    """What the window shows and the session is doing, for a failure message."""
    snapshot = window.controller.snapshot
    session = (snapshot.state, snapshot.end_reason, snapshot.delivered) if snapshot else None
    screen = window.current_screen()
    notice = getattr(getattr(screen, "notice", None), "lines", None)
    return (
        f"screen {type(screen).__name__} (notice {notice}), session {session}, "
        f"busy {window.controller.busy}, status bar {window.statusBar().currentMessage()!r}"
    )


def wait_until(
    condition: Callable[[], bool],
    what: str,
    timeout_s: float = TIMEOUT_S,
    window: MainWindow | None = None,
) -> None:
    """Run the event loop until ``condition()``; fail with ``what`` (and the window's state)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            where = f"; {describe(window)}" if window is not None else ""
            raise AssertionError(f"timed out waiting for {what}{where}")
        pump_events(0.005)


def click(button: QPushButton, what: str | None = None) -> None:
    wait_until(
        lambda: button.isEnabled() and button.isVisible(),
        f"{what or button.text()} to be enabled",
    )
    QTest.mouseClick(button, Qt.MouseButton.LeftButton)


def type_into(widget: QWidget, text: str) -> None:
    widget.clear()  # type: ignore[attr-defined]
    QTest.keyClicks(widget, text)


def state_of(window: MainWindow) -> SessionState | None:
    snapshot = window.controller.snapshot
    return snapshot.state if snapshot else None


def wait_state(window: MainWindow, state: SessionState, timeout_s: float = TIMEOUT_S) -> None:
    def reached() -> bool:
        if state_of(window) is state:
            return True
        notice = window.current_screen().findChild(QWidget, "screenNotice")
        if notice is not None and notice.isVisible() and getattr(notice, "lines", None):
            heading = notice.heading.text()  # type: ignore[attr-defined]
            if "not possible" in heading or "failed" in heading:
                raise AssertionError(f"waiting for {state}: {heading}: {notice.lines}")
        return False

    wait_until(reached, f"session state {state}", timeout_s, window)


def login(window: MainWindow, user: str, password: str) -> None:
    screen = window.login_screen
    wait_until(lambda: window.current_screen() is screen, "the login screen")
    type_into(screen.username, user)
    type_into(screen.password, password)
    click(screen.sign_in)
    wait_until(lambda: window.current_screen() is window.patients_screen, "the patient list")


def open_patient(window: MainWindow, pseudonym: str) -> None:
    screen = window.patients_screen
    type_into(screen.search, pseudonym)
    wait_until(
        lambda: screen.selected() is not None and screen.selected().pseudonym == pseudonym,
        f"patient {pseudonym} in the list",
    )
    click(screen.open_button)
    wait_until(lambda: window.current_screen() is window.patient_screen, "the patient page")


def new_session(window: MainWindow, protocol_id: str) -> None:
    screen = window.patient_screen
    index = screen.protocol.findData(protocol_id)
    assert index >= 0, f"protocol {protocol_id} is not offered"
    screen.protocol.setCurrentIndex(index)
    click(screen.start_button)
    wait_until(lambda: window.current_screen() is window.screening_screen, "the screening")


def answer_screening(window: MainWindow, answers: Mapping[str, Any] = CLEAN_ANSWERS) -> None:
    screen = window.screening_screen
    for key, value in answers.items():
        screen.rows[key].set_answer(value)
    click(screen.submit_button)
    wait_until(lambda: screen.continue_button.isEnabled(), "the screening to allow")
    click(screen.continue_button)
    wait_until(lambda: window.current_screen() is window.planning_screen, "the planning screen")


def plan(window: MainWindow, values: Mapping[str, str] = SHORT_DOSE) -> None:
    screen = window.planning_screen
    for name, text in values.items():
        type_into(screen.editors[name].edit, text)
    click(screen.validate_button)
    wait_state(window, SessionState.PLANNED)
    click(screen.continue_button)
    wait_until(lambda: window.current_screen() is window.unit_screen, "the unit screen")


def connect(window: MainWindow, override_reason: str | None = SHORT_DOSE_REASON) -> None:
    """Connect; a plan outside the protocol then gets its override on the unit screen."""
    screen = window.unit_screen
    click(screen.connect_button)
    wait_state(window, SessionState.CONNECTED)
    wait_until(lambda: window.controller.snapshot.validated_against_unit, "the unit check")
    if override_reason is not None:
        wait_until(lambda: screen.override_box.isVisible(), "the override reason box")
        screen.override_reason.set_text(override_reason)
        click(screen.override_button)
        wait_until(
            lambda: bool(window.controller.snapshot.parameter_override_reason),
            "the override to be recorded",
        )


def confirm_and_arm(window: MainWindow) -> None:
    screen = window.unit_screen
    click(screen.confirm_button)
    wait_until(lambda: window.controller.snapshot.confirmed, "the parameters to be confirmed")
    click(screen.arm_button)
    wait_state(window, SessionState.ARMED)


def start(window: MainWindow) -> None:
    click(window.unit_screen.start_button)
    wait_state(window, SessionState.DELIVERING)
    wait_until(lambda: window.current_screen() is window.delivery_screen, "the delivery screen")


def to_state(window: MainWindow, state: SessionState, patient: str) -> None:
    """From the patient list to ``state`` (screening … paused) on knee-pt-epat."""
    open_patient(window, patient)
    new_session(window, "knee-pt-epat")
    if state is SessionState.SCREENING:
        return
    answer_screening(window)
    plan(window)
    if state is SessionState.PLANNED:
        return
    connect(window)
    if state is SessionState.CONNECTED:
        return
    confirm_and_arm(window)
    if state is SessionState.ARMED:
        return
    start(window)
    if state is SessionState.DELIVERING:
        return
    click(window.delivery_screen.pause_button)
    wait_state(window, SessionState.PAUSED)
    assert state is SessionState.PAUSED, f"no route to {state}"


def press_escape(window: MainWindow) -> None:
    """The emergency-stop key, sent to whatever has the focus (or the window)."""
    target = QApplication.focusWidget() or window
    QTest.keyClick(target, Qt.Key.Key_Escape)
