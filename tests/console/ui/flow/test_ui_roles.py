"""Who sees what: the admin gets the admin console, sign-out returns to the login screen."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from console.ui.main_window import MainWindow
from tests.console.conftest import PASSWORD
from tests.console.ui import gui_flow as flow

pytestmark = [pytest.mark.gui]


@pytest.mark.req("UI-ROLE-1")
def test_the_admin_gets_the_admin_console_and_signs_out(window: MainWindow) -> None:
    flow.type_into(window.login_screen.username, "admin")
    flow.type_into(window.login_screen.password, PASSWORD)
    flow.click(window.login_screen.sign_in)
    flow.wait_until(lambda: window.role_widget is not None, "the admin console")
    assert window.current_screen() is window.role_widget
    assert window.role_widget.objectName() == "adminConsole"
    assert window.top.estop.isVisible()  # the emergency stop is on every screen
    QTest.mouseClick(window.top.logout_button, Qt.MouseButton.LeftButton)
    flow.wait_until(lambda: window.current_screen() is window.login_screen, "the login screen")
    assert window.role_widget is None


@pytest.mark.req("UI-ROLE-1")
def test_a_wrong_password_is_explained_and_the_therapist_gets_the_patients(
    window: MainWindow,
) -> None:
    screen = window.login_screen
    flow.type_into(screen.username, "thera")
    flow.type_into(screen.password, "wrong password")
    flow.click(screen.sign_in)
    flow.wait_until(lambda: bool(screen.notice.lines), "the refusal")
    assert screen.notice.heading.text() == "Not signed in"
    assert window.current_screen() is screen
    flow.login(window, "thera", PASSWORD)
    assert window.role_widget is None
    flow.wait_until(lambda: window.patients_screen.table.rowCount() == 1, "the patient list")
    assert window.patients_screen.table.item(0, 0).text() == "KNEE-0001"


@pytest.mark.req("UI-ROLE-1")
@pytest.mark.req("UI-ESTOP-1")
def test_the_service_engineer_gets_the_service_console_with_the_emergency_stop(
    window: MainWindow,
) -> None:
    flow.type_into(window.login_screen.username, "svc")
    flow.type_into(window.login_screen.password, PASSWORD)
    flow.click(window.login_screen.sign_in)
    flow.wait_until(lambda: window.role_widget is not None, "the service console")
    assert window.role_widget.objectName() == "serviceConsole"
    QTest.mouseClick(window.top.estop, Qt.MouseButton.LeftButton)  # no unit held: it says so
    notice = window.role_widget.notice
    flow.wait_until(lambda: bool(notice.lines), "the service console's answer")
    assert notice.lines == ["no unit is connected: nothing to stop"]
    assert "no unit" not in window.statusBar().currentMessage().lower()  # one answer, not two
