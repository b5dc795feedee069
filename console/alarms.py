"""Alarm conditions with IEC 60601-1-8 priorities that latch until acknowledged.

An alarm *condition* is raised by the workflow (device fault, lost link, silent worker, emergency
stop); the GUI renders it as an alarm *signal*. A latched alarm stays active after its cause
clears, until a user acknowledges it; acknowledging is reported to the listener so it is audited.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import IntEnum


class AlarmPriority(IntEnum):
    LOW = 1
    MEDIUM = 2
    HIGH = 3


@dataclass(frozen=True, slots=True)
class Alarm:
    """One alarm condition. ``key`` identifies the condition (one active alarm per key)."""

    key: str
    priority: AlarmPriority
    message: str
    raised_at: datetime
    technical: bool = False
    #: the treatment session the condition belongs to, if any: its events carry it, so a
    #: session's story shows its own alarms and no other (SES-STORY-1)
    session_id: str | None = None
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.acknowledged_at is None


AlarmListener = Callable[[str, Alarm], None]  # ("raised" | "acknowledged", alarm)


class AlarmBoard:
    """The set of latched alarms of one console; thread-safe (device workers raise them)."""

    def __init__(self, listener: AlarmListener | None = None) -> None:
        self._alarms: dict[str, Alarm] = {}
        self._lock = threading.Lock()
        self._listener = listener

    def raise_alarm(
        self,
        key: str,
        priority: AlarmPriority,
        message: str,
        *,
        technical: bool = False,
        session_id: str | None = None,
    ) -> Alarm:
        """Raise (or re-raise with the higher priority) the condition ``key``; latches.

        ``session_id`` names the session the condition arose in (None: the console's own)."""
        with self._lock:
            current = self._alarms.get(key)
            if current is not None and current.active and current.priority >= priority:
                return current
            alarm = Alarm(
                key,
                priority,
                message,
                datetime.now(UTC),
                technical=technical,
                session_id=session_id,
            )
            self._alarms[key] = alarm
        if self._listener is not None:
            self._listener("raised", alarm)
        return alarm

    def acknowledge(self, key: str, user_id: str) -> Alarm:
        with self._lock:
            alarm = self._alarms.get(key)
            if alarm is None or not alarm.active:
                raise KeyError(f"no active alarm {key!r} to acknowledge")
            alarm = replace(alarm, acknowledged_by=user_id, acknowledged_at=datetime.now(UTC))
            self._alarms[key] = alarm
        if self._listener is not None:
            self._listener("acknowledged", alarm)
        return alarm

    def active(self) -> list[Alarm]:
        """Active alarms, highest priority first, then oldest first."""
        with self._lock:
            alarms = [a for a in self._alarms.values() if a.active]
        return sorted(alarms, key=lambda a: (-a.priority, a.raised_at))

    def highest(self) -> Alarm | None:
        active = self.active()
        return active[0] if active else None
