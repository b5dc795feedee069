"""Pure clinical logic: protocols, parameter validation, screening, movement programmes.

No I/O beyond reading the package's own data, no Qt, no database, no clock: every function is
deterministic given its inputs and the session date. The policy itself is data
(``protocols/data``); the code interprets it and explains every verdict.
"""

from __future__ import annotations

from protocols.assignment import ProgrammeAssignment, ProgrammeStatus, programme_finding
from protocols.cases import CaseFormatError, ScreeningCase, parse_case
from protocols.errors import ClinicalDataError, ClinicalInputError, OverrideNotAllowed
from protocols.findings import Layer, ValidationFinding
from protocols.library import (
    Course,
    ParameterRange,
    ProtocolLibrary,
    TreatmentProtocol,
    default_library,
    parse_library,
    parse_protocol,
)
from protocols.limits import ApplicatorLimit, ApplicatorType, DeviceEnvelope, Limit, SessionPlan
from protocols.modality import Modality
from protocols.overrides import MIN_REASON_CHARS, Override, make_override
from protocols.programmes import (
    Dosage,
    Exercise,
    Phase,
    Pillar,
    ProgrammeLibrary,
    ProgrammeTemplate,
    default_programmes,
    parse_programme,
    parse_programmes,
)
from protocols.questionnaire import AnswerKind, Question, Questionnaire, Unanswered
from protocols.ruleset import Rule, RuleSet, default_ruleset, parse_ruleset
from protocols.screening import Decision, ScreeningDecision, ScreeningFinding, screen
from protocols.severity import Severity, strictest
from protocols.validation import ValidationDecision, ValidationResult, validate_plan

__all__ = [
    "MIN_REASON_CHARS",
    "AnswerKind",
    "ApplicatorLimit",
    "ApplicatorType",
    "CaseFormatError",
    "ClinicalDataError",
    "ClinicalInputError",
    "Course",
    "Decision",
    "DeviceEnvelope",
    "Dosage",
    "Exercise",
    "Layer",
    "Limit",
    "Modality",
    "Override",
    "OverrideNotAllowed",
    "ParameterRange",
    "Phase",
    "Pillar",
    "ProgrammeAssignment",
    "ProgrammeLibrary",
    "ProgrammeStatus",
    "ProgrammeTemplate",
    "ProtocolLibrary",
    "Question",
    "Questionnaire",
    "Rule",
    "RuleSet",
    "ScreeningCase",
    "ScreeningDecision",
    "ScreeningFinding",
    "SessionPlan",
    "Severity",
    "TreatmentProtocol",
    "Unanswered",
    "ValidationDecision",
    "ValidationFinding",
    "ValidationResult",
    "default_library",
    "default_programmes",
    "default_ruleset",
    "make_override",
    "parse_case",
    "parse_library",
    "parse_programme",
    "parse_programmes",
    "parse_protocol",
    "parse_ruleset",
    "programme_finding",
    "screen",
    "strictest",
    "validate_plan",
]
