"""Patient list and search (pseudonymous ids only) and the patient page.

The patient page shows the active movement programme — its four pillars, the current phase and
the exercises with their dosage — beside the session history, so every treatment is tied to the
programme it supports.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from console.ui.screens.base import Screen
from console.ui.views import HistoryRow, PatientRow, PatientView, ProgrammeView
from console.ui.widgets import button, button_row, label, panel

SEARCH_DEBOUNCE_MS = 200


def _table(headers: Sequence[str]) -> QTableWidget:
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(list(headers))
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setAlternatingRowColors(True)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.horizontalHeader().setStretchLastSection(True)
    return table


class PatientListScreen(Screen):
    search_changed = Signal(str)
    patient_opened = Signal(str)  # patient id

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Patients", "Search by pseudonym; open a patient to treat.", parent)
        self.search = QLineEdit()
        self.search.setObjectName("patientSearch")
        self.search.setPlaceholderText("Search pseudonym … (Ctrl+F)")
        self.search.setClearButtonEnabled(True)
        self.table = _table(["Pseudonym", "Born", "Movement programme", "Last session"])
        self.table.setObjectName("patientTable")
        self.open_button = button("&Open patient", role="primary", name="openPatient")
        self.actions = [self.open_button]
        self.body.addWidget(self.search)
        self.body.addWidget(self.table, 1)
        self.body.addWidget(button_row(self.open_button))
        self._rows: list[PatientRow] = []
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(SEARCH_DEBOUNCE_MS)
        self._debounce.timeout.connect(lambda: self.search_changed.emit(self.search.text()))
        self.search.textChanged.connect(lambda _: self._debounce.start())
        self.open_button.clicked.connect(self._open_selected)
        self.table.doubleClicked.connect(lambda _: self._open_selected())
        self.table.itemSelectionChanged.connect(self.update_actions)
        self.update_actions()

    def show_patients(self, rows: Sequence[PatientRow]) -> None:
        self._rows = list(rows)
        self.table.setRowCount(len(self._rows))
        for r, row in enumerate(self._rows):
            born = str(row.birth_year) if row.birth_year else "—"
            for c, text in enumerate((row.pseudonym, born, row.programme, row.last_session)):
                self.table.setItem(r, c, QTableWidgetItem(text))
        if self._rows:
            self.table.selectRow(0)
        self.update_actions()

    def update_actions(self) -> None:
        self.open_button.setEnabled(not self.busy and self.selected() is not None)

    def selected(self) -> PatientRow | None:
        rows = self.table.selectionModel().selectedRows()
        return self._rows[rows[0].row()] if rows else None

    def _open_selected(self) -> None:
        row = self.selected()
        if row is not None:
            self.patient_opened.emit(row.patient_id)


class ProgrammePanel(QWidget):
    """The active movement programme: title, current phase, four pillars with exercises."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(8)
        self.pillar_boxes: list[QGroupBox] = []

    def show_programme(self, programme: ProgrammeView | None) -> None:
        while self._layout.count():
            item = self._layout.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.pillar_boxes = []
        if programme is None:
            box, inner = panel(role="notice-caution")
            inner.addWidget(label("No active movement programme", "section"))
            inner.addWidget(
                label(
                    "Shockwave and EMTT only support the movement work; without it the relief "
                    "is temporary. Assign a programme before treating (the unit cannot be armed "
                    "without one)."
                )
            )
            self._layout.addWidget(box)
            return
        self._layout.addWidget(label(programme.title, "section"))
        self._layout.addWidget(label(programme.phase))
        if programme.note:
            self._layout.addWidget(label(programme.note, "muted"))
        for pillar in programme.pillars:
            box = QGroupBox(pillar.name)
            inner = QVBoxLayout(box)
            inner.setSpacing(3)
            if not pillar.exercises:
                inner.addWidget(label("no exercises in this phase", "muted"))
            for exercise in pillar.exercises:
                inner.addWidget(label(f"• {exercise.name} — {exercise.dosage}"))
            self._layout.addWidget(box)
            self.pillar_boxes.append(box)
        self._layout.addStretch(1)


