"""Contraindication screening: the rule set applied to one patient, one protocol, one date.

A pure function of its inputs (no clock, no I/O): the same answers on the same session date
always give the same :class:`ScreeningDecision`, which carries everything the record needs to
show later why the patient was or was not treated (answers, findings, rule-set version).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from protocols.conditions import Facts
from protocols.dates import age_in_years
from protocols.errors import ClinicalInputError, OverrideNotAllowed
from protocols.library import ProtocolLibrary, default_library
from protocols.modality import Modality, parse_modality
from protocols.overrides import Override, make_override
from protocols.questionnaire import Unanswered
from protocols.ruleset import Rule, RuleSet, default_ruleset
from protocols.severity import Severity, strictest


class Decision(StrEnum):
    ALLOW = "allow"
    OVERRIDE_REQUIRED = "override_required"
    BLOCK = "block"
    INCOMPLETE = "incomplete"


_DECISION_OF = {
    None: Decision.ALLOW,
    Severity.WARNING: Decision.ALLOW,
    Severity.OVERRIDE_REQUIRED: Decision.OVERRIDE_REQUIRED,
    Severity.BLOCK: Decision.BLOCK,
}


@dataclass(frozen=True, slots=True)
class ScreeningFinding:
    """One rule that fired: its id, how severe for this modality, what it means and what to do.

    ``eligible_from`` is the first date the rule no longer fires (time-window rules only).
    """

    rule: str
    severity: Severity
    message: str
    eligible_from: date | None = None

    def to_record(self) -> dict[str, str | None]:
        return {
            "rule": self.rule,
            "severity": self.severity.value,
            "message": self.message,
            "eligible_from": self.eligible_from.isoformat() if self.eligible_from else None,
        }


@dataclass(frozen=True, slots=True)
class ScreeningDecision:
    """The outcome of one screening, as the session record stores it."""

    decision: Decision
    findings: tuple[ScreeningFinding, ...]
    unanswered: tuple[Unanswered, ...]
    ignored_answers: tuple[str, ...]
    answers: Mapping[str, Any]
    modality: Modality
    protocol_id: str
    birth_date: date
    session_date: date
    age_years: int
    ruleset_version: str
    override: Override | None = None

    @property
    def rules(self) -> tuple[str, ...]:
        """Ids of the rules that fired (warnings included), strictest first."""
        return tuple(finding.rule for finding in self.findings)

    @property
    def cleared_to_treat(self) -> bool:
        """Allowed, or relatively contraindicated with a recorded override; never otherwise."""
        if self.decision is Decision.ALLOW:
            return True
        return self.decision is Decision.OVERRIDE_REQUIRED and self.override is not None

    def with_override(
        self, reason: str, role: str, user_id: str | None = None
    ) -> ScreeningDecision:
        """This decision with a therapist's written override; only ``override_required`` can.

        A ``block`` (absolute contraindication) and an ``incomplete`` screening cannot be
        overridden: :class:`OverrideNotAllowed` says so.
        """
        if self.decision is Decision.BLOCK:
            blocking = ", ".join(f.rule for f in self.findings if f.severity is Severity.BLOCK)
            raise OverrideNotAllowed(
                f"absolute contraindication ({blocking}): no override is possible; do not treat"
            )
        if self.decision is Decision.INCOMPLETE:
            raise OverrideNotAllowed("the screening is incomplete: answer every question first")
        if self.decision is Decision.ALLOW:
            raise OverrideNotAllowed("nothing to override: the screening allows treatment")
        return replace(self, override=make_override(reason, role, user_id))

    def to_record(self) -> dict[str, Any]:
        """JSON-ready record (no floats; dates as ISO text) for the session and the audit trail."""
        return {
            "decision": self.decision.value,
            "rules": list(self.rules),
            "findings": [f.to_record() for f in self.findings],
            "unanswered": [u.to_record() for u in self.unanswered],
            "ignored_answers": list(self.ignored_answers),
            "answers": {k: _json_value(v) for k, v in self.answers.items()},
            "modality": self.modality.value,
            "protocol": self.protocol_id,
            "birth_date": self.birth_date.isoformat(),
            "session_date": self.session_date.isoformat(),
            "age_years": self.age_years,
            "ruleset_version": self.ruleset_version,
            "override": self.override.to_record() if self.override else None,
        }


def screen(
    answers: Mapping[str, Any],
    *,
    modality: Modality | str,
    protocol_id: str,
    birth_date: date,
    session_date: date,
    ruleset: RuleSet | None = None,
    library: ProtocolLibrary | None = None,
) -> ScreeningDecision:
    """Screen one patient for one session.

    Raises :class:`ClinicalInputError` for inputs that cannot describe a real session (unknown
    protocol, a protocol of the other modality, born after the session date). Unanswered or
    invalid answers are not errors: the decision is ``incomplete`` and lists them; no rule is
    evaluated on a partial questionnaire.
    """
    ruleset = ruleset or default_ruleset()
    library = library or default_library()
    known = parse_modality(modality)
    if known is None:
        raise ClinicalInputError(f"unknown modality {modality!r} (known: epat, emtt)")
    modality = known
    _check_context(modality, protocol_id, birth_date, session_date, library)
    frozen_answers = MappingProxyType(dict(answers))
    checked = ruleset.questionnaire.check(frozen_answers)
    age = age_in_years(birth_date, session_date)
    common = {
        "unanswered": checked.unanswered,
        "ignored_answers": checked.ignored,
        "answers": frozen_answers,
        "modality": modality,
        "protocol_id": protocol_id,
        "birth_date": birth_date,
        "session_date": session_date,
        "age_years": age,
        "ruleset_version": ruleset.version,
    }
    if checked.unanswered:
        return ScreeningDecision(decision=Decision.INCOMPLETE, findings=(), **common)
    facts = Facts(checked.values, age, protocol_id, session_date)
    findings = [
        finding
        for rule in ruleset.rules
        if (finding := _finding(rule, modality, facts)) is not None
    ]
    findings.sort(key=lambda f: -f.severity.rank)  # stable: table order within a severity
    decision = _DECISION_OF[strictest(f.severity for f in findings)]
    return ScreeningDecision(decision=decision, findings=tuple(findings), **common)


def _check_context(
    modality: Modality,
    protocol_id: str,
    birth_date: date,
    session_date: date,
    library: ProtocolLibrary,
) -> None:
    if protocol_id not in library:
        known = ", ".join(sorted(library.protocols))
        raise ClinicalInputError(f"unknown protocol {protocol_id!r} (known: {known})")
    protocol = library.get(protocol_id)
    if protocol.modality is not modality:
        raise ClinicalInputError(
            f"protocol {protocol_id} is an {protocol.modality.label} protocol, not "
            f"{modality.label}: choose a {modality.label} protocol or the {protocol.modality.label}"
            " modality"
        )
    if birth_date > session_date:
        raise ClinicalInputError(
            f"birth date {birth_date.isoformat()} is after the session date "
            f"{session_date.isoformat()}: check both dates"
        )


def _finding(rule: Rule, modality: Modality, facts: Facts) -> ScreeningFinding | None:
    outcome = rule.evaluate(modality, facts)
    if outcome is None:
        return None
    severity, reasons = outcome
    eligible = rule.eligible_from.date_for(facts.answers) if rule.eligible_from else None
    detail = f" ({'; '.join(reasons)})" if reasons else ""
    label = modality.label
    if severity is Severity.BLOCK:
        until = f" before {eligible.isoformat()}" if eligible else ""
        action = f"absolute contraindication for {label}: do not treat{until}; no override"
    elif severity is Severity.OVERRIDE_REQUIRED:
        after = f" (without one from {eligible.isoformat()})" if eligible else ""
        action = (
            f"relative contraindication for {label}: treat only with a written override "
            f"reason{after}"
        )
    else:
        action = f"allowed; {rule.advice}" if rule.advice else "allowed, with this warning"
    return ScreeningFinding(
        rule=rule.id,
        severity=severity,
        message=f"{rule.id}: {rule.finding}{detail} — {action}",
        eligible_from=eligible,
    )


def _json_value(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool | int | str) or value is None:
        return value
    return repr(value)  # an invalid answer of another type: kept, visibly, not lost
