"""Calendar arithmetic the rules depend on, written once and tested at its edges."""

from __future__ import annotations

import re
from datetime import date, datetime

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_iso_date(text: object) -> date | None:
    """``YYYY-MM-DD`` as a date; None for anything else.

    Stricter than ``date.fromisoformat`` (which since 3.11 also takes ``20261124`` and week
    dates): a questionnaire answer is one exact, unambiguous format or it is not an answer.
    """
    if isinstance(text, datetime):
        return None
    if isinstance(text, date):
        return text
    if not isinstance(text, str) or not _ISO_DATE.fullmatch(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def age_in_years(birth_date: date, on: date) -> int:
    """Whole years of age on ``on``: a person is N on their Nth birthday.

    Someone born on 29 February turns a year older on 1 March in common years (the later of the
    two readings, so an age limit is never reached a day early).
    """
    had_birthday = (on.month, on.day) >= (birth_date.month, birth_date.day)
    return on.year - birth_date.year - (0 if had_birthday else 1)
