"""The contraindication table of clinical reference §3, rule by rule, and its edge cases."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from protocols import (
    ClinicalInputError,
    Decision,
    Modality,
    OverrideNotAllowed,
    Severity,
    screen,
)
from tests.protocols.builders import ADULT, CLEAN_ANSWERS, SESSION, answers

EPAT, EMTT = Modality.EPAT, Modality.EMTT
PROTOCOL = {EPAT: "knee-pt-epat", EMTT: "knee-oa-emtt"}


def run(
    modality: Modality = EPAT,
    protocol: str | None = None,
    birth: date = ADULT,
    on: date = SESSION,
    **changes: Any,
):
    return screen(
        answers(**changes),
        modality=modality,
        protocol_id=protocol or PROTOCOL[modality],
        birth_date=birth,
        session_date=on,
    )


def born_years_before(on: date, years: int, days: int = 0) -> date:
    """Birth date that makes the patient exactly ``years`` old ``days`` days after a birthday."""
    return on.replace(year=on.year - years) - timedelta(days=days)


# rule: (answers that trigger it alone, EPAT severity, EMTT severity) — §3 written out by hand.
TABLE = {
    "CI-PREG": ({"pregnant": True}, "block", "block"),
    "CI-MALIG": ({"malignancy_in_area": True}, "block", "block"),
    "CI-INFECT": ({"infection_at_site": True}, "block", "override_required"),
    "CI-IMPLANT": ({"active_implant": "neurostimulator"}, "override_required", "block"),
    "CI-EPILEPSY": ({"epilepsy": True}, None, "block"),
    "CI-COAG": ({"coagulation_disorder": True}, "override_required", "override_required"),
    "CI-THROMB": ({"thrombosis_in_limb": True}, "block", "block"),
    "CI-STEROID": ({"corticosteroid_injection_date": "2026-11-01"}, "block", "override_required"),
    "CI-GROWTH": ({"open_growth_plates": True}, "override_required", "override_required"),
    "CI-METAL": ({"metal_implant_in_field": True}, "override_required", "override_required"),
    "CI-NEURO": ({"polyneuropathy": True}, "override_required", "override_required"),
    "CI-RUPTURE": ({"tendon_rupture": True}, "block", "override_required"),
    "CI-FEVER": ({"fever": True}, "override_required", "override_required"),
    "CI-NSAID": ({"nsaids": True}, "warning", "warning"),
}
DECISION = {"block": "block", "override_required": "override_required", "warning": "allow"}


@pytest.mark.req("SCR-TABLE-1")
@pytest.mark.parametrize("rule", sorted(TABLE))
@pytest.mark.parametrize("modality", [EPAT, EMTT])
def test_each_rule_alone_has_the_tables_severity(rule: str, modality: Modality) -> None:
    trigger, epat, emtt = TABLE[rule]
    expected = epat if modality is EPAT else emtt
    decision = run(modality, **trigger)
    if expected is None:
        assert decision.decision is Decision.ALLOW
        assert decision.findings == ()
        return
    assert decision.rules == (rule,)
    assert decision.findings[0].severity is Severity(expected)
    assert decision.decision is Decision(DECISION[expected])
    assert decision.findings[0].message.startswith(f"{rule}: ")


@pytest.mark.req("SCR-TABLE-1")
def test_a_clean_adult_questionnaire_allows_on_every_protocol() -> None:
    for modality, protocol in [(EPAT, "knee-pt-epat"), (EPAT, "knee-pfp-epat"),
                               (EPAT, "knee-oa-epat"), (EPAT, "knee-pes-epat"),
                               (EMTT, "knee-oa-emtt"), (EMTT, "knee-tendon-emtt")]:  # fmt: skip
        decision = run(modality, protocol)
        assert decision.decision is Decision.ALLOW and decision.findings == ()


@pytest.mark.req("SCR-TABLE-1")
@pytest.mark.parametrize("key", ["coagulation_disorder", "anticoagulants"])
def test_coagulation_fires_on_either_question(key: str) -> None:
    assert run(**{key: True}).rules == ("CI-COAG",)
    assert run(coagulation_disorder=True, anticoagulants=True).rules == ("CI-COAG",)


@pytest.mark.req("SCR-TABLE-1")
def test_knee_osg_epat_at_adult_age_with_enough_care_allows() -> None:
    decision = run(EPAT, "knee-osg-epat", failed_conservative_care_months=6)
    assert decision.decision is Decision.ALLOW


# --- CI-IMPLANT ---------------------------------------------------------------------------


@pytest.mark.req("SCR-IMPLANT-1")
@pytest.mark.parametrize(
    "implant",
    ["pacemaker", "icd", "neurostimulator", "insulin_pump", "cochlear_implant", "other_active"],
)
def test_every_active_implant_type_fires(implant: str) -> None:
    assert run(EPAT, active_implant=implant).findings[0].severity is Severity.OVERRIDE_REQUIRED
    assert run(EMTT, active_implant=implant).findings[0].severity is Severity.BLOCK


@pytest.mark.req("SCR-IMPLANT-1")
def test_an_implant_in_the_treatment_field_blocks_epat() -> None:
    decision = run(EPAT, active_implant="pacemaker", active_implant_in_field=True)
    assert decision.decision is Decision.BLOCK
    assert decision.rules == ("CI-IMPLANT",)
    assert "in the treatment field" in decision.findings[0].message


@pytest.mark.req("SCR-IMPLANT-1")
def test_in_field_without_a_type_is_still_an_implant_in_the_field() -> None:
    # Contradictory answers: the safe reading is that an implant is in the field.
    assert run(EPAT, active_implant_in_field=True).decision is Decision.BLOCK
    assert run(EMTT, active_implant_in_field=True).decision is Decision.BLOCK


# --- CI-STEROID ---------------------------------------------------------------------------


@pytest.mark.req("SCR-STEROID-1")
@pytest.mark.parametrize(
    ("days_ago", "fires"), [(0, True), (1, True), (20, True), (41, True), (42, False), (43, False)]
)
def test_steroid_window_is_session_minus_injection_under_42(days_ago: int, fires: bool) -> None:
    injected = SESSION - timedelta(days=days_ago)
    decision = run(EPAT, corticosteroid_injection_date=injected.isoformat())
    assert (decision.rules == ("CI-STEROID",)) is fires
    if fires:
        finding = decision.findings[0]
        assert finding.severity is Severity.BLOCK
        assert finding.eligible_from == injected + timedelta(days=42)
        assert finding.eligible_from.isoformat() in finding.message
    else:
        assert decision.decision is Decision.ALLOW


@pytest.mark.req("SCR-STEROID-1")
def test_the_first_eligible_date_is_allowed_and_the_day_before_is_not() -> None:
    injected = "2026-11-04"
    first = run(EPAT, corticosteroid_injection_date=injected).findings[0].eligible_from
    assert first == date(2026, 12, 16)
    assert run(EPAT, on=first, corticosteroid_injection_date=injected).decision is Decision.ALLOW
    day_before = first - timedelta(days=1)
    blocked = run(EPAT, on=day_before, corticosteroid_injection_date=injected)
    assert blocked.decision is Decision.BLOCK


@pytest.mark.req("SCR-STEROID-1")
def test_steroid_within_42_days_needs_an_override_for_emtt() -> None:
    decision = run(EMTT, corticosteroid_injection_date="2026-11-04")
    assert decision.decision is Decision.OVERRIDE_REQUIRED
    assert decision.findings[0].eligible_from == date(2026, 12, 16)


@pytest.mark.req("SCR-STEROID-1")
def test_an_injection_dated_after_the_session_fires() -> None:
    decision = run(EPAT, corticosteroid_injection_date="2026-12-01")
    assert decision.decision is Decision.BLOCK
    assert decision.findings[0].eligible_from == date(2027, 1, 12)
    assert "after the session date" in decision.findings[0].message


@pytest.mark.req("SCR-STEROID-1")
def test_the_window_crosses_a_leap_day() -> None:
    # 2028-01-20 + 42 days = 2028-03-02 (February 2028 has 29 days).
    decision = run(EPAT, on=date(2028, 3, 1), corticosteroid_injection_date="2028-01-20")
    assert decision.findings[0].eligible_from == date(2028, 3, 2)
    assert run(EPAT, on=date(2028, 3, 2), corticosteroid_injection_date="2028-01-20").findings == ()


# --- CI-AGE, CI-GROWTH, CI-CONSERVATIVE -------------------------------------------------------


@pytest.mark.req("SCR-AGE-1")
@pytest.mark.parametrize("modality", [EPAT, EMTT])
def test_eighteen_on_the_18th_birthday_and_not_the_day_before(modality: Modality) -> None:
    birthday = date(2008, 11, 24)
    assert run(modality, birth=birthday).decision is Decision.ALLOW
    assert run(modality, birth=birthday + timedelta(days=1)).rules == ("CI-AGE",)
    assert run(modality, birth=birthday + timedelta(days=1)).decision is Decision.BLOCK


@pytest.mark.req("SCR-AGE-1")
def test_born_on_29_february_turns_18_on_1_march_in_a_common_year() -> None:
    born = date(2008, 2, 29)
    assert run(EPAT, birth=born, on=date(2026, 2, 28)).rules == ("CI-AGE",)
    assert run(EPAT, birth=born, on=date(2026, 3, 1)).decision is Decision.ALLOW
    assert run(EPAT, birth=date(2010, 2, 28), on=date(2028, 2, 28)).decision is Decision.ALLOW
    assert run(EPAT, birth=date(2010, 2, 28), on=date(2028, 2, 27)).rules == ("CI-AGE",)


@pytest.mark.req("SCR-AGE-1")
def test_the_decision_reports_the_age_in_whole_years() -> None:
    assert run(birth=date(2008, 11, 25)).age_years == 17
    assert run(birth=date(2008, 11, 24)).age_years == 18


@pytest.mark.req("SCR-AGE-1", "SCR-OSG-1")
@pytest.mark.parametrize(
    ("age", "days_past_birthday", "rules", "decision"),
    [
        (9, 364, ("CI-AGE",), Decision.BLOCK),  # the day before the 10th birthday
        (10, 0, (), Decision.ALLOW),  # the 10th birthday
        (14, 100, (), Decision.ALLOW),
        (17, 364, (), Decision.ALLOW),
        (18, 0, (), Decision.ALLOW),
        (40, 0, (), Decision.ALLOW),
    ],
)
def test_osgood_schlatter_exception_is_ages_10_to_17(
    age: int, days_past_birthday: int, rules: tuple[str, ...], decision: Decision
) -> None:
    birth = born_years_before(SESSION, age, days_past_birthday)
    result = run(EPAT, "knee-osg-epat", birth=birth, failed_conservative_care_months=8)
    assert result.age_years == age
    assert result.rules == rules
    assert result.decision is decision


@pytest.mark.req("SCR-AGE-1")
@pytest.mark.parametrize("protocol", ["knee-pt-epat", "knee-pfp-epat", "knee-oa-epat"])
def test_the_age_exception_is_only_for_knee_osg_epat(protocol: str) -> None:
    assert run(EPAT, protocol, birth=date(2012, 1, 1)).rules == ("CI-AGE",)


@pytest.mark.req("SCR-AGE-1")
def test_minors_are_blocked_from_emtt() -> None:
    assert run(EMTT, "knee-tendon-emtt", birth=date(2012, 1, 1)).decision is Decision.BLOCK


@pytest.mark.req("SCR-OSG-1")
def test_adolescent_osg_with_open_growth_plates_needs_an_override() -> None:
    decision = run(
        EPAT, "knee-osg-epat", birth=date(2012, 9, 25),
        open_growth_plates=True, failed_conservative_care_months=8,
    )  # fmt: skip
    assert decision.rules == ("CI-GROWTH",)
    assert decision.decision is Decision.OVERRIDE_REQUIRED


@pytest.mark.req("SCR-OSG-1")
@pytest.mark.parametrize(("months", "blocked"), [(0, True), (5, True), (6, False), (30, False)])
@pytest.mark.parametrize("birth", [date(2012, 9, 25), ADULT])
def test_osg_needs_six_months_of_failed_conservative_care(
    months: int, blocked: bool, birth: date
) -> None:
    decision = run(EPAT, "knee-osg-epat", birth=birth, failed_conservative_care_months=months)
    assert ("CI-CONSERVATIVE" in decision.rules) is blocked
    assert (decision.decision is Decision.BLOCK) is blocked


@pytest.mark.req("SCR-OSG-1")
def test_conservative_care_only_matters_for_knee_osg_epat() -> None:
    assert run(EPAT, "knee-pt-epat", failed_conservative_care_months=0).findings == ()


@pytest.mark.req("SCR-OSG-1")
def test_osg_under_ten_is_blocked_by_age_and_care_together() -> None:
    decision = run(EPAT, "knee-osg-epat", birth=date(2017, 6, 1), open_growth_plates=True,
                   failed_conservative_care_months=2)  # fmt: skip
    assert set(decision.rules) == {"CI-AGE", "CI-CONSERVATIVE", "CI-GROWTH"}
    assert decision.decision is Decision.BLOCK


# --- several findings; strictest wins ----------------------------------------------------------


@pytest.mark.req("SCR-STRICT-1")
def test_all_findings_are_reported_and_the_strictest_decides() -> None:
    decision = run(
        EPAT, nsaids=True, fever=True, anticoagulants=True, tendon_rupture=True,
        corticosteroid_injection_date="2026-11-20", metal_implant_in_field=True,
    )  # fmt: skip
    assert set(decision.rules) == {
        "CI-NSAID", "CI-FEVER", "CI-COAG", "CI-RUPTURE", "CI-STEROID", "CI-METAL",
    }  # fmt: skip
    assert decision.decision is Decision.BLOCK
    severities = [f.severity.rank for f in decision.findings]
    assert severities == sorted(severities, reverse=True)  # strictest first


@pytest.mark.req("SCR-STRICT-1")
def test_a_warning_with_relative_findings_stays_override_required() -> None:
    decision = run(EMTT, nsaids=True, fever=True, polyneuropathy=True)
    assert decision.decision is Decision.OVERRIDE_REQUIRED
    assert set(decision.rules) == {"CI-NSAID", "CI-FEVER", "CI-NEURO"}


@pytest.mark.req("SCR-STRICT-1")
def test_a_warning_alone_allows_and_is_listed() -> None:
    decision = run(EMTT, nsaids=True)
    assert decision.decision is Decision.ALLOW
    assert decision.findings[0].severity is Severity.WARNING
    assert decision.cleared_to_treat


@pytest.mark.req("SCR-STRICT-1")
def test_emtt_everything_positive() -> None:
    everything = {k: True for k, v in CLEAN_ANSWERS.items() if v is False}
    decision = run(EMTT, active_implant="icd", corticosteroid_injection_date="2026-11-23",
                   **everything)  # fmt: skip
    # every rule of the table applies to EMTT (CI-EPILEPSY only to EMTT); an adult: no CI-AGE
    assert set(decision.rules) == set(TABLE)
    assert decision.decision is Decision.BLOCK


# --- incomplete -------------------------------------------------------------------------------


@pytest.mark.req("SCR-COMPLETE-1")
@pytest.mark.parametrize("key", sorted(CLEAN_ANSWERS))
def test_any_missing_key_makes_the_screening_incomplete(key: str) -> None:
    given = answers()
    del given[key]
    decision = screen(given, modality=EPAT, protocol_id="knee-pt-epat", birth_date=ADULT,
                      session_date=SESSION)  # fmt: skip
    assert decision.decision is Decision.INCOMPLETE
    assert [u.key for u in decision.unanswered] == [key]
    assert decision.findings == () and decision.rules == ()
    assert not decision.cleared_to_treat


@pytest.mark.req("SCR-COMPLETE-1")
@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("pregnant", 0),
        ("pregnant", 1),
        ("pregnant", "false"),
        ("pregnant", None),
        ("fever", "no"),
        ("active_implant", "Pacemaker"),
        ("active_implant", True),
        ("active_implant", ""),
        ("corticosteroid_injection_date", "04/11/2026"),
        ("corticosteroid_injection_date", "2026-02-30"),
        ("corticosteroid_injection_date", "20261104"),
        ("corticosteroid_injection_date", "2026-11-04T10:00:00"),
        ("corticosteroid_injection_date", 20261104),
        ("corticosteroid_injection_date", False),
        ("failed_conservative_care_months", -1),
        ("failed_conservative_care_months", 6.0),
        ("failed_conservative_care_months", "8"),
        ("failed_conservative_care_months", True),
        ("failed_conservative_care_months", None),
    ],
)
def test_a_wrong_type_or_value_counts_as_unanswered(key: str, value: Any) -> None:
    decision = run(EPAT, **{key: value})
    assert decision.decision is Decision.INCOMPLETE
    assert [u.key for u in decision.unanswered] == [key]
    assert repr(value) in decision.unanswered[0].problem


@pytest.mark.req("SCR-COMPLETE-1")
def test_incomplete_wins_even_over_a_block_and_lists_every_problem() -> None:
    given = answers(pregnant=True, fever="yes")
    del given["nsaids"]
    decision = screen(given, modality=EPAT, protocol_id="knee-pt-epat", birth_date=ADULT,
                      session_date=SESSION)  # fmt: skip
    assert decision.decision is Decision.INCOMPLETE
    assert {u.key for u in decision.unanswered} == {"fever", "nsaids"}
    assert decision.rules == ()


@pytest.mark.req("SCR-COMPLETE-1")
def test_an_empty_questionnaire_lists_all_seventeen_keys() -> None:
    decision = screen({}, modality=EMTT, protocol_id="knee-oa-emtt", birth_date=ADULT,
                      session_date=SESSION)  # fmt: skip
    assert [u.key for u in decision.unanswered] == list(CLEAN_ANSWERS)


@pytest.mark.req("SCR-COMPLETE-1")
def test_unknown_extra_answers_are_kept_and_reported_not_used() -> None:
    decision = run(EPAT, comment="patient anxious", extra_flag=True)
    assert decision.decision is Decision.ALLOW
    assert decision.ignored_answers == ("comment", "extra_flag")
    assert decision.answers["comment"] == "patient anxious"


@pytest.mark.req("SCR-COMPLETE-1")
def test_a_python_date_is_accepted_but_a_datetime_is_not() -> None:
    assert run(EPAT, corticosteroid_injection_date=date(2026, 11, 4)).decision is Decision.BLOCK
    from datetime import datetime

    stamped = run(EPAT, corticosteroid_injection_date=datetime(2026, 11, 4, 9, 0))
    assert stamped.decision is Decision.INCOMPLETE


# --- overrides ----------------------------------------------------------------------------------

REASON = "Cardiologist cleared EPAT at the knee, letter on file."


@pytest.mark.req("SCR-BLOCK-1")
def test_a_block_can_never_be_overridden() -> None:
    decision = run(EPAT, pregnant=True, fever=True)
    with pytest.raises(OverrideNotAllowed, match="CI-PREG"):
        decision.with_override(REASON, "therapist", "u1")
    assert not decision.cleared_to_treat


@pytest.mark.req("SCR-BLOCK-1")
def test_an_incomplete_screening_cannot_be_overridden() -> None:
    with pytest.raises(OverrideNotAllowed, match="incomplete"):
        run(EPAT, fever=None).with_override(REASON, "therapist")


@pytest.mark.req("SCR-BLOCK-1")
def test_override_required_is_cleared_by_a_therapists_written_reason() -> None:
    decision = run(EPAT, active_implant="pacemaker")
    assert not decision.cleared_to_treat
    overridden = decision.with_override(f"  {REASON}  ", "therapist", "u7")
    assert overridden.cleared_to_treat
    assert overridden.decision is Decision.OVERRIDE_REQUIRED  # the decision itself is unchanged
    assert overridden.override is not None and overridden.override.reason == REASON
    assert overridden.to_record()["override"] == {
        "reason": REASON, "role": "therapist", "user_id": "u7",
    }  # fmt: skip


@pytest.mark.req("SCR-BLOCK-1")
@pytest.mark.parametrize(
    ("reason", "role"),
    [("too short reason", "therapist"), ("   " + "x" * 19 + "   ", "therapist"),
     (REASON, "admin"), (REASON, "service"), ("", "therapist")],
)  # fmt: skip
def test_an_override_needs_a_therapist_and_20_characters(reason: str, role: str) -> None:
    with pytest.raises(OverrideNotAllowed):
        run(EPAT, active_implant="pacemaker").with_override(reason, role)


# --- context errors -------------------------------------------------------------------------


@pytest.mark.req("SCR-CASE-1")
def test_impossible_context_is_an_input_error_not_a_decision() -> None:
    with pytest.raises(ClinicalInputError, match="EPAT protocol"):
        screen(answers(), modality=EMTT, protocol_id="knee-osg-epat", birth_date=ADULT,
               session_date=SESSION)  # fmt: skip
    with pytest.raises(ClinicalInputError, match="unknown protocol"):
        screen(answers(), modality=EPAT, protocol_id="knee-xx", birth_date=ADULT,
               session_date=SESSION)  # fmt: skip
    with pytest.raises(ClinicalInputError, match="after the session date"):
        screen(answers(), modality=EPAT, protocol_id="knee-pt-epat",
               birth_date=SESSION + timedelta(days=1), session_date=SESSION)  # fmt: skip


@pytest.mark.req("SCR-CASE-1")
def test_born_on_the_session_date_is_age_zero_and_blocked() -> None:
    assert run(EPAT, birth=SESSION).age_years == 0
    assert run(EPAT, birth=SESSION).decision is Decision.BLOCK


@pytest.mark.req("SCR-CASE-1")
def test_modality_may_be_given_as_text_or_another_enum_but_must_be_known() -> None:
    assert run("epat").decision is Decision.ALLOW  # type: ignore[arg-type]
    with pytest.raises(ClinicalInputError, match="unknown modality"):
        screen(answers(), modality="laser", protocol_id="knee-pt-epat", birth_date=ADULT,
               session_date=SESSION)  # fmt: skip
