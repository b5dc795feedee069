"""The plain, immutable inputs of parameter validation.

The console converts what the unit reports (integer centi-bar, deci-Hz, 0.5 mT steps) into these
values, so the rules never see a wire format and never see a float.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext

from protocols.library import TreatmentProtocol
from protocols.modality import Modality, parse_modality


def _require_decimal(name: str, value: object, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, Decimal):
        raise TypeError(f"{name} must be a Decimal, not {type(value).__name__}")
    if not value.is_finite():
        raise ValueError(f"{name} must be a finite number, got {value}")


def _require_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")


@dataclass(frozen=True, slots=True)
class Limit:
    """Inclusive limits of one setting; ``step``: the unit only takes ``minimum + k·step``."""

    minimum: Decimal
    maximum: Decimal
    step: Decimal | None = None

    def __post_init__(self) -> None:
        _require_decimal("minimum", self.minimum)
        _require_decimal("maximum", self.maximum)
        _require_decimal("step", self.step, optional=True)
        if self.minimum > self.maximum:
            raise ValueError(f"limit minimum {self.minimum} is above its maximum {self.maximum}")
        if self.step is not None and self.step <= 0:
            raise ValueError(f"limit step must be above zero, got {self.step}")

    def on_step(self, value: Decimal | int) -> bool:
        """Whether the unit can take ``value`` exactly (always, without a step)."""
        if self.step is None:
            return True
        with localcontext() as context:
            context.prec = 200
            try:
                return (Decimal(value) - self.minimum) % self.step == 0
            except InvalidOperation:  # a quotient beyond any real unit's resolution
                return False

    def settings_near(self, value: Decimal | int) -> tuple[Decimal, ...]:
        """The unit's settings just below and above an off-step ``value`` inside the limit."""
        if self.step is None:
            return ()
        with localcontext() as context:
            context.prec = 200
            try:
                below = self.minimum + ((Decimal(value) - self.minimum) // self.step) * self.step
            except InvalidOperation:
                return ()
            candidates = (below, below + self.step)
        return tuple(c for c in candidates if self.minimum <= c <= self.maximum)


@dataclass(frozen=True, slots=True)
class DeviceEnvelope:
    """The connected unit's own limits as it reports them; exactly one intensity limit."""

    modality: Modality
    frequency_hz: Limit
    pulses: Limit
    pressure_bar: Limit | None = None
    field_mt: Limit | None = None
    model: str = "the unit"

    def __post_init__(self) -> None:
        # Accept any str-valued modality enum (the drivers have their own) but store ours, so
        # comparisons by identity hold.
        modality = parse_modality(self.modality)
        if modality is None:
            raise ValueError(f"unknown modality {self.modality!r} (known: epat, emtt)")
        object.__setattr__(self, "modality", modality)
        for field in ("frequency_hz", "pulses", "pressure_bar", "field_mt"):
            value = getattr(self, field)
            if value is not None and not isinstance(value, Limit):
                raise TypeError(f"{field} must be a protocols Limit, not {type(value).__name__}")
        if getattr(self, modality.intensity_field) is None:
            raise ValueError(f"an {modality.label} envelope needs {modality.intensity_field}")

    def limit(self, field: str) -> Limit | None:
        return getattr(self, field)


@dataclass(frozen=True, slots=True)
class ApplicatorLimit:
    """The fitted applicator: its type's pressure rating (None: no rating) and remaining life."""

    type: str
    serial: str
    max_pressure_bar: Decimal | None
    shots_remaining: int

    def __post_init__(self) -> None:
        _require_decimal("max_pressure_bar", self.max_pressure_bar, optional=True)
        _require_count("shots_remaining", self.shots_remaining)


@dataclass(frozen=True, slots=True)
class ApplicatorType:
    """An applicator type the unit supports, for "fit the D20-S" advice."""

    type: str
    max_pressure_bar: Decimal | None

    def __post_init__(self) -> None:
        _require_decimal("max_pressure_bar", self.max_pressure_bar, optional=True)


@dataclass(frozen=True, slots=True)
class SessionPlan:
    """The therapist's settings for one session; exactly one of pressure (EPAT) / field (EMTT)."""

    frequency_hz: Decimal
    pulses: int
    pressure_bar: Decimal | None = None
    field_mt: Decimal | None = None

    def __post_init__(self) -> None:
        _require_decimal("frequency_hz", self.frequency_hz)
        _require_count("pulses", self.pulses)
        _require_decimal("pressure_bar", self.pressure_bar, optional=True)
        _require_decimal("field_mt", self.field_mt, optional=True)
        if (self.pressure_bar is None) == (self.field_mt is None):
            raise ValueError("a plan sets exactly one of pressure_bar (EPAT) or field_mt (EMTT)")

    @property
    def modality(self) -> Modality:
        return Modality.EPAT if self.pressure_bar is not None else Modality.EMTT

    def settings(self) -> Mapping[str, Decimal | int]:
        """Each setting of the plan's modality by field name, in display order."""
        return {field: getattr(self, field) for field in self.modality.fields}

    def to_record(self) -> dict[str, str | int]:
        return {
            field: value if isinstance(value, int) else str(value)
            for field, value in self.settings().items()
        }

    @classmethod
    def defaults_of(cls, protocol: TreatmentProtocol) -> SessionPlan:
        """The protocol's default settings as a plan (the starting point of titration)."""
        defaults = protocol.defaults
        intensity = protocol.modality.intensity_field
        return cls(
            frequency_hz=defaults["frequency_hz"],
            pulses=int(defaults["pulses"]),
            **{intensity: defaults[intensity]},
        )
