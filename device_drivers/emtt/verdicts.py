"""How the EMTT driver judges what the unit said: its errors as typed exceptions, and the
events a host observes between two status readings. Pure functions over values."""

from __future__ import annotations

from device_drivers.emtt import constants as c
from device_drivers.emtt.codec import ErrorEntry
from device_drivers.errors import DeviceError, DeviceFault, DeviceRejected
from device_drivers.interface import DeviceEvent, DeviceStatus, EventKind, UnitState

STATE_NUMBER = {UnitState(name): number for number, name in enumerate(c.STATES)}

HINTS = {
    c.APPLICATOR_NOT_CONNECTED: "fit the applicator, then retry",
    c.COIL_OVERTEMP: "the coil is too hot: let it cool (ARM below 45.0 °C, clear below 40.0 °C)",
    c.DATA_OUT_OF_RANGE: "the value is outside the unit's limits",
    c.ILLEGAL_PARAMETER_VALUE: "the value is off the unit's step",
}


def rejection(line: str, errors: list[ErrorEntry], status: DeviceStatus | None) -> DeviceError:
    """The unit's queued errors after ``line`` as one typed exception.

    DeviceFault when the unit is latched in FAULT (by a device error, or a -221 because of the
    latch); otherwise DeviceRejected with the unit's code (a refused ARM: 201/202 too)."""
    device = [e for e in errors if e.code in c.DEVICE_ERRORS]
    latched = status is not None and status.state is UnitState.FAULT
    if latched and not device and errors[0].code == c.SETTINGS_CONFLICT:
        assert status is not None
        return DeviceFault(
            f"the unit refused {line!r} ({errors[0]}): it is latched in FAULT "
            f"({', '.join(status.faults) or 'unknown'}); remove the cause, then clear it",
            faults=status.faults,
            delivered=status.delivered,
        )
    if device and (status is None or latched):
        faults = tuple(dict.fromkeys(c.FAULT_NAMES[e.code] for e in device))
        return DeviceFault(
            f"the unit is latched in FAULT ({', '.join(faults)}) after {line!r}: "
            f"{'; '.join(map(str, errors))}; remove the cause, then clear the fault",
            faults=faults,
            delivered=status.delivered if status is not None else None,
        )
    entry = device[0] if device else errors[0]
    if entry.code == c.SETTINGS_CONFLICT and status is not None:
        hint = f"not allowed while the unit is {status.state}"
    else:
        hint = HINTS.get(entry.code, "see the EMTT ICD")
    return DeviceRejected(
        f"{entry} for {line!r} ({hint})",
        code=entry.code,
        name=entry.message,
        detail=line,
    )


def fault_of(status: DeviceStatus, what: str) -> DeviceFault:
    """The unit is found latched in FAULT while ``what`` was being done."""
    return DeviceFault(
        f"{what}: the unit is latched in FAULT ({', '.join(status.faults) or 'unknown'}); "
        "remove the cause, then clear the fault",
        faults=status.faults,
        delivered=status.delivered,
    )


def events_between(previous: DeviceStatus, status: DeviceStatus) -> list[DeviceEvent]:
    """Events for a state change the host observed, in the unit's own log order."""
    events = []
    if status.state is UnitState.FAULT and status.fault_code:
        code = status.fault_code
        text = f"fault {c.FAULT_NAMES[code]} ({code}, {c.ERROR_MESSAGES[code]})"
        events.append(DeviceEvent(EventKind.FAULT, code, text, state=UnitState.FAULT))
    number = STATE_NUMBER[status.state]
    text = f"state {previous.state} → {status.state}"
    events.append(DeviceEvent(EventKind.STATE_CHANGE, number, text, state=status.state))
    if status.state is UnitState.COMPLETE:
        text = f"session complete: {status.delivered} pulses delivered"
        events.append(DeviceEvent(EventKind.COMPLETION, status.delivered, text, state=status.state))
    return events
