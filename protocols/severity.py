"""One strictness scale shared by screening and parameter validation.

Screening speaks of ``warning`` / ``override_required`` / ``block``; validation of ``info`` /
``override_required`` / ``refuse``. Both map onto the same ranks so "the strictest wins" means the
same thing everywhere, and a decision can be computed from findings with one function.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    OVERRIDE_REQUIRED = "override_required"
    BLOCK = "block"  # screening: absolute contraindication
    REFUSE = "refuse"  # validation: outside what the hardware may do

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def allows_override(self) -> bool:
        """Whether a written reason can lift this finding (only ``override_required``)."""
        return self is Severity.OVERRIDE_REQUIRED

    @property
    def stops_treatment(self) -> bool:
        """Whether nothing in the console can lift this finding."""
        return self.rank >= _RANK[Severity.BLOCK]


_RANK = {
    Severity.INFO: 0,
    Severity.WARNING: 1,
    Severity.OVERRIDE_REQUIRED: 2,
    Severity.BLOCK: 3,
    Severity.REFUSE: 3,
}


def strictest(severities: Iterable[Severity]) -> Severity | None:
    """The strictest of ``severities`` (None for none); ties keep the first seen."""
    found: Severity | None = None
    for severity in severities:
        if found is None or severity.rank > found.rank:
            found = severity
    return found
