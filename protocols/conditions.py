"""When a contraindication rule fires, as a small declarative language the rule file uses.

A condition is a TOML inline table with one key: a leaf (``answer_true``, ``answer_not_null``,
``answer_under``, ``days_since_under``, ``age_under``, ``age_at_least``, ``protocol_is``) or a
combinator (``all``, ``any``, ``not``). The set is deliberately small and explicit so a reviewer
can read the policy file as the policy, and the code only interprets it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from protocols.errors import ClinicalDataError
from protocols.questionnaire import AnswerKind, Questionnaire


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything a condition may look at: complete, valid answers plus the session's context."""

    answers: Mapping[str, Any]
    age_years: int
    protocol_id: str
    session_date: date


class Condition:
    """Base of the condition tree."""

    def holds(self, facts: Facts) -> bool:
        raise NotImplementedError

    def explain(self, facts: Facts) -> list[str]:
        """Short facts behind a true condition, for the finding's message."""
        return []

    def leaves(self) -> Iterator[Condition]:
        yield self


@dataclass(frozen=True, slots=True)
class AnswerTrue(Condition):
    key: str

    def holds(self, facts: Facts) -> bool:
        return facts.answers[self.key] is True


@dataclass(frozen=True, slots=True)
class AnswerNotNull(Condition):
    key: str

    def holds(self, facts: Facts) -> bool:
        return facts.answers[self.key] is not None

    def explain(self, facts: Facts) -> list[str]:
        value = facts.answers[self.key]
        return [f"{self.key.replace('_', ' ')}: {value}"] if self.holds(facts) else []


@dataclass(frozen=True, slots=True)
class AnswerUnder(Condition):
    key: str
    value: int

    def holds(self, facts: Facts) -> bool:
        return facts.answers[self.key] < self.value

    def explain(self, facts: Facts) -> list[str]:
        return [f"{self.key.replace('_', ' ')}: {facts.answers[self.key]}, needs {self.value}"]


@dataclass(frozen=True, slots=True)
class DaysSinceUnder(Condition):
    """``session_date − answers[key] < days`` (a date in the future counts: it is negative)."""

    key: str
    days: int

    def holds(self, facts: Facts) -> bool:
        when = facts.answers[self.key]
        return when is not None and (facts.session_date - when).days < self.days

    def explain(self, facts: Facts) -> list[str]:
        when = facts.answers[self.key]
        elapsed = (facts.session_date - when).days
        if elapsed < 0:
            return [f"dated {when.isoformat()}, {-elapsed} days after the session date"]
        return [f"on {when.isoformat()}, {elapsed} days before the session"]


@dataclass(frozen=True, slots=True)
class AgeUnder(Condition):
    years: int

    def holds(self, facts: Facts) -> bool:
        return facts.age_years < self.years

    def explain(self, facts: Facts) -> list[str]:
        return [f"age {facts.age_years} on the session date"]


@dataclass(frozen=True, slots=True)
class AgeAtLeast(Condition):
    years: int

    def holds(self, facts: Facts) -> bool:
        return facts.age_years >= self.years

    def explain(self, facts: Facts) -> list[str]:
        return [f"age {facts.age_years} on the session date"]


@dataclass(frozen=True, slots=True)
class ProtocolIs(Condition):
    protocol_id: str

    def holds(self, facts: Facts) -> bool:
        return facts.protocol_id == self.protocol_id

    def explain(self, facts: Facts) -> list[str]:
        return [f"protocol {self.protocol_id}"]


@dataclass(frozen=True, slots=True)
class All(Condition):
    parts: tuple[Condition, ...]

    def holds(self, facts: Facts) -> bool:
        return all(part.holds(facts) for part in self.parts)

    def explain(self, facts: Facts) -> list[str]:
        return [text for part in self.parts for text in part.explain(facts)]

    def leaves(self) -> Iterator[Condition]:
        for part in self.parts:
            yield from part.leaves()


@dataclass(frozen=True, slots=True)
class Any_(Condition):  # noqa: N801 - ``Any`` is taken by typing
    parts: tuple[Condition, ...]

    def holds(self, facts: Facts) -> bool:
        return any(part.holds(facts) for part in self.parts)

    def explain(self, facts: Facts) -> list[str]:
        return [text for part in self.parts if part.holds(facts) for text in part.explain(facts)]

    def leaves(self) -> Iterator[Condition]:
        for part in self.parts:
            yield from part.leaves()


