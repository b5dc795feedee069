"""Users: the list, adding one, and the changes an admin makes (each audited below)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QGridLayout,
    QLineEdit,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from audit.events import PERSON_ROLES
from audit.values import UserRecord
from console.admin.context import AdminServices
from console.auth import SignedInUser
from console.ui.admin.tasks import BackgroundTasks
from console.ui.widgets import Notice, button, button_row, label, panel

_COLUMNS = ("user", "name", "role", "active", "locked", "failed sign-ins", "password changed")


def _password(name: str, placeholder: str) -> QLineEdit:
    edit = QLineEdit()
    edit.setObjectName(name)
    edit.setEchoMode(QLineEdit.EchoMode.Password)
    edit.setPlaceholderText(placeholder)
    return edit


class UsersPage(QWidget):
    def __init__(
        self, services: AdminServices, user: SignedInUser, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.services = services
        self.user = user
        self.tasks = BackgroundTasks(self, workers=1, name="users")
        self.users: list[UserRecord] = []
        self.notice = Notice()
        self.notice.setObjectName("usersNotice")

        self.table = QTableWidget(0, len(_COLUMNS))
        self.table.setObjectName("usersTable")
        self.table.setHorizontalHeaderLabels(list(_COLUMNS))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setStretchLastSection(True)

        # --- add
        self.new_id = QLineEdit()
        self.new_id.setObjectName("newUserId")
        self.new_id.setPlaceholderText("login name, e.g. jdoe")
        self.new_name = QLineEdit()
        self.new_name.setObjectName("newUserName")
        self.new_name.setPlaceholderText("full name (shown on signatures)")
        self.new_role = QComboBox()
        self.new_role.setObjectName("newUserRole")
        self.new_role.addItems(list(PERSON_ROLES))
        self.new_password = _password("newUserPassword", "password (≥ 12 characters)")
        self.new_repeat = _password("newUserRepeat", "repeat the password")
        self.add_button = button("&Add user", role="primary", name="addUser")
        add_panel, add_layout = panel()
        add_layout.addWidget(label("Add a user", "section"))
        grid = QGridLayout()
        for column, widget in enumerate(
            (self.new_id, self.new_name, self.new_role, self.new_password, self.new_repeat)
        ):
            grid.addWidget(widget, 0, column)
        grid.addWidget(self.add_button, 0, 5)
        add_layout.addLayout(grid)

        # --- change the selected user
        self.selected_label = label("Select a user in the list.", "muted")
        self.selected_label.setObjectName("selectedUser")
        self.disable_button = button("Disable", name="disableUser")
        self.enable_button = button("Enable", name="enableUser")
        self.unlock_button = button("Unlock", name="unlockUser")
        self.reset_password = _password("resetPassword", "new password")
        self.reset_button = button("Reset password", name="resetPassword")
        self.role_box = QComboBox()
        self.role_box.setObjectName("changeRole")
        self.role_box.addItems(list(PERSON_ROLES))
        self.role_button = button("Change role", name="changeRoleButton")
        change_panel, change_layout = panel()
        change_layout.addWidget(label("Change the selected user", "section"))
        change_layout.addWidget(self.selected_label)
        change_layout.addWidget(
            button_row(
                self.disable_button,
                self.enable_button,
                self.unlock_button,
                self.reset_password,
                self.reset_button,
                self.role_box,
                self.role_button,
                stretch_first=False,
            )
        )
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.notice)
        layout.addWidget(self.table, 1)
        layout.addWidget(change_panel)
        layout.addWidget(add_panel)

        self.add_button.clicked.connect(self.add_user)
        self.disable_button.clicked.connect(
            lambda: self._change("Disable", self._set_active(False))
        )
        self.enable_button.clicked.connect(lambda: self._change("Enable", self._set_active(True)))
        self.unlock_button.clicked.connect(
            lambda: self._change("Unlock", lambda uid: self.services.users.unlock(self.user, uid))
        )
        self.reset_button.clicked.connect(self.reset)
        self.role_button.clicked.connect(self.change_role)
        self.table.itemSelectionChanged.connect(self._on_selection)
        self._on_selection()

    # ------------------------------------------------------------------ list
    def load(self) -> None:
        self.tasks.submit(lambda: self.services.users.list(self.user), self.show_users, self._error)

    def show_users(self, users: list[UserRecord]) -> None:
        selected = self.selected_user_id()
        self.users = users
        self.table.setRowCount(len(users))
        for row, u in enumerate(users):
            values = (
                u.user_id,
                u.full_name,
                u.role,
                "yes" if u.active else "DISABLED",
                "LOCKED" if u.locked else "no",
                str(u.failed_logins),
                u.password_changed_at.replace("T", " ")[:16],
            )
            for column, value in enumerate(values):
                self.table.setItem(row, column, QTableWidgetItem(value))
            if u.user_id == selected:
                self.table.selectRow(row)
        self.table.resizeColumnsToContents()

    def selected_user_id(self) -> str | None:
        rows = {index.row() for index in self.table.selectedIndexes()}
        if len(rows) != 1:
            return None
        row = rows.pop()
        return self.users[row].user_id if row < len(self.users) else None

    def select(self, user_id: str) -> None:
        for row, u in enumerate(self.users):
            if u.user_id == user_id:
                self.table.selectRow(row)
                return

    def _on_selection(self) -> None:
        user_id = self.selected_user_id()
        for widget in (
            self.disable_button,
            self.enable_button,
            self.unlock_button,
            self.reset_button,
            self.role_button,
        ):
            widget.setEnabled(user_id is not None)
        if user_id is None:
            self.selected_label.setText("Select a user in the list.")
            return
        record = next(u for u in self.users if u.user_id == user_id)
        self.selected_label.setText(f"{record.full_name} ({record.user_id}), {record.role}")
        self.role_box.setCurrentText(record.role)

    # ------------------------------------------------------------------ changes
    def add_user(self) -> None:
        if self.new_password.text() != self.new_repeat.text():
            self.notice.show_lines("Add user", ["the two passwords differ"], "refuse")
            return
        user_id, name = self.new_id.text(), self.new_name.text()
        role, password = self.new_role.currentText(), self.new_password.text()

        def done(record: UserRecord) -> None:
            for edit in (self.new_id, self.new_name, self.new_password, self.new_repeat):
                edit.clear()
            self._done(f"{record.user_id} added as {record.role}")

        self.tasks.submit(
            lambda: self.services.users.add(self.user, user_id, name, role, password),
            done,
            self._error,
        )

    def _set_active(self, active: bool) -> Callable[[str], Any]:
        return lambda uid: self.services.users.set_active(self.user, uid, active)

    def reset(self) -> None:
        password = self.reset_password.text()
        self._change(
            "Reset password",
            lambda uid: self.services.users.reset_password(self.user, uid, password),
        )
        self.reset_password.clear()

    def change_role(self) -> None:
        role = self.role_box.currentText()
        self._change(
            "Change role", lambda uid: self.services.users.change_role(self.user, uid, role)
        )

    def _change(self, what: str, call: Callable[[str], Any]) -> None:
        user_id = self.selected_user_id()
        if user_id is None:
            return
        self.tasks.submit(
            lambda: call(user_id),
            lambda _record: self._done(f"{what}: {user_id} done"),
            self._error,
        )

    def _done(self, message: str) -> None:
        self.notice.show_lines("Users", [message + " (recorded in the audit trail)"], "ok")
        self.load()

    def _error(self, exc: BaseException) -> None:
        self.notice.show_lines("Users", [str(exc) or type(exc).__name__], "refuse")

    def shutdown(self) -> None:
        self.tasks.shutdown()
