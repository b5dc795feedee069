"""The rule file is the policy: checked strictly when loaded, replaceable by a new version."""

from __future__ import annotations

import pytest

from protocols import ClinicalDataError, Decision, Modality, Severity, default_ruleset, screen
from protocols import parse_ruleset as parse
from protocols.packaged import read_packaged
from tests.protocols.builders import ADULT, SESSION, answers

RULE_IDS = [
    "CI-PREG", "CI-MALIG", "CI-INFECT", "CI-IMPLANT", "CI-EPILEPSY", "CI-COAG", "CI-THROMB",
    "CI-STEROID", "CI-AGE", "CI-GROWTH", "CI-METAL", "CI-NEURO", "CI-RUPTURE", "CI-FEVER",
    "CI-NSAID", "CI-CONSERVATIVE",
]  # fmt: skip


def shipped() -> str:
    return read_packaged("contraindications.toml")[0]


def refused(text: str) -> ClinicalDataError:
    with pytest.raises(ClinicalDataError) as caught:
        parse(text, "clinic/rules.toml", known_protocols=["knee-osg-epat", "knee-pt-epat"])
    assert caught.value.source == "clinic/rules.toml"
    return caught.value


@pytest.mark.req("SCR-DATA-1")
def test_the_shipped_rule_set_is_the_reference_table() -> None:
    ruleset = default_ruleset()
    assert [rule.id for rule in ruleset.rules] == RULE_IDS
    assert ruleset.version == "2026.1"
    assert len(ruleset.questionnaire.keys) == 17
    for rule in ruleset.rules:
        assert rule.finding and rule.sources
    steroid = ruleset.rule("CI-STEROID")
    assert steroid.eligible_from is not None and steroid.eligible_from.days_after == 42
    assert set(ruleset.rule("CI-EPILEPSY").severity) == {Modality.EMTT}
    assert set(ruleset.rule("CI-CONSERVATIVE").severity) == {Modality.EPAT}


@pytest.mark.parametrize(
    ("old", "new", "field", "problem"),
    [
        ('when = { answer_true = "pregnant" }', 'when = { answer_yes = "pregnant" }',
         "rule[0].when.answer_yes", "unknown condition kind"),
        ('when = { answer_true = "pregnant" }', 'when = { answer_true = "pregnancy" }',
         "rule[0].when.answer_true", "not a question"),
        ('when = { answer_true = "pregnant" }', 'when = { answer_true = "active_implant" }',
         "rule[0].when.answer_true", "choice_or_none question"),
        ('severity = { epat = "block", emtt = "block" }\nsources = ["Tenforde',
         'severity = { epat = "forbid", emtt = "block" }\nsources = ["Tenforde',
         "rule[0].severity.epat", "unknown severity 'forbid'"),
        ('severity = { epat = "block", emtt = "block" }\nsources = ["Tenforde',
         'severity = { eswt = "block" }\nsources = ["Tenforde',
         "rule[0].severity.eswt", "unknown modality"),
        ('severity = { epat = "block" }\nreason', 'severity = { epat = "warning" }\nreason',
         "rule[3].escalate[0].severity.epat", "stricter"),
        ("days_after = 42", "days_after = 28", "rule[7].eligible_from.days_after",
         "must match"),
        ('id = "CI-PREG"', 'id = "CI-PROTOCOL"\nextra = 1', "rule[0].extra", "unknown field"),
        ('id = "CI-MALIG"', 'id = "CI-PREG"', "rule[1].id", "appears twice"),
        ('id = "CI-PREG"', 'id = "pregnancy"', "rule[0].id", "not a rule id"),
        ('kind = "bool"', 'kind = "boolean"', "question[0].kind", "unknown answer kind"),
        ('{ age_under = 18 }', '{ age_under = 0 }', "rule[8].when.all[0].age_under",
         "at least 1"),
        ('version = "2026.1"', "", "version", "missing"),
    ],
)  # fmt: skip
@pytest.mark.req("SCR-DATA-1")
def test_a_malformed_rule_file_names_field_and_problem(
    old: str, new: str, field: str, problem: str
) -> None:
    text = shipped()
    assert old in text
    error = refused(text.replace(old, new, 1))
    assert error.field == field
    assert problem in error.problem


@pytest.mark.req("SCR-DATA-1")
def test_a_condition_naming_a_missing_protocol_is_refused() -> None:
    text = shipped().replace('{ protocol_is = "knee-osg-epat" },\n  { answer_under',
                             '{ protocol_is = "knee-osgood-epat" },\n  { answer_under')  # fmt: skip
    error = refused(text)
    assert "knee-osgood-epat" in error.problem


@pytest.mark.req("SCR-DATA-1")
def test_syntax_errors_name_the_file() -> None:
    error = refused(shipped() + "\n[[rule]\n")
    assert error.field == "(syntax)"


@pytest.mark.req("PROT-LIB-3", "SCR-DATA-1")
def test_a_clinics_new_policy_version_screens_with_its_own_rules() -> None:
    # A stricter clinic policy: fever blocks EPAT. Same loader, same checks, new version.
    text = (
        shipped()
        .replace('version = "2026.1"', 'version = "2027.1-clinic"')
        .replace(
            'when = { answer_true = "fever" }\nseverity = { epat = "override_required"',
            'when = { answer_true = "fever" }\nseverity = { epat = "block"',
        )
    )
    ruleset = parse(text, "clinic/rules.toml", known_protocols=["knee-osg-epat"])
    decision = screen(answers(fever=True), modality=Modality.EPAT, protocol_id="knee-pt-epat",
                      birth_date=ADULT, session_date=SESSION, ruleset=ruleset)  # fmt: skip
    assert decision.decision is Decision.BLOCK
    assert decision.findings[0].severity is Severity.BLOCK
    assert decision.ruleset_version == "2027.1-clinic"
    default = screen(answers(fever=True), modality=Modality.EPAT, protocol_id="knee-pt-epat",
                     birth_date=ADULT, session_date=SESSION)  # fmt: skip
    assert default.decision is Decision.OVERRIDE_REQUIRED
    assert default.ruleset_version == "2026.1"