class PatientScreen(Screen):
    new_session = Signal(str)  # protocol id
    recover_requested = Signal(str)  # session id
    back = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Patient", "", parent)
        self.unfinished_card, unfinished = panel(role="notice-danger")
        self.unfinished_label = label("")
        self.recover_button = button(
            "&Recover unfinished session",
            role="caution",
            name="recoverSession",
            tooltip="Reconnect the session's unit, make sure it is stopped and record the count",
        )
        unfinished.addWidget(label("Unfinished session", "section"))
        unfinished.addWidget(self.unfinished_label)
        unfinished.addWidget(button_row(self.recover_button))
        self.unfinished_card.hide()
        self.body.addWidget(self.unfinished_card)
        self.programme = ProgrammePanel()
        programme_scroll = QScrollArea()  # a long programme scrolls on its own
        programme_scroll.setWidgetResizable(True)
        programme_scroll.setWidget(self.programme)
        programme_scroll.setStyleSheet("QScrollArea { background: transparent; }")
        programme_card, programme_layout = panel()
        programme_layout.addWidget(label("Movement programme", "subtitle"))
        programme_layout.addWidget(programme_scroll, 1)
        self.history = _table(["Date", "Protocol", "Pulses", "Pain NRS", "Outcome"])
        self.history.setObjectName("sessionHistory")
        history_card, history_layout = panel()
        history_layout.addWidget(label("Session history", "subtitle"))
        history_layout.addWidget(self.history, 1)
        columns = QHBoxLayout()
        columns.setSpacing(14)
        columns.addWidget(programme_card, 1)
        columns.addWidget(history_card, 1)
        self.body.addLayout(columns, 1)

        self.protocol = QComboBox()
        self.protocol.setObjectName("protocolChoice")
        self.protocol.setMinimumWidth(360)
        self.start_button = button(
            "&New session",
            role="primary",
            name="newSession",
            tooltip="Start a new session with the chosen protocol: screening comes first",
        )
        self.back_button = button("&Back to patients", name="backToPatients")
        start_row = QHBoxLayout()
        start_row.addWidget(self.back_button)
        start_row.addStretch(1)
        start_row.addWidget(label("Protocol:", wrap=False))
        start_row.addWidget(self.protocol)
        start_row.addWidget(self.start_button)
        self.body.addLayout(start_row)
        self.actions = [self.start_button, self.back_button, self.recover_button]
        self.recover_button.clicked.connect(self._recover)
        self.start_button.clicked.connect(self._start)
        self.back_button.clicked.connect(self.back)
        self._view: PatientView | None = None

    def show_patient(self, view: PatientView) -> None:
        self._view = view
        born = f", born {view.patient.birth_year}" if view.patient.birth_year else ""
        self.set_heading(
            f"Patient {view.patient.pseudonym}",
            f"Pseudonymous record{born}. Choose a protocol to start a session.",
        )
        self.programme.show_programme(view.programme)
        self._fill_history(view.history)
        self.unfinished_card.setVisible(bool(view.unfinished))
        self.unfinished_label.setText(
            "The console stopped during this patient's session; recover it before anything "
            "else: " + "; ".join(u.text for u in view.unfinished)
        )
        self.protocol.clear()
        for choice in view.protocols:
            self.protocol.addItem(f"{choice.label}  [{choice.protocol_id}]", choice.protocol_id)
        self.clear_notice()
        self.update_actions()

    def _fill_history(self, rows: Sequence[HistoryRow]) -> None:
        self.history.setRowCount(len(rows))
        for r, row in enumerate(rows):
            cells = (row.session_date, row.protocol, row.pulses, row.pain, row.outcome)
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c in (2, 3):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                self.history.setItem(r, c, item)

    def update_actions(self) -> None:
        unfinished = bool(self._view and self._view.unfinished)
        self.back_button.setEnabled(not self.busy)
        self.recover_button.setEnabled(not self.busy and unfinished)
        self.start_button.setEnabled(not self.busy and self.protocol.count() > 0 and not unfinished)

    def _recover(self) -> None:
        if self._view and self._view.unfinished:
            self.recover_requested.emit(self._view.unfinished[0].session_id)

    def _start(self) -> None:
        protocol_id = self.protocol.currentData()
        if protocol_id:
            self.new_session.emit(protocol_id)
