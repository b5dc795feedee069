"""What the workflow needs from the clinical rules and from the record, as small ports.

The workflow is written against these so that its safety logic can be read on its own; the
adapters to ``protocols/`` and ``audit/`` live in ``console/session/adapters.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from device_drivers.interface import (
    ApplicatorInfo,
    DeviceEnvelope,
    DeviceParameters,
    Modality,
    TherapyDevice,
)
from protocols import ProgrammeAssignment

if TYPE_CHECKING:
    from console.session.recovery import RecoveryOutcome


class ScreeningVerdict(StrEnum):
    ALLOW = "allow"
    OVERRIDE_REQUIRED = "override_required"
    BLOCK = "block"
    INCOMPLETE = "incomplete"


class ValidationVerdict(StrEnum):
    OK = "ok"
    OVERRIDE_REQUIRED = "override_required"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class Finding:
    """One reason from the rules: what it is, how severe, and what to do."""

    rule: str
    severity: str
    message: str
    field: str | None = None
    eligible_from: date | None = None
    value: Any = None  # the planned value the finding is about (parameter findings)
    limit: Any = None  # the protocol bound it crosses, where there is one


@dataclass(frozen=True, slots=True)
class ScreeningOutcome:
    verdict: ScreeningVerdict
    findings: tuple[Finding, ...]
    answers: Mapping[str, Any]
    ruleset_version: str
    record: Mapping[str, Any]  # the rules' own JSON-ready record of the decision


@dataclass(frozen=True, slots=True)
class ValidationOutcome:
    verdict: ValidationVerdict
    findings: tuple[Finding, ...]
    record: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class PlannedParameters:
    """The therapist's plan for this session, in the protocol's units."""

    frequency_hz: Decimal
    pulses: int
    pressure_bar: Decimal | None = None
    field_mt: Decimal | None = None

    def for_device(self, pulses: int | None = None) -> DeviceParameters:
        return DeviceParameters(
            frequency_hz=self.frequency_hz,
            pulses=self.pulses if pulses is None else pulses,
            pressure_bar=self.pressure_bar,
            field_mt=self.field_mt,
        )


@dataclass(frozen=True, slots=True)
class SessionContext:
    """Who is treated, by whom, under which protocol and programme: fixed for one session."""

    session_id: str
    patient_id: str
    patient_birth_date: date
    therapist_id: str
    therapist_role: str
    modality: Modality
    protocol_id: str
    protocol_version: str
    session_date: date
    programme: ProgrammeAssignment | None  # the patient's programme assignment, if any
    course_history: tuple[date, ...] = field(default=())  # earlier sessions of this protocol


class ClinicalRules(Protocol):
    def screen(self, ctx: SessionContext, answers: Mapping[str, Any]) -> ScreeningOutcome: ...

    def validate(
        self,
        ctx: SessionContext,
        plan: PlannedParameters,
        envelope: DeviceEnvelope | None,
        applicator: ApplicatorInfo | None,
        model: str | None = None,
    ) -> ValidationOutcome: ...

    def defaults(self, ctx: SessionContext) -> PlannedParameters: ...


class SessionRecorder(Protocol):
    """Persists the session record and appends the audit trail; every call is durable."""

    def transition(
        self, ctx: SessionContext, old: str, new: str, action: str, data: Mapping[str, Any]
    ) -> None: ...

    def event(self, ctx: SessionContext, action: str, data: Mapping[str, Any]) -> None: ...

    def update(self, ctx: SessionContext, fields: Mapping[str, Any]) -> None: ...

    def sign(
        self, ctx: SessionContext, password: str, meaning: str, user_name: str | None = None
    ) -> Mapping[str, Any]: ...

    def signing_needs_user_name(self, ctx: SessionContext) -> bool: ...


class SessionGuards(Protocol):
    """What the workflow re-checks outside itself at arm and start, and how it reaches the unit
    again after a lost link: the record and the sign-in state, not the context's snapshot."""

    def programme(self, ctx: SessionContext) -> ProgrammeAssignment | None:
        """The patient's programme assignment as recorded now."""

    def user_problem(self, ctx: SessionContext) -> str | None:
        """Why the session's therapist may not act now (signed out, locked), or None."""

    def unit_problem(self, ctx: SessionContext, device_serial: str) -> str | None:
        """Why this unit may not be used for a new session now, or None."""

    def reopen_unit(self, ctx: SessionContext) -> TherapyDevice:
        """Open the session's unit again, taking it over even mid-treatment (lost link)."""

    def recover(self, ctx: SessionContext, cause: str) -> RecoveryOutcome:
        """Record the session by recovery (SES-RECOVER-1) as its signed-in therapist, with
        ``cause`` as what interrupted it (the record unavailable: SES-DB-1)."""
