"""The contraindication rule set (clinical reference §3 and §4) as one versioned data file.

The file holds the questionnaire and the rule table: rule id, finding, per-modality severity
(a modality the rule does not name is "—", not applicable), the condition, optional escalations
("block if the implant is in the treatment field"), the first eligible date for time windows,
and the sources. :func:`parse_ruleset` checks all of it, so a clinic's new policy version is
refused with the file, field and problem before it could ever screen a patient.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from types import MappingProxyType

from protocols.conditions import Condition, ConditionParser, DaysSinceUnder, Facts, ProtocolIs
from protocols.datafile import Table, parse_toml
from protocols.library import default_library
from protocols.modality import Modality, parse_modality
from protocols.packaged import read_packaged
from protocols.questionnaire import AnswerKind, Questionnaire, parse_questions
from protocols.severity import Severity

RULE_SEVERITIES = (Severity.WARNING, Severity.OVERRIDE_REQUIRED, Severity.BLOCK)
_RULE_ID = re.compile(r"[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)+")


@dataclass(frozen=True, slots=True)
class Escalation:
    """A stricter severity for some modalities when an extra condition holds."""

    when: Condition
    severity: Mapping[Modality, Severity]
    reason: str


@dataclass(frozen=True, slots=True)
class EligibleFrom:
    """The first date the rule stops firing: the date answer plus ``days_after`` days."""

    key: str
    days_after: int

    def date_for(self, answers: Mapping[str, object]) -> date | None:
        when = answers.get(self.key)
        return when + timedelta(days=self.days_after) if isinstance(when, date) else None


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    finding: str
    sources: tuple[str, ...]
    when: Condition
    severity: Mapping[Modality, Severity]
    escalations: tuple[Escalation, ...] = ()
    eligible_from: EligibleFrom | None = None
    advice: str | None = None

    def applies_to(self, modality: Modality) -> bool:
        return modality in self.severity

    def evaluate(self, modality: Modality, facts: Facts) -> tuple[Severity, list[str]] | None:
        """(severity, facts behind it) when the rule fires for ``modality``, else None."""
        if not self.applies_to(modality) or not self.when.holds(facts):
            return None
        severity = self.severity[modality]
        reasons = self.when.explain(facts)
        for escalation in self.escalations:
            stricter = escalation.severity.get(modality)
            if stricter is not None and escalation.when.holds(facts):
                if stricter.rank > severity.rank:
                    severity = stricter
                reasons.append(escalation.reason)
        return severity, reasons


@dataclass(frozen=True, slots=True)
class RuleSet:
    version: str
    title: str
    questionnaire: Questionnaire
    rules: tuple[Rule, ...]
    source: str

    def rule(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(f"no rule {rule_id!r} in rule set {self.version}")

    def protocols_named(self) -> set[str]:
        """Protocol ids the conditions refer to (to check against a protocol library)."""
        return {
            leaf.protocol_id
            for rule in self.rules
            for condition in (rule.when, *(e.when for e in rule.escalations))
            for leaf in condition.leaves()
            if isinstance(leaf, ProtocolIs)
        }


def parse_ruleset(text: str, source: str, *, known_protocols: Iterable[str] = ()) -> RuleSet:
    """A rule set from TOML text. ``known_protocols``: if given, every ``protocol_is`` must name
    one of them (a misspelt protocol id would otherwise make its rule silently never fire)."""
    root = parse_toml(text, source)
    version = root.text("version")
    title = root.text("title")
    questionnaire = parse_questions(root.tables("question"))
    parser = ConditionParser(source, questionnaire)
    rules: list[Rule] = []
    for table in root.tables("rule"):
        rule = _rule(table, parser, questionnaire)
        if any(existing.id == rule.id for existing in rules):
            table.fail("id", f"rule {rule.id!r} appears twice")
        rules.append(rule)
    root.done()
    ruleset = RuleSet(version, title, questionnaire, tuple(rules), source)
    known = set(known_protocols)
    if known:
        for protocol_id in sorted(ruleset.protocols_named() - known):
            root.fail("rule", f"a condition names protocol {protocol_id!r}, which does not exist")
    return ruleset


def _severity_table(table: Table, key: str, *, required: bool = True) -> dict[Modality, Severity]:
    if not required and not table.has(key):
        return {}
    severities = table.table(key)
    result: dict[Modality, Severity] = {}
    allowed = ", ".join(s.value for s in RULE_SEVERITIES)
    for name in severities:
        modality = parse_modality(name)
        if modality is None:
            severities.fail(name, f"unknown modality {name!r} (known: epat, emtt)")
        value = severities.string(name)
        try:
            severity = Severity(value)
        except ValueError:
            severity = None
        if severity not in RULE_SEVERITIES:
            severities.fail(name, f"unknown severity {value!r} (known: {allowed})")
        result[modality] = severity
    if not result:
        table.fail(key, "names no modality: a rule must apply to at least one")
    return result


def _rule(table: Table, parser: ConditionParser, questionnaire: Questionnaire) -> Rule:
    rule_id = table.text("id")
    if not _RULE_ID.fullmatch(rule_id):
        table.fail("id", f"{rule_id!r} is not a rule id like CI-PREG")
    when = parser.parse(table.raw("when"), table.field_name("when"))
    severity = _severity_table(table, "severity")
    escalations: list[Escalation] = []
    if table.has("escalate"):
        for sub in table.tables("escalate"):
            stricter = _severity_table(sub, "severity")
            for modality, level in stricter.items():
                base = severity.get(modality)
                if base is None or level.rank <= base.rank:
                    sub.fail(
                        f"severity.{modality}",
                        f"an escalation must be stricter than the rule's own severity "
                        f"({base or 'not applicable'}) for {modality}",
                    )
            escalations.append(
                Escalation(
                    parser.parse(sub.raw("when"), sub.field_name("when")),
                    MappingProxyType(stricter),
                    sub.text("reason"),
                )
            )
            sub.done()
    eligible = _eligible_from(table, when, questionnaire) if table.has("eligible_from") else None
    rule = Rule(
        id=rule_id,
        finding=table.text("finding"),
        sources=table.strings("sources"),
        when=when,
        severity=MappingProxyType(severity),
        escalations=tuple(escalations),
        eligible_from=eligible,
        advice=table.string("advice", required=False),
    )
    table.done()
    return rule


def _eligible_from(table: Table, when: Condition, questionnaire: Questionnaire) -> EligibleFrom:
    sub = table.table("eligible_from")
    key = sub.text("key")
    days = sub.whole("days_after", minimum=1)
    sub.done()
    question = questionnaire.question(key)
    if question is None or question.kind is not AnswerKind.DATE_OR_NONE:
        sub.fail("key", f"{key!r} is not a date question of the questionnaire")
    windows = [leaf for leaf in when.leaves() if isinstance(leaf, DaysSinceUnder)]
    if DaysSinceUnder(key, days) not in windows:
        sub.fail(
            "days_after",
            f"must match the rule's own days_since_under window on {key!r} "
            f"(found: {', '.join(f'{w.key} {w.days}' for w in windows) or 'none'})",
        )
    return EligibleFrom(key, days)


@cache
def default_ruleset() -> RuleSet:
    """The shipped default contraindication policy (clinical reference §3 and §4)."""
    text, source = read_packaged("contraindications.toml")
    return parse_ruleset(text, source, known_protocols=default_library().protocols)
