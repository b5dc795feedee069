"""Shared builders for the clinical-rules tests: a clean questionnaire and typical limits."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from protocols import (
    ApplicatorLimit,
    ApplicatorType,
    DeviceEnvelope,
    Limit,
    Modality,
    ProgrammeAssignment,
    ProgrammeStatus,
)

#: The clinic's vignettes, copied from ``../shared/vignettes`` into the repository so a fresh
#: clone tests them with nothing beside it (the shared folder is a read-only contract, not a
#: test-time dependency).
VIGNETTES = Path(__file__).resolve().parent / "data" / "vignettes"

#: Nothing to report: every key answered, no finding (clinical reference §4).
CLEAN_ANSWERS: dict[str, Any] = {
    "pregnant": False,
    "malignancy_in_area": False,
    "infection_at_site": False,
    "active_implant": None,
    "active_implant_in_field": False,
    "coagulation_disorder": False,
    "anticoagulants": False,
    "thrombosis_in_limb": False,
    "corticosteroid_injection_date": None,
    "open_growth_plates": False,
    "metal_implant_in_field": False,
    "epilepsy": False,
    "polyneuropathy": False,
    "tendon_rupture": False,
    "fever": False,
    "nsaids": False,
    "failed_conservative_care_months": 0,
}

SESSION = date(2026, 11, 24)
ADULT = date(1980, 5, 17)


def answers(**changes: Any) -> dict[str, Any]:
    """The clean questionnaire with ``changes`` applied."""
    result = dict(CLEAN_ANSWERS)
    result.update(changes)
    return result


def epat_envelope() -> DeviceEnvelope:
    """The reference RPW-200 as the driver reports it (centi-bar, deci-Hz resolution)."""
    return DeviceEnvelope(
        modality=Modality.EPAT,
        frequency_hz=Limit(Decimal("1.0"), Decimal("21.0"), Decimal("0.1")),
        pulses=Limit(Decimal(1), Decimal(10000), Decimal(1)),
        pressure_bar=Limit(Decimal("1.00"), Decimal("5.00"), Decimal("0.01")),
        model="RPW-200",
    )


def emtt_envelope() -> DeviceEnvelope:
    """The reference EMT-100: 5–80 mT and 1–10 Hz in 0.5 steps, 1–10000 pulses."""
    return DeviceEnvelope(
        modality=Modality.EMTT,
        frequency_hz=Limit(Decimal("1.0"), Decimal("10.0"), Decimal("0.5")),
        pulses=Limit(Decimal(1), Decimal(10000), Decimal(1)),
        field_mt=Limit(Decimal("5.0"), Decimal("80.0"), Decimal("0.5")),
        model="EMT-100",
    )


R15 = ApplicatorLimit("R15", "R15-0001", Decimal("4.00"), 900_000)
D20S = ApplicatorLimit("D20-S", "D20-0001", Decimal("5.00"), 1_400_000)
EMT_A1 = ApplicatorLimit("EMT-A1", "A1-0001", None, 4_000_000)
EPAT_TYPES = (ApplicatorType("R15", Decimal("4.00")), ApplicatorType("D20-S", Decimal("5.00")))


def active_programme(phase: int = 1) -> ProgrammeAssignment:
    return ProgrammeAssignment(
        "knee-load-sharing", "2026.1", phase, ProgrammeStatus.ACTIVE, date(2026, 10, 1)
    )
