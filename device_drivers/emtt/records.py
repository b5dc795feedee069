"""The EMTT unit's two memories: its SCPI error queue with ``*ESR``, and its event log.

Both are plain data structures with the ICD's rules (16 entries and the -350 overflow rule;
the last 256 log records with running indexes, paged 16 at a time), kept apart from the state
machine that feeds them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from device_drivers.emtt import constants as c


class ErrorQueue:
    """``SYSTem:ERRor?`` queue and the event status register it feeds."""

    def __init__(self) -> None:
        self.entries: deque[int] = deque()
        self.esr = 0
        self._overflowed = False

    def add(self, code: int) -> None:
        """Queue one error; on overflow the 16th entry becomes -350 and later ones are dropped
        until the -350 has been read (their *ESR bits are still set)."""
        self.esr |= c.esr_bit_for(code)
        if self._overflowed:
            return
        if len(self.entries) < c.ERROR_QUEUE_SIZE:
            self.entries.append(code)
            return
        self.entries[-1] = c.QUEUE_OVERFLOW
        self._overflowed = True
        self.esr |= c.esr_bit_for(c.QUEUE_OVERFLOW)

    def pop(self) -> int:
        """The oldest entry, removed (0 when empty)."""
        if not self.entries:
            return c.NO_ERROR
        code = self.entries.popleft()
        if code == c.QUEUE_OVERFLOW:
            self._overflowed = False
        return code

    def read_esr(self) -> int:
        value, self.esr = self.esr, 0
        return value

    def clear(self) -> None:
        """``*CLS``: queue and register."""
        self.entries.clear()
        self._overflowed = False
        self.esr = 0


@dataclass(frozen=True, slots=True)
class LogRecord:
    index: int
    uptime_ms: int
    code: int
    data: int

    def __str__(self) -> str:
        return f"{self.index},{self.uptime_ms},{self.code},{self.data}"


class EventLog:
    """The last 256 records; indexes run from 0 at power-up and are never reused."""

    def __init__(self) -> None:
        self.records: deque[LogRecord] = deque(maxlen=c.LOG_CAPACITY)
        self._next_index = 0

    def append(self, code: int, data: int, t: float) -> None:
        self.records.append(LogRecord(self._next_index, int(t * 1000), code, data))
        self._next_index += 1

    def page(self, first: int) -> str:
        """``DIAGnostic:LOG? <first>``: at most 16 records from ``first`` joined by ``|``."""
        page = [record for record in self.records if record.index >= first][: c.LOG_PAGE]
        return "|".join(map(str, page))

    def __len__(self) -> int:
        return len(self.records)
