"""The screening questionnaire: which answers exist, and which values count as an answer.

Kept as data next to the rules (one version for both) so the GUI can render the questions and
the rules can trust the answers: a value of the wrong type or outside its choices counts as
*unanswered*, exactly like a missing one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from protocols.datafile import Table
from protocols.dates import parse_iso_date


class AnswerKind(StrEnum):
    BOOL = "bool"
    CHOICE_OR_NONE = "choice_or_none"
    DATE_OR_NONE = "date_or_none"
    INT = "int"


@dataclass(frozen=True, slots=True)
class Question:
    key: str
    kind: AnswerKind
    text: str
    choices: tuple[str, ...] = ()
    minimum: int | None = None

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not an answer to this question, or None when it is one."""
        if self.kind is AnswerKind.BOOL:
            if type(value) is not bool:
                return f"{value!r} is not yes/no: answer true or false"
        elif self.kind is AnswerKind.CHOICE_OR_NONE:
            if value is not None and (not isinstance(value, str) or value not in self.choices):
                return f"{value!r} is not one of: null (none), {', '.join(self.choices)}"
        elif self.kind is AnswerKind.DATE_OR_NONE:
            if value is not None and parse_iso_date(value) is None:
                return f"{value!r} is not a date: give YYYY-MM-DD, or null for none"
        elif type(value) is not int:
            return f"{value!r} is not a whole number"
        elif self.minimum is not None and value < self.minimum:
            return f"{value} is below {self.minimum}"
        return None

    def normalise(self, value: Any) -> Any:
        """The answer as the rules use it (dates as ``date``); only for valid answers."""
        if self.kind is AnswerKind.DATE_OR_NONE and value is not None:
            return parse_iso_date(value)
        return value


@dataclass(frozen=True, slots=True)
class Unanswered:
    """A question without a valid answer, and why."""

    key: str
    problem: str

    def to_record(self) -> dict[str, str]:
        return {"key": self.key, "problem": self.problem}


@dataclass(frozen=True, slots=True)
class CheckedAnswers:
    values: Mapping[str, bool | int | str | date | None]  # valid answers, normalised
    unanswered: tuple[Unanswered, ...]
    ignored: tuple[str, ...]  # keys the questionnaire does not have


@dataclass(frozen=True, slots=True)
class Questionnaire:
    questions: tuple[Question, ...]

    def question(self, key: str) -> Question | None:
        for question in self.questions:
            if question.key == key:
                return question
        return None

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(q.key for q in self.questions)

    def check(self, answers: Mapping[str, Any]) -> CheckedAnswers:
        values: dict[str, Any] = {}
        unanswered: list[Unanswered] = []
        for question in self.questions:
            if question.key not in answers:
                unanswered.append(Unanswered(question.key, "not answered"))
                continue
            problem = question.problem(answers[question.key])
            if problem is not None:
                unanswered.append(Unanswered(question.key, problem))
            else:
                values[question.key] = question.normalise(answers[question.key])
        ignored = tuple(sorted(str(k) for k in answers if k not in set(self.keys)))
        return CheckedAnswers(values, tuple(unanswered), ignored)


def parse_questions(tables: list[Table]) -> Questionnaire:
    questions: list[Question] = []
    seen: set[str] = set()
    for table in tables:
        key = table.text("key")
        if key in seen:
            table.fail("key", f"question {key!r} appears twice")
        seen.add(key)
        kind_text = table.text("kind")
        try:
            kind = AnswerKind(kind_text)
        except ValueError:
            known = ", ".join(k.value for k in AnswerKind)
            table.fail("kind", f"unknown answer kind {kind_text!r} (known: {known})")
        choices: tuple[str, ...] = ()
        minimum = None
        if kind is AnswerKind.CHOICE_OR_NONE:
            choices = table.strings("choices")
        if kind is AnswerKind.INT:
            minimum = table.integer("minimum", required=False)
        questions.append(Question(key, kind, table.text("text"), choices, minimum))
        table.done()
    return Questionnaire(tuple(questions))
