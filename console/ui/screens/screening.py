"""The contraindication screening, done before every session.

No question has a default: an unanswered question stays unanswered and the clinical rules call
the screening incomplete (nothing can be armed). The rules' verdict is shown with every finding
in the rule's own words: a block ends the way forward; a relative contraindication needs a
written reason before planning; warnings are shown with an allow.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from PySide6.QtCore import QDate, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDateEdit,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLineEdit,
    QRadioButton,
    QWidget,
)

from console.session.interlocks import MIN_OVERRIDE_REASON_CHARS
from console.session.ports import ScreeningVerdict
from console.ui import theme
from console.ui.screens.base import Screen
from console.ui.snapshot import SessionSnapshot
from console.ui.views import QuestionView
from console.ui.widgets import AbortBox, Notice, ReasonBox, button, button_row, finding_line, label

_UNANSWERED = "__unanswered__"


class QuestionRow:
    """The input for one question and how to read its answer (``None`` if unanswered)."""

    def __init__(self, question: QuestionView) -> None:
        self.question = question
        self.editor = QWidget()
        self.editor.setObjectName(f"q_{question.key}")
        layout = QHBoxLayout(self.editor)
        layout.setContentsMargins(0, 0, 0, 0)
        self._group: QButtonGroup | None = None
        self._combo: QComboBox | None = None
        self._date: QDateEdit | None = None
        self._int: QLineEdit | None = None
        kind = question.kind
        if kind == "bool":
            self._group = QButtonGroup(self.editor)
            for text, value in (("Yes", 1), ("No", 0)):
                radio = QRadioButton(text)
                radio.setObjectName(f"q_{question.key}_{text.lower()}")
                self._group.addButton(radio, value)
                layout.addWidget(radio)
        elif kind == "choice_or_none":
            self._combo = QComboBox()
            self._combo.addItem("— not answered —", _UNANSWERED)
            self._combo.addItem(question.none_label, None)
            for choice in question.choices:
                self._combo.addItem(choice.replace("_", " "), choice)
            layout.addWidget(self._combo)
        elif kind == "date_or_none":
            self._group = QButtonGroup(self.editor)
            none = QRadioButton(question.none_label)
            none.setObjectName(f"q_{question.key}_none")
            when = QRadioButton("on")
            when.setObjectName(f"q_{question.key}_date")
            self._group.addButton(none, 0)
            self._group.addButton(when, 1)
            self._date = QDateEdit()
            self._date.setCalendarPopup(True)
            self._date.setDisplayFormat("yyyy-MM-dd")
            self._date.setDate(QDate.currentDate())
            self._date.setMaximumDate(QDate.currentDate())
            self._date.setEnabled(False)
            when.toggled.connect(self._date.setEnabled)
            for widget in (none, when, self._date):
                layout.addWidget(widget)
        elif kind == "int":
            self._int = QLineEdit()
            self._int.setPlaceholderText("whole number")
            self._int.setMaximumWidth(140)
            layout.addWidget(self._int)
        else:
            raise ValueError(f"unknown question kind {kind!r} for {question.key}")
        layout.addStretch(1)
        self.text = label(question.text)
        self.marker = QFrame()
        self.marker.setFixedWidth(5)

    def answer(self) -> tuple[bool, Any]:
        """(answered, value) — the value as the rules expect it (bool, None, ISO date, int)."""
        q = self.question
        if q.kind == "bool":
            assert self._group is not None
            checked = self._group.checkedId()
            return (checked != -1, checked == 1)
        if q.kind == "choice_or_none":
            assert self._combo is not None
            data = self._combo.currentData()
            return (data != _UNANSWERED, data)
        if q.kind == "date_or_none":
            assert self._group is not None and self._date is not None
            checked = self._group.checkedId()
            if checked == -1:
                return (False, None)
            if checked == 0:
                return (True, None)
            return (True, self._date.date().toString("yyyy-MM-dd"))
        assert self._int is not None
        text = self._int.text().strip()
        if text.isdigit():
            return (True, int(text))
        return (False, text)

    def set_answer(self, value: Any) -> None:
        """Fill in an answer (tests, screenshots and re-opening a screening)."""
        q = self.question
        if q.kind == "bool":
            assert self._group is not None
            self._group.button(1 if value else 0).setChecked(True)
        elif q.kind == "choice_or_none":
            assert self._combo is not None
            self._combo.setCurrentIndex(self._combo.findData(value))
        elif q.kind == "date_or_none":
            assert self._group is not None and self._date is not None
            self._group.button(0 if value is None else 1).setChecked(True)
            if value is not None:
                d = value if isinstance(value, date) else date.fromisoformat(str(value))
                self._date.setDate(QDate(d.year, d.month, d.day))
        else:
            assert self._int is not None
            self._int.setText(str(value))

    def flag(self, missing: bool) -> None:
        colour = theme.DANGER if missing else "transparent"
        self.marker.setStyleSheet(f"background: {colour}; border-radius: 2px;")


class ScreeningScreen(Screen):
    submit_requested = Signal(dict, str)  # the answered keys only; correction reason or ""
    override_requested = Signal(str)
    continue_requested = Signal()
    abort_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(
            "Screening",
            "Before every session. Answer every question; nothing is pre-filled.",
            parent,
        )
        self.rows: dict[str, QuestionRow] = {}
        self._grid_host = QWidget()
        self._grid = QGridLayout(self._grid_host)
        self._grid.setHorizontalSpacing(12)
        self._grid.setVerticalSpacing(6)
        self._grid.setColumnStretch(1, 3)
        self._grid.setColumnStretch(2, 2)
        self.body.addWidget(self._grid_host)

        self.submit_button = button("Check &answers", role="primary", name="submitScreening")
        self.body.addWidget(button_row(self.submit_button))
        # After a block or an override-required decision, changing an answer is a correction
        # that needs its reason (SES-SCREEN-1): asked for here, recorded with old and new answer.
        self.correction_reason = ReasonBox(
            "Correcting an answer? Say who told you what and why the first answer was wrong "
            "(recorded with the old and the new answer)",
            MIN_OVERRIDE_REASON_CHARS,
        )
        self.correction_reason.setObjectName("screeningCorrectionReason")
        self.correction_reason.hide()
        self.body.addWidget(self.correction_reason)
        self.verdict = Notice()
        self.verdict.setObjectName("screeningVerdict")
        self.body.addWidget(self.verdict)

        self.override_box = QWidget()
        override_layout = QHBoxLayout(self.override_box)
        override_layout.setContentsMargins(0, 0, 0, 0)
        self.override_reason = ReasonBox(
            "Why is it right to treat despite the relative contraindication? (recorded, audited)",
            MIN_OVERRIDE_REASON_CHARS,
        )
        self.override_reason.setObjectName("screeningOverrideReason")
        self.override_button = button("Record &override", role="caution", name="recordOverride")
        override_layout.addWidget(self.override_reason, 1)
        override_layout.addWidget(self.override_button)
        self.override_box.hide()
        self.body.addWidget(self.override_box)

        self.abort = AbortBox()
        self.continue_button = button(
            "&Continue to planning", role="primary", name="continueToPlanning"
        )
        row = QWidget()
        row_layout = QHBoxLayout(row)
        row_layout.setContentsMargins(0, 0, 0, 0)
        row_layout.addWidget(self.abort, 1)
        row_layout.addWidget(self.continue_button)
        self.body.addWidget(row)
        self.body.addStretch(1)

        self.actions = [self.submit_button, self.override_button, self.continue_button]
        self.submit_button.clicked.connect(self._submit)
        self.override_button.clicked.connect(
            lambda: self.override_requested.emit(self.override_reason.text())
        )
        self.continue_button.clicked.connect(self.continue_requested)
        self.abort.abort_requested.connect(self.abort_requested)
        self._snapshot: SessionSnapshot | None = None
        self._revealed: object = None
        self.update_actions()

    def set_questions(self, questions: Sequence[QuestionView]) -> None:
        while self._grid.count():
            item = self._grid.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.rows = {}
        for r, question in enumerate(questions):
            row = QuestionRow(question)
            self.rows[question.key] = row
            self._grid.addWidget(row.marker, r, 0)
            self._grid.addWidget(row.text, r, 1)
            self._grid.addWidget(row.editor, r, 2)
        self.verdict.clear()
        self.override_box.hide()
        self.override_reason.set_text("")
        self.correction_reason.set_text("")
        self.correction_reason.hide()
        self.abort.reset()
        self._snapshot = None
        self.update_actions()

    def answers(self) -> dict[str, Any]:
        answered: dict[str, Any] = {}
        for key, row in self.rows.items():
            ok, value = row.answer()
            if ok:
                answered[key] = value
        return answered

    def _submit(self) -> None:
        for row in self.rows.values():
            row.flag(False)
        reason = "" if self.correction_reason.isHidden() else self.correction_reason.text()
        self.submit_requested.emit(self.answers(), reason)

    def show_snapshot(self, snapshot: SessionSnapshot) -> None:
        self._snapshot = snapshot
        outcome = snapshot.screening
        if outcome is None:
            self.verdict.clear()
            self.override_box.hide()
            self.update_actions()
            return
        lines = [finding_line(f) for f in outcome.findings]
        missing = {f.field for f in outcome.findings if f.field}
        verdict = outcome.verdict
        for key, row in self.rows.items():
            row.flag(verdict is ScreeningVerdict.INCOMPLETE and key in missing)
        if verdict is ScreeningVerdict.INCOMPLETE:
            texts = [self.rows[k].question.text if k in self.rows else k for k in sorted(missing)]
            self.verdict.show_lines(
                "Screening incomplete: every question must be answered",
                [f"Not answered: {t}" for t in texts] if texts else lines,
                "override_required",
            )
        elif verdict is ScreeningVerdict.BLOCK:
            self.verdict.show_lines(
                "Contraindicated: this session cannot go ahead",
                [
                    *lines,
                    "No override is possible. End the session with a reason below.",
                    "If an answer was wrong, correct it and give the reason for the correction.",
                ],
                "block",
            )
        elif verdict is ScreeningVerdict.OVERRIDE_REQUIRED:
            recorded = snapshot.screening_override_reason
            tail = (
                [f"Override recorded: {recorded}"]
                if recorded
                else ["To continue, write why treating is right despite this (recorded)."]
            )
            self.verdict.show_lines("Relative contraindication", lines + tail, "override_required")
        else:
            self.verdict.show_lines(
                "No contraindication found", lines or ["Every question answered."], "allow"
            )
        self.override_box.setVisible(
            verdict is ScreeningVerdict.OVERRIDE_REQUIRED and not snapshot.screening_override_reason
        )
        needs_reason = verdict in (ScreeningVerdict.BLOCK, ScreeningVerdict.OVERRIDE_REQUIRED)
        if needs_reason and self.correction_reason.isHidden():
            self.correction_reason.set_text("")
        self.correction_reason.setVisible(needs_reason)
        self.update_actions()
        if outcome is not self._revealed:  # a new verdict: bring it (and what to do) into view
            self._revealed = outcome
            self.reveal(self.continue_button)

    def update_actions(self) -> None:
        snapshot = self._snapshot
        outcome = snapshot.screening if snapshot else None
        in_screening = snapshot is None or snapshot.state.value == "screening"
        may_continue = outcome is not None and (
            outcome.verdict is ScreeningVerdict.ALLOW
            or (
                outcome.verdict is ScreeningVerdict.OVERRIDE_REQUIRED
                and bool(snapshot and snapshot.screening_override_reason)
            )
        )
        self.submit_button.setEnabled(not self.busy and in_screening and bool(self.rows))
        self.override_button.setEnabled(not self.busy and self.override_box.isVisible())
        self.continue_button.setEnabled(not self.busy and may_continue)
        self.abort.set_available(not self.busy)
