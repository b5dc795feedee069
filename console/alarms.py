"""Alarm conditions with IEC 60601-1-8 priorities: latched, acknowledged, resolved, paused.

An alarm *condition* is raised by the workflow (device fault, lost link, silent worker, emergency
stop); the GUI renders it as an alarm *signal* (colour, flashing, sound: ``console.alarm_signals``).
A latched alarm stays active after its cause clears, until a user acknowledges it. A *persisting*
condition (unit latched in fault, link lost) is different: acknowledging it only silences it,
it stays shown until the code that watches the cause reports it over (``resolve``); the IEC
60601-1-8 distinction between "acknowledged" and "condition no longer present". Audio can be
paused for two minutes (``pause_audio``); a new alarm raised meanwhile sounds at once. Every
change (raised, acknowledged, audio_paused, resolved) is reported to the listener (audited) and
kept in the session's history.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import IntEnum

#: IEC 60601-1-8 audio paused: the standard leaves the time to the manufacturer; two minutes.
AUDIO_PAUSE = timedelta(minutes=2)


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
    #: The cause is watched and the alarm is shown until it is over, acknowledged or not.
    persists: bool = False
    resolved_at: datetime | None = None
    paused_by: str | None = None  # set on the "audio_paused" history entry only

    @property
    def acknowledged(self) -> bool:
        return self.acknowledged_at is not None

    @property
    def resolved(self) -> bool:
        return self.resolved_at is not None

    @property
    def active(self) -> bool:
        """Shown: not yet acknowledged (latched), or its persisting cause still there."""
        return not self.acknowledged or (self.persists and not self.resolved)

    @property
    def audible(self) -> bool:
        """Sounds (high and medium priority) until acknowledged."""
        return self.active and not self.acknowledged and self.priority >= AlarmPriority.MEDIUM


AlarmListener = Callable[[str, Alarm], None]  # ("raised" | "acknowledged" | "resolved" | ...)


@dataclass(frozen=True, slots=True)
class AlarmEntry:
    """One line of the session's alarm history."""

    at: datetime
    what: str  # raised | acknowledged | audio_paused | resolved
    alarm: Alarm


class AlarmBoard:
    """The set of alarms of one console; thread-safe (device workers raise them)."""

    def __init__(
        self,
        listener: AlarmListener | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._alarms: dict[str, Alarm] = {}
        self._history: list[AlarmEntry] = []
        self._lock = threading.Lock()
        self._listener = listener
        self._clock = clock or (lambda: datetime.now(UTC))
        self._audio_paused_until: datetime | None = None

    def _report(self, what: str, alarm: Alarm, at: datetime) -> None:
        with self._lock:
            self._history.append(AlarmEntry(at, what, alarm))
        if self._listener is not None:
            self._listener(what, alarm)

    def raise_alarm(
        self,
        key: str,
        priority: AlarmPriority,
        message: str,
        *,
        technical: bool = False,
        session_id: str | None = None,
        persists: bool = False,
    ) -> Alarm:
        """Raise (or re-raise with the higher priority) the condition ``key``; latches.

        ``session_id`` names the session the condition arose in (None: the console's own).
        ``persists``: the caller watches the cause and calls ``resolve`` when it is over.
        """
        now = self._clock()
        with self._lock:
            current = self._alarms.get(key)
            if current is not None and current.active and current.priority >= priority:
                if persists and not current.persists:
                    current = replace(current, persists=True)
                    self._alarms[key] = current
                return current
            alarm = Alarm(
                key,
                priority,
                message,
                now,
                technical=technical,
                session_id=session_id,
                persists=persists,
            )
            self._alarms[key] = alarm
            # A new alarm ends an audio pause: the therapist must hear what was not paused.
            self._audio_paused_until = None
        self._report("raised", alarm, now)
        return alarm

    def acknowledge(self, key: str, user_id: str) -> Alarm:
        """Silence the alarm ``key``; a persisting one stays shown until resolved."""
        now = self._clock()
        with self._lock:
            alarm = self._alarms.get(key)
            if alarm is None or not alarm.active or alarm.acknowledged:
                raise KeyError(f"no active alarm {key!r} to acknowledge")
            alarm = replace(alarm, acknowledged_by=user_id, acknowledged_at=now)
            self._alarms[key] = alarm
        self._report("acknowledged", alarm, now)
        return alarm

    def resolve(self, key: str) -> Alarm | None:
        """The cause of ``key`` is over (reported by the code that watches it); idempotent."""
        now = self._clock()
        with self._lock:
            alarm = self._alarms.get(key)
            if alarm is None or alarm.resolved or not alarm.persists:
                return None
            alarm = replace(alarm, resolved_at=now)
            self._alarms[key] = alarm
        self._report("resolved", alarm, now)
        return alarm

    def pause_audio(self, user_id: str) -> datetime:
        """Pause the sound of every alarm for two minutes (each sounding alarm is audited)."""
        now = self._clock()
        until = now + AUDIO_PAUSE
        with self._lock:
            self._audio_paused_until = until
            sounding = [a for a in self._alarms.values() if a.audible]
        for alarm in sounding:
            self._report("audio_paused", replace(alarm, paused_by=user_id), now)
        return until

    def audio_paused_until(self) -> datetime | None:
        """When the audio pause ends, or None when audio is not paused."""
        now = self._clock()
        with self._lock:
            until = self._audio_paused_until
            if until is not None and until <= now:
                self._audio_paused_until = until = None
        return until

    def sounding(self) -> AlarmPriority | None:
        """The priority whose sound should play now (None: silence)."""
        if self.audio_paused_until() is not None:
            return None
        with self._lock:
            audible = [a.priority for a in self._alarms.values() if a.audible]
        return max(audible) if audible else None

    def active(self) -> list[Alarm]:
        """Active alarms, highest priority first, then oldest first."""
        with self._lock:
            alarms = [a for a in self._alarms.values() if a.active]
        return sorted(alarms, key=lambda a: (-a.priority, a.raised_at))

    def highest(self) -> Alarm | None:
        active = self.active()
        return active[0] if active else None

    def history(self) -> list[AlarmEntry]:
        """Every change of every alarm since the board was made, oldest first."""
        with self._lock:
            return list(self._history)
