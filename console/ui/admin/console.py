"""The clinic admin's console: audit review, session stories, exports, users, policy, charts.

``AdminConsole(services, user)`` is the one widget the main window shows for the admin role.
``services`` is the console's ``ConsoleServices`` (or ready-made ``AdminServices``). Building it
is itself a permission check: a user who may not review the audit trail gets ``PermissionDenied``
(audited) and no admin screen. Nothing here decides anything: every call goes to
``console.admin`` on a worker thread and the answer is shown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QTabWidget, QVBoxLayout, QWidget

from console.admin.context import AdminServices
from console.auth import SignedInUser
from console.ui.admin.audit_page import AuditReviewPage
from console.ui.admin.charts import ChartsPage
from console.ui.admin.exports_page import ExportsPage
from console.ui.admin.policy_page import PolicyPage
from console.ui.admin.story_page import SessionStoryPage
from console.ui.admin.users_page import UsersPage
from console.ui.widgets import label

TAB_NAMES = ("Audit trail", "Session story", "Exports and reports", "Users", "Policy", "Charts")


class AdminConsole(QWidget):
    def __init__(
        self,
        services: Any,
        user: SignedInUser,
        parent: QWidget | None = None,
        *,
        policy_folder: Path | None = None,
    ) -> None:
        super().__init__(parent)
        admin = (
            services
            if isinstance(services, AdminServices)
            else AdminServices.from_console(services, policy_folder)
        )
        admin.auth.require(user, "view_audit")  # the admin console is for admins (audited)
        self.services = admin
        self.user = user
        self.setObjectName("adminConsole")
        self.audit_page = AuditReviewPage(admin.review, user)
        self.story_page = SessionStoryPage(admin, user)
        self.exports_page = ExportsPage(admin, user)
        self.users_page = UsersPage(admin, user)
        self.policy_page = PolicyPage(admin, user)
        self.charts_page = ChartsPage(admin, user)
        self.tabs = QTabWidget()
        self.tabs.setObjectName("adminTabs")
        for page, name in zip(self.pages(), TAB_NAMES, strict=True):
            wrapper = QWidget()
            layout = QVBoxLayout(wrapper)
            layout.setContentsMargins(16, 12, 16, 12)
            layout.addWidget(page)
            self.tabs.addTab(wrapper, name)
        heading = label(f"Clinic administration — {user.full_name}", "title")
        sub = label(
            "Review and prove the record: every view, export, change and verification is "
            "recorded in the audit trail. No clinical actions here.",
            "subtitle",
        )
        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 12, 18, 12)
        layout.addWidget(heading)
        layout.addWidget(sub)
        layout.addWidget(self.tabs, 1)
        self._loaded: set[int] = set()
        self.tabs.currentChanged.connect(self._load_tab)
        self._load_tab(0)

    def pages(self) -> list[QWidget]:
        return [
            self.audit_page,
            self.story_page,
            self.exports_page,
            self.users_page,
            self.policy_page,
            self.charts_page,
        ]

    def show_tab(self, name: str) -> None:
        self.tabs.setCurrentIndex(TAB_NAMES.index(name))

    def _load_tab(self, index: int) -> None:
        """Each page reads its data the first time it is shown (then on its own buttons)."""
        if index in self._loaded:
            return
        self._loaded.add(index)
        page = self.pages()[index]
        load = getattr(page, "load", None)
        if callable(load):
            load()

    def shutdown(self) -> None:
        """Stop the pages' worker threads (the main window calls this when it closes)."""
        for page in self.pages():
            page.shutdown()  # type: ignore[attr-defined]
