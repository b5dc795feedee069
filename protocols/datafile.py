"""Strict reading of the clinical TOML files: every error names the file, the field and the problem.

Decimals stay decimal (``parse_float=Decimal``): ``1.5`` bar in a file is exactly 1.5, never a
binary float. Keys a reader never asked for are an error, so a misspelt ``defualt`` cannot be
silently ignored.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Iterator, Mapping
from datetime import date
from decimal import Decimal
from typing import Any, NoReturn

from protocols.errors import ClinicalDataError


def parse_toml(text: str, source: str) -> Table:
    """Parse TOML text into a checked :class:`Table` (``source`` names it in every error)."""
    try:
        data = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise ClinicalDataError(source, "(syntax)", f"not valid TOML: {exc}") from exc
    return Table(data, source, "")


class Table:
    """One TOML table with the path that leads to it, handing out typed, checked values."""

    def __init__(self, data: Mapping[str, Any], source: str, path: str) -> None:
        self._data = data
        self._used: set[str] = set()
        self.source = source
        self.path = path

    def field_name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def fail(self, key: str, problem: str) -> NoReturn:
        raise ClinicalDataError(self.source, self.field_name(key), problem)

    def has(self, key: str) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def raw(self, key: str, *, required: bool = True) -> Any:
        self._used.add(key)
        if key not in self._data:
            if required:
                near = difflib.get_close_matches(key, [str(k) for k in self._data], n=1)
                self.fail(key, f"missing (is {near[0]!r} a misspelling?)" if near else "missing")
            return None
        return self._data[key]

    def string(self, key: str, *, required: bool = True) -> str | None:
        value = self.raw(key, required=required)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            self.fail(key, f"must be a non-empty text, got {value!r}")
        return value.strip()

    def text(self, key: str) -> str:
        value = self.string(key)
        assert value is not None
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.raw(key)
        if not isinstance(value, list) or not value:
            self.fail(key, f"must be a non-empty list of texts, got {value!r}")
        for item in value:
            if not isinstance(item, str) or not item.strip():
                self.fail(key, f"every entry must be a non-empty text, got {item!r}")
        return tuple(item.strip() for item in value)

    def integer(self, key: str, *, minimum: int | None = None, required: bool = True) -> int | None:
        value = self.raw(key, required=required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, f"must be a whole number, got {value!r}")
        if minimum is not None and value < minimum:
            self.fail(key, f"must be at least {minimum}, got {value}")
        return value

    def whole(self, key: str, *, minimum: int | None = None) -> int:
        value = self.integer(key, minimum=minimum)
        assert value is not None
        return value

    def decimal(self, key: str, *, required: bool = True) -> Decimal | None:
        value = self.raw(key, required=required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | Decimal):
            self.fail(key, f"must be a number, got {value!r}")
        number = Decimal(value)
        if not number.is_finite():
            self.fail(key, f"must be a finite number, got {value!r}")
        return number

    def date(self, key: str) -> date:
        value = self.raw(key)
        if not isinstance(value, date):
            self.fail(key, f"must be a date (YYYY-MM-DD), got {value!r}")
        return value

    def table(self, key: str) -> Table:
        value = self.raw(key)
        if not isinstance(value, Mapping):
            self.fail(key, "must be a table")
        return Table(value, self.source, self.field_name(key))

    def tables(self, key: str) -> list[Table]:
        value = self.raw(key)
        if not isinstance(value, list) or not value:
            self.fail(key, "must be a non-empty array of tables")
        tables = []
        for index, item in enumerate(value):
            if not isinstance(item, Mapping):
                self.fail(f"{key}[{index}]", "must be a table")
            tables.append(Table(item, self.source, f"{self.field_name(key)}[{index}]"))
        return tables

    def done(self) -> None:
        """Fail on any key nobody read: a typo must never be silently ignored."""
        unknown = sorted(set(self._data) - self._used)
        if unknown:
            self.fail(unknown[0], f"unknown field (known here: {', '.join(sorted(self._used))})")
