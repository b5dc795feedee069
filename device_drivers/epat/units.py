"""Exact conversion between the unit's integer units and ``Decimal`` physical values.

The wire carries cbar (1/100 bar), dhz (1/10 Hz) and dC (1/10 °C). A value that is not an exact
multiple of its step, or does not fit its field, is refused here with
:class:`ParameterRejected`: rounding would send something other than what was validated.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from device_drivers.errors import ParameterRejected

BAR_STEP = Decimal("0.01")
HZ_STEP = Decimal("0.1")
CELSIUS_STEP = Decimal("0.1")


def _to_steps(value: Decimal, step: Decimal, field: str, unit: str, max_raw: int) -> int:
    if not isinstance(value, Decimal):
        raise ParameterRejected(
            f"{field} must be a Decimal in {unit}, not {type(value).__name__} {value!r}",
            field=field,
            value=value,
        )
    try:
        steps = value / step
        exact = steps == steps.to_integral_value()
    except InvalidOperation:
        exact = False
    if not value.is_finite() or not exact:
        raise ParameterRejected(
            f"{field} {value} {unit} is not a multiple of the unit's {step} {unit} step; "
            f"choose a value like {value.quantize(step) if value.is_finite() else step} {unit}",
            field=field,
            value=value,
        )
    raw = int(steps)
    if not 0 <= raw <= max_raw:
        raise ParameterRejected(
            f"{field} {value} {unit} does not fit the unit's field (0..{step * max_raw} {unit})",
            field=field,
            value=value,
        )
    return raw


def bar_to_cbar(value: Decimal, field: str = "pressure") -> int:
    return _to_steps(value, BAR_STEP, field, "bar", 0xFFFF)


def hz_to_dhz(value: Decimal, field: str = "frequency") -> int:
    return _to_steps(value, HZ_STEP, field, "Hz", 0xFFFF)


#: Distinct wire values remembered per conversion (status readings repeat a handful of them).
_CACHE_MAX = 4096


def _exact_shift(exponent: int) -> Callable[[int], Decimal]:
    """A wire-integer → Decimal conversion by a decimal shift (no arithmetic rounding),
    remembering its results: Decimals are immutable, and every status reading converts."""
    cache: dict[int, Decimal] = {}

    def convert(raw: int) -> Decimal:
        value = cache.get(raw)
        if value is None:
            value = Decimal(raw).scaleb(exponent)
            if len(cache) < _CACHE_MAX:
                cache[raw] = value
        return value

    return convert


#: Exact: ``250`` → ``Decimal("2.50")``.
cbar_to_bar = _exact_shift(-2)
dhz_to_hz = _exact_shift(-1)
dc_to_celsius = _exact_shift(-1)
