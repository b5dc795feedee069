"""Planning: the protocol's defaults in an editor that shows each field's valid range and why a
value is refused.

Values are typed, never spun: a spin box would silently clamp an out-of-range entry, and a value
must never change without the therapist seeing why. The clinical rules judge the plan (device
envelope ⊇ applicator limit ⊇ protocol range); this screen shows every finding beside its field.
Going outside the protocol range is possible only with a written reason (recorded).
"""

from __future__ import annotations

from decimal import Decimal

from PySide6.QtCore import QLocale, Signal
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLineEdit, QWidget

from console.session.interlocks import MIN_OVERRIDE_REASON_CHARS
from console.session.ports import PlannedParameters, ValidationVerdict
from console.ui.numbers import parse_number
from console.ui.screens.base import Screen
from console.ui.snapshot import SessionSnapshot
from console.ui.views import FieldRangeView, ProtocolView
from console.ui.widgets import (
    AbortBox,
    Notice,
    ReasonBox,
    button,
    finding_line,
    label,
    panel,
    set_text,
)
from device_drivers.interface import ValueRange


def _fmt(value: Decimal) -> str:
    """A value as the therapist would type it: no thousands separators (they are refused)."""
    return str(value).replace(".", decimal_point())


def decimal_point() -> str:
    """The decimal separator of the console's (system) locale."""
    return QLocale().decimalPoint()


def parse_field(field: FieldRangeView, text: str) -> tuple[Decimal | int | None, str | None]:
    """The typed value, or why it is refused (never clamped, never reinterpreted)."""
    whole = field.name == "pulses"
    value, problem = parse_number(text, decimal_point(), whole=whole, what=field.label.lower())
    if value is None:
        return None, problem
    return (int(value), None) if whole else (value, None)


class FieldEditor:
    """One line of the editor: label, input, ranges, and the findings about this field."""

    def __init__(self, field: FieldRangeView) -> None:
        self.field = field
        self.caption = label(f"{field.label} ({field.unit})", wrap=False)
        self.edit = QLineEdit(_fmt(field.default))
        self.edit.setObjectName(f"param_{field.name}")
        self.edit.setMaximumWidth(150)
        self.edit.setAccessibleName(f"{field.label} in {field.unit}")
        self.protocol_range = label(
            f"protocol {_fmt(field.minimum)}–{_fmt(field.maximum)} {field.unit} "
            f"(default {_fmt(field.default)})",
            "muted",
        )
        self.unit_range = label("", "muted")
        self.problem = label("", "error")
        self.problem.hide()

    def value(self) -> tuple[Decimal | int | None, str | None]:
        return parse_field(self.field, self.edit.text())

    def show_unit_range(self, unit: ValueRange | None, applicator_max: Decimal | None) -> None:
        parts = []
        if unit is not None:
            parts.append(f"unit {_fmt(unit.minimum)}–{_fmt(unit.maximum)} {self.field.unit}")
        if applicator_max is not None:
            parts.append(f"applicator ≤ {_fmt(applicator_max)} {self.field.unit}")
        set_text(self.unit_range, " · ".join(parts) if parts else "unit limits: after connecting")

    def show_problems(self, lines: list[str]) -> None:
        if self.problem.text() == "\n".join(lines) and self.problem.isVisibleTo(
            self.problem.parentWidget()
        ) == bool(lines):
            return
        self.problem.setText("\n".join(lines))
        self.problem.setVisible(bool(lines))
        self.edit.setProperty("invalid", bool(lines))
        self.edit.style().unpolish(self.edit)
        self.edit.style().polish(self.edit)


