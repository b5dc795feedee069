"""Layered, explained parameter validation: device ⊇ applicator ⊇ protocol ⊇ the plan.

Every layer is checked and every finding reported (the therapist sees all reasons at once):

- outside the device envelope or the applicator's limits: ``refuse`` — no override exists;
- outside the protocol range, too soon, or more sessions than the course: ``override_required``
  — a therapist may proceed with a written reason;
- no active movement programme: ``refuse``.

Nothing is ever clamped: a finding says what to change; the plan stays what the therapist set.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any

from protocols.assignment import ProgrammeAssignment, programme_finding
from protocols.course import course_findings
from protocols.errors import OverrideNotAllowed
from protocols.findings import Layer, ValidationFinding, show, show_range
from protocols.library import TreatmentProtocol
from protocols.limits import ApplicatorLimit, ApplicatorType, DeviceEnvelope, SessionPlan
from protocols.modality import LABELS
from protocols.overrides import Override, make_override
from protocols.programmes import ProgrammeLibrary
from protocols.severity import Severity, strictest


class ValidationDecision(StrEnum):
    OK = "ok"
    OVERRIDE_REQUIRED = "override_required"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class ValidationResult:
    decision: ValidationDecision
    findings: tuple[ValidationFinding, ...]
    plan: SessionPlan
    protocol_id: str
    protocol_version: str
    session_date: date
    override: Override | None = None

    @property
    def accepted(self) -> bool:
        """Inside every limit, or outside only protocol/course with a recorded override."""
        if self.decision is ValidationDecision.OK:
            return True
        return self.decision is ValidationDecision.OVERRIDE_REQUIRED and self.override is not None

    def with_override(self, reason: str, role: str, user_id: str | None = None) -> ValidationResult:
        """This result with a therapist's written override of its ``override_required`` findings.

        :class:`OverrideNotAllowed` when any finding is ``refuse`` (device, applicator or
        programme): those limits cannot be overridden anywhere.
        """
        refused = [f for f in self.findings if f.severity is Severity.REFUSE]
        if refused:
            raise OverrideNotAllowed(
                "outside what the unit, the applicator or the programme allows — no override "
                "is possible: " + "; ".join(f.message for f in refused)
            )
        if self.decision is ValidationDecision.OK:
            raise OverrideNotAllowed("nothing to override: the plan is inside every limit")
        return replace(self, override=make_override(reason, role, user_id))

    def to_record(self) -> dict[str, Any]:
        return {
            "decision": self.decision.value,
            "accepted": self.accepted,
            "findings": [f.to_record() for f in self.findings],
            "plan": self.plan.to_record(),
            "protocol": self.protocol_id,
            "protocol_version": self.protocol_version,
            "session_date": self.session_date.isoformat(),
            "override": self.override.to_record() if self.override else None,
        }


def validate_plan(
    plan: SessionPlan,
    protocol: TreatmentProtocol,
    *,
    session_date: date,
    envelope: DeviceEnvelope | None,
    applicator: ApplicatorLimit | None,
    programme: ProgrammeAssignment | None,
    previous_sessions: Iterable[date] = (),
    supported_applicators: Sequence[ApplicatorType] = (),
    programmes: ProgrammeLibrary | None = None,
) -> ValidationResult:
    """Check ``plan`` against every layer and explain each finding.

    ``envelope``/``applicator`` None mean no unit / no applicator is connected: refused (the
    plan cannot be cleared against limits nobody has reported). ``previous_sessions`` are the
    dates of this patient's earlier sessions of ``protocol``.
    """
    findings: list[ValidationFinding] = []
    findings += _modality_findings(plan, protocol, envelope)
    findings += _device_findings(plan, envelope)
    findings += _applicator_findings(plan, applicator, supported_applicators, envelope)
    findings += _protocol_findings(plan, protocol)
    findings += course_findings(protocol, session_date, previous_sessions)
    findings.append(
        programme_finding(
            programme, modality=protocol.modality, session_date=session_date, templates=programmes
        )
    )
    worst = strictest(f.severity for f in findings)
    if worst is Severity.REFUSE:
        decision = ValidationDecision.REFUSED
    elif worst is Severity.OVERRIDE_REQUIRED:
        decision = ValidationDecision.OVERRIDE_REQUIRED
    else:
        decision = ValidationDecision.OK
    return ValidationResult(
        decision=decision,
        findings=tuple(findings),
        plan=plan,
        protocol_id=protocol.id,
        protocol_version=protocol.version,
        session_date=session_date,
    )


def _refuse(
    layer: Layer, rule: str, field: str, value: Any, limit: str | None, message: str
) -> ValidationFinding:
    return ValidationFinding(layer, rule, field, value, limit, Severity.REFUSE, message)


def _modality_findings(
    plan: SessionPlan, protocol: TreatmentProtocol, envelope: DeviceEnvelope | None
) -> list[ValidationFinding]:
    findings = []
    if plan.modality is not protocol.modality:
        findings.append(
            _refuse(
                Layer.PROTOCOL,
                "PLAN-MODALITY",
                "modality",
                plan.modality.value,
                protocol.modality.value,
                f"the plan sets {LABELS[plan.modality.intensity_field]} ({plan.modality.label}) "
                f"but {protocol.id} is an {protocol.modality.label} protocol: plan its "
                f"{LABELS[protocol.modality.intensity_field]} instead",
            )
        )
    if envelope is not None and envelope.modality is not protocol.modality:
        findings.append(
            _refuse(
                Layer.DEVICE,
                "DEVICE-MODALITY",
                "modality",
                envelope.modality.value,
                protocol.modality.value,
                f"the connected unit ({envelope.model}) is an {envelope.modality.label} unit but "
                f"{protocol.id} is an {protocol.modality.label} protocol: connect an "
                f"{protocol.modality.label} unit or choose an {envelope.modality.label} protocol",
            )
        )
    return findings


def _device_findings(plan: SessionPlan, envelope: DeviceEnvelope | None) -> list[ValidationFinding]:
    if envelope is None:
        return [
            _refuse(
                Layer.DEVICE,
                "DEVICE-ENVELOPE",
                "envelope",
                None,
                None,
                "no unit is connected, so its limits are unknown: connect the unit and validate "
                "again",
            )
        ]
    findings = []
    for field, value in plan.settings().items():
        limit = envelope.limit(field)
        label = LABELS[field]
        if limit is None:
            findings.append(
                _refuse(
                    Layer.DEVICE,
                    "DEVICE-RANGE",
                    field,
                    value,
                    None,
                    f"{envelope.model} reports no {label} range, so it cannot take "
                    f"{show(field, value)}: connect the right unit",
                )
            )
            continue
        span = show_range(field, limit.minimum, limit.maximum)
        if value > limit.maximum:
            findings.append(
                _refuse(
                    Layer.DEVICE,
                    "DEVICE-RANGE",
                    field,
                    value,
                    f"≤ {show(field, limit.maximum)}",
                    f"{show(field, value)} is above {envelope.model}'s maximum "
                    f"{show(field, limit.maximum)}: lower the {label} to "
                    f"{show(field, limit.maximum)} or less",
                )
            )
        elif value < limit.minimum:
            findings.append(
                _refuse(
                    Layer.DEVICE,
                    "DEVICE-RANGE",
                    field,
                    value,
                    f"≥ {show(field, limit.minimum)}",
                    f"{show(field, value)} is below {envelope.model}'s minimum "
                    f"{show(field, limit.minimum)}: raise the {label} to "
                    f"{show(field, limit.minimum)} or more",
                )
            )
        elif not limit.on_step(value):
            near = " or ".join(show(field, v) for v in limit.settings_near(value))
            choose = f": choose {near}" if near else ": choose a setting the unit offers"
            findings.append(
                _refuse(
                    Layer.DEVICE,
                    "DEVICE-STEP",
                    field,
                    value,
                    f"{span} in steps of {limit.step}",
                    f"{show(field, value)} is not a setting of {envelope.model} ({span} in steps "
                    f"of {limit.step}){choose}",
                )
            )
    return findings


def _applicator_findings(
    plan: SessionPlan,
    applicator: ApplicatorLimit | None,
    supported: Sequence[ApplicatorType],
    envelope: DeviceEnvelope | None,
) -> list[ValidationFinding]:
    def unit_allows(pressure: Decimal) -> bool:
        # advise another applicator only where the unit itself can deliver the pressure
        limit = envelope.pressure_bar if envelope is not None else None
        return (
            limit is not None
            and limit.minimum <= pressure <= limit.maximum
            and (limit.on_step(pressure))
        )

    if applicator is None:
        return [
            _refuse(
                Layer.APPLICATOR,
                "APPLICATOR-ABSENT",
                "applicator",
                None,
                None,
                "no applicator is fitted: fit one and validate again",
            )
        ]
    findings = []
    name = f"the {applicator.type} applicator"
    pressure = plan.pressure_bar
    rated = applicator.max_pressure_bar
    if pressure is not None and rated is not None and pressure > rated:
        fits = [
            t.type
            for t in supported
            if t.type != applicator.type
            and t.max_pressure_bar is not None
            and t.max_pressure_bar >= pressure
            and unit_allows(pressure)
        ]
        fit = f"fit the {' or the '.join(fits)} applicator or lower" if fits else "lower"
        findings.append(
            _refuse(
                Layer.APPLICATOR,
                "APPLICATOR-PRESSURE",
                "pressure_bar",
                pressure,
                f"≤ {show('pressure_bar', rated)} ({applicator.type})",
                f"{show('pressure_bar', pressure)} is above {name}'s "
                f"{show('pressure_bar', rated)}: {fit} the pressure to "
                f"{show('pressure_bar', rated)} or less",
            )
        )
    if plan.pulses > applicator.shots_remaining:
        remaining = applicator.shots_remaining
        if remaining <= 0:
            advice = f"{name} (serial {applicator.serial}) is worn out: replace it"
        else:
            advice = (
                f"{name} (serial {applicator.serial}) has {remaining:,} shots left: fit a new "
                f"applicator or plan at most {remaining:,} pulses"
            )
        findings.append(
            _refuse(
                Layer.APPLICATOR,
                "APPLICATOR-LIFE",
                "pulses",
                plan.pulses,
                f"≤ {remaining:,} pulses (remaining life)",
                f"{show('pulses', plan.pulses)} exceed the applicator's remaining life: {advice}",
            )
        )
    return findings


def _protocol_findings(plan: SessionPlan, protocol: TreatmentProtocol) -> list[ValidationFinding]:
    if plan.modality is not protocol.modality:
        return []  # already refused as a modality mismatch
    findings = []
    for field, value in plan.settings().items():
        allowed = protocol.parameter(field)
        if allowed.contains(Decimal(value)):
            continue
        label = LABELS[field]
        span = show_range(field, allowed.minimum, allowed.maximum)
        if value > allowed.maximum:
            where, bound, direction = "above", allowed.maximum, "lower it to"
            tail = "or less"
        else:
            where, bound, direction = "below", allowed.minimum, "raise it to"
            tail = "or more"
        findings.append(
            ValidationFinding(
                Layer.PROTOCOL,
                "PROTOCOL-RANGE",
                field,
                value,
                f"{span} ({protocol.id})",
                Severity.OVERRIDE_REQUIRED,
                f"{show(field, value)} {label} is {where} the {protocol.id} protocol's "
                f"{show(field, bound)} (range {span}): {direction} {show(field, bound)} {tail}, "
                "or record an override with a written reason",
            )
        )
    return findings
