"""After delivery: pain before and after, adverse events, treatment points, notes, signature.

Nothing here is pre-selected: a pain score of 0 and "no adverse events" are answers the
therapist gives, not defaults. Signing re-asks for the password — and the user name on the first
signing since sign-in (21 CFR 11.200); its meaning is "performed". The password field is cleared
after every attempt. Once signed the screen shows the signed record read-only under a banner
"Signed by … at …; later facts are addenda" (UI-SIGN-1).
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QGridLayout,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QWidget,
)

from console.session.states import ENDED_STATES, SessionState
from console.session.workflow import ADVERSE_EVENTS
from console.ui.knee import KneeDiagram
from console.ui.screens.base import Screen
from console.ui.snapshot import SessionSnapshot
from console.ui.widgets import button, label, panel

#: The record's fixed list, in the order the clinic reads it (reference §5).
ADVERSE_EVENT_ORDER = (
    "reddening",
    "petechiae",
    "haematoma",
    "transient_pain",
    "swelling",
    "numbness",
    "syncope",
    "other",
)
assert set(ADVERSE_EVENT_ORDER) == ADVERSE_EVENTS, "the fixed adverse-event list changed"

SIGN_MEANING = "performed"


class PainScale(QWidget):
    """NRS 0–10 as eleven toggle buttons; none chosen until the therapist chooses."""

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.group = QButtonGroup(self)
        self.group.setExclusive(True)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(3)
        for score in range(11):
            choice = QPushButton(str(score))
            choice.setCheckable(True)
            choice.setObjectName(f"{name}_{score}")
            choice.setFixedWidth(44)
            choice.setStyleSheet("padding: 6px 0px;")
            choice.setAccessibleName(f"{name.replace('_', ' ')} {score}")
            self.group.addButton(choice, score)
            layout.addWidget(choice)
        layout.addStretch(1)

    def value(self) -> int | None:
        checked = self.group.checkedId()
        return None if checked == -1 else checked

    def set_value(self, score: int) -> None:
        self.group.button(score).setChecked(True)

    def clear(self) -> None:
        self.group.setExclusive(False)
        for choice in self.group.buttons():
            choice.setChecked(False)
        self.group.setExclusive(True)


class DocumentationScreen(Screen):
    document_requested = Signal(dict)  # keyword arguments of SessionWorkflow.document
    sign_requested = Signal(str, str)  # user name ("" when not asked), password
    finished = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Document and sign", "", parent)
        self.summary = label("", "section")
        self.summary.setObjectName("documentationSummary")
        self.body.addWidget(self.summary)
        columns = QHBoxLayout()
        columns.setSpacing(14)

        left_card, left = panel()
        left.addWidget(label("Pain (NRS 0–10)", "section"))
        self.pain_before = PainScale("pain_before")
        self.pain_after = PainScale("pain_after")
        left.addWidget(label("Before the session"))
        left.addWidget(self.pain_before)
        left.addWidget(label("After the session"))
        left.addWidget(self.pain_after)
        left.addWidget(label("Adverse events", "section"))
        grid = QGridLayout()
        self.adverse: dict[str, QCheckBox] = {}
        for i, event in enumerate(ADVERSE_EVENT_ORDER):
            box = QCheckBox(event.replace("_", " "))
            box.setObjectName(f"ae_{event}")
            self.adverse[event] = box
            grid.addWidget(box, i // 4, i % 4)
        self.no_adverse = QCheckBox("none observed")
        self.no_adverse.setObjectName("ae_none")
        grid.addWidget(self.no_adverse, 2, 0, 1, 4)
        left.addLayout(grid)
        left.addWidget(label("Notes", "section"))
        self.notes = QPlainTextEdit()
        self.notes.setObjectName("notes")
        self.notes.setPlaceholderText("Free notes (no names or other identifying data)")
        self.notes.setTabChangesFocus(True)
        self.notes.setFixedHeight(90)
        left.addWidget(self.notes)
        left.addStretch(1)
        columns.addWidget(left_card, 3)

        right_card, right = panel()
        right.addWidget(label("Treatment points", "section"))
        self.knee = KneeDiagram()
        self.knee.setObjectName("kneeDiagram")
        right.addWidget(self.knee, 1)
        knee_buttons = QHBoxLayout()
        self.remove_point = button("Remove last point", name="removeLastPoint")
        self.clear_points = button("Clear points", name="clearPoints")
        self.points_label = label("0 points", "muted", wrap=False)
        knee_buttons.addWidget(self.points_label)
        knee_buttons.addStretch(1)
        knee_buttons.addWidget(self.remove_point)
        knee_buttons.addWidget(self.clear_points)
        right.addLayout(knee_buttons)
        columns.addWidget(right_card, 2)
        self.body.addLayout(columns, 1)

        self.signed_banner = label("", "section")
        self.signed_banner.setObjectName("signedBanner")
        self.signed_banner.setStyleSheet(
            "background: #E6F2EA; color: #1E5E36; border: 1px solid #2E7D4F; padding: 8px;"
        )
        self.signed_banner.setVisible(False)
        self.body.addWidget(self.signed_banner)
        self.save_button = button("Sa&ve documentation", role="primary", name="saveDocumentation")
        sign_card, sign = panel()
        sign_row = QHBoxLayout()
        self.user_name = QLineEdit()
        self.user_name.setObjectName("signUserName")
        self.user_name.setPlaceholderText("your user name")
        self.user_name.setToolTip(
            "The first signature since you signed in takes your user name and your password"
        )
        self.user_name.setMaximumWidth(180)
        self.password = QLineEdit()
        self.password.setObjectName("signPassword")
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setPlaceholderText("your password")
        self.password.setMaximumWidth(260)
        self.sign_button = button(
            "Si&gn as performed",
            role="primary",
            name="signSession",
            tooltip="Your electronic signature: you performed this session as documented",
        )
        self.done_button = button("Back to the &patient", name="backToPatient")
        sign_row.addWidget(self.save_button)
        sign_row.addStretch(1)
        sign_row.addWidget(label("Signature:", wrap=False))
        sign_row.addWidget(self.user_name)
        sign_row.addWidget(self.password)
        sign_row.addWidget(self.sign_button)
        sign_row.addWidget(self.done_button)
        sign.addLayout(sign_row)
        self.body.addWidget(sign_card)

        self.actions = [self.save_button, self.sign_button, self.done_button]
        self.save_button.clicked.connect(self._save)
        self.sign_button.clicked.connect(self._sign)
        self.password.returnPressed.connect(self.sign_button.click)
        self.done_button.clicked.connect(self.finished)
        self.remove_point.clicked.connect(self.knee.remove_last)
        self.clear_points.clicked.connect(self.knee.clear)
        self.knee.points_changed.connect(self._count_points)
        self.no_adverse.toggled.connect(self._none_toggled)
        for box in self.adverse.values():
            box.toggled.connect(self._event_toggled)
        self._snapshot: SessionSnapshot | None = None
        self.update_actions()

    def reset(self) -> None:
        self.pain_before.clear()
        self.pain_after.clear()
        for box in [*self.adverse.values(), self.no_adverse]:
            box.setChecked(False)
        self.notes.clear()
        self.knee.clear()
        self.password.clear()
        self.user_name.clear()
        self.signed_banner.clear()
        self.signed_banner.setVisible(False)
        self.clear_notice()
        self._snapshot = None

    def _sign(self) -> None:
        """Hand the signature's components over and clear the password at once: it never stays
        in the field after an attempt, whatever the outcome."""
        name = self.user_name.text().strip() if self.user_name.isEnabled() else ""
        password = self.password.text()
        self.password.clear()
        self.sign_requested.emit(name, password)

    def _none_toggled(self, checked: bool) -> None:
        if checked:
            for box in self.adverse.values():
                box.setChecked(False)

    def _event_toggled(self, checked: bool) -> None:
        if checked:
            self.no_adverse.setChecked(False)

    def _count_points(self) -> None:
        n = len(self.knee.points())
        self.points_label.setText(f"{n} point{'s' if n != 1 else ''}")

    def documentation(self) -> tuple[dict | None, list[str]]:
        """The fields for ``SessionWorkflow.document``, or what is still to be answered."""
        missing = []
        before, after = self.pain_before.value(), self.pain_after.value()
        if before is None:
            missing.append("choose the pain score before the session (0–10)")
        if after is None:
            missing.append("choose the pain score after the session (0–10)")
        events = [e for e, box in self.adverse.items() if box.isChecked()]
        if not events and not self.no_adverse.isChecked():
            missing.append("tick the adverse events seen, or 'none observed'")
        if missing:
            return None, missing
        return (
            {
                "pain_before": before,
                "pain_after": after,
                "adverse_events": events,
                "treatment_points": self.knee.points(),
                "notes": self.notes.toPlainText().strip(),
            },
            [],
        )

    def _save(self) -> None:
        fields, missing = self.documentation()
        if fields is None:
            self.notice.show_lines("Documentation incomplete", missing, "override_required")
            return
        self.document_requested.emit(fields)

    def show_snapshot(self, snapshot: SessionSnapshot) -> None:
        self._snapshot = snapshot
        state = snapshot.state.value
        self.summary.setText(
            f"Session {state}: {snapshot.delivered:,} of {snapshot.target:,} pulses"
            + (f" — {snapshot.end_reason}" if snapshot.end_reason else "")
        )
        if snapshot.state is SessionState.DOCUMENTED:
            self.show_info("Documentation saved", ["Sign it with your password to finish."])
            self.reveal(self.sign_button)
        elif snapshot.state is SessionState.SIGNED:
            self.show_info("Session signed", ["The record is complete."])
            self.password.clear()
            self.user_name.clear()
        banner = snapshot.signed_banner
        self.signed_banner.setText(banner or "")
        self.signed_banner.setVisible(banner is not None)
        self.update_actions()

    def update_actions(self) -> None:
        state = self._snapshot.state if self._snapshot else None
        idle = not self.busy
        editable = state in ENDED_STATES or state is SessionState.DOCUMENTED
        signed = state is SessionState.SIGNED or (
            self._snapshot is not None and self._snapshot.signed_banner is not None
        )
        self.save_button.setEnabled(idle and editable and not signed)
        self.sign_button.setEnabled(idle and state is SessionState.DOCUMENTED)
        self.done_button.setEnabled(idle and state is SessionState.SIGNED)
        self.password.setEnabled(state is SessionState.DOCUMENTED)
        self.user_name.setEnabled(
            state is SessionState.DOCUMENTED
            and self._snapshot is not None
            and self._snapshot.signing_needs_user_name
        )
        # the signed record is final: what the screen shows is what was signed (UI-SIGN-1)
        for widget in self._documentation_inputs():
            widget.setEnabled(not signed)
        self.notes.setReadOnly(signed)

    def _documentation_inputs(self) -> list[QWidget]:
        return [
            *self.pain_before.group.buttons(),
            *self.pain_after.group.buttons(),
            *self.adverse.values(),
            self.no_adverse,
            self.notes,
            self.knee,
            self.remove_point,
            self.clear_points,
        ]