class PlanningScreen(Screen):
    plan_requested = Signal(object, object)  # PlannedParameters, override reason or None
    continue_requested = Signal()
    abort_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Plan the session", "", parent)
        card, inner = panel()
        self.protocol_label = label("", "section")
        self.course_label = label("", "muted")
        inner.addWidget(self.protocol_label)
        inner.addWidget(self.course_label)
        self._grid = QGridLayout()
        self._grid.setHorizontalSpacing(14)
        self._grid.setVerticalSpacing(4)
        inner.addLayout(self._grid)
        self.body.addWidget(card)
        self.findings = Notice()
        self.findings.setObjectName("planFindings")
        self.body.addWidget(self.findings)
        self.override_box = QWidget()
        override_layout = QHBoxLayout(self.override_box)
        override_layout.setContentsMargins(0, 0, 0, 0)
        self.override_reason = ReasonBox(
            "Why go outside the protocol range? (recorded, audited)", MIN_OVERRIDE_REASON_CHARS
        )
        self.override_reason.setObjectName("planOverrideReason")
        override_layout.addWidget(label("Override reason:", wrap=False))
        override_layout.addWidget(self.override_reason, 1)
        self.override_box.hide()
        self.body.addWidget(self.override_box)

        self.abort = AbortBox()
        self.validate_button = button(
            "&Validate plan",
            role="primary",
            name="validatePlan",
            tooltip="Check the plan against the protocol, and the unit's limits once connected",
        )
        self.continue_button = button("Continue to the &unit", role="primary", name="toUnit")
        row = QWidget()
        row_layout = QHBoxLayout(row)
        row_layout.setContentsMargins(0, 0, 0, 0)
        row_layout.addWidget(self.abort, 1)
        row_layout.addWidget(self.validate_button)
        row_layout.addWidget(self.continue_button)
        self.body.addWidget(row)
        self.body.addStretch(1)
        self.actions = [self.validate_button, self.continue_button]
        self.validate_button.clicked.connect(self._validate)
        self.continue_button.clicked.connect(self.continue_requested)
        self.abort.abort_requested.connect(self.abort_requested)
        self.editors: dict[str, FieldEditor] = {}
        self._protocol: ProtocolView | None = None
        self._snapshot: SessionSnapshot | None = None
        self.update_actions()

    def set_protocol(self, protocol: ProtocolView) -> None:
        self._protocol = protocol
        self.set_heading(
            "Plan the session",
            "Protocol defaults are filled in; titrate inside the protocol range by tolerance.",
        )
        self.protocol_label.setText(f"{protocol.title}  [{protocol.protocol_id}]")
        self.course_label.setText(f"{protocol.modality.upper()} · course: {protocol.course}")
        while self._grid.count():
            item = self._grid.takeAt(0)
            if item.widget() is not None:
                item.widget().setParent(None)
        self.editors = {}
        for r, field in enumerate(protocol.fields):
            editor = FieldEditor(field)
            self.editors[field.name] = editor
            base = r * 2
            self._grid.addWidget(editor.caption, base, 0)
            self._grid.addWidget(editor.edit, base, 1)
            self._grid.addWidget(editor.protocol_range, base, 2)
            self._grid.addWidget(editor.unit_range, base, 3)
            self._grid.addWidget(editor.problem, base + 1, 1, 1, 3)
            editor.show_unit_range(None, None)
        self._grid.setColumnStretch(3, 1)
        self.findings.clear()
        self.override_box.hide()
        self.override_reason.set_text("")
        self.abort.reset()
        self._snapshot = None
        self.update_actions()

    def planned(self) -> tuple[PlannedParameters | None, dict[str, str]]:
        """The typed plan, or what is wrong with the typing (per field)."""
        values: dict[str, Decimal | int] = {}
        problems: dict[str, str] = {}
        for name, editor in self.editors.items():
            value, problem = editor.value()
            if problem:
                problems[name] = problem
            elif value is not None:
                values[name] = value
        if problems:
            return None, problems
        return (
            PlannedParameters(
                frequency_hz=Decimal(values["frequency_hz"]),
                pulses=int(values["pulses"]),
                pressure_bar=_decimal_or_none(values.get("pressure_bar")),
                field_mt=_decimal_or_none(values.get("field_mt")),
            ),
            {},
        )

    def _validate(self) -> None:
        plan, problems = self.planned()
        for name, editor in self.editors.items():
            editor.show_problems([problems[name]] if name in problems else [])
        if plan is None:
            self.findings.show_lines(
                "Not validated: correct the highlighted fields", list(problems.values()), "refuse"
            )
            return
        reason = self.override_reason.text() if self.override_box.isVisible() else None
        self.plan_requested.emit(plan, reason or None)

    def show_snapshot(self, snapshot: SessionSnapshot) -> None:
        self._snapshot = snapshot
        envelope, applicator = snapshot.envelope, snapshot.applicator
        for name, editor in self.editors.items():
            unit_range = getattr(envelope, name, None) if envelope else None
            app_max = applicator.max_pressure_bar if applicator and name == "pressure_bar" else None
            editor.show_unit_range(unit_range, app_max)
        outcome = snapshot.validation
        if outcome is None:
            self.update_actions()
            return
        by_field: dict[str, list[str]] = {name: [] for name in self.editors}
        for finding in outcome.findings:
            if finding.field in by_field:
                by_field[finding.field].append(finding.message)
        for name, editor in self.editors.items():
            editor.show_problems(by_field[name])
        lines = [finding_line(f) for f in outcome.findings]
        recorded = snapshot.parameter_override_reason
        if not snapshot.validated_against_unit:
            # Without a unit the rules cannot know its limits: the plan is recorded and checked
            # in full once the unit is connected (an override is given there).
            attention = any(
                f.severity == "override_required"
                or (f.severity == "refuse" and f.field in self.editors)
                for f in outcome.findings
            )
            self.findings.show_lines(
                "Checked against the protocol; the unit's limits are checked once it is connected",
                lines,
                "override_required" if attention else "ok",
            )
        elif outcome.verdict is ValidationVerdict.REFUSED:
            self.findings.show_lines("Plan refused: change the highlighted values", lines, "refuse")
        elif outcome.verdict is ValidationVerdict.OVERRIDE_REQUIRED:
            tail = (
                [f"Override recorded: {recorded}"]
                if recorded
                else ["Outside the protocol: write a reason and validate again, or change them."]
            )
            self.findings.show_lines(
                "Outside the protocol range", lines + tail, "override_required"
            )
        else:
            self.findings.show_lines(
                "Plan valid for the connected unit and the protocol", lines, "ok"
            )
        self.override_box.setVisible(
            outcome.verdict is ValidationVerdict.OVERRIDE_REQUIRED and not recorded
        )
        self.update_actions()

    def update_actions(self) -> None:
        snapshot = self._snapshot
        state = snapshot.state.value if snapshot else "screening"
        can_plan = state in ("screening", "planned", "connected")
        # The unit screen re-validates against the unit; arming needs the full verdict there.
        planned = state in ("planned", "connected") and snapshot is not None
        self.validate_button.setEnabled(not self.busy and can_plan and bool(self.editors))
        self.continue_button.setEnabled(not self.busy and planned)
        self.abort.set_available(not self.busy)


def _decimal_or_none(value: Decimal | int | None) -> Decimal | None:
    return None if value is None else Decimal(value)
