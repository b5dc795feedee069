"""The first-admin screen (pytest-qt, offscreen) over the real AuthService and a real SQLite
database prepared by the first run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QMessageBox

from audit.keys import load_or_create_signer
from audit.store import RecordStore, open_store
from audit.trail import AuditTrail
from audit.users import UserDirectory
from console.auth import AuthService
from console.firstrun import prepare_database
from console.ui.first_run import (
    FirstAdminDialog,
    FirstAdminScreen,
    ask_first_admin,
    confirm_server_migration_box,
    start_refusal_box,
)

pytestmark = [pytest.mark.gui]
HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
GOOD = "knee-clinic-2026!"


@pytest.fixture
def auth(isolated_console: Path) -> Iterator[AuthService]:
    report = prepare_database()
    assert report.needs_first_admin
    store: RecordStore = open_store(report.database)
    signer, _ = load_or_create_signer(isolated_console / "audit-signing-key.pem")
    trail = AuditTrail(store, signer, "room-1")
    yield AuthService(UserDirectory(trail), workstation="room-1", hasher=HASHER)
    store.dispose()


def fill(screen: FirstAdminScreen, user: str, name: str, password: str, repeat: str) -> None:
    screen.user_id.setText(user)
    screen.full_name.setText(name)
    screen.password.setText(password)
    screen.repeat.setText(repeat)


@pytest.mark.req("INST-FIRST-5")
def test_the_form_shows_the_rules_and_why_it_cannot_be_sent_yet(qtbot, auth: AuthService) -> None:
    screen = FirstAdminScreen(auth, ["Created a new database at sqlite:///x (schema 0001)."])
    qtbot.addWidget(screen)
    screen.show()
    assert "at least 12 characters" in screen.rules.text()
    assert screen.intro.isVisible() and "Created a new database" in screen.intro.lines[0]
    assert not screen.create.isEnabled()
    assert screen.feedback.text() == "Enter a user name."
    fill(screen, "ada", "", "", "")
    assert screen.feedback.text().startswith("Enter the full name")
    fill(screen, "ada", "Ada Admin", "short-pw", "")
    assert "at least 12 characters" in screen.feedback.text()
    fill(screen, "ada", "Ada Admin", "ada-is-the-admin", "ada-is-the-admin")
    assert "must not contain the user name" in screen.feedback.text()
    fill(screen, "ada", "Ada Admin", GOOD, GOOD + "x")
    assert screen.feedback.text() == "The two passwords differ."
    assert not screen.create.isEnabled()
    screen.repeat.setText(GOOD)
    assert screen.create.isEnabled() and screen.feedback.text().startswith("✔")


@pytest.mark.req("INST-FIRST-5")
def test_creating_the_first_admin_through_auth(qtbot, auth: AuthService) -> None:
    screen = FirstAdminScreen(auth)
    qtbot.addWidget(screen)
    fill(screen, "ada", "Ada Admin", GOOD, GOOD)
    with qtbot.waitSignal(screen.admin_created, timeout=5000) as signal:
        qtbot.mouseClick(screen.create, Qt.MouseButton.LeftButton)
    assert signal.args == ["ada"]
    assert screen.password.text() == "" and screen.repeat.text() == ""
    (user,) = auth.users.list()
    assert (user.user_id, user.full_name, user.role, user.active) == (
        "ada",
        "Ada Admin",
        "admin",
        True,
    )
    signed_in = auth.login("ada", GOOD)  # the password works: stored as an argon2id hash
    assert signed_in.role == "admin"
    creds = auth.users.credentials("ada")
    assert creds is not None and creds.password_hash.startswith("$argon2id$")
    created = [e for e in auth.trail.events() if e.action == "user.created"]
    assert [(e.actor, e.subject_id) for e in created] == [("system", "ada")]


@pytest.mark.req("INST-FIRST-5")
def test_a_refusal_is_shown_and_nothing_is_added(qtbot, auth: AuthService) -> None:
    screen = FirstAdminScreen(auth)
    qtbot.addWidget(screen)
    fill(screen, "not a name", "Ada Admin", GOOD, GOOD)
    qtbot.mouseClick(screen.create, Qt.MouseButton.LeftButton)
    assert "user id 'not a name' must be 1–128 letters" in screen.notice.lines[0]
    assert auth.users.count() == 0
    auth.add_user(None, "first", "First Admin", "admin", GOOD)  # another console was quicker
    fill(screen, "ada", "Ada Admin", GOOD, GOOD)
    qtbot.mouseClick(screen.create, Qt.MouseButton.LeftButton)
    assert "already has users" in screen.notice.lines[0]
    assert [u.user_id for u in auth.users.list()] == ["first"]
    assert screen.create.isEnabled()  # the form stays usable to read and close


@pytest.mark.req("INST-FIRST-5")
def test_the_dialog_closes_with_the_new_admin(qtbot, auth: AuthService) -> None:
    seen: list[FirstAdminDialog] = []

    def fill_and_send() -> None:
        dialog = next(w for w in _top_levels() if isinstance(w, FirstAdminDialog))
        seen.append(dialog)
        fill(dialog.screen, "ada", "Ada Admin", GOOD, GOOD)
        qtbot.keyClick(dialog.screen.repeat, Qt.Key.Key_Return)

    QTimer.singleShot(0, fill_and_send)
    assert ask_first_admin(auth) == "ada"
    assert seen and seen[0].windowTitle() == "therapy-console: first admin account"
    assert auth.users.count() == 1


def test_the_refusal_and_confirmation_boxes(qtbot) -> None:
    box = start_refusal_box("The database is newer. Nothing was changed.")
    qtbot.addWidget(box)
    assert box.informativeText() == "The database is newer. Nothing was changed."
    assert box.icon() is QMessageBox.Icon.Critical
    confirm = confirm_server_migration_box("The server is at schema 0001.")
    qtbot.addWidget(confirm)
    assert confirm.defaultButton() is confirm.button(QMessageBox.StandardButton.No)
    assert "pg_dump" in confirm.informativeText()


def _top_levels() -> list:
    from PySide6.QtWidgets import QApplication

    return list(QApplication.topLevelWidgets())
