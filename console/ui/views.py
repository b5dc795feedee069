"""Plain display values the screens are filled with (mapped from the application services).

The screens know only these; ``console/ui/adapters.py`` maps the services' values onto them, so
a renamed service field changes one mapping, not every screen.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class UserView:
    user_id: str
    name: str
    role: str


@dataclass(frozen=True, slots=True)
class PatientRow:
    patient_id: str
    pseudonym: str
    birth_year: int | None
    programme: str  # e.g. "Knee PFP — phase 2 of 4", or "no active programme"
    last_session: str  # e.g. "2025-03-04 knee-pt-epat (signed)", or "—"


@dataclass(frozen=True, slots=True)
class ExerciseView:
    name: str
    dosage: str  # e.g. "3 × 12, slow lowering"


@dataclass(frozen=True, slots=True)
class PillarView:
    name: str  # targeted strengthening, mobility, gait training, movement retraining
    exercises: tuple[ExerciseView, ...]


@dataclass(frozen=True, slots=True)
class ProgrammeView:
    title: str
    phase: str  # e.g. "Phase 2 of 4: load building"
    pillars: tuple[PillarView, ...]
    note: str = ""


@dataclass(frozen=True, slots=True)
class HistoryRow:
    session_date: str
    protocol: str
    pulses: str  # "2,000 / 2,000"
    pain: str  # "6 → 3"
    outcome: str  # "completed, signed"


@dataclass(frozen=True, slots=True)
class ProtocolChoice:
    protocol_id: str
    label: str
    modality: str  # "epat" | "emtt"


@dataclass(frozen=True, slots=True)
class UnfinishedView:
    """A session of this patient the console left open; it must be recovered first."""

    session_id: str
    text: str  # e.g. "2025-03-04 knee-pt-epat, left delivering"


@dataclass(frozen=True, slots=True)
class PatientView:
    patient: PatientRow
    programme: ProgrammeView | None
    history: tuple[HistoryRow, ...]
    protocols: tuple[ProtocolChoice, ...]
    unfinished: tuple[UnfinishedView, ...] = ()


@dataclass(frozen=True, slots=True)
class QuestionView:
    """One screening question. ``kind``: bool | choice_or_none | date_or_none | int."""

    key: str
    text: str
    kind: str
    choices: tuple[str, ...] = ()
    none_label: str = "none"


@dataclass(frozen=True, slots=True)
class FieldRangeView:
    """One plan field with the protocol's range and default, in the protocol's units."""

    name: str  # pressure_bar | field_mt | frequency_hz | pulses
    label: str
    unit: str
    minimum: Decimal
    maximum: Decimal
    default: Decimal


@dataclass(frozen=True, slots=True)
class ProtocolView:
    protocol_id: str
    title: str
    modality: str
    course: str
    fields: tuple[FieldRangeView, ...]


@dataclass(frozen=True, slots=True)
class SessionHeader:
    """Who and what the open session is about (the top bar shows the pseudonym only)."""

    pseudonym: str
    protocol: ProtocolView
    session_date: date
