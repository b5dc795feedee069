"""The clinical rules behind the workflow's ``ClinicalRules`` port, over ``protocols/``.

Converts what the unit reports (``device_drivers`` values) into the rules' own inputs and the
rules' verdicts into the workflow's vocabulary, keeping each rule's JSON record for the trail.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from console.session.ports import (
    Finding,
    PlannedParameters,
    ScreeningOutcome,
    ScreeningVerdict,
    SessionContext,
    ValidationOutcome,
    ValidationVerdict,
)
from device_drivers.interface import ApplicatorInfo, DeviceEnvelope, ValueRange
from protocols import (
    ApplicatorLimit,
    ApplicatorType,
    Limit,
    Modality,
    ProgrammeLibrary,
    ProtocolLibrary,
    RuleSet,
    SessionPlan,
    TreatmentProtocol,
    default_library,
    default_programmes,
    default_ruleset,
    screen,
    validate_plan,
)
from protocols import DeviceEnvelope as RulesEnvelope

#: Applicator types each unit model takes, with their pressure rating (ICD, reference unit), so
#: a refusal can say which applicator would allow the plan.
APPLICATOR_CATALOGUE: Mapping[str, tuple[ApplicatorType, ...]] = {
    "RPW-200": (
        ApplicatorType("R15", Decimal("4.00")),
        ApplicatorType("D20-S", Decimal("5.00")),
    ),
}


def _limit(value_range: ValueRange | None) -> Limit | None:
    if value_range is None:
        return None
    return Limit(value_range.minimum, value_range.maximum, value_range.step)


def rules_envelope(envelope: DeviceEnvelope, model: str) -> RulesEnvelope:
    pulses = _limit(envelope.pulses)
    frequency = _limit(envelope.frequency_hz)
    assert pulses is not None and frequency is not None
    return RulesEnvelope(
        modality=Modality(envelope.modality.value),
        frequency_hz=frequency,
        pulses=pulses,
        pressure_bar=_limit(envelope.pressure_bar),
        field_mt=_limit(envelope.field_mt),
        model=model,
    )


def rules_applicator(applicator: ApplicatorInfo | None) -> ApplicatorLimit | None:
    if applicator is None or not applicator.present:
        return None
    return ApplicatorLimit(
        type=applicator.type,
        serial=applicator.serial,
        max_pressure_bar=applicator.max_pressure_bar,
        shots_remaining=applicator.shots_remaining,
    )


def _protocol_bound(protocol: TreatmentProtocol, field: str, value: Any) -> Decimal | None:
    """The bound of the protocol's range that ``value`` of ``field`` lies beyond."""
    try:
        allowed = protocol.parameter(field)
        number = Decimal(value)
    except (KeyError, ValueError, TypeError, ArithmeticError):
        return None
    return Decimal(allowed.maximum) if number > allowed.maximum else Decimal(allowed.minimum)


def _plan(params: PlannedParameters) -> SessionPlan:
    return SessionPlan(
        frequency_hz=params.frequency_hz,
        pulses=params.pulses,
        pressure_bar=params.pressure_bar,
        field_mt=params.field_mt,
    )


class ProtocolRules:
    """``ClinicalRules`` over a protocol library, a contraindication rule set and programmes."""

    def __init__(
        self,
        library: ProtocolLibrary | None = None,
        ruleset: RuleSet | None = None,
        programmes: ProgrammeLibrary | None = None,
        device_model: str = "RPW-200",
    ) -> None:
        self.library = library or default_library()
        self.ruleset = ruleset or default_ruleset()
        self.programmes = programmes or default_programmes()
        self.device_model = device_model

    def protocol(self, protocol_id: str) -> TreatmentProtocol:
        return self.library.get(protocol_id)

    def screen(self, ctx: SessionContext, answers: Mapping[str, Any]) -> ScreeningOutcome:
        decision = screen(
            answers,
            modality=Modality(ctx.modality.value),
            protocol_id=ctx.protocol_id,
            birth_date=ctx.patient_birth_date,
            session_date=ctx.session_date,
            ruleset=self.ruleset,
            library=self.library,
        )
        findings = tuple(
            Finding(f.rule, f.severity.value, f.message, eligible_from=f.eligible_from)
            for f in decision.findings
        ) + tuple(
            Finding("INCOMPLETE", "incomplete", u.problem, field=u.key) for u in decision.unanswered
        )
        return ScreeningOutcome(
            verdict=ScreeningVerdict(decision.decision.value),
            findings=findings,
            answers=decision.answers,
            ruleset_version=decision.ruleset_version,
            record=decision.to_record(),
        )

    def validate(
        self,
        ctx: SessionContext,
        plan: PlannedParameters,
        envelope: DeviceEnvelope | None,
        applicator: ApplicatorInfo | None,
        model: str | None = None,
    ) -> ValidationOutcome:
        model = model or self.device_model
        result = validate_plan(
            _plan(plan),
            self.library.get(ctx.protocol_id),
            session_date=ctx.session_date,
            envelope=rules_envelope(envelope, model) if envelope is not None else None,
            applicator=rules_applicator(applicator),
            programme=ctx.programme,
            previous_sessions=ctx.course_history,
            supported_applicators=APPLICATOR_CATALOGUE.get(model, ()),
            programmes=self.programmes,
        )
        protocol = self.library.get(ctx.protocol_id)
        findings = tuple(
            Finding(
                f.rule,
                f.severity.value,
                f.message,
                field=f.field,
                value=f.value,
                limit=_protocol_bound(protocol, f.field, f.value)
                if f.rule == "PROTOCOL-RANGE"
                else None,
            )
            for f in result.findings
        )
        return ValidationOutcome(
            verdict=ValidationVerdict(result.decision.value),
            findings=findings,
            record=result.to_record(),
        )

    def defaults_for(self, protocol_id: str) -> dict[str, str | int]:
        """The protocol's default settings as a record (units in the keys, no floats)."""
        return SessionPlan.defaults_of(self.library.get(protocol_id)).to_record()

    def defaults(self, ctx: SessionContext) -> PlannedParameters:
        plan = SessionPlan.defaults_of(self.library.get(ctx.protocol_id))
        return PlannedParameters(
            frequency_hz=plan.frequency_hz,
            pulses=plan.pulses,
            pressure_bar=plan.pressure_bar,
            field_mt=plan.field_mt,
        )
