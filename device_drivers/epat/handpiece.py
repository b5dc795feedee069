"""Physics of the simulated handpiece: its temperature and the fitted applicator.

Thermal model: first-order, heating ∝ pressure × frequency while firing, cooling toward ambient
with time constant ``THERMAL_TAU_S`` (simulated seconds). Tuned so that a normal session
(2,000 pulses at 8 Hz / 2.5 bar: +7 °C to about 32 °C) stays far below the 43.0 °C cut-out,
while long sessions near the top of the envelope reach it (21 Hz / 4.0 bar: after about 130 s,
15 Hz / 3.0 bar: after about 330 s), as the ICD says they can. Cooling from 43 °C to below
40 °C takes about 55 simulated seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from device_drivers.epat.constants import APPLICATOR_TYPES, ApplicatorType

AMBIENT_C = 25.0
THERMAL_TAU_S = 300.0
#: °C per second per (bar × Hz) of firing, before cooling.
HEATING_C_PER_S_PER_BAR_HZ = 0.002
_EPS = 1e-9


@dataclass
class Applicator:
    """The applicator fitted now; ``shots_used`` is its wear counter (persists over resets)."""

    kind: ApplicatorType
    serial: str
    shots_used: int

    @property
    def remaining(self) -> int:
        return max(0, self.kind.shots_rated - self.shots_used)

    @property
    def worn(self) -> bool:
        return self.shots_used >= self.kind.shots_rated


def applicator_type(name: str) -> ApplicatorType:
    """The applicator type called ``name`` (case-insensitive: ``r15`` is the R15)."""
    for known in APPLICATOR_TYPES.values():
        if known.name.lower() == name.strip().lower():
            return known
    names = ", ".join(APPLICATOR_TYPES)
    raise ValueError(f"unknown applicator type {name!r}; the unit knows {names}")


class ThermalModel:
    """Handpiece temperature in °C as a function of simulated time and firing load."""

    def __init__(self, temperature_c: float = AMBIENT_C) -> None:
        self.temperature_c = temperature_c

    @staticmethod
    def steady_state(load_bar_hz: float) -> float:
        return AMBIENT_C + HEATING_C_PER_S_PER_BAR_HZ * load_bar_hz * THERMAL_TAU_S

    def advance(self, seconds: float, load_bar_hz: float) -> None:
        """Let ``seconds`` pass with a constant load (0 when not firing)."""
        if seconds <= 0:
            return
        target = self.steady_state(load_bar_hz)
        self.temperature_c = target + (self.temperature_c - target) * math.exp(
            -seconds / THERMAL_TAU_S
        )

    def seconds_until(self, threshold_c: float, load_bar_hz: float) -> float | None:
        """Time until the temperature rises to ``threshold_c`` under this load; None if never."""
        if self.temperature_c >= threshold_c:
            return 0.0
        target = self.steady_state(load_bar_hz)
        if target <= threshold_c + _EPS:
            return None
        ratio = (self.temperature_c - target) / (threshold_c + _EPS - target)
        return THERMAL_TAU_S * math.log(ratio)

    @property
    def decidegrees(self) -> int:
        """The reading in dC, truncated toward −∞ so "≥ 43.0 °C" means exactly that."""
        return math.floor(self.temperature_c * 10 + _EPS)
