"""Connect, confirm, arm, start: four separate, deliberate actions on one screen.

The screen shows what the connected unit reports (identity, envelope, applicator and its wear,
live state) and the arming checklist from the workflow, live. Button states follow the
checklist only as guidance: the workflow refuses an action whose interlocks do not hold, and the
refusal is shown with every reason.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QWidget

from console.session.interlocks import MIN_OVERRIDE_REASON_CHARS
from console.session.ports import PlannedParameters, ValidationVerdict
from console.session.states import Action, SessionState
from console.ui.screens.base import Screen
from console.ui.snapshot import SessionSnapshot
from console.ui.widgets import (
    AbortBox,
    InterlockList,
    Notice,
    ReasonBox,
    button,
    finding_line,
    label,
    panel,
    set_text,
)
from device_drivers.interface import UnitState


def plan_text(plan: PlannedParameters | None) -> str:
    if plan is None:
        return "no plan"
    intensity = (
        f"{plan.pressure_bar} bar" if plan.pressure_bar is not None else f"{plan.field_mt} mT"
    )
    return f"{intensity} · {plan.frequency_hz} Hz · {plan.pulses:,} pulses"


class UnitScreen(Screen):
    connect_requested = Signal()
    revalidate_requested = Signal(str)  # override reason
    confirm_requested = Signal()
    arm_requested = Signal()
    start_requested = Signal()
    clear_fault_requested = Signal()
    replan_requested = Signal()
    abort_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(
            "Unit",
            "Connect the unit, check what it reports, confirm the parameters, arm, then start.",
            parent,
        )
        columns = QHBoxLayout()
        columns.setSpacing(14)

        unit_card, unit = panel()
        unit.addWidget(label("Unit", "section"))
        self.link_label = label("", "muted")
        unit.addWidget(self.link_label)
        self.identity = QGridLayout()
        self.identity.setHorizontalSpacing(12)
        self.identity.setVerticalSpacing(3)
        self.fields: dict[str, object] = {}
        for r, (key, caption) in enumerate(
            (
                ("model", "Model"),
                ("maker", "Manufacturer"),
                ("serial", "Serial / firmware"),
                ("envelope", "Unit limits"),
                ("applicator", "Applicator"),
                ("wear", "Applicator wear"),
                ("state", "Unit state"),
            )
        ):
            value = label("—")
            value.setObjectName(f"unit_{key}")
            self.identity.addWidget(label(caption, "muted", wrap=False), r, 0)
            self.identity.addWidget(value, r, 1)
            self.fields[key] = value
        self.identity.setColumnStretch(1, 1)
        unit.addLayout(self.identity)
        unit.addStretch(1)
        columns.addWidget(unit_card, 1)

        check_card, check = panel()
        check.addWidget(label("Parameters", "section"))
        self.plan_label = label("—")
        self.plan_label.setObjectName("unitPlan")
        self.plan_label.setStyleSheet("font-size: 14pt; font-weight: bold;")
        check.addWidget(self.plan_label)
        self.validation = Notice()
        self.validation.setObjectName("unitValidation")
        check.addWidget(self.validation)
        self.override_box = QWidget()
        override_layout = QHBoxLayout(self.override_box)
        override_layout.setContentsMargins(0, 0, 0, 0)
        self.override_reason = ReasonBox(
            "Why go outside the protocol range with this unit? (recorded)",
            MIN_OVERRIDE_REASON_CHARS,
        )
        self.override_button = button(
            "Validate with o&verride", role="caution", name="revalidateOverride"
        )
        override_layout.addWidget(self.override_reason, 1)
        override_layout.addWidget(self.override_button)
        self.override_box.hide()
        check.addWidget(self.override_box)
        check.addWidget(label("Arming checklist", "section"))
        self.interlocks = InterlockList()
        self.interlocks.setObjectName("interlockList")
        check.addWidget(self.interlocks)
        check.addStretch(1)
        columns.addWidget(check_card, 1)
        self.body.addLayout(columns, 1)

        self.connect_button = button("1. &Connect unit", role="primary", name="connectUnit")
        self.confirm_button = button(
            "2. Con&firm parameters",
            role="primary",
            name="confirmParameters",
            tooltip="You have checked the parameters above against the patient and the plan",
        )
        self.arm_button = button(
            "3. &Arm",
            role="primary",
            name="armUnit",
            tooltip="Arm the unit; it fires only after Start",
        )
        self.start_button = button("4. &Start delivery", role="primary", name="startDelivery")
        self.clear_fault_button = button("Clear unit fa&ult", role="caution", name="clearFault")
        self.replan_button = button("Change &plan", name="replan")
        self.abort = AbortBox()
        steps = QHBoxLayout()
        steps.addWidget(self.connect_button)
        steps.addWidget(self.confirm_button)
        steps.addWidget(self.arm_button)
        steps.addWidget(self.start_button)
        steps.addStretch(1)
        steps.addWidget(self.clear_fault_button)
        steps.addWidget(self.replan_button)
        self.body.addLayout(steps)
        self.body.addWidget(self.abort)
        self.actions = [
            self.connect_button,
            self.confirm_button,
            self.arm_button,
            self.start_button,
            self.clear_fault_button,
            self.replan_button,
            self.override_button,
        ]
        self.connect_button.clicked.connect(self.connect_requested)
        self.confirm_button.clicked.connect(self.confirm_requested)
        self.arm_button.clicked.connect(self.arm_requested)
        self.start_button.clicked.connect(self.start_requested)
        self.clear_fault_button.clicked.connect(self.clear_fault_requested)
        self.replan_button.clicked.connect(self.replan_requested)
        self.override_button.clicked.connect(
            lambda: self.revalidate_requested.emit(self.override_reason.text())
        )
        self.abort.abort_requested.connect(self.abort_requested)
        self._snapshot: SessionSnapshot | None = None
        self.update_actions()

    def set_link(self, description: str) -> None:
        self.link_label.setText(f"Link: {description}")

    def reset(self) -> None:
        self._snapshot = None
        for value in self.fields.values():
            value.setText("—")  # type: ignore[attr-defined]
        self.validation.clear()
        self.override_box.hide()
        self.override_reason.set_text("")
        self.abort.reset()
        self.clear_notice()
        self.update_actions()

    def _set(self, key: str, text: str) -> None:
        set_text(self.fields[key], text)  # type: ignore[arg-type]

    def show_snapshot(self, snapshot: SessionSnapshot) -> None:
        self._snapshot = snapshot
        set_text(self.plan_label, plan_text(snapshot.plan))
        identity, envelope, applicator = snapshot.identity, snapshot.envelope, snapshot.applicator
        if identity is not None:
            self._set("model", f"{identity.model} ({identity.modality.upper()})")
            self._set("maker", identity.manufacturer)
            self._set("serial", f"{identity.serial} / firmware {identity.firmware}")
        if envelope is not None:
            intensity = envelope.pressure_bar or envelope.field_mt
            unit = "bar" if envelope.pressure_bar is not None else "mT"
            parts = []
            if intensity is not None:
                parts.append(f"{intensity.minimum}–{intensity.maximum} {unit}")
            parts.append(f"{envelope.frequency_hz.minimum}–{envelope.frequency_hz.maximum} Hz")
            parts.append(f"≤ {envelope.pulses.maximum:,} pulses")
            self._set("envelope", " · ".join(parts))
        if applicator is not None:
            if applicator.present:
                limit = (
                    f", max {applicator.max_pressure_bar} bar"
                    if applicator.max_pressure_bar is not None
                    else ""
                )
                self._set("applicator", f"{applicator.type} {applicator.serial}{limit}")
                self._set(
                    "wear",
                    f"{applicator.shots_used:,} of {applicator.shots_rated:,} "
                    f"({applicator.wear_percent} %), {applicator.shots_remaining:,} remaining",
                )
            else:
                self._set("applicator", "none fitted")
                self._set("wear", "—")
        status = snapshot.last_status
        if status is not None:
            faults = f" — faults: {', '.join(status.faults)}" if status.faults else ""
            self._set("state", f"{status.state.value}, {status.temperature_c} °C{faults}")
        self._show_validation(snapshot)
        self.interlocks.show_interlocks(snapshot.interlocks)
        self.update_actions()

    def _show_validation(self, snapshot: SessionSnapshot) -> None:
        outcome = snapshot.validation
        if outcome is None or not snapshot.validated_against_unit:
            self.validation.show_lines(
                "Not yet checked against the unit",
                ["Connect the unit to check its limits."],
                "warning",
            )
            self.override_box.hide()
            return
        lines = [finding_line(f) for f in outcome.findings]
        if outcome.verdict is ValidationVerdict.REFUSED:
            self.validation.show_lines(
                "Refused by the unit's or applicator's limits",
                [*lines, "Change the plan."],
                "refuse",
            )
        elif outcome.verdict is ValidationVerdict.OVERRIDE_REQUIRED:
            recorded = snapshot.parameter_override_reason
            self.validation.show_lines(
                "Outside the protocol range",
                lines + ([f"Override recorded: {recorded}"] if recorded else []),
                "override_required",
            )
        else:
            confirmed = ["Confirmed by you."] if snapshot.confirmed else []
            self.validation.show_lines(
                "Valid for this unit and applicator", (lines or []) + confirmed, "ok"
            )
        self.override_box.setVisible(
            outcome.verdict is ValidationVerdict.OVERRIDE_REQUIRED
            and not snapshot.parameter_override_reason
        )

    def update_actions(self) -> None:
        snapshot = self._snapshot
        idle = not self.busy
        state = snapshot.state if snapshot else None
        allowed = snapshot.allowed if snapshot else frozenset()
        connected = state is SessionState.CONNECTED
        unit_fault = bool(
            snapshot and snapshot.last_status and snapshot.last_status.state is UnitState.FAULT
        )
        validation_ok = bool(
            snapshot
            and snapshot.validated_against_unit
            and snapshot.validation is not None
            and snapshot.validation.verdict is not ValidationVerdict.REFUSED
        )
        self.connect_button.setEnabled(idle and Action.CONNECT in allowed)
        self.confirm_button.setEnabled(
            idle and connected and validation_ok and not (snapshot and snapshot.confirmed)
        )
        self.arm_button.setEnabled(
            idle and Action.ARM in allowed and bool(snapshot and snapshot.all_interlocks_hold)
        )
        self.start_button.setEnabled(idle and Action.START in allowed)
        self.clear_fault_button.setVisible(connected and unit_fault)
        self.clear_fault_button.setEnabled(idle and connected and unit_fault)
        self.replan_button.setEnabled(
            idle and state in (SessionState.PLANNED, SessionState.CONNECTED)
        )
        self.override_button.setEnabled(idle and self.override_box.isVisible())
        self.abort.set_available(idle and Action.ABORT in allowed)
