"""Sign in: user name and password, nothing else on screen."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFormLayout, QHBoxLayout, QLineEdit, QVBoxLayout, QWidget

from console.ui.widgets import Notice, button, label, panel


class LoginScreen(QWidget):
    login_requested = Signal(str, str)  # user name, password

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        card, inner = panel()
        card.setFixedWidth(440)
        inner.setContentsMargins(28, 24, 28, 24)
        inner.setSpacing(12)
        inner.addWidget(label("Therapy console", "title"))
        inner.addWidget(label("Sign in to treat. EPAT and EMTT sessions for the knee.", "subtitle"))
        self.username = QLineEdit()
        self.username.setObjectName("username")
        self.username.setPlaceholderText("user name")
        self.password = QLineEdit()
        self.password.setObjectName("password")
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setPlaceholderText("password")
        form = QFormLayout()
        form.addRow("User", self.username)
        form.addRow("Password", self.password)
        inner.addLayout(form)
        self.sign_in = button("&Sign in", role="primary", name="signIn")
        self.sign_in.setDefault(True)
        inner.addWidget(self.sign_in)
        self.notice = Notice()
        inner.addWidget(self.notice)
        row = QHBoxLayout()  # stretches, not an alignment flag: wrapped labels get their height
        row.addStretch(1)
        row.addWidget(card)
        row.addStretch(1)
        outer = QVBoxLayout(self)
        outer.addStretch(1)
        outer.addLayout(row)
        outer.addStretch(2)
        self.sign_in.clicked.connect(self._submit)
        self.password.returnPressed.connect(self._submit)
        self.username.returnPressed.connect(self.password.setFocus)
        self.setTabOrder(self.username, self.password)
        self.setTabOrder(self.password, self.sign_in)

    def _submit(self) -> None:
        self.login_requested.emit(self.username.text().strip(), self.password.text())

    def reset(self) -> None:
        self.password.clear()
        self.notice.clear()
        self.username.setFocus()

    def show_error(self, message: str) -> None:
        self.notice.show_lines("Not signed in", [message], "refuse")
        self.password.clear()
        self.password.setFocus()

    def set_busy(self, busy: bool) -> None:
        self.sign_in.setEnabled(not busy)
