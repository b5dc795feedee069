"""The errors of the clinical rules: bad data files and bad inputs, each saying what to fix."""

from __future__ import annotations


class ClinicalDataError(ValueError):
    """A clinical data file (protocol, rule set, programme template) is not acceptable.

    Names the file, the field and the problem so a clinic admin can fix a new policy version
    before it is ever used.
    """

    def __init__(self, source: str, field: str, problem: str) -> None:
        super().__init__(f"{source}: {field}: {problem}")
        self.source = source
        self.field = field
        self.problem = problem


class ClinicalInputError(ValueError):
    """An input to the rules is impossible (e.g. born after the session): the caller must fix it.

    Distinct from an *unanswered* screening question, which is a normal ``incomplete`` decision.
    """


class OverrideNotAllowed(ValueError):
    """An override was asked for where none is allowed, or without an acceptable reason."""
