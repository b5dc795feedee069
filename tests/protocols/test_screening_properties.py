"""Properties of screening over generated questionnaires (hypothesis)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import Decision, OverrideNotAllowed, default_library, screen
from tests.protocols.builders import CLEAN_ANSWERS

PROTOCOLS = [(p.modality, p.id) for p in default_library()]
IMPLANTS = ["pacemaker", "icd", "neurostimulator", "insulin_pump", "cochlear_implant",
            "other_active"]  # fmt: skip
BOOL_KEYS = [k for k, v in CLEAN_ANSWERS.items() if v is False]
STRICTNESS = {Decision.ALLOW: 0, Decision.OVERRIDE_REQUIRED: 1, Decision.BLOCK: 2}

session_dates = st.dates(date(2020, 1, 1), date(2035, 12, 31))


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    session = draw(session_dates)
    birth = draw(st.dates(date(1920, 1, 1), session))
    modality, protocol = draw(st.sampled_from(PROTOCOLS))
    answers = {key: draw(st.booleans()) for key in BOOL_KEYS}
    answers["active_implant"] = draw(st.none() | st.sampled_from(IMPLANTS))
    injection = draw(st.none() | st.dates(session - timedelta(days=120), session + timedelta(5)))
    answers["corticosteroid_injection_date"] = injection.isoformat() if injection else None
    answers["failed_conservative_care_months"] = draw(st.integers(0, 60))
    return {
        "answers": answers,
        "modality": modality,
        "protocol_id": protocol,
        "birth_date": birth,
        "session_date": session,
    }


def run(case: dict[str, Any], answers: dict[str, Any] | None = None):
    return screen(
        answers if answers is not None else case["answers"],
        modality=case["modality"],
        protocol_id=case["protocol_id"],
        birth_date=case["birth_date"],
        session_date=case["session_date"],
    )


@pytest.mark.req("SCR-PURE-1")
@settings(max_examples=150, deadline=None)
@given(cases())
def test_screening_a_complete_questionnaire_is_a_pure_function(case: dict[str, Any]) -> None:
    first = run(case)
    reordered = dict(reversed(list(case["answers"].items())))
    again = run(case, reordered)
    assert first.decision is not Decision.INCOMPLETE
    assert first.to_record() == again.to_record()
    assert first == run(case)
    # the decision carries its inputs: answers, date, rule-set version
    assert dict(first.answers) == case["answers"]
    assert first.session_date == case["session_date"]
    assert first.ruleset_version == "2026.1"


@pytest.mark.req("SCR-PURE-1")
@settings(max_examples=50, deadline=None)
@given(cases())
def test_the_decision_does_not_keep_a_reference_to_the_callers_answers(
    case: dict[str, Any],
) -> None:
    answers = dict(case["answers"])
    decision = run(case, answers)
    before = decision.to_record()
    answers["pregnant"] = not answers["pregnant"]
    answers.clear()
    assert decision.to_record() == before


def _more_positive(answers: dict[str, Any], draw: st.DrawFn, session: date) -> dict[str, Any]:
    """``answers`` with one more positive finding (or a stronger one)."""
    changed = dict(answers)
    choices = [k for k in BOOL_KEYS if not answers[k]]
    if answers["active_implant"] is None:
        choices.append("active_implant")
    if answers["corticosteroid_injection_date"] is None:
        choices.append("corticosteroid_injection_date")
    if answers["failed_conservative_care_months"] > 0:
        choices.append("failed_conservative_care_months")
    if not choices:
        return changed
    key = draw(st.sampled_from(choices))
    if key == "active_implant":
        changed[key] = draw(st.sampled_from(IMPLANTS))
    elif key == "corticosteroid_injection_date":
        changed[key] = (session - timedelta(days=draw(st.integers(0, 41)))).isoformat()
    elif key == "failed_conservative_care_months":
        changed[key] = draw(st.integers(0, answers[key] - 1))
    else:
        changed[key] = True
    return changed


@pytest.mark.req("SCR-STRICT-1")
@settings(max_examples=300, deadline=None)
@given(st.data(), cases())
def test_adding_a_positive_finding_never_makes_a_decision_less_strict(
    data: st.DataObject, case: dict[str, Any]
) -> None:
    before = run(case)
    worse = _more_positive(case["answers"], data.draw, case["session_date"])
    after = run(case, worse)
    assert STRICTNESS[after.decision] >= STRICTNESS[before.decision]
    assert set(before.rules) <= set(after.rules)


@pytest.mark.req("SCR-STRICT-1")
@settings(max_examples=150, deadline=None)
@given(cases(), st.integers(1, 80))
def test_being_younger_never_makes_a_decision_less_strict_outside_osg(
    case: dict[str, Any], years: int
) -> None:
    if case["protocol_id"] == "knee-osg-epat":
        return  # the 10–17 exception is deliberately less strict than under 10 is
    older = run(case)
    younger_birth = min(case["birth_date"] + timedelta(days=365 * years), case["session_date"])
    younger = run({**case, "birth_date": younger_birth})
    assert STRICTNESS[younger.decision] >= STRICTNESS[older.decision]


@pytest.mark.req("SCR-BLOCK-1")
@settings(max_examples=150, deadline=None)
@given(cases(), st.text(min_size=20, max_size=60).filter(lambda s: len(s.strip()) >= 20))
def test_no_block_is_ever_overridden(case: dict[str, Any], reason: str) -> None:
    decision = run(case)
    if decision.decision is Decision.OVERRIDE_REQUIRED:
        assert decision.with_override(reason, "therapist").cleared_to_treat
        return
    with pytest.raises(OverrideNotAllowed):
        decision.with_override(reason, "therapist")
    assert decision.cleared_to_treat is (decision.decision is Decision.ALLOW)
