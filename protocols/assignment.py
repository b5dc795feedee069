"""A movement programme assigned to a patient, and the programme rule of parameter validation.

"A shockwave or EMTT session requires an active programme" (clinical reference §6): treatment
only supports the patient's movement work, so without an active programme the session is
refused like any other limit, with what to do.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from enum import StrEnum

from protocols.findings import Layer, ValidationFinding
from protocols.modality import Modality
from protocols.programmes import ProgrammeLibrary, ProgrammeTemplate, default_programmes
from protocols.severity import Severity


class ProgrammeStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"


@dataclass(frozen=True, slots=True)
class ProgrammeAssignment:
    """Which template a patient follows, from when, in which phase, and whether it is running."""

    template_id: str
    template_version: str
    phase: int
    status: ProgrammeStatus
    start_date: date

    def __post_init__(self) -> None:
        if isinstance(self.phase, bool) or not isinstance(self.phase, int) or self.phase < 1:
            raise ValueError(f"a programme phase is a whole number from 1, got {self.phase!r}")
        if not isinstance(self.status, ProgrammeStatus):
            raise TypeError(f"status must be a ProgrammeStatus, got {self.status!r}")

    @classmethod
    def start(cls, template: ProgrammeTemplate, start_date: date) -> ProgrammeAssignment:
        return cls(template.id, template.version, 1, ProgrammeStatus.ACTIVE, start_date)

    def advance(self, template: ProgrammeTemplate) -> ProgrammeAssignment:
        """The next phase; the last phase advances to ``completed`` (discharge)."""
        self._check_template(template)
        if self.status is not ProgrammeStatus.ACTIVE:
            raise ValueError(f"a {self.status} programme cannot advance: resume it first")
        if self.phase >= len(template.phases):
            return replace(self, status=ProgrammeStatus.COMPLETED)
        return replace(self, phase=self.phase + 1)

    def with_status(self, status: ProgrammeStatus) -> ProgrammeAssignment:
        return replace(self, status=status)

    def to_record(self) -> dict[str, str | int]:
        return {
            "template_id": self.template_id,
            "template_version": self.template_version,
            "phase": self.phase,
            "status": self.status.value,
            "start_date": self.start_date.isoformat(),
        }

    def _check_template(self, template: ProgrammeTemplate) -> None:
        if template.id != self.template_id:
            raise ValueError(f"assignment is for {self.template_id}, not {template.id}")


def programme_finding(
    programme: ProgrammeAssignment | None,
    *,
    modality: Modality,
    session_date: date,
    templates: ProgrammeLibrary | None = None,
) -> ValidationFinding:
    """The programme layer's finding: ``refuse`` unless an active programme is in a real phase,
    else ``info`` naming the programme and phase the session belongs to."""
    templates = templates or default_programmes()
    label = modality.label

    def refuse(rule: str, value: str | int | None, message: str) -> ValidationFinding:
        return ValidationFinding(
            Layer.PROGRAMME,
            rule,
            "programme",
            value,
            "an active movement programme",
            Severity.REFUSE,
            message,
        )

    if programme is None:
        return refuse(
            "PROGRAMME-ACTIVE",
            None,
            f"the patient has no active movement programme; a {label} session only supports "
            "that work: assign a programme (and its phase) before treating",
        )
    if programme.status is not ProgrammeStatus.ACTIVE:
        return refuse(
            "PROGRAMME-ACTIVE",
            programme.status.value,
            f"the movement programme {programme.template_id} is {programme.status.value}: "
            f"resume it or assign a new one before a {label} session",
        )
    if programme.start_date > session_date:
        return refuse(
            "PROGRAMME-ACTIVE",
            programme.start_date,
            f"the movement programme starts on {programme.start_date.isoformat()}, after this "
            "session: start it first or correct its start date",
        )
    if programme.template_id not in templates:
        return refuse(
            "PROGRAMME-TEMPLATE",
            programme.template_id,
            f"programme template {programme.template_id!r} is not in the library: "
            "reassign the patient to a known programme",
        )
    template = templates.get(programme.template_id)
    if programme.phase > len(template.phases):
        return refuse(
            "PROGRAMME-PHASE",
            programme.phase,
            f"{template.title} has phases 1–{len(template.phases)}, not {programme.phase}: "
            "correct the patient's phase",
        )
    phase = template.phase(programme.phase)
    return ValidationFinding(
        Layer.PROGRAMME,
        "PROGRAMME-ACTIVE",
        "programme",
        programme.template_id,
        "an active movement programme",
        Severity.INFO,
        f"session belongs to {template.title}, phase {phase.number} of {len(template.phases)} "
        f"({phase.name}): tie the treatment to this phase's work",
    )
