"""The simulated unit's event log: the last 256 events, indexed from 0 at power-up.

Indexes wrap to 0 after 65535 (ICD Clarifications). "Events with index ≥ from" is literal
until the first wrap; after it, ``from`` is read as the most recent position in the 16-bit
sequence that is not after the next index to be written (so a host that pages with
``last index + 1`` never skips or repeats an event across the wrap).
"""

from __future__ import annotations

from collections import deque

from device_drivers.epat.constants import (
    EVENT_INDEX_MODULUS,
    EVENT_LOG_CAPACITY,
    READ_EVENTS_MAX,
)
from device_drivers.epat.payloads import EventRecord


class EventLog:
    def __init__(self, capacity: int = EVENT_LOG_CAPACITY) -> None:
        self._held: deque[tuple[int, EventRecord]] = deque(maxlen=capacity)
        self._next_serial = 0  # absolute count of events since power-up

    def __len__(self) -> int:
        return len(self._held)

    @property
    def next_index(self) -> int:
        return self._next_serial % EVENT_INDEX_MODULUS

    def append(self, uptime_ms: int, code: int, data: int) -> EventRecord:
        record = EventRecord(
            index=self._next_serial % EVENT_INDEX_MODULUS,
            uptime_ms=uptime_ms & 0xFFFF_FFFF,
            code=code,
            data=data,
        )
        self._held.append((self._next_serial, record))
        self._next_serial += 1
        return record

    def read(self, from_index: int, max_count: int = READ_EVENTS_MAX) -> list[EventRecord]:
        if self._next_serial <= EVENT_INDEX_MODULUS:
            first_serial = from_index  # no index has been reused yet: plain comparison
        else:
            back = (self._next_serial - from_index) % EVENT_INDEX_MODULUS
            first_serial = self._next_serial - back
        return [rec for serial, rec in self._held if serial >= first_serial][:max_count]

    def records(self) -> list[EventRecord]:
        return [rec for _, rec in self._held]

    def clear(self) -> None:
        self._held.clear()
        self._next_serial = 0
