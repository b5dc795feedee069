"""The first-run screen: a new database has no users, so the first admin account is made here.

A form, not a terminal prompt: user name, full name (it shows on signatures), the password twice,
with the password rules in view and the reason a password is not yet acceptable shown as it is
typed. The account is created through ``console/auth.py`` (argon2id hash; the event is recorded
as ``system`` because nobody is signed in yet), so the rules are the application layer's, never
a copy of them. Also the messages shown when the console cannot start (``console/firstrun.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QFormLayout,
    QLineEdit,
    QMessageBox,
    QVBoxLayout,
    QWidget,
)

from audit.errors import AuditError
from console.auth import MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS, AuthError
from console.ui.widgets import Notice, button, label, panel

PASSWORD_RULES = (
    f"at least {MIN_PASSWORD_CHARS} characters (at most {MAX_PASSWORD_CHARS})",
    "at least 4 different characters",
    "no spaces at the start or the end",
    "not containing the user name",
)


class AdminCreator(Protocol):
    """What the screen needs from ``console.auth.AuthService``."""

    def password_problem(self, password: str, user_id: str | None = None) -> str | None: ...

    def add_user(self, by: Any, user_id: str, full_name: str, role: str, password: str) -> Any: ...


class FirstAdminScreen(QWidget):
    """Create the first admin of an empty database; emits ``admin_created(user_id)``."""

    admin_created = Signal(str)

    def __init__(
        self,
        auth: AdminCreator,
        intro_lines: Sequence[str] = (),
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._auth = auth
        card, inner = panel()
        card.setFixedWidth(520)
        inner.setContentsMargins(28, 24, 28, 24)
        inner.setSpacing(10)
        inner.addWidget(label("Welcome: set up the console", "title"))
        inner.addWidget(
            label(
                "This database has no users yet. Create the first admin account: the admin adds "
                "the therapists and service engineers afterwards.",
                "subtitle",
            )
        )
        self.intro = Notice()
        if intro_lines:
            self.intro.show_lines("What the console did", intro_lines, "ok")
        inner.addWidget(self.intro)

        self.user_id = _field("userId", "e.g. a.admin (letters, digits, . _ -)")
        self.full_name = _field("fullName", "as it should appear on signatures")
        self.password = _field("password", "the new password", secret=True)
        self.repeat = _field("passwordRepeat", "the same password again", secret=True)
        form = QFormLayout()
        form.addRow("User name", self.user_id)
        form.addRow("Full name", self.full_name)
        form.addRow("Password", self.password)
        form.addRow("Repeat password", self.repeat)
        inner.addLayout(form)

        self.rules = label("Password: " + "; ".join(PASSWORD_RULES) + ".", "muted")
        self.rules.setObjectName("passwordRules")
        inner.addWidget(self.rules)
        self.feedback = label("", "muted")
        self.feedback.setObjectName("passwordFeedback")
        inner.addWidget(self.feedback)
        self.create = button("&Create admin account", role="primary", name="createAdmin")
        self.create.setDefault(True)
        inner.addWidget(self.create)
        self.notice = Notice()
        inner.addWidget(self.notice)

        outer = QVBoxLayout(self)
        outer.addStretch(1)
        outer.addWidget(card, 0, Qt.AlignmentFlag.AlignHCenter)
        outer.addStretch(2)
        for edit in (self.user_id, self.full_name, self.password, self.repeat):
            edit.textChanged.connect(self._update)
        self.repeat.returnPressed.connect(self._submit)
        self.create.clicked.connect(self._submit)
        self._update()

    def problem(self) -> str | None:
        """Why the form cannot be submitted yet, or None."""
        user_id = self.user_id.text().strip()
        if not user_id:
            return "Enter a user name."
        if not self.full_name.text().strip():
            return "Enter the full name (it shows on signatures)."
        password = self.password.text()
        problem = self._auth.password_problem(password, user_id)
        if problem:
            return f"Password: {problem}."
        if self.repeat.text() != password:
            return "The two passwords differ."
        return None

    def _update(self) -> None:
        problem = self.problem()
        self.feedback.setText(problem or "✔ Ready to create the account.")
        self.feedback.setProperty("role", "muted" if problem else "section")
        self.feedback.style().unpolish(self.feedback)
        self.feedback.style().polish(self.feedback)
        self.create.setEnabled(problem is None)

    def _submit(self) -> None:
        if self.problem() is not None:
            return
        user_id = self.user_id.text().strip()
        self.create.setEnabled(False)
        QGuiApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)  # argon2id: a fraction of s
        try:
            self._auth.add_user(
                None, user_id, self.full_name.text().strip(), "admin", self.password.text()
            )
        except (AuthError, AuditError) as exc:
            self.notice.show_lines("The account was not created", [str(exc)], "refuse")
            self._update()
            return
        finally:
            QGuiApplication.restoreOverrideCursor()
        self.password.clear()
        self.repeat.clear()
        self.notice.show_lines("Account created", [f"{user_id} is the first admin."], "ok")
        self.admin_created.emit(user_id)


def _field(name: str, placeholder: str, *, secret: bool = False) -> QLineEdit:
    edit = QLineEdit()
    edit.setObjectName(name)
    edit.setPlaceholderText(placeholder)
    if secret:
        edit.setEchoMode(QLineEdit.EchoMode.Password)
    return edit


class FirstAdminDialog(QDialog):
    """The screen as a modal window, accepted once the account exists."""

    def __init__(
        self, auth: AdminCreator, intro_lines: Sequence[str] = (), parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("therapy-console: first admin account")
        self.screen = FirstAdminScreen(auth, intro_lines, self)
        layout = QVBoxLayout(self)
        layout.addWidget(self.screen)
        self.created_user: str | None = None
        self.screen.admin_created.connect(self._created)

    def _created(self, user_id: str) -> None:
        self.created_user = user_id
        self.accept()


def ask_first_admin(
    auth: AdminCreator, intro_lines: Sequence[str] = (), parent: QWidget | None = None
) -> str | None:
    """Show the first-admin dialog; the new admin's user id, or None if it was closed."""
    dialog = FirstAdminDialog(auth, intro_lines, parent)
    dialog.exec()
    return dialog.created_user


def start_refusal_box(message: str, parent: QWidget | None = None) -> QMessageBox:
    """The window shown when the database cannot be used (``FirstRunError``): the message says
    what is wrong and what to do; the console then quits without having changed anything."""
    box = QMessageBox(parent)
    box.setObjectName("startRefusal")
    box.setIcon(QMessageBox.Icon.Critical)
    box.setWindowTitle("therapy-console cannot start")
    box.setText("The console cannot use its database.")
    box.setInformativeText(message)
    box.setStandardButtons(QMessageBox.StandardButton.Close)
    return box


def confirm_server_migration_box(message: str, parent: QWidget | None = None) -> QMessageBox:
    """Ask whether the clinic server's database was backed up (``pg_dump``) before a console
    migrates it; No is the default."""
    box = QMessageBox(parent)
    box.setObjectName("confirmServerMigration")
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("Migrate the clinic server's database?")
    box.setText(message)
    box.setInformativeText(
        "Only continue if the server database has been backed up (pg_dump) and every other "
        "treatment room's console is closed. Has it been backed up?"
    )
    box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
    box.setDefaultButton(QMessageBox.StandardButton.No)
    return box
