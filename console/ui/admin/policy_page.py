"""The clinic's policy in force (protocols and contraindication rules, with versions) and
installing a new version from a file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QLineEdit,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from console.admin.context import AdminServices
from console.admin.policy import ActivePolicy, PolicyChange, PolicyView
from console.auth import SignedInUser
from console.ui.admin.tasks import BackgroundTasks
from console.ui.widgets import Notice, button, label, panel

AskFile = Callable[[QWidget], Path | None]


def ask_policy_file(parent: QWidget) -> Path | None:
    name, _ = QFileDialog.getOpenFileName(parent, "A new policy version", "", "TOML (*.toml)")
    return Path(name) if name else None


def _table(columns: tuple[str, ...], name: str) -> QTableWidget:
    table = QTableWidget(0, len(columns))
    table.setObjectName(name)
    table.setHorizontalHeaderLabels(list(columns))
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.verticalHeader().hide()
    table.horizontalHeader().setStretchLastSection(True)
    table.setWordWrap(True)
    return table


def _fill(table: QTableWidget, rows: list[tuple[str, ...]]) -> None:
    table.setRowCount(len(rows))
    for r, values in enumerate(rows):
        for c, value in enumerate(values):
            item = QTableWidgetItem(value)
            item.setToolTip(value)
            table.setItem(r, c, item)
    table.resizeColumnsToContents()


class PolicyPage(QWidget):
    def __init__(
        self,
        services: AdminServices,
        user: SignedInUser,
        parent: QWidget | None = None,
        *,
        ask_file: AskFile = ask_policy_file,
    ) -> None:
        super().__init__(parent)
        self.services = services
        self.user = user
        self.ask_file = ask_file
        self.tasks = BackgroundTasks(self, workers=1, name="policy")
        self.view: PolicyView | None = None
        self.notice = Notice()
        self.notice.setObjectName("policyNotice")
        self.summary = label("", wrap=True)
        self.summary.setObjectName("policySummary")
        self.protocols = _table(
            ("protocol", "version", "modality", "title", "ranges", "course", "source"),
            "protocolsTable",
        )
        self.rules = _table(("rule", "finding", "severity", "sources"), "rulesTable")
        self.kind_box = QComboBox()
        self.kind_box.setObjectName("policyKind")
        self.kind_box.addItem("a protocol (replaces the one with its id)", "protocol")
        self.kind_box.addItem("the contraindication rule set", "ruleset")
        self.path_edit = QLineEdit()
        self.path_edit.setObjectName("policyPath")
        self.path_edit.setPlaceholderText("the new version's TOML file")
        self.choose_button = button("Choose file…", name="choosePolicy")
        self.install_button = button(
            "&Install new version", role="caution", name="installPolicy",
            tooltip="Validated first; recorded in the audit trail; in force for the next session",
        )  # fmt: skip
        self.history = label("", "muted")
        self.history.setObjectName("policyHistory")
        change_panel, change_layout = panel()
        change_layout.addWidget(label("Install a new policy version", "section"))
        grid = QGridLayout()
        grid.addWidget(self.kind_box, 0, 0)
        grid.addWidget(self.path_edit, 0, 1)
        grid.addWidget(self.choose_button, 0, 2)
        grid.addWidget(self.install_button, 0, 3)
        grid.setColumnStretch(1, 1)
        change_layout.addLayout(grid)
        change_layout.addWidget(self.history)

        head, head_layout = panel()
        head_layout.addWidget(label("Policy in force", "section"))
        head_layout.addWidget(self.summary)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.protocols)
        split.addWidget(self.rules)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.notice)
        layout.addWidget(head)
        layout.addWidget(split, 1)
        layout.addWidget(change_panel)
        self.choose_button.clicked.connect(self._choose)
        self.install_button.clicked.connect(self.install)

    def load(self) -> None:
        self.tasks.submit(
            lambda: (
                self.services.policy.view(self.user),
                self.services.policy.history(self.user, 5),
            ),
            self._show,
            self._error,
        )

    def _show(self, value: tuple[PolicyView, list[dict[str, object]]]) -> None:
        view, history = value
        self.view = view
        self.summary.setText(
            f"Contraindication rules version <b>{view.ruleset_version}</b> ({view.ruleset_source})"
            f" — {view.ruleset_title}; {len(view.rules)} rules, {view.questions} screening "
            f"questions. {len(view.protocols)} protocols; each session records the versions it "
            "used."
        )
        _fill(
            self.protocols,
            [
                (p.id, p.version, p.modality, p.title, p.ranges, p.course, p.source)
                for p in view.protocols
            ],
        )
        _fill(self.rules, [(r.id, r.finding, r.severity, r.sources) for r in view.rules])
        self.history.setText(
            "Earlier changes: "
            + (
                "; ".join(
                    f"{h['ts']} {h['actor']}: {h['id']} {h.get('previous_version')} → "
                    f"{h['version']}"
                    for h in history
                )
                or "none (the packaged defaults are in force)"
            )
        )

    def _choose(self) -> None:
        path = self.ask_file(self)
        if path is not None:
            self.path_edit.setText(str(path))

    def install(self) -> None:
        text = self.path_edit.text().strip()
        if not text:
            self.notice.show_lines("Policy", ["choose the file of the new version first"], "refuse")
            return
        kind = str(self.kind_box.currentData())
        self.tasks.submit(
            lambda: self.services.policy.change(self.user, kind, Path(text)),
            self._installed,
            self._error,
        )

    def _installed(self, value: tuple[PolicyChange, ActivePolicy]) -> None:
        change, _policy = value
        self.notice.show_lines(
            "New policy version in force",
            [
                f"{change.item_id}: {change.previous_version or '—'} → {change.version} "
                f"(SHA-256 {change.sha256[:16]}…, audit seq {change.audit_seq})",
                "It applies from the next session; sessions record the version they used.",
            ],
            "ok",
        )
        self.path_edit.clear()
        self.load()

    def _error(self, exc: BaseException) -> None:
        self.notice.show_lines("Policy", [str(exc) or type(exc).__name__], "refuse")

    def shutdown(self) -> None:
        self.tasks.shutdown()
