"""Overrides: the one way past a relative finding, and never past an absolute one.

Both screening (``override_required``) and parameter validation (outside the protocol or the
course) use the same value and the same rule for the written reason, so the record always shows
who overrode what and why.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocols.errors import OverrideNotAllowed

MIN_REASON_CHARS = 20
OVERRIDE_ROLE = "therapist"


@dataclass(frozen=True, slots=True)
class Override:
    """A therapist's written decision to proceed despite a relative finding."""

    reason: str
    role: str
    user_id: str | None = None

    def to_record(self) -> dict[str, str | None]:
        return {"reason": self.reason, "role": self.role, "user_id": self.user_id}


def make_override(reason: str, role: str, user_id: str | None = None) -> Override:
    """A checked :class:`Override`; :class:`OverrideNotAllowed` says what is missing."""
    if role != OVERRIDE_ROLE:
        raise OverrideNotAllowed(f"only a {OVERRIDE_ROLE} may record an override, not a {role!r}")
    text = reason.strip() if isinstance(reason, str) else ""
    if len(text) < MIN_REASON_CHARS:
        raise OverrideNotAllowed(
            f"an override needs a written reason of at least {MIN_REASON_CHARS} characters "
            f"(got {len(text)}): say why treating is justified despite the finding"
        )
    return Override(reason=text, role=role, user_id=user_id)
