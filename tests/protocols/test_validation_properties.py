"""Validation never lets a value outside the device or applicator limits through (hypothesis).

Plans are drawn around the drawn envelope and applicator (on a step, off a step, just inside,
just outside), so the edges are exercised rather than the far-away values a uniform draw gives.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import (
    ApplicatorLimit,
    ApplicatorType,
    DeviceEnvelope,
    Layer,
    Limit,
    Modality,
    OverrideNotAllowed,
    SessionPlan,
    Severity,
    ValidationDecision,
    default_library,
    validate_plan,
)
from tests.protocols.builders import active_programme

SESSION = date(2026, 11, 24)
REASON = "Titrated by tolerance, discussed with the patient."
STEPS = [None, Decimal("0.01"), Decimal("0.1"), Decimal("0.5"), Decimal(1)]
TINY = [Decimal("0.001"), Decimal("0.005"), Decimal("0.01"), Decimal("0.25")]
PROTOCOLS = {m: [p.id for p in default_library() if p.modality is m] for m in Modality}


def decimals(low: str, high: str, places: int = 2) -> st.SearchStrategy[Decimal]:
    return st.decimals(Decimal(low), Decimal(high), places=places, allow_nan=False)


@st.composite
def limits(draw: st.DrawFn, low: str, high: str, integral: bool = False) -> Limit:
    if integral:
        a, b = sorted(draw(st.lists(st.integers(int(low), int(high)), min_size=2, max_size=2)))
        return Limit(Decimal(a), Decimal(b), draw(st.sampled_from([None, Decimal(1)])))
    a, b = sorted([draw(decimals(low, high)), draw(decimals(low, high))])
    return Limit(a, b, draw(st.sampled_from(STEPS)))


@st.composite
def near(draw: st.DrawFn, limit: Limit | None, fallback: Decimal) -> Decimal:
    """A value on a setting of ``limit``, at its ends, or just off them (or off its step)."""
    if limit is None:
        return fallback
    step = limit.step or Decimal("0.01")
    count = int((limit.maximum - limit.minimum) // step)
    on_step = limit.minimum + step * draw(st.integers(0, count))
    anchor = draw(st.sampled_from([on_step, limit.minimum, limit.maximum]))
    return anchor + draw(st.sampled_from([Decimal(0)] * 4 + TINY + [-t for t in TINY]))


@st.composite
def setups(draw: st.DrawFn) -> dict:
    modality = draw(st.sampled_from(list(Modality)))
    envelope_modality = (
        modality if draw(st.integers(0, 9)) else draw(st.sampled_from(list(Modality)))
    )
    intensity_range = ("0.5", "8") if envelope_modality is Modality.EPAT else ("1", "100")
    envelope = DeviceEnvelope(
        modality=envelope_modality,
        frequency_hz=draw(limits("0.5", "30")),
        pulses=draw(limits("1", "12000", integral=True)),
        **{envelope_modality.intensity_field: draw(limits(*intensity_range))},
    )
    intensity = modality.intensity_field
    plan = SessionPlan(
        frequency_hz=draw(near(envelope.frequency_hz, Decimal(5))),
        pulses=int(draw(near(Limit(envelope.pulses.minimum, envelope.pulses.maximum, Decimal(1)),
                             Decimal(2000)))),
        **{intensity: draw(near(envelope.limit(intensity), Decimal(3)))},
    )  # fmt: skip
    pressure = plan.pressure_bar or Decimal(3)
    applicator = ApplicatorLimit(
        type=draw(st.sampled_from(["R15", "D20-S", "EMT-A1"])),
        serial="S-1",
        max_pressure_bar=draw(st.none() | st.sampled_from([pressure, pressure - Decimal("0.01"),
                                                           pressure + Decimal("0.5")])),
        shots_remaining=max(0, plan.pulses + draw(st.sampled_from([-500, -1, 0, 1, 500]))),
    )  # fmt: skip
    return {
        "plan": plan,
        "protocol": draw(st.sampled_from(PROTOCOLS[modality])),
        "envelope": None if draw(st.integers(0, 19)) == 0 else envelope,
        "applicator": None if draw(st.integers(0, 19)) == 0 else applicator,
        "types": draw(st.lists(st.builds(ApplicatorType, type=st.sampled_from(["R15", "D20-S"]),
                                         max_pressure_bar=st.none() | decimals("0", "8")),
                               max_size=3)),
        "gaps": draw(st.lists(st.integers(-3, 40), max_size=9)),
        "programme": active_programme() if draw(st.integers(0, 9)) else None,
    }  # fmt: skip


def broken_limits(setup: dict) -> set[tuple[Layer, str]]:
    """Independent oracle: each (layer, field) where the unit or applicator cannot take it."""
    plan: SessionPlan = setup["plan"]
    envelope: DeviceEnvelope | None = setup["envelope"]
    applicator: ApplicatorLimit | None = setup["applicator"]
    protocol_modality = default_library().get(setup["protocol"]).modality
    broken: set[tuple[Layer, str]] = set()
    if envelope is None:
        broken.add((Layer.DEVICE, "envelope"))
    else:
        if envelope.modality is not protocol_modality:
            broken.add((Layer.DEVICE, "modality"))
        for field, value in plan.settings().items():
            limit = envelope.limit(field)
            if (
                limit is None
                or not limit.minimum <= value <= limit.maximum
                or (limit.step is not None and (Decimal(value) - limit.minimum) % limit.step)
            ):
                broken.add((Layer.DEVICE, field))
    if applicator is None:
        broken.add((Layer.APPLICATOR, "applicator"))
    else:
        if plan.pulses > applicator.shots_remaining:
            broken.add((Layer.APPLICATOR, "pulses"))
        rated = applicator.max_pressure_bar
        if plan.pressure_bar is not None and rated is not None and plan.pressure_bar > rated:
            broken.add((Layer.APPLICATOR, "pressure_bar"))
    return broken


@pytest.mark.req("VAL-OVR-1", "VAL-DEV-1", "VAL-APP-1")
@settings(max_examples=600, deadline=None)
@given(setups())
def test_nothing_outside_the_device_or_applicator_limits_is_ever_accepted(setup: dict) -> None:
    result = validate_plan(
        setup["plan"],
        default_library().get(setup["protocol"]),
        session_date=SESSION,
        envelope=setup["envelope"],
        applicator=setup["applicator"],
        programme=setup["programme"],
        previous_sessions=[SESSION - timedelta(days=g) for g in setup["gaps"]],
        supported_applicators=setup["types"],
    )
    broken = broken_limits(setup)
    refused_hard = {
        (f.layer, f.field)
        for f in result.findings
        if f.severity is Severity.REFUSE and f.layer in (Layer.DEVICE, Layer.APPLICATOR)
    }
    assert refused_hard == broken  # every broken limit refused, and nothing else refused there
    if broken:
        assert result.decision is ValidationDecision.REFUSED
    if result.decision is ValidationDecision.OVERRIDE_REQUIRED:
        result = result.with_override(REASON, "therapist")
    elif result.decision is ValidationDecision.REFUSED:
        with pytest.raises(OverrideNotAllowed):
            result.with_override(REASON, "therapist")
    if result.accepted:
        assert not broken and setup["programme"] is not None
    assert result.plan == setup["plan"]  # never clamped
