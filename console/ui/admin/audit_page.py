"""Audit review: the filtered trail table, an event's details in the chain, verification.

The page only shows and forwards: queries, permission checks and auditing happen in
``console.admin.review.AuditReview``; database work runs on worker threads.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QItemSelection, Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QGridLayout,
    QHeaderView,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from console.admin.audit_query import (
    AuditFilter,
    AuditPage,
    ChainLink,
    Cursor,
    FilterError,
    parse_when,
)
from console.admin.review import AuditReview, VerificationOutcome, VerificationStatus
from console.auth import SignedInUser
from console.ui import theme
from console.ui.admin.audit_model import AuditTableModel
from console.ui.admin.tasks import BackgroundTasks
from console.ui.executor import GuiDispatcher
from console.ui.widgets import Notice, button, button_row, label, panel


def _combo(placeholder: str, name: str) -> QComboBox:
    combo = QComboBox()
    combo.setEditable(True)
    combo.setObjectName(name)
    combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
    line = combo.lineEdit()
    assert line is not None
    line.setPlaceholderText(placeholder)
    combo.setMinimumWidth(170)
    return combo


def _line(placeholder: str, name: str) -> QLineEdit:
    edit = QLineEdit()
    edit.setPlaceholderText(placeholder)
    edit.setObjectName(name)
    return edit


class AuditReviewPage(QWidget):
    def __init__(
        self, review: AuditReview, user: SignedInUser, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.review = review
        self.user = user
        self.tasks = BackgroundTasks(self, workers=1, name="audit-details")
        self.verifier = BackgroundTasks(self, workers=1, name="audit-verify")
        self._dispatch = GuiDispatcher(self)
        self._progress_posted = 0.0
        self.last_outcome: VerificationOutcome | None = None

        self.notice = Notice()
        self.notice.setObjectName("auditNotice")
        # --- filters
        self.start_edit = _line("from: 2026-03-01 or 2026-03-01 08:00", "filterFrom")
        self.end_edit = _line("to (inclusive day)", "filterTo")
        self.user_box = _combo("user (any)", "filterUser")
        self.patient_edit = _line("patient pseudonym", "filterPatient")
        self.device_box = _combo("device serial (any)", "filterDevice")
        self.action_box = _combo("action or family, e.g. device.*", "filterAction")
        self.session_edit = _line("session id", "filterSession")
        self.apply_button = button("&Apply filter", role="primary", name="applyFilter")
        self.clear_button = button("Clear", name="clearFilter")
        filters, filters_layout = panel()
        grid = QGridLayout()
        grid.setHorizontalSpacing(8)
        fields: list[tuple[str, QWidget]] = [
            ("From (UTC)", self.start_edit),
            ("To", self.end_edit),
            ("User", self.user_box),
            ("Patient", self.patient_edit),
            ("Device", self.device_box),
            ("Action", self.action_box),
            ("Session", self.session_edit),
        ]
        for i, (text, widget) in enumerate(fields):
            grid.addWidget(label(text, "muted", wrap=False), (i // 4) * 2, i % 4)
            grid.addWidget(widget, (i // 4) * 2 + 1, i % 4)
        grid.addWidget(button_row(self.clear_button, self.apply_button), 3, 3)
        filters_layout.addWidget(label("Audit trail", "section"))
        filters_layout.addLayout(grid)
        self.status_label = label("", "muted")
        self.status_label.setObjectName("auditStatus")
        filters_layout.addWidget(self.status_label)

        # --- the table
        self.model = AuditTableModel(self._fetch, self)
        self.table = QTableView()
        self.table.setObjectName("auditTable")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setStretchLastSection(True)
        for column, width in enumerate((64, 150, 70, 80, 160, 200)):
            self.table.setColumnWidth(column, width)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)

        # --- details
        self.details = QPlainTextEdit()
        self.details.setObjectName("eventDetails")
        self.details.setReadOnly(True)
        mono = QFont("DejaVu Sans Mono", 9)
        self.details.setFont(mono)
        self.chain_label = label("Select an event to see it in the chain.", "muted")
        self.chain_label.setObjectName("chainStatus")
        self.chain_label.setTextFormat(Qt.TextFormat.RichText)
        details_panel, details_layout = panel()
        details_layout.addWidget(label("Event and its place in the chain", "section"))
        details_layout.addWidget(self.chain_label)
        details_layout.addWidget(self.details, 1)

        # --- verification
        self.verified_label = label("", wrap=True)
        self.verified_label.setObjectName("lastVerification")
        self.verify_button = button(
            "&Verify now", role="primary", name="verifyNow",
            tooltip="Check every event, link and signed checkpoint of the whole trail (recorded)",
        )  # fmt: skip
        self.progress = QProgressBar()
        self.progress.setObjectName("verifyProgress")
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.result_label = label("", wrap=True)
        self.result_label.setObjectName("verifyResult")
        self.result_label.setTextFormat(Qt.TextFormat.RichText)
        verify_panel, verify_layout = panel()
        verify_layout.addWidget(label("Chain verification", "section"))
        verify_layout.addWidget(self.verified_label)
        verify_layout.addWidget(self.progress)
        verify_layout.addWidget(self.result_label)
        verify_layout.addWidget(self.verify_button, 0, Qt.AlignmentFlag.AlignRight)

        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(0, 0, 0, 0)
        side_layout.addWidget(verify_panel)
        side_layout.addWidget(details_panel, 1)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.table)
        split.addWidget(side)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.notice)
        layout.addWidget(filters)
        layout.addWidget(split, 1)

        self.apply_button.clicked.connect(self.apply_filter)
        self.clear_button.clicked.connect(self.clear_filter)
        for edit in (self.start_edit, self.end_edit, self.patient_edit, self.session_edit):
            edit.returnPressed.connect(self.apply_filter)
        self.verify_button.clicked.connect(self.verify_now)
        self.model.page_loaded.connect(self._on_page)
        self.model.failed.connect(
            lambda message: self.notice.show_lines("Audit trail", [message], "refuse")
        )
        selection = self.table.selectionModel()
        assert selection is not None
        selection.selectionChanged.connect(self._on_selection)

    # ------------------------------------------------------------------ start
    def load(self) -> None:
        """Fill the filter choices, show the newest events and the last verification."""
        self.tasks.submit(
            lambda: self.review.filter_choices(self.user), self._show_choices, self._show_error
        )
        self.model.set_filter(AuditFilter())
        self.refresh_last_verification()

    def _fetch(self, flt: AuditFilter, cursor: Cursor | None) -> AuditPage:
        return self.review.page(self.user, flt, cursor)

    def _show_choices(self, choices: tuple[list[str], list[str], list[str]]) -> None:
        actions, users, serials = choices
        families = sorted({a.split(".", 1)[0] + ".*" for a in actions})
        for box, items in (
            (self.action_box, ["", *families, *actions]),
            (self.user_box, ["", *users]),
            (self.device_box, ["", *serials]),
        ):
            text = box.currentText()
            box.clear()
            box.addItems(items)
            box.setEditText(text)

    # ------------------------------------------------------------------ filters
    def current_filter(self) -> AuditFilter:
        """The filter the fields describe (``FilterError`` says what is wrong)."""
        return AuditFilter(
            start=parse_when(self.start_edit.text()),
            end=parse_when(self.end_edit.text(), end_of_day=True),
            actor=self.user_box.currentText().strip() or None,
            patient=self.patient_edit.text().strip() or None,
            device_serial=self.device_box.currentText().strip() or None,
            action=self.action_box.currentText().strip() or None,
            session_id=self.session_edit.text().strip() or None,
        )

    def apply_filter(self) -> None:
        try:
            flt = self.current_filter()
        except FilterError as exc:
            self.notice.show_lines("Filter", [str(exc)], "refuse")
            return
        self.notice.clear()
        self.details.clear()
        self.chain_label.setText("Select an event to see it in the chain.")
        self._started = time.perf_counter()
        self.model.set_filter(flt)

    def clear_filter(self) -> None:
        for edit in (self.start_edit, self.end_edit, self.patient_edit, self.session_edit):
            edit.clear()
        for box in (self.user_box, self.device_box, self.action_box):
            box.setEditText("")
        self.apply_filter()

    def _on_page(self, rows: int, elapsed_ms: float) -> None:
        total = self.model.rowCount()
        more = "scroll for more" if not self.model.exhausted else "end of the filter"
        self.status_label.setText(
            f"{total:,} events shown ({more}); last page {rows} rows in {elapsed_ms:.0f} ms"
        )

    # ------------------------------------------------------------------ details
    def _on_selection(self, selected: QItemSelection, _deselected: QItemSelection) -> None:
        indexes = selected.indexes()
        if not indexes:
            return
        row = self.model.row_at(indexes[0].row())
        if row is None:
            return
        seq = row.seq
        self.tasks.submit(
            lambda: (
                self.review.chain_link(self.user, seq),
                self.review.event_json(self.user, seq),
            ),
            self._show_details,
            self._show_error,
        )

    def _show_details(self, value: tuple[ChainLink | None, str | None]) -> None:
        link, event_json = value
        if link is None or event_json is None:
            self.details.setPlainText("(the event is no longer in the trail)")
            return
        ok = link.hash_ok and link.prev_link_ok and link.next_link_ok is not False
        colour = theme.OK if ok else theme.DANGER
        verdict = "links hold" if ok else "BROKEN LINK"
        lines = [
            f"<span style='color:{colour}; font-weight:bold'>seq {link.event.seq}: {verdict}</span>"
        ]
        lines += [f"• {note}" for note in link.notes]
        self.chain_label.setText("<br>".join(lines))
        neighbour = []
        for name, event in (("previous", link.previous), ("next", link.following)):
            if event is not None:
                neighbour.append(
                    f"{name}: seq {event.seq} {event.ts} {event.action} by {event.actor}\n"
                    f"    hash {event.hash}\n    prev {event.prev}"
                )
        self.details.setPlainText(event_json + "\n\n" + "\n".join(neighbour) + "\n")

    # ------------------------------------------------------------------ verification
    def refresh_last_verification(self) -> None:
        self.tasks.submit(
            lambda: self.review.last_verification(self.user),
            self._show_last_verification,
            self._show_error,
        )

    def _show_last_verification(self, status: VerificationStatus | None) -> None:
        if status is None:
            self.verified_label.setText("The trail has not been verified yet.")
            return
        verdict = "verified" if status.ok else f"FAILED at seq {status.first_failing_seq}"
        count = f"{status.events:,} events" if status.events is not None else ""
        self.verified_label.setText(
            f"Last verification {status.ts.replace('T', ' ').rstrip('Z')} UTC by {status.actor}: "
            f"{verdict} ({count}, up to seq {status.last_seq})"
        )

    def verify_now(self) -> None:
        if self.verifier.busy:
            return
        self.verify_button.setEnabled(False)
        self.progress.setRange(0, 0)  # busy until the first progress report
        self.result_label.setText("Verifying the whole trail …")
        self.verifier.submit(
            lambda: self.review.verify_now(self.user, self._progress_from_worker),
            self._verified,
            self._verify_failed,
        )

    def _progress_from_worker(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self._progress_posted < 0.05:
            return  # at most 20 updates a second reach the GUI
        self._progress_posted = now
        self._dispatch.post(lambda: self._show_progress(done, total))

    def _show_progress(self, done: int, total: int) -> None:
        scale = max(1, total // 1_000_000 + 1)  # QProgressBar holds an int
        self.progress.setRange(0, max(1, total // scale))
        self.progress.setValue(done // scale)
        self.progress.setFormat(f"{done:,} of {total:,} events")

    def _verified(self, outcome: VerificationOutcome) -> None:
        self.last_outcome = outcome
        self.verify_button.setEnabled(True)
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.progress.setFormat(f"{outcome.events:,} events checked")
        if outcome.ok:
            self.result_label.setText(
                f"<span style='color:{theme.OK}; font-weight:bold'>VERIFIED</span>: "
                f"{outcome.events:,} events, {outcome.checkpoints:,} signed checkpoints, "
                f"last seq {outcome.last_seq} in {outcome.elapsed_s:.1f} s"
            )
        else:
            problems = "<br>".join(p for p in outcome.problems[:8])
            more = len(outcome.problems) - 8
            self.result_label.setText(
                f"<span style='color:{theme.DANGER}; font-weight:bold'>FAILED — first failing "
                f"seq {outcome.first_failing_seq}</span><br>{problems}"
                + (f"<br>… and {more} more" if more > 0 else "")
            )
        self.refresh_last_verification()

    def _verify_failed(self, exc: BaseException) -> None:
        self.verify_button.setEnabled(True)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.result_label.setText(f"Verification could not run: {exc}")

    def _show_error(self, exc: BaseException) -> None:
        self.notice.show_lines("Audit trail", [str(exc) or type(exc).__name__], "refuse")

    def shutdown(self) -> None:
        self.model.shutdown()
        self.tasks.shutdown()
        self.verifier.shutdown()
