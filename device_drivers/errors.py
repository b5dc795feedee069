"""One exception family for every device, so the session workflow handles any wire the same way.

DeviceError
├── LinkTimeout     no (valid) answer within the deadline; the link may still be up
├── LinkLost        the link is gone (port closed, socket reset, unplugged)
├── ProtocolError   an answer that does not follow the ICD (wrong SEQ, bad payload, garbage)
│   └── ImpossibleEnvelope  the unit reports limits no unit can have (min > max, 0 pulses)
├── DeviceRejected  the unit refused a command (EPAT NAK, SCPI error) — carries its code
├── DeviceFault     the unit is in, or entered, a latched fault state
└── UnitInTreatment opening refused: the unit is ARMED, DELIVERING or PAUSED for another host
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from device_drivers.interface import UnitState


class DeviceError(Exception):
    """Base of every error raised by a transport or driver."""


class LinkTimeout(DeviceError):
    """The unit did not answer in time (after the retries the ICD allows)."""


class LinkLost(DeviceError):
    """The link to the unit is gone; reconnect before anything else."""


class ProtocolError(DeviceError):
    """The unit's answer does not follow its interface control document."""


class ImpossibleEnvelope(ProtocolError):
    """The unit reports an envelope no unit can have (a minimum above its maximum, no pulses).

    Raised on opening (EPAT: HELLO) or when the limits are read (EMTT): the unit answers but
    cannot be trusted with a treatment; service must look at it. A ``ProtocolError`` (the
    answer breaks the ICD) of its own kind, so a console can say "the unit reports values it
    cannot use" rather than "cannot reach the unit".
    """


class DeviceRejected(DeviceError):
    """The unit refused a command; ``code``/``name``/``detail`` are the unit's own words."""

    def __init__(self, message: str, *, code: int, name: str, detail: int | str = 0) -> None:
        super().__init__(message)
        self.code = code
        self.name = name
        self.detail = detail


class DeviceFault(DeviceError):
    """The unit is latched in FAULT; ``faults`` names the causes (e.g. ``("OVERTEMP",)``)."""

    def __init__(self, message: str, *, faults: tuple[str, ...], delivered: int | None = None):
        super().__init__(message)
        self.faults = faults
        self.delivered = delivered


class CommandRefused(DeviceError):
    """The host refused to send a command in the unit's present state; nothing reached the wire."""


class ParameterRejected(CommandRefused, ValueError):
    """The host refuses to encode a setting (outside the unit's limits or not representable).

    Nothing reached the wire. ``field`` names the setting, ``value`` is what was asked. It is both
    a :class:`CommandRefused` (a device-layer error the workflow handles) and a ``ValueError``
    (bad input).
    """

    def __init__(self, message: str, *, field: str | None = None, value: object = None) -> None:
        super().__init__(message)
        self.field = field
        self.value = value


class UnitInTreatment(DeviceError):
    """Opening refused: the unit reported ARMED, DELIVERING (EPAT: FIRING) or PAUSED.

    Raised by the drivers' constructors (unless ``takeover=True``). The refusing driver sent
    only what reads the state (no heartbeat, no stop) and has closed its link: the treatment
    is not its own, so if the host that armed it is gone, the unit's watchdog stops it.
    ``state`` is the state the unit reported; ``wire_state`` the unit's own word for it.
    """

    def __init__(self, state: UnitState, *, wire_state: str, link: str, watchdog: str) -> None:
        super().__init__(
            f"this unit is in another console's treatment (state {wire_state}): nothing was "
            f"changed at {link} and nothing from here keeps it armed; end the treatment on the "
            "console that started it (if that console is gone, the unit's own watchdog stops it "
            f"within {watchdog}), then connect again"
        )
        self.state = state
        self.wire_state = wire_state
