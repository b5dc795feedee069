"""The EMTT unit's physical side in closed form: pulse timing and coil temperature.

Kept apart from the state machine so the numbers that decide a fault (when the coil crosses
45.0 °C, when the last pulse falls) are computed exactly for any step of simulated time, however
long, in constant time: a simulator running at 100× never loops per pulse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class ThermalModel:
    """First-order coil: warms towards ``ambient + gain·field·frequency`` while delivering.

    The defaults keep a normal session (4,000 pulses at 40 mT / 5 Hz, settling at 35 °C) well
    below the 45.0 °C cut-out, while 80 mT / 10 Hz (settling at 65 °C) reaches it after about
    207 s of delivery; the coil cools towards ambient otherwise.
    """

    ambient_c: float = 25.0
    gain_c_per_mt_hz: float = 0.05
    time_constant_s: float = 300.0

    def steady_c(self, field_mt: Decimal | None, frequency_hz: Decimal | None) -> float:
        if field_mt is None or frequency_hz is None:
            return self.ambient_c
        return self.ambient_c + self.gain_c_per_mt_hz * float(field_mt) * float(frequency_hz)

    def after(self, start_c: float, steady_c: float, seconds: float) -> float:
        """Temperature ``seconds`` after ``start_c`` while heading for ``steady_c``."""
        if seconds <= 0:
            return start_c
        return steady_c + (start_c - steady_c) * math.exp(-seconds / self.time_constant_s)

    def seconds_to_reach(self, start_c: float, steady_c: float, threshold_c: float) -> float | None:
        """Seconds until the coil rises to ``threshold_c``; None if it never does."""
        if start_c >= threshold_c:
            return 0.0
        if steady_c <= threshold_c:
            return None
        return self.time_constant_s * math.log((steady_c - start_c) / (steady_c - threshold_c))


def pulses_between(start_s: float, now_s: float, frequency_hz: Decimal) -> int:
    """Pulses fired from ``start_s`` to ``now_s``: the first one period after the start."""
    if now_s <= start_s:
        return 0
    return math.floor((now_s - start_s) * float(frequency_hz) + 1e-9)


def time_of_pulse(start_s: float, pulse_number: int, frequency_hz: Decimal) -> float:
    """Simulated time at which pulse ``pulse_number`` (1-based) of a run fires."""
    return start_s + pulse_number / float(frequency_hz)


@dataclass(frozen=True, slots=True)
class CoilElectrics:
    """``DIAGnostic:COIL?`` figures of an EMT-A1 coil; copper resistance rises with heat."""

    inductance_uh: Decimal = Decimal("47.0")
    resistance_mohm_at_25c: float = 118.0
    copper_alpha_per_c: float = 0.00393

    def resistance_mohm(self, temperature_c: float) -> int:
        ohms = self.resistance_mohm_at_25c * (1 + self.copper_alpha_per_c * (temperature_c - 25.0))
        return math.floor(ohms + 0.5)
