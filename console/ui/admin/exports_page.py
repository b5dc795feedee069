"""Exports for auditors: the whole trail (JSONL, CSV, FHIR) with its public key, and the printable
report of a date range."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import QComboBox, QFileDialog, QGridLayout, QLineEdit, QVBoxLayout, QWidget

from console.admin.context import AdminServices
from console.admin.exports import SUFFIX, TrailExport
from console.admin.reports import RangeReport, range_report_html
from console.auth import SignedInUser
from console.ui.admin.pdf import write_pdf
from console.ui.admin.story_page import parse_day
from console.ui.admin.tasks import BackgroundTasks
from console.ui.widgets import Notice, button, label, panel

AskPath = Callable[[QWidget, str, str], Path | None]
FORMAT_NAMES = (
    ("JSON lines (the format's own)", "jsonl"),
    ("CSV", "csv"),
    ("FHIR R4B Bundle", "fhir"),
)


def ask_save_path(parent: QWidget, title: str, suggested: str) -> Path | None:
    name, _ = QFileDialog.getSaveFileName(parent, title, suggested)
    return Path(name) if name else None


class ExportsPage(QWidget):
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
        self.tasks = BackgroundTasks(self, workers=1, name="exports")
        self.last_export: TrailExport | None = None
        self.last_pdf: Path | None = None
        self.notice = Notice()
        self.notice.setObjectName("exportsNotice")

        self.format_box = QComboBox()
        self.format_box.setObjectName("exportFormat")
        for text, value in FORMAT_NAMES:
            self.format_box.addItem(text, value)
        self.export_button = button("&Export the trail…", role="primary", name="exportTrail")
        trail_panel, trail_layout = panel()
        trail_layout.addWidget(label("The audit trail for auditors", "section"))
        trail_layout.addWidget(
            label(
                "The trail is signed first (a checkpoint), then written whole; the public key "
                "that verifies its checkpoints is saved beside it as “<file>.public-key.pem”. "
                "Every export is recorded in the trail with the file's SHA-256.",
                "muted",
            )
        )
        row = QGridLayout()
        row.addWidget(label("Format", "muted", wrap=False), 0, 0)
        row.addWidget(self.format_box, 0, 1)
        row.addWidget(self.export_button, 0, 2)
        row.setColumnStretch(3, 1)
        trail_layout.addLayout(row)
        self.export_result = label("", "muted")
        self.export_result.setObjectName("exportResult")
        trail_layout.addWidget(self.export_result)

        self.from_edit = QLineEdit()
        self.from_edit.setObjectName("rangeFrom")
        self.from_edit.setPlaceholderText("from 2026-03-01")
        self.to_edit = QLineEdit()
        self.to_edit.setObjectName("rangeTo")
        self.to_edit.setPlaceholderText("to 2026-03-31")
        self.range_button = button("&Print range PDF…", name="printRange")
        range_panel, range_layout = panel()
        range_layout.addWidget(label("Sessions of a date range (PDF)", "section"))
        range_layout.addWidget(
            label(
                "Every session dated in the range with its figures and signatures count, the "
                "totals, and the trail's signed head that anchors the printout.",
                "muted",
            )
        )
        grid = QGridLayout()
        grid.addWidget(label("From", "muted", wrap=False), 0, 0)
        grid.addWidget(self.from_edit, 0, 1)
        grid.addWidget(label("To", "muted", wrap=False), 0, 2)
        grid.addWidget(self.to_edit, 0, 3)
        grid.addWidget(self.range_button, 0, 4)
        grid.setColumnStretch(5, 1)
        range_layout.addLayout(grid)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.notice)
        layout.addWidget(trail_panel)
        layout.addWidget(range_panel)
        layout.addStretch(1)
        self.export_button.clicked.connect(self.export_trail)
        self.range_button.clicked.connect(self.print_range)
        self.tasks.busy_changed.connect(
            lambda busy: [w.setEnabled(not busy) for w in (self.export_button, self.range_button)]
        )

    def export_trail(self) -> None:
        fmt = str(self.format_box.currentData())
        path = self.ask_path(self, "Export the audit trail", f"audit-trail{SUFFIX[fmt]}")
        if path is None:
            return
        self.export_result.setText(f"Exporting to {path} …")
        self.tasks.submit(
            lambda: self.services.exports.export(self.user, fmt, path), self._exported, self._error
        )

    def _exported(self, result: TrailExport) -> None:
        self.last_export = result
        self.export_result.setText(
            f"{result.events:,} events (to seq {result.last_seq}) written to {result.path}; "
            f"public key {result.public_key_path.name}; SHA-256 {result.sha256}"
        )
        self.notice.show_lines("Export written", [str(result.path)], "ok")

    def print_range(self) -> None:
        try:
            start, end = parse_day(self.from_edit.text()), parse_day(self.to_edit.text())
        except ValueError as exc:
            self.notice.show_lines("Range report", [str(exc)], "refuse")
            return
        if start is None or end is None:
            self.notice.show_lines("Range report", ["give both dates of the range"], "refuse")
            return
        path = self.ask_path(
            self, "Save the range report", f"sessions-{start.isoformat()}-{end.isoformat()}.pdf"
        )
        if path is None:
            return
        self.tasks.submit(
            lambda: self.services.reports.range_report(self.user, start, end),
            lambda report: self._write(report, path),
            self._error,
        )

    def _write(self, report: RangeReport, path: Path) -> None:
        try:
            write_pdf(range_report_html(report), path, report.title)
        except (OSError, ValueError) as exc:
            self._error(exc)
            return
        self.tasks.submit(
            lambda: self.services.reports.record_export(self.user, report, path),
            lambda digest: self._written(path, len(report.rows), digest),
            self._error,
        )

    def _written(self, path: Path, sessions: int, digest: str) -> None:
        self.last_pdf = path
        self.notice.show_lines(
            "Report written", [f"{sessions:,} sessions → {path} (SHA-256 {digest[:16]}…)"], "ok"
        )

    def _error(self, exc: BaseException) -> None:
        self.export_result.setText("")
        self.notice.show_lines("Export", [str(exc) or type(exc).__name__], "refuse")

    def shutdown(self) -> None:
        self.tasks.shutdown()
