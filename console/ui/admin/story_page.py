"""A session's full story on one page, and its printable PDF."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QGridLayout,
    QLineEdit,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from console.admin.context import AdminServices
from console.admin.reports import SessionReport, session_report_html, story_html
from console.admin.story import SessionListing, SessionStory
from console.auth import SignedInUser
from console.ui.admin.pdf import write_pdf
from console.ui.admin.tasks import BackgroundTasks
from console.ui.widgets import Notice, button, label, panel

AskPath = Callable[[QWidget, str, str], Path | None]
_COLUMNS = ("date", "session", "patient", "protocol", "state", "pulses", "therapist")


def ask_save_path(parent: QWidget, title: str, suggested: str) -> Path | None:
    """The save dialog (tests replace it: a modal dialog cannot be clicked offscreen)."""
    name, _ = QFileDialog.getSaveFileName(parent, title, suggested, "PDF (*.pdf)")
    return Path(name) if name else None


def parse_day(text: str) -> date | None:
    value = text.strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a date: write it as 2026-03-01") from None


class SessionStoryPage(QWidget):
    def __init__(
        self,
        services: AdminServices,
        user: SignedInUser,
        parent: QWidget | None = None,
        *,
        ask_path: AskPath = ask_save_path,
    ) -> None:
        super().__init__(parent)
        self.services = services
        self.user = user
        self.ask_path = ask_path
        self.tasks = BackgroundTasks(self, workers=1, name="story")
        self.story: SessionStory | None = None
        self.last_pdf: Path | None = None
        self.notice = Notice()
        self.notice.setObjectName("storyNotice")

        self.session_edit = QLineEdit()
        self.session_edit.setObjectName("findSession")
        self.session_edit.setPlaceholderText("session id (or its start)")
        self.pseudonym_edit = QLineEdit()
        self.pseudonym_edit.setObjectName("findPseudonym")
        self.pseudonym_edit.setPlaceholderText("patient pseudonym")
        self.from_edit = QLineEdit()
        self.from_edit.setPlaceholderText("from 2026-03-01")
        self.to_edit = QLineEdit()
        self.to_edit.setPlaceholderText("to 2026-03-31")
        self.find_button = button("&Find sessions", role="primary", name="findSessions")
        finder, finder_layout = panel()
        grid = QGridLayout()
        for column, (text, widget) in enumerate(
            (
                ("Session", self.session_edit),
                ("Patient", self.pseudonym_edit),
                ("From", self.from_edit),
                ("To", self.to_edit),
            )
        ):
            grid.addWidget(label(text, "muted", wrap=False), 0, column)
            grid.addWidget(widget, 1, column)
        grid.addWidget(self.find_button, 1, 4)
        finder_layout.addWidget(label("Find a session", "section"))
        finder_layout.addLayout(grid)

        self.results = QTableWidget(0, len(_COLUMNS))
        self.results.setObjectName("sessionResults")
        self.results.setHorizontalHeaderLabels(list(_COLUMNS))
        self.results.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.results.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.results.verticalHeader().hide()
        self.results.horizontalHeader().setStretchLastSection(True)
        self.view = QTextBrowser()
        self.view.setObjectName("storyView")
        self.view.setOpenLinks(False)
        self.view.setHtml(
            "<p style='color:#56656F'>Find a session and open it to read its story.</p>"
        )
        self.print_button = button(
            "&Print session PDF…", name="printSession",
            tooltip="A PDF of this story with its signatures and the trail's signed head",
        )  # fmt: skip
        self.print_button.setEnabled(False)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.view, 1)
        right_layout.addWidget(self.print_button, 0, Qt.AlignmentFlag.AlignRight)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.results)
        split.addWidget(right)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.notice)
        layout.addWidget(finder)
        layout.addWidget(split, 1)

        self.find_button.clicked.connect(self.find)
        for edit in (self.session_edit, self.pseudonym_edit, self.from_edit, self.to_edit):
            edit.returnPressed.connect(self.find)
        self.results.cellDoubleClicked.connect(lambda row, _c: self._open_row(row))
        self.results.itemSelectionChanged.connect(self._selection_opened)
        self.print_button.clicked.connect(self.print_session)
        self._listings: list[SessionListing] = []

    # ------------------------------------------------------------------ finding
    def find(self) -> None:
        try:
            start, end = parse_day(self.from_edit.text()), parse_day(self.to_edit.text())
        except ValueError as exc:
            self.notice.show_lines("Find sessions", [str(exc)], "refuse")
            return
        self.notice.clear()
        session_id, pseudonym = self.session_edit.text(), self.pseudonym_edit.text()
        self.tasks.submit(
            lambda: self.services.stories.find(
                self.user, session_id=session_id, pseudonym=pseudonym, start=start, end=end
            ),
            self.show_listings,
            self._error,
        )

    def show_listings(self, listings: list[SessionListing]) -> None:
        self._listings = listings
        self.results.setRowCount(len(listings))
        for row, s in enumerate(listings):
            values = (
                s.session_date.isoformat(),
                s.session_id,
                s.pseudonym,
                f"{s.protocol_id} ({s.modality.upper()})",
                s.state,
                "—" if s.delivered is None else f"{s.delivered:,}",
                s.therapist_id,
            )
            for column, value in enumerate(values):
                self.results.setItem(row, column, QTableWidgetItem(value))
        self.results.resizeColumnsToContents()
        if not listings:
            self.notice.show_lines("Find sessions", ["no session matches"], "warning")

    def _selection_opened(self) -> None:
        rows = {index.row() for index in self.results.selectedIndexes()}
        if len(rows) == 1:
            self._open_row(rows.pop())

    def _open_row(self, row: int) -> None:
        if 0 <= row < len(self._listings):
            self.open_session(self._listings[row].session_id)

    # ------------------------------------------------------------------ the story
    def open_session(self, session_id: str) -> None:
        self.tasks.submit(
            lambda: self.services.stories.story(self.user, session_id), self.show_story, self._error
        )

    def show_story(self, story: SessionStory) -> None:
        self.story = story
        self.view.setHtml(story_html(story))
        self.print_button.setEnabled(True)

    def print_session(self) -> None:
        story = self.story
        if story is None:
            return
        path = self.ask_path(self, "Save the session report", f"{story.record.session_id}.pdf")
        if path is None:
            return
        session_id = story.record.session_id
        self.tasks.submit(
            lambda: self.services.reports.session_report(self.user, session_id),
            lambda report: self._write(report, path),
            self._error,
        )

    def _write(self, report: SessionReport, path: Path) -> None:
        """Qt lays the PDF out on the GUI thread (fonts); the audit call runs on a worker."""
        try:
            write_pdf(session_report_html(report), path, report.title)
        except (OSError, ValueError) as exc:
            self._error(exc)
            return
        self.tasks.submit(
            lambda: self.services.reports.record_export(self.user, report, path),
            lambda digest: self._written(path, digest),
            self._error,
        )

    def _written(self, path: Path, digest: str) -> None:
        self.last_pdf = path
        self.notice.show_lines("Report written", [f"{path} (SHA-256 {digest[:16]}…)"], "ok")

    def _error(self, exc: BaseException) -> None:
        self.notice.show_lines("Session story", [str(exc) or type(exc).__name__], "refuse")

    def shutdown(self) -> None:
        self.tasks.shutdown()
