"""The one rule for a session's count (SES-COUNT-2): the unit's own, read after delivery ends.

Whatever ended delivery (completion, stop, abort, emergency stop, fault, lost link, reset, a
console crash) the count of the current load segment is established the same way: make the unit
unable to fire, read its status, its applicator and its event log since the arm snapshot, then
judge. The unit's count is taken only when nothing says it may belong to something else; the
applicator's shot counter (persistent across resets) and the event log are the cross-checks.
When the count cannot be established the verdict is *unconfirmed* with a lower bound (the last
count the unit confirmed) and an upper bound (the applicator's delta or the segment's target),
never a guess recorded as final.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from device_drivers.errors import DeviceRejected
from device_drivers.interface import (
    ApplicatorInfo,
    DeviceEvent,
    DeviceStatus,
    EventKind,
    TherapyDevice,
    UnitState,
)

#: States that mean new parameters were loaded or the unit armed again (a new use of the unit).
_NEW_USE_STATES = frozenset({UnitState.READY, UnitState.ARMED})


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class ArmSnapshot:
    """What the unit reported right after ARM was acknowledged, for one load segment."""

    unit_serial: str
    target: int
    uptime_s: int | None  # EPAT status uptime; EMTT reports none
    event_index: int | None  # newest event-log index (None: the log was empty)
    event_uptime_ms: int | None  # that event's uptime, to tell it from a reset log's
    applicator_serial: str | None  # None: no applicator fitted
    applicator_shots: int | None
    taken_at: str

    def to_record(self) -> dict[str, Any]:
        return {
            "unit_serial": self.unit_serial,
            "target": self.target,
            "uptime_s": self.uptime_s,
            "event_index": self.event_index,
            "event_uptime_ms": self.event_uptime_ms,
            "applicator_serial": self.applicator_serial,
            "applicator_shots": self.applicator_shots,
            "taken_at": self.taken_at,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ArmSnapshot:
        return cls(**{name: record.get(name) for name in cls.__slots__})  # type: ignore[arg-type]


def take_snapshot(driver: TherapyDevice, target: int, log_from: int = 0) -> ArmSnapshot:
    """Read the arm snapshot (run on the device worker's thread, right after ARM)."""
    serial = driver.identify().serial
    status = driver.status()
    applicator = driver.applicator()
    events = driver.event_log(log_from) or (driver.event_log(0) if log_from else [])
    newest = events[-1] if events else None
    return ArmSnapshot(
        unit_serial=serial,
        target=target,
        uptime_s=status.uptime_s,
        event_index=newest.index if newest is not None else None,
        event_uptime_ms=newest.uptime_ms if newest is not None else None,
        applicator_serial=applicator.serial if applicator.present else None,
        applicator_shots=applicator.shots_used if applicator.present else None,
        taken_at=_now(),
    )


@dataclass(frozen=True, slots=True)
class UnitReading:
    """The unit after it was made unable to fire: what was found, done, and read."""

    serial: str
    found: UnitState
    action: str
    status: DeviceStatus
    applicator: ApplicatorInfo
    events: tuple[DeviceEvent, ...]  # from the snapshot's index on (the whole log without one)


def make_safe(driver: TherapyDevice) -> tuple[UnitState, str]:
    """Leave the unit unable to fire: stop if delivering/paused, disarm if armed, ready or
    complete; a latched FAULT is left as it is. Returns (state found, action taken)."""
    found = state = driver.status().state
    action = "none"
    for _ in range(3):
        try:
            if state in (UnitState.DELIVERING, UnitState.PAUSED):
                driver.stop()
                action = "stop"
            elif state in (UnitState.ARMED, UnitState.READY, UnitState.COMPLETE):
                driver.disarm()
                action = "disarm"
            return found, action
        except DeviceRejected:
            state = driver.status().state  # it moved under us (completed, faulted): look again
    return found, action


def read_unit(driver: TherapyDevice, snapshot: ArmSnapshot | None) -> UnitReading:
    """Make the unit safe and read what the count is judged on (device worker's thread)."""
    found, action = make_safe(driver)
    status = driver.status()
    applicator = driver.applicator()
    start = snapshot.event_index if snapshot is not None and snapshot.event_index else 0
    events = tuple(driver.event_log(start))
    return UnitReading(driver.identify().serial, found, action, status, applicator, events)


@dataclass(frozen=True, slots=True)
class CountVerdict:
    """The segment's count, or why it cannot be established, with bounds and evidence."""

    count: int | None
    low: int
    high: int
    evidence: dict[str, Any]

    @property
    def confirmed(self) -> bool:
        return self.count is not None


def _applicator_delta(
    snapshot: ArmSnapshot, applicator: ApplicatorInfo | None, evidence: dict[str, Any]
) -> int | None:
    """Pulses the arm-time handpiece fired since arm, by its own persistent counter."""
    if snapshot.applicator_serial is None or snapshot.applicator_shots is None:
        evidence["applicator_delta_unknown"] = "no applicator was fitted at arm"
        return None
    if applicator is None:
        evidence["applicator_delta_unknown"] = "the unit could not be read"
        return None
    if not applicator.present:
        evidence["applicator_delta_unknown"] = "no applicator fitted when the count was read"
        return None
    if applicator.serial != snapshot.applicator_serial:
        evidence["applicator_delta_unknown"] = (
            f"another applicator ({applicator.serial}) is fitted than at arm "
            f"({snapshot.applicator_serial})"
        )
        return None
    return applicator.shots_used - snapshot.applicator_shots


def _reset_signs(
    snapshot: ArmSnapshot, reading: UnitReading, elapsed_unit_s: float | None
) -> list[str]:
    signs = []
    uptime = reading.status.uptime_s
    if snapshot.uptime_s is not None and uptime is not None:
        expected = snapshot.uptime_s + (elapsed_unit_s or 0.0) * 0.5 - 1.0
        if uptime < snapshot.uptime_s or uptime < expected:
            signs.append(
                f"uptime {uptime} s is less than at arm ({snapshot.uptime_s} s) plus the time since"
            )
    if snapshot.event_index is not None:
        first = reading.events[0] if reading.events else None
        if (
            first is None
            or first.index != snapshot.event_index
            or (
                snapshot.event_uptime_ms is not None and first.uptime_ms != snapshot.event_uptime_ms
            )
        ):
            signs.append(
                f"the event log no longer holds the arm event {snapshot.event_index} "
                "(indexes restarted or the log was overwritten)"
            )
    return signs


def judge_segment(
    snapshot: ArmSnapshot,
    reading: UnitReading | None,
    *,
    last_confirmed: int,
    reset_seen: str | None = None,
    unreachable: str | None = None,
    elapsed_unit_s: float | None = None,
) -> CountVerdict:
    """The count of the segment armed at ``snapshot``, judged on ``reading`` (see module doc).

    ``last_confirmed`` is the last count the unit itself reported for the segment (the lower
    bound); ``reset_seen`` says why a reset was seen live; ``unreachable`` why no reading exists.
    """
    target = snapshot.target
    evidence: dict[str, Any] = {"arm": snapshot.to_record(), "last_confirmed": last_confirmed}

    def unconfirmed(why: str, high: int) -> CountVerdict:
        evidence["why_unconfirmed"] = why
        low = min(last_confirmed, target)
        return CountVerdict(None, low, max(low, min(high, target)), evidence)

    if reading is None:
        return unconfirmed(f"the unit could not be read: {unreachable or 'unreachable'}", target)
    status = reading.status
    evidence["unit"] = {
        "serial": reading.serial,
        "state_found": reading.found.value,
        "action": reading.action,
        "state": status.state.value,
        "delivered": status.delivered,
        "target": status.target,
        "uptime_s": status.uptime_s,
        "faults": list(status.faults),
    }
    evidence["applicator"] = {
        "present": reading.applicator.present,
        "serial": reading.applicator.serial or None,
        "shots_used": reading.applicator.shots_used if reading.applicator.present else None,
    }
    evidence["events"] = [
        {"index": e.index, "uptime_ms": e.uptime_ms, "kind": e.kind.value, "data": e.data}
        for e in reading.events[:24]
    ]
    if reading.serial != snapshot.unit_serial:
        return unconfirmed(
            f"unit {reading.serial} answered, not the session's {snapshot.unit_serial}", target
        )
    delta = _applicator_delta(snapshot, reading.applicator, evidence)
    evidence["applicator_delta"] = delta
    resets = _reset_signs(snapshot, reading, elapsed_unit_s)
    if reset_seen:
        resets.insert(0, reset_seen)
    later = reading.events[1:] if snapshot.event_index is not None else reading.events
    new_use = [
        e.index for e in later if e.kind is EventKind.STATE_CHANGE and e.state in _NEW_USE_STATES
    ]
    used: list[str] = []
    if not resets:
        if new_use:
            used.append(f"the unit was loaded or armed again since (events {new_use})")
        if status.target != target:
            used.append(f"the unit holds a target of {status.target}, not the segment's {target}")
    if delta is not None and delta > target:
        used.append(f"the applicator fired {delta} shots since arm, more than the {target} planned")
    evidence["reset"] = resets or None
    evidence["used_since"] = used or None
    if not resets and not used:
        count = status.delivered
        if count < last_confirmed:
            return unconfirmed(
                f"the unit's count {count} is below the {last_confirmed} it reported before",
                delta if delta is not None else target,
            )
        if delta is not None and delta != count:
            return CountVerdict(
                None,
                min(max(last_confirmed, min(count, delta)), target),
                min(max(count, delta), target),
                {
                    **evidence,
                    "why_unconfirmed": f"the unit counts {count} but the applicator "
                    f"fired {delta} since arm",
                },
            )
        evidence["source"] = "the unit's own count, read after the end"
        return CountVerdict(count, count, count, evidence)
    if resets and not used and delta is not None and last_confirmed <= delta <= target:
        evidence["source"] = (
            "the applicator's shot counter since arm (the unit's own count was lost at the reset)"
        )
        return CountVerdict(delta, delta, delta, evidence)
    why = "; ".join([*resets, *used])
    high = delta if delta is not None and delta >= last_confirmed else target
    return unconfirmed(why, high)


def describe_count(
    delivered: int | None, status: str | None, low: int | None, high: int | None
) -> str:
    """The count as staff must read it: exact, or plainly unconfirmed with its bounds."""
    if status == "unconfirmed" or delivered is None:
        return (
            f"count UNCONFIRMED: between {low if low is not None else 0} and "
            f"{high if high is not None else '?'} pulses delivered"
        )
    return f"{delivered} pulses delivered"
