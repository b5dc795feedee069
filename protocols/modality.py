"""The treatment modalities and the physical settings each one has, with their units."""

from __future__ import annotations

from enum import StrEnum


class Modality(StrEnum):
    """Same values as ``device_drivers.interface.Modality`` (the console maps one to the other)."""

    EPAT = "epat"
    EMTT = "emtt"

    @property
    def label(self) -> str:
        return self.value.upper()

    @property
    def intensity_field(self) -> str:
        """The setting that sets the dose: driving pressure (EPAT) or field intensity (EMTT)."""
        return "pressure_bar" if self is Modality.EPAT else "field_mt"

    @property
    def fields(self) -> tuple[str, ...]:
        """Every setting a session of this modality has, in display order."""
        return (self.intensity_field, "frequency_hz", "pulses")


#: Unit of each setting; the unit is also in every setting's name.
UNITS = {"pressure_bar": "bar", "field_mt": "mT", "frequency_hz": "Hz", "pulses": "pulses"}

#: Words for each setting in messages.
LABELS = {
    "pressure_bar": "pressure",
    "field_mt": "field intensity",
    "frequency_hz": "frequency",
    "pulses": "pulse count",
}


def parse_modality(value: object) -> Modality | None:
    """The modality named by ``value`` (exactly ``epat`` or ``emtt``), else None."""
    if isinstance(value, str):
        try:
            return Modality(value)
        except ValueError:
            return None
    return None


def with_unit(field: str, value: object) -> str:
    """``4.5 bar``, ``2000 pulses``: a value as a therapist reads it."""
    return f"{value} {UNITS[field]}"
