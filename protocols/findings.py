"""One finding of parameter validation: layer, field, value, limit, and what to do."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum

from protocols.modality import UNITS
from protocols.severity import Severity


class Layer(StrEnum):
    """Nested limits, outermost first: device ⊇ applicator ⊇ protocol; then course, programme."""

    DEVICE = "device"
    APPLICATOR = "applicator"
    PROTOCOL = "protocol"
    COURSE = "course"
    PROGRAMME = "programme"


@dataclass(frozen=True, slots=True)
class ValidationFinding:
    """``rule`` is a stable code (e.g. ``APPLICATOR-PRESSURE``) the record and tests can rely on;
    ``message`` says what is wrong and what to do."""

    layer: Layer
    rule: str
    field: str
    value: Decimal | int | date | str | None
    limit: str | None
    severity: Severity
    message: str

    def to_record(self) -> dict[str, str | None]:
        return {
            "layer": self.layer.value,
            "rule": self.rule,
            "field": self.field,
            "value": _text(self.value),
            "limit": self.limit,
            "severity": self.severity.value,
            "message": self.message,
        }


def _text(value: Decimal | int | date | str | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def show(field: str, value: Decimal | int) -> str:
    """A setting as a therapist reads it: ``4.5 bar``, ``4.0 bar``, ``2,000 pulses``, ``8.0 Hz``.

    Decimals keep every digit they have and show at least one decimal place, so a limit of 4 bar
    reads ``4.0 bar`` and a value of 2.55 bar is never shown rounded.
    """
    return f"{_number(field, value)} {UNITS.get(field, '')}".strip()


def show_range(field: str, minimum: Decimal | int, maximum: Decimal | int) -> str:
    """``1.5–3.5 bar``: an inclusive range with its unit once."""
    return f"{_number(field, minimum)}–{show(field, maximum)}"


def _number(field: str, value: Decimal | int) -> str:
    if field == "pulses" or isinstance(value, int):
        return f"{int(value):,}"
    exponent = value.normalize().as_tuple().exponent
    places = max(1, -exponent) if isinstance(exponent, int) else 1
    return f"{value:.{places}f}"
