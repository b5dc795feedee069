"""The record's values as handed out of ``audit/``: frozen, with JSON parts deep-frozen.

Nested JSON (parameters, screening, titrations …) comes back as read-only mappings and tuples,
so no caller can change a record by mutating what it was given; ``thaw`` makes plain JSON again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType
from typing import Any


def freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [thaw(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class UserRecord:
    user_id: str
    full_name: str
    role: str
    active: bool
    locked: bool
    failed_logins: int
    created_at: str
    password_changed_at: str


@dataclass(frozen=True, slots=True)
class UserCredentials:
    """What the login service needs; never shown or logged."""

    user_id: str
    full_name: str
    role: str
    password_hash: str
    active: bool
    locked: bool
    failed_logins: int


@dataclass(frozen=True, slots=True)
class PatientRecord:
    patient_id: str
    pseudonym: str
    birth_date: date
    created_at: str


@dataclass(frozen=True, slots=True)
class PhaseRecord:
    phase: int
    started_on: date
    ended_on: date | None
    note: str


@dataclass(frozen=True, slots=True)
class ProgrammeRecord:
    programme_id: str
    patient_id: str
    template_id: str
    template_version: str
    current_phase: int
    status: str
    start_date: date
    end_date: date | None
    end_reason: str | None
    phases: tuple[PhaseRecord, ...]


@dataclass(frozen=True, slots=True)
class SignatureRecord:
    """An electronic signature as shown: who (name and id), when, what it means."""

    session_id: str
    signer_id: str
    signer_name: str
    signed_at: str
    meaning: str
    content_hash: str
    audit_seq: int

    def manifestation(self) -> str:
        """The text shown with the signed record (21 CFR 11.50)."""
        return (
            f"Signed by {self.signer_name} ({self.signer_id}) on {self.signed_at} UTC — "
            f"{self.meaning}"
        )


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    signature: SignatureRecord
    valid: bool
    reason: str


@dataclass(frozen=True, slots=True)
class SessionEventRecord:
    audit_seq: int
    ts: str
    action: str
    data: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A treatment session as clinical-reference §5 describes it."""

    session_id: str
    patient_id: str
    programme_id: str | None
    programme_phase: int | None
    protocol_id: str
    protocol_version: str
    modality: str
    therapist_id: str
    session_date: date
    state: str
    device_model: str | None
    device_serial: str | None
    applicator_type: str | None
    applicator_serial: str | None
    applicator_shots_before: int | None
    applicator_shots_after: int | None
    parameters: Mapping[str, Any] | None
    validation: Mapping[str, Any] | None
    parameter_override_reason: str | None
    titrations: tuple[Any, ...]
    delivered: int | None
    segments: tuple[Any, ...]
    interruptions: tuple[Any, ...]
    faults: tuple[Any, ...]
    end_reason: str | None
    screening_answers: Mapping[str, Any] | None
    screening: Mapping[str, Any] | None
    screening_decision: str | None
    screening_override_reason: str | None
    pain_before: int | None
    pain_after: int | None
    treatment_points: tuple[Any, ...]
    adverse_events: tuple[str, ...]
    notes: str
    created_at: str
    updated_at: str
    signatures: tuple[SignatureRecord, ...]
    count_status: str | None = None  # "confirmed" | "unconfirmed"; None before it is established
    delivered_min: int | None = None
    delivered_max: int | None = None
    count_evidence: Mapping[str, Any] | None = None
    arm_snapshot: Mapping[str, Any] | None = None
