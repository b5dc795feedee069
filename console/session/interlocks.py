"""The arming interlocks: every condition that must hold before a unit may be armed.

Evaluated as a list so the GUI can show each one with its reason, the workflow can refuse with
all of them at once, and the audit trail can store exactly which held.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from console.session.ports import (
    Finding,
    PlannedParameters,
    ScreeningOutcome,
    ScreeningVerdict,
    ValidationOutcome,
    ValidationVerdict,
)
from protocols import MIN_REASON_CHARS, ProgrammeAssignment, ProgrammeStatus

#: One rule for every override reason, owned by the clinical rules.
MIN_OVERRIDE_REASON_CHARS = MIN_REASON_CHARS


@dataclass(frozen=True, slots=True)
class Interlock:
    name: str
    held: bool
    reason: str


def override_reason_problem(reason: str | None) -> str | None:
    """Why an override reason is not acceptable, or None when it is."""
    if reason is None or len(reason.strip()) < MIN_OVERRIDE_REASON_CHARS:
        return (
            f"an override needs a written reason of at least {MIN_OVERRIDE_REASON_CHARS} characters"
        )
    return None


def override_covers(covered: Mapping[tuple[str, str | None], Finding], finding: Finding) -> bool:
    """Whether an override already given covers ``finding`` (SES-OVR-1): it covers exactly the
    value it was written for, or a value between that one and the protocol's limit — never a
    value further out, which needs a new reason."""
    given = covered.get((finding.rule, finding.field))
    if given is None:
        return False
    if given.value == finding.value:
        return True
    if finding.limit is None or given.limit != finding.limit:
        return False
    try:
        value, written, limit = (
            Decimal(str(v)) for v in (finding.value, given.value, finding.limit)
        )
    except (InvalidOperation, ValueError):
        return False
    return limit < value <= written or written <= value < limit


def parameters_interlock(
    plan: PlannedParameters | None,
    validated: PlannedParameters | None,
    confirmed: PlannedParameters | None,
) -> Interlock:
    """The parameters about to be used are the ones validated and confirmed (SES-ARM-6)."""
    if plan is None or validated is None:
        return Interlock("PARAMETERS_UNCHANGED", False, "no validated parameters yet")
    if plan != validated:
        return Interlock(
            "PARAMETERS_UNCHANGED", False, "the parameters changed since they were validated"
        )
    if confirmed is not None and plan != confirmed:
        return Interlock(
            "PARAMETERS_UNCHANGED", False, "the parameters changed since they were confirmed"
        )
    return Interlock("PARAMETERS_UNCHANGED", True, "as validated and confirmed")


def user_interlock(problem: str | None) -> Interlock:
    return Interlock("USER_SIGNED_IN", problem is None, problem or "the therapist is signed in")


def screening_interlocks(
    screening: ScreeningOutcome | None, override_reason: str | None
) -> list[Interlock]:
    if screening is None:
        return [Interlock("SCREENING_COMPLETE", False, "the screening has not been done")]
    if screening.verdict is ScreeningVerdict.INCOMPLETE:
        missing = ", ".join(f.field or f.rule for f in screening.findings) or "some answers"
        return [Interlock("SCREENING_COMPLETE", False, f"screening incomplete: {missing}")]
    checks = [Interlock("SCREENING_COMPLETE", True, "every question answered")]
    if screening.verdict is ScreeningVerdict.BLOCK:
        rules = ", ".join(f.rule for f in screening.findings if f.severity == "block")
        checks.append(
            Interlock("SCREENING_NOT_BLOCKED", False, f"contraindicated ({rules}): cannot treat")
        )
        return checks
    checks.append(Interlock("SCREENING_NOT_BLOCKED", True, "no absolute contraindication"))
    if screening.verdict is ScreeningVerdict.OVERRIDE_REQUIRED:
        problem = override_reason_problem(override_reason)
        checks.append(
            Interlock(
                "SCREENING_OVERRIDE",
                problem is None,
                problem or "relative contraindication overridden with a recorded reason",
            )
        )
    return checks


def validation_interlocks(
    validation: ValidationOutcome | None,
    override_reason: str | None,
    *,
    against_unit: bool,
    confirmed: bool,
) -> list[Interlock]:
    if validation is None:
        return [Interlock("PARAMETERS_VALID", False, "no parameters planned")]
    checks: list[Interlock] = []
    if not against_unit:
        checks.append(
            Interlock("PARAMETERS_VALID", False, "not yet validated against the connected unit")
        )
    elif validation.verdict is ValidationVerdict.REFUSED:
        reasons = "; ".join(f.message for f in validation.findings if f.severity == "refuse")
        checks.append(Interlock("PARAMETERS_VALID", False, reasons or "parameters refused"))
    else:
        checks.append(Interlock("PARAMETERS_VALID", True, "inside device, applicator limits"))
        if validation.verdict is ValidationVerdict.OVERRIDE_REQUIRED:
            problem = override_reason_problem(override_reason)
            checks.append(
                Interlock(
                    "PARAMETERS_OVERRIDE",
                    problem is None,
                    problem or "outside the protocol or course, overridden with a reason",
                )
            )
    checks.append(
        Interlock(
            "PARAMETERS_CONFIRMED",
            confirmed,
            "confirmed by the therapist" if confirmed else "the therapist has not confirmed them",
        )
    )
    return checks


def programme_interlock(programme: ProgrammeAssignment | None) -> Interlock:
    if programme is None or programme.status is not ProgrammeStatus.ACTIVE:
        return Interlock(
            "PROGRAMME_ACTIVE",
            False,
            "the patient has no active movement programme: assign or resume one before treating",
        )
    return Interlock("PROGRAMME_ACTIVE", True, f"{programme.template_id}, phase {programme.phase}")


def role_interlock(role: str) -> Interlock:
    ok = role == "therapist"
    return Interlock("ROLE_THERAPIST", ok, "therapist" if ok else f"a {role} may not treat")
