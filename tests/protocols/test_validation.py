"""Layered parameter validation: device ⊇ applicator ⊇ protocol ⊇ plan, then course, programme."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from protocols import (
    Layer,
    OverrideNotAllowed,
    ProgrammeAssignment,
    ProgrammeStatus,
    SessionPlan,
    Severity,
    ValidationDecision,
    default_library,
    validate_plan,
)
from tests.protocols.builders import (
    D20S,
    EMT_A1,
    EPAT_TYPES,
    R15,
    SESSION,
    active_programme,
    emtt_envelope,
    epat_envelope,
)

D = Decimal
REASON = "Patient tolerated 4.0 bar well last week; titrating up."


def epat(pressure: str = "2.5", frequency: str = "8", pulses: int = 2000) -> SessionPlan:
    return SessionPlan(frequency_hz=D(frequency), pulses=pulses, pressure_bar=D(pressure))


def emtt(field: str = "40", frequency: str = "5", pulses: int = 4000) -> SessionPlan:
    return SessionPlan(frequency_hz=D(frequency), pulses=pulses, field_mt=D(field))


def check(plan: SessionPlan, protocol: str = "knee-pt-epat", **overrides: Any):
    modality_is_emtt = plan.field_mt is not None
    kwargs: dict[str, Any] = {
        "session_date": SESSION,
        "envelope": emtt_envelope() if modality_is_emtt else epat_envelope(),
        "applicator": EMT_A1 if modality_is_emtt else R15,
        "programme": active_programme(),
        "supported_applicators": () if modality_is_emtt else EPAT_TYPES,
    }
    kwargs.update(overrides)
    return validate_plan(plan, default_library().get(protocol), **kwargs)


def only(result, rule: str):
    found = [f for f in result.findings if f.rule == rule]
    assert len(found) == 1, [f.rule for f in result.findings]
    return found[0]


def non_info(result) -> list[str]:
    return [f.rule for f in result.findings if f.severity is not Severity.INFO]


@pytest.mark.req("VAL-EXPLAIN-1")
@pytest.mark.parametrize("protocol", [p.id for p in default_library()])
def test_every_protocols_defaults_pass_on_a_fitting_unit(protocol: str) -> None:
    p = default_library().get(protocol)
    applicator = D20S if protocol == "knee-pfp-epat" else None
    extra = {"applicator": applicator} if applicator else {}
    result = check(SessionPlan.defaults_of(p), protocol, **extra)
    assert result.decision is ValidationDecision.OK, [f.message for f in result.findings]
    assert result.accepted
    assert [f.layer for f in result.findings] == [Layer.PROGRAMME]  # the programme note only
    assert result.protocol_version == "2026.1"


# --- device layer ----------------------------------------------------------------------------


@pytest.mark.req("VAL-DEV-1")
def test_above_the_device_envelope_is_refused() -> None:
    result = check(epat(frequency="22"), applicator=D20S)
    finding = only(result, "DEVICE-RANGE")
    assert (finding.layer, finding.field, finding.value) == (Layer.DEVICE, "frequency_hz", D(22))
    assert finding.severity is Severity.REFUSE
    assert finding.limit == "≤ 21.0 Hz"
    assert "22.0 Hz is above RPW-200's maximum 21.0 Hz" in finding.message
    assert result.decision is ValidationDecision.REFUSED
    assert not result.accepted


@pytest.mark.req("VAL-DEV-1")
def test_below_the_device_envelope_is_refused() -> None:
    result = check(emtt(field="4.5"), "knee-oa-emtt")
    finding = only(result, "DEVICE-RANGE")
    assert finding.field == "field_mt" and "below EMT-100's minimum 5.0 mT" in finding.message


@pytest.mark.req("VAL-DEV-1")
@pytest.mark.parametrize(
    ("plan", "field", "advice"),
    [
        (lambda: emtt(field="40.25"), "field_mt", "choose 40.0 mT or 40.5 mT"),
        (lambda: emtt(frequency="5.2"), "frequency_hz", "choose 5.0 Hz or 5.5 Hz"),
        (lambda: epat(pressure="2.505"), "pressure_bar", "choose 2.5 bar or 2.51 bar"),
    ],
)
def test_a_value_off_the_units_step_is_refused_with_the_nearest_settings(
    plan: Any, field: str, advice: str
) -> None:
    made = plan()
    result = check(made, "knee-oa-emtt" if made.field_mt is not None else "knee-pt-epat")
    finding = only(result, "DEVICE-STEP")
    assert finding.field == field and finding.severity is Severity.REFUSE
    assert advice in finding.message
    assert result.decision is ValidationDecision.REFUSED


@pytest.mark.req("VAL-DEV-1")
def test_a_unit_of_the_other_modality_is_refused() -> None:
    result = check(epat(), envelope=emtt_envelope())
    assert "DEVICE-MODALITY" in non_info(result)
    assert "connect an EPAT unit" in only(result, "DEVICE-MODALITY").message
    assert result.decision is ValidationDecision.REFUSED


@pytest.mark.req("VAL-DEV-1")
def test_no_connected_unit_is_refused() -> None:
    result = check(epat(), envelope=None)
    assert "connect the unit" in only(result, "DEVICE-ENVELOPE").message
    assert result.decision is ValidationDecision.REFUSED


@pytest.mark.req("VAL-DEV-1")
def test_a_plan_of_the_other_modality_is_refused() -> None:
    result = check(emtt(), "knee-pt-epat")
    assert only(result, "PLAN-MODALITY").severity is Severity.REFUSE


# --- applicator layer --------------------------------------------------------------------------


@pytest.mark.req("VAL-APP-1")
def test_pfp_default_on_the_r15_is_refused_with_the_d20s_advice() -> None:
    protocol = default_library().get("knee-pfp-epat")
    result = check(SessionPlan.defaults_of(protocol), "knee-pfp-epat", applicator=R15)
    finding = only(result, "APPLICATOR-PRESSURE")
    assert (finding.layer, finding.field, finding.value) == (
        Layer.APPLICATOR, "pressure_bar", D("4.5"),
    )  # fmt: skip
    assert finding.message.startswith(
        "4.5 bar is above the R15 applicator's 4.0 bar: fit the D20-S applicator or lower "
        "the pressure"
    )
    assert result.decision is ValidationDecision.REFUSED
    with pytest.raises(OverrideNotAllowed, match="no override is possible"):
        result.with_override(REASON, "therapist")


@pytest.mark.req("VAL-APP-1")
def test_no_fit_advice_when_no_supported_type_or_the_unit_cannot_deliver() -> None:
    no_types = only(check(epat("4.5"), "knee-pfp-epat", supported_applicators=()),
                    "APPLICATOR-PRESSURE")  # fmt: skip
    assert "fit the" not in no_types.message and "lower the pressure" in no_types.message
    # 5.5 bar: no applicator helps, the unit itself stops at 5.0 bar
    result = check(epat("5.5"), "knee-pfp-epat")
    assert "fit the" not in only(result, "APPLICATOR-PRESSURE").message
    assert only(result, "DEVICE-RANGE").field == "pressure_bar"


@pytest.mark.req("VAL-APP-1")
def test_exactly_the_applicator_rating_is_allowed() -> None:
    result = check(epat("4.0"), "knee-pfp-epat", applicator=R15)
    assert result.decision is ValidationDecision.OK


@pytest.mark.req("VAL-APP-1")
def test_more_pulses_than_the_applicators_remaining_life_is_refused() -> None:
    worn = replace(R15, shots_remaining=1500)
    finding = only(check(epat(pulses=2000), applicator=worn), "APPLICATOR-LIFE")
    assert finding.severity is Severity.REFUSE and "1,500 shots left" in finding.message
    assert check(epat(pulses=1500), applicator=worn).decision is ValidationDecision.OK
    dead = replace(R15, shots_remaining=0)
    assert "worn out" in only(check(epat(), applicator=dead), "APPLICATOR-LIFE").message


@pytest.mark.req("VAL-APP-1")
def test_no_applicator_fitted_is_refused() -> None:
    result = check(epat(), applicator=None)
    assert "fit one" in only(result, "APPLICATOR-ABSENT").message
    assert result.decision is ValidationDecision.REFUSED


# --- protocol layer ----------------------------------------------------------------------------


@pytest.mark.req("VAL-PROT-1")
def test_outside_the_protocol_range_needs_an_override() -> None:
    result = check(epat("4.0"))  # knee-pt-epat: 1.5–3.5 bar; the R15 takes 4.0
    finding = only(result, "PROTOCOL-RANGE")
    assert (finding.layer, finding.field, finding.severity) == (
        Layer.PROTOCOL, "pressure_bar", Severity.OVERRIDE_REQUIRED,
    )  # fmt: skip
    assert "above the knee-pt-epat protocol's 3.5 bar" in finding.message
    assert "record an override" in finding.message
    assert result.decision is ValidationDecision.OVERRIDE_REQUIRED
    assert not result.accepted
    overridden = result.with_override(REASON, "therapist", "t1")
    assert overridden.accepted
    assert overridden.plan == result.plan == epat("4.0")  # the plan is never changed
    record = overridden.to_record()
    assert record["override"]["reason"] == REASON and record["accepted"] is True


@pytest.mark.req("VAL-PROT-1")
@pytest.mark.parametrize(
    ("plan", "field"),
    [(lambda: epat(pulses=1499), "pulses"), (lambda: epat(frequency="3.9"), "frequency_hz"),
     (lambda: epat(pulses=2501), "pulses"), (lambda: epat(pressure="1.49"), "pressure_bar")],
)  # fmt: skip
def test_each_setting_is_checked_against_the_protocol(plan: Any, field: str) -> None:
    result = check(plan())
    assert only(result, "PROTOCOL-RANGE").field == field


@pytest.mark.req("VAL-PROT-1")
def test_the_protocol_range_is_inclusive() -> None:
    assert check(epat("1.5", "4", 1500)).decision is ValidationDecision.OK
    assert check(epat("3.5", "10", 2500)).decision is ValidationDecision.OK


@pytest.mark.req("VAL-OVR-1")
@pytest.mark.parametrize(
    ("reason", "role"),
    [("short", "therapist"), ("  " + "a" * 19 + "\n", "therapist"), (REASON, "admin"),
     (REASON, "service"), (REASON, "")],
)  # fmt: skip
def test_an_override_needs_a_therapist_and_a_20_character_reason(reason: str, role: str) -> None:
    with pytest.raises(OverrideNotAllowed):
        check(epat("4.0")).with_override(reason, role)


@pytest.mark.req("VAL-OVR-1")
def test_a_refusal_anywhere_forbids_the_override_of_the_rest() -> None:
    # outside the protocol (override-able) and without a programme (refused): no override
    result = check(epat("4.0"), programme=None)
    assert result.decision is ValidationDecision.REFUSED
    with pytest.raises(OverrideNotAllowed):
        result.with_override(REASON, "therapist")


@pytest.mark.req("VAL-OVR-1")
def test_nothing_to_override_when_everything_is_inside() -> None:
    with pytest.raises(OverrideNotAllowed, match="nothing to override"):
        check(epat()).with_override(REASON, "therapist")


# --- course layer ------------------------------------------------------------------------------


@pytest.mark.req("VAL-COURSE-1")
@pytest.mark.parametrize(("gap", "too_soon"), [(0, True), (5, True), (6, False), (10, False)])
def test_too_soon_after_the_last_session_needs_an_override(gap: int, too_soon: bool) -> None:
    last = SESSION - timedelta(days=gap)
    result = check(epat(), previous_sessions=[last])
    if too_soon:
        finding = only(result, "COURSE-INTERVAL")
        assert (finding.layer, finding.value, finding.severity) == (
            Layer.COURSE, gap, Severity.OVERRIDE_REQUIRED,
        )  # fmt: skip
        assert (last + timedelta(days=6)).isoformat() in finding.message
        assert result.decision is ValidationDecision.OVERRIDE_REQUIRED
    else:
        assert result.decision is ValidationDecision.OK


@pytest.mark.req("VAL-COURSE-1")
def test_the_interval_counts_from_the_latest_session_whatever_the_order() -> None:
    history = [SESSION - timedelta(days=3), SESSION - timedelta(days=20)]
    assert only(check(epat(), previous_sessions=history), "COURSE-INTERVAL").value == 3


@pytest.mark.req("VAL-COURSE-1")
def test_a_session_recorded_after_this_one_needs_an_override() -> None:
    finding = only(check(epat(), previous_sessions=[SESSION + timedelta(days=2)]),
                   "COURSE-INTERVAL")  # fmt: skip
    assert finding.value == -2 and "after this session" in finding.message


@pytest.mark.req("VAL-COURSE-1")
def test_more_sessions_than_the_course_needs_an_override() -> None:
    history = [SESSION - timedelta(days=7 * n) for n in (1, 2, 3)]
    finding = only(check(epat(), previous_sessions=history), "COURSE-SESSIONS")
    assert finding.value == 4 and "session 4 of a 3-session course" in finding.message
    three = check(epat(), previous_sessions=history[:2])
    assert three.decision is ValidationDecision.OK


@pytest.mark.req("VAL-COURSE-1")
def test_knee_oa_epat_allows_a_fourth_session_but_not_a_fifth() -> None:
    plan = SessionPlan.defaults_of(default_library().get("knee-oa-epat"))
    history = [SESSION - timedelta(days=7 * n) for n in (1, 2, 3)]
    assert check(plan, "knee-oa-epat", previous_sessions=history).decision is (
        ValidationDecision.OK
    )
    history.append(SESSION - timedelta(days=28))
    assert "COURSE-SESSIONS" in non_info(check(plan, "knee-oa-epat", previous_sessions=history))


@pytest.mark.req("VAL-COURSE-1")
def test_a_late_session_and_a_long_course_are_only_noted() -> None:
    late = check(epat(), previous_sessions=[SESSION - timedelta(days=11)])
    assert only(late, "COURSE-LATE").severity is Severity.INFO
    assert late.decision is ValidationDecision.OK
    plan = emtt()
    history = [SESSION - timedelta(days=50), SESSION - timedelta(days=4)]
    long = check(plan, "knee-oa-emtt", previous_sessions=history)
    assert only(long, "COURSE-SPAN").severity is Severity.INFO
    assert long.decision is ValidationDecision.OK


# --- programme layer ---------------------------------------------------------------------------


@pytest.mark.req("VAL-PROG-1")
@pytest.mark.parametrize(
    ("programme", "words"),
    [
        (None, "no active movement programme"),
        (replace(active_programme(), status=ProgrammeStatus.PAUSED), "is paused"),
        (replace(active_programme(), status=ProgrammeStatus.COMPLETED), "is completed"),
        (replace(active_programme(), start_date=SESSION + timedelta(days=1)), "starts on"),
        (replace(active_programme(), template_id="hip-programme"), "not in the library"),
        (replace(active_programme(), phase=4), "phases 1–3, not 4"),
    ],
)
def test_a_session_without_an_active_programme_is_refused(
    programme: ProgrammeAssignment | None, words: str
) -> None:
    result = check(epat(), programme=programme)
    finding = next(f for f in result.findings if f.layer is Layer.PROGRAMME)
    assert finding.severity is Severity.REFUSE and words in finding.message
    assert result.decision is ValidationDecision.REFUSED


@pytest.mark.req("VAL-PROG-1")
def test_an_active_programme_is_named_with_its_phase() -> None:
    finding = only(check(epat(), programme=active_programme(2)), "PROGRAMME-ACTIVE")
    assert finding.severity is Severity.INFO
    assert "phase 2 of 3 (Capacity)" in finding.message


# --- every finding, no clamping, no floats ------------------------------------------------------


@pytest.mark.req("VAL-EXPLAIN-1")
def test_every_layer_reports_at_once() -> None:
    result = check(
        epat("4.5", "22", 3000),
        applicator=replace(R15, shots_remaining=2000),
        previous_sessions=[SESSION - timedelta(days=2)] * 3,
        programme=None,
    )
    layers = {f.layer for f in result.findings}
    assert layers == {Layer.DEVICE, Layer.APPLICATOR, Layer.PROTOCOL, Layer.COURSE,
                      Layer.PROGRAMME}  # fmt: skip
    assert set(non_info(result)) == {
        "DEVICE-RANGE", "APPLICATOR-PRESSURE", "APPLICATOR-LIFE", "PROTOCOL-RANGE",
        "COURSE-SESSIONS", "COURSE-INTERVAL", "PROGRAMME-ACTIVE",
    }  # fmt: skip
    for finding in result.findings:
        assert finding.message and finding.field
        record = finding.to_record()
        assert set(record) == {"layer", "rule", "field", "value", "limit", "severity", "message"}
        assert all(v is None or isinstance(v, str) for v in record.values())
    assert result.plan == epat("4.5", "22", 3000)


@pytest.mark.req("VAL-EXPLAIN-1")
@pytest.mark.parametrize(
    "build",
    [
        lambda: SessionPlan(frequency_hz=8.0, pulses=2000, pressure_bar=D("2.5")),  # type: ignore[arg-type]
        lambda: SessionPlan(frequency_hz=D(8), pulses=2000, pressure_bar=2.5),  # type: ignore[arg-type]
        lambda: SessionPlan(frequency_hz=D(8), pulses=2000.0, pressure_bar=D("2.5")),  # type: ignore[arg-type]
        lambda: SessionPlan(frequency_hz=D(8), pulses=True, pressure_bar=D("2.5")),
    ],
)
def test_floats_and_bools_are_refused_as_settings(build: Any) -> None:
    with pytest.raises(TypeError):
        build()


@pytest.mark.req("VAL-EXPLAIN-1")
def test_a_plan_sets_exactly_one_intensity_and_finite_numbers() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        SessionPlan(frequency_hz=D(8), pulses=2000)
    with pytest.raises(ValueError, match="exactly one"):
        SessionPlan(frequency_hz=D(8), pulses=2000, pressure_bar=D(2), field_mt=D(40))
    with pytest.raises(ValueError, match="finite"):
        SessionPlan(frequency_hz=D("NaN"), pulses=2000, pressure_bar=D(2))


@pytest.mark.req("VAL-EXPLAIN-1")
def test_the_record_is_json_ready_without_floats() -> None:
    import json

    record = check(epat("4.0")).with_override(REASON, "therapist").to_record()
    text = json.dumps(record)
    assert json.loads(text, parse_float=lambda s: pytest.fail(f"float {s} in record")) == record
    assert record["plan"] == {"pressure_bar": "4.0", "frequency_hz": "8", "pulses": 2000}


@pytest.mark.req("VAL-EXPLAIN-1")
def test_the_default_plan_of_a_protocol() -> None:
    plan = SessionPlan.defaults_of(default_library().get("knee-oa-emtt"))
    assert plan == emtt("40", "5", 4000)
    assert list(plan.settings()) == ["field_mt", "frequency_hz", "pulses"]


@pytest.mark.req("VAL-DEV-1")
def test_an_envelope_takes_another_packages_modality_enum_and_checks_its_limits() -> None:
    from enum import StrEnum

    class DriverModality(StrEnum):  # the drivers have their own enum with the same values
        EPAT = "epat"
        EMTT = "emtt"

    envelope = replace(epat_envelope(), modality=DriverModality.EPAT)
    assert check(epat(), envelope=envelope).decision is ValidationDecision.OK
    with pytest.raises(TypeError, match="protocols Limit"):
        replace(epat_envelope(), pressure_bar=(D(1), D(5)))
    with pytest.raises(ValueError, match="needs pressure_bar"):
        replace(epat_envelope(), pressure_bar=None)
    with pytest.raises(ValueError, match="unknown modality"):
        replace(epat_envelope(), modality="laser")
