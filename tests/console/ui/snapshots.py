"""Hand-made session snapshots for screen tests (plain values, as the session thread makes)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from console.session.interlocks import Interlock
from console.session.ports import PlannedParameters
from console.session.states import SessionState, allowed_actions
from console.ui.snapshot import SessionSnapshot
from console.ui.views import FieldRangeView, ProtocolView, QuestionView

PLAN = PlannedParameters(frequency_hz=Decimal("8"), pulses=2000, pressure_bar=Decimal("2.5"))

PROTOCOL = ProtocolView(
    protocol_id="knee-pt-epat",
    title="Patellar tendinopathy (EPAT)",
    modality="epat",
    course="3 sessions, 6–10 days apart",
    fields=(
        FieldRangeView(
            "pressure_bar", "Pressure", "bar", Decimal("1.5"), Decimal("3.5"), Decimal("2.5")
        ),
        FieldRangeView(
            "frequency_hz", "Frequency", "Hz", Decimal("4"), Decimal("10"), Decimal("8")
        ),
        FieldRangeView(
            "pulses", "Pulses", "pulses", Decimal("1500"), Decimal("2500"), Decimal("2000")
        ),
    ),
)

QUESTIONS = (
    QuestionView("pregnant", "Pregnant or possibly pregnant?", "bool"),
    QuestionView(
        "active_implant",
        "Active implanted device?",
        "choice_or_none",
        ("pacemaker", "icd", "neurostimulator"),
    ),
    QuestionView(
        "corticosteroid_injection_date",
        "Corticosteroid injection at this site?",
        "date_or_none",
        none_label="none at this site",
    ),
    QuestionView("failed_conservative_care_months", "Months of failed conservative care", "int"),
)


def snapshot(state: SessionState = SessionState.SCREENING, **changes: Any) -> SessionSnapshot:
    base = SessionSnapshot(
        state=state,
        allowed=allowed_actions(state),
        delivered=0,
        target=0,
        interlocks=(Interlock("SCREENING_COMPLETE", False, "the screening has not been done"),),
        screening=None,
        screening_override_reason=None,
        plan=None,
        validation=None,
        validated_against_unit=False,
        parameter_override_reason=None,
        confirmed=False,
        identity=None,
        envelope=None,
        applicator=None,
        last_status=None,
        unit_connected=False,
        end_reason=None,
        titrations=0,
    )
    return replace(base, **changes)