@dataclass(frozen=True, slots=True)
class Not(Condition):
    part: Condition

    def holds(self, facts: Facts) -> bool:
        return not self.part.holds(facts)

    def leaves(self) -> Iterator[Condition]:
        yield from self.part.leaves()


class ConditionParser:
    """Turns the rule file's inline tables into conditions, checking every key and type."""

    def __init__(self, source: str, questionnaire: Questionnaire) -> None:
        self._source = source
        self._questionnaire = questionnaire
        self._leaves: dict[str, Callable[[Any, str], Condition]] = {
            "answer_true": self._answer_true,
            "answer_not_null": self._answer_not_null,
            "answer_under": self._answer_under,
            "days_since_under": self._days_since_under,
            "age_under": lambda v, p: AgeUnder(self._positive_int(v, p)),
            "age_at_least": lambda v, p: AgeAtLeast(self._positive_int(v, p)),
            "protocol_is": lambda v, p: ProtocolIs(self._text(v, p)),
        }

    def parse(self, value: Any, path: str) -> Condition:
        if not isinstance(value, Mapping) or len(value) != 1:
            self._fail(path, f"a condition is a table with exactly one key, got {value!r}")
        ((kind, argument),) = value.items()
        inner = f"{path}.{kind}"
        if kind in ("all", "any"):
            if not isinstance(argument, list) or not argument:
                self._fail(inner, "must be a non-empty list of conditions")
            parts = tuple(self.parse(item, f"{inner}[{i}]") for i, item in enumerate(argument))
            return All(parts) if kind == "all" else Any_(parts)
        if kind == "not":
            return Not(self.parse(argument, inner))
        if kind not in self._leaves:
            known = ", ".join([*self._leaves, "all", "any", "not"])
            self._fail(inner, f"unknown condition kind {kind!r} (known: {known})")
        return self._leaves[kind](argument, inner)

    def _fail(self, path: str, problem: str) -> Any:
        raise ClinicalDataError(self._source, path, problem)

    def _text(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not value:
            self._fail(path, f"must be a non-empty text, got {value!r}")
        return value

    def _positive_int(self, value: Any, path: str) -> int:
        if type(value) is not int or value < 1:
            self._fail(path, f"must be a whole number of at least 1, got {value!r}")
        return value

    def _key(self, value: Any, path: str, kinds: set[AnswerKind]) -> str:
        key = self._text(value, path)
        question = self._questionnaire.question(key)
        if question is None:
            self._fail(path, f"{key!r} is not a question of the questionnaire")
        if question.kind not in kinds:
            wanted = " or ".join(sorted(kinds))
            self._fail(path, f"{key!r} is a {question.kind} question; this needs {wanted}")
        return key

    def _answer_true(self, value: Any, path: str) -> Condition:
        return AnswerTrue(self._key(value, path, {AnswerKind.BOOL}))

    def _answer_not_null(self, value: Any, path: str) -> Condition:
        kinds = {AnswerKind.CHOICE_OR_NONE, AnswerKind.DATE_OR_NONE}
        return AnswerNotNull(self._key(value, path, kinds))

    def _pair(self, value: Any, path: str, second: str) -> tuple[Any, Any]:
        if not isinstance(value, Mapping) or set(value) != {"key", second}:
            self._fail(path, f"must be a table with exactly 'key' and {second!r}, got {value!r}")
        return value["key"], value[second]

    def _answer_under(self, value: Any, path: str) -> Condition:
        key, limit = self._pair(value, path, "value")
        key = self._key(key, f"{path}.key", {AnswerKind.INT})
        return AnswerUnder(key, self._positive_int(limit, f"{path}.value"))

    def _days_since_under(self, value: Any, path: str) -> Condition:
        key, days = self._pair(value, path, "days")
        key = self._key(key, f"{path}.key", {AnswerKind.DATE_OR_NONE})
        return DaysSinceUnder(key, self._positive_int(days, f"{path}.days"))
