"""Screening cases in the vignette format (clinical reference, end of §4).

``{"id", "description", "modality", "protocol", "session_date", "patient": {"birth_date"},
"screening": {...answers...}, "expect": {...}}``. A case that lacks what any screening needs
(modality, protocol, session date, birth date) is not a case: :class:`CaseFormatError` says
which field and what to do. Missing *answers* are not a format error: they make the screening
``incomplete``, which is a decision like any other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from protocols.dates import parse_iso_date
from protocols.errors import ClinicalInputError
from protocols.library import ProtocolLibrary, default_library
from protocols.modality import Modality, parse_modality
from protocols.ruleset import RuleSet
from protocols.screening import ScreeningDecision, screen


class CaseFormatError(ClinicalInputError):
    """The document is not a screening case; the message names the field and the fix."""


@dataclass(frozen=True, slots=True)
class ScreeningCase:
    case_id: str | None
    description: str | None
    modality: Modality
    protocol_id: str
    session_date: date
    birth_date: date
    answers: Mapping[str, Any]
    expected_decision: str | None = None
    expected_rules: tuple[str, ...] | None = None

    def screen(
        self, ruleset: RuleSet | None = None, library: ProtocolLibrary | None = None
    ) -> ScreeningDecision:
        return screen(
            self.answers,
            modality=self.modality,
            protocol_id=self.protocol_id,
            birth_date=self.birth_date,
            session_date=self.session_date,
            ruleset=ruleset,
            library=library,
        )


def parse_case(document: Any, library: ProtocolLibrary | None = None) -> ScreeningCase:
    """A :class:`ScreeningCase` from a decoded JSON document, or :class:`CaseFormatError`."""
    library = library or default_library()
    if not isinstance(document, Mapping):
        raise CaseFormatError(f"a case is a JSON object, not {_json_type(document)}")
    modality = parse_modality(document.get("modality"))
    if modality is None:
        raise CaseFormatError(
            f'\'modality\' must be "epat" or "emtt", got {_shown(document, "modality")}'
        )
    protocol_id = document.get("protocol")
    if not isinstance(protocol_id, str) or protocol_id not in library:
        known = ", ".join(sorted(library.protocols))
        raise CaseFormatError(
            f"'protocol' must be one of {known}; got {_shown(document, 'protocol')}"
        )
    protocol = library.get(protocol_id)
    if protocol.modality is not modality:
        raise CaseFormatError(
            f"'protocol' {protocol_id} is an {protocol.modality.label} protocol but 'modality' "
            f"is {modality.value}: make them agree"
        )
    session_date = _date(document, "session_date", document.get("session_date"))
    patient = document.get("patient")
    if not isinstance(patient, Mapping):
        raise CaseFormatError(
            f"'patient' must be an object with 'birth_date', got {_shown(document, 'patient')}"
        )
    birth_date = _date(patient, "patient.birth_date", patient.get("birth_date"))
    if birth_date > session_date:
        raise CaseFormatError(
            f"'patient.birth_date' {birth_date} is after 'session_date' {session_date}"
        )
    answers = document.get("screening", {})
    if not isinstance(answers, Mapping):
        raise CaseFormatError(
            f"'screening' must be an object of answers, got {_json_type(answers)}"
        )
    expected_decision, expected_rules = _expectation(document.get("expect"))
    case_id = document.get("id")
    description = document.get("description")
    return ScreeningCase(
        case_id=case_id if isinstance(case_id, str) else None,
        description=description if isinstance(description, str) else None,
        modality=modality,
        protocol_id=protocol_id,
        session_date=session_date,
        birth_date=birth_date,
        answers=dict(answers),
        expected_decision=expected_decision,
        expected_rules=expected_rules,
    )


def _date(container: Mapping[str, Any], name: str, value: Any) -> date:
    parsed = parse_iso_date(value) if isinstance(value, str) else None
    if parsed is None:
        raise CaseFormatError(f"'{name}' must be a date as YYYY-MM-DD, got {value!r}")
    return parsed


def _expectation(expect: Any) -> tuple[str | None, tuple[str, ...] | None]:
    if expect is None:
        return None, None
    if not isinstance(expect, Mapping):
        raise CaseFormatError(f"'expect' must be an object, got {_json_type(expect)}")
    decision = expect.get("decision")
    rules = expect.get("rules")
    if decision is not None and not isinstance(decision, str):
        raise CaseFormatError(f"'expect.decision' must be a text, got {decision!r}")
    if rules is not None and (
        not isinstance(rules, list) or not all(isinstance(r, str) for r in rules)
    ):
        raise CaseFormatError(f"'expect.rules' must be a list of rule ids, got {rules!r}")
    return decision, tuple(rules) if rules is not None else None


def _shown(document: Mapping[str, Any], key: str) -> str:
    return repr(document[key]) if key in document else "nothing (missing)"


def _json_type(value: Any) -> str:
    names = {list: "an array", str: "a text", bool: "true/false", type(None): "null"}
    for kind, name in names.items():
        if isinstance(value, kind):
            return name
    return "a number" if isinstance(value, int | float) else type(value).__name__
