"""One exception family for every device, so the session workflow handles any wire the same way.

DeviceError
├── LinkTimeout     no (valid) answer within the deadline; the link may still be up
├── LinkLost        the link is gone (port closed, socket reset, unplugged)
├── ProtocolError   an answer that does not follow the ICD (wrong SEQ, bad payload, garbage)
├── DeviceRejected  the unit refused a command (EPAT NAK, SCPI error) — carries its code
└── DeviceFault     the unit is in, or entered, a latched fault state
"""

from __future__ import annotations


class DeviceError(Exception):
    """Base of every error raised by a transport or driver."""


class LinkTimeout(DeviceError):
    """The unit did not answer in time (after the retries the ICD allows)."""


class LinkLost(DeviceError):
    """The link to the unit is gone; reconnect before anything else."""


class ProtocolError(DeviceError):
    """The unit's answer does not follow its interface control document."""


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
