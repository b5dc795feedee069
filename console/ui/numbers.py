"""Reading a typed number by the console's locale: refuse what could mean two things, explain why.

A value that changes without the therapist seeing it is a wrong dose ("2,5" bar read as 25,
"2.000" pulses as 2, "4,5" mT as 45 — each inside every limit). So the reading is strict:
only the locale's decimal separator, no thousands separators, no exponent, only the digits 0–9;
"2.000" (one to three digits, the separator, exactly three digits) is refused as ambiguous,
since half the world writes two thousand that way. Surrounding spaces are trimmed (they change
nothing). Never a guess: every refusal says what to type instead. No Qt here: the caller passes
the decimal separator (``QLocale().decimalPoint()``).
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal, InvalidOperation


def parse_number(
    text: str, decimal_point: str = ".", *, whole: bool = False, what: str = "value"
) -> tuple[Decimal | None, str | None]:
    """(value, None) or (None, why it is refused) for ``text`` typed into the field ``what``."""
    cleaned = text.strip()
    if not cleaned:
        return None, f"enter the {what}"
    other = "," if decimal_point == "." else "."
    for char in cleaned:
        if char.isdigit() and not ("0" <= char <= "9"):
            return None, f"'{text}': type the digits 0–9"
        if unicodedata.category(char) == "Po" and char not in ".,":
            return None, f"'{text}': use '{decimal_point}' as the decimal separator"
    if "e" in cleaned.lower():
        return None, f"'{text}': write the number in full, without an exponent"
    if other in cleaned:
        return None, (
            f"'{text}': '{other}' is not read here (the decimal separator is "
            f"'{decimal_point}', and no thousands separators)"
        )
    sep = re.escape(decimal_point)
    if not re.fullmatch(rf"-?\d+(?:{sep}\d+)?", cleaned):
        return None, f"'{text}' is not a number"
    if re.fullmatch(rf"-?[1-9]\d{{0,2}}{sep}\d{{3}}", cleaned):
        return None, (
            f"'{text}' is ambiguous (a decimal or thousands?): type it without the thousands "
            f"separator, or with fewer decimals"
        )
    if whole and decimal_point in cleaned:
        return None, f"the {what} is a whole number"
    try:
        value = Decimal(cleaned.replace(decimal_point, "."))
    except InvalidOperation:  # pragma: no cover (the pattern above admits only numbers)
        return None, f"'{text}' is not a number"
    return value, None
