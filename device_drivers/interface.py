"""What the session workflow needs from any therapy device, and the values that cross over.

Both drivers (EPAT over serial frames, EMTT over SCPI) implement :class:`TherapyDevice`, so the
workflow never knows which wire it is on. Values are frozen dataclasses with units in their
names; physical quantities are ``Decimal`` (the unit's integer units converted exactly) because
the audit trail forbids floats and a value must never change on its way to the wire.
"""

from __future__ import annotations

import abc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from decimal import Decimal
from enum import StrEnum
from types import TracebackType
from typing import Self

_log = logging.getLogger(__name__)


class Modality(StrEnum):
    EPAT = "epat"
    EMTT = "emtt"


class UnitState(StrEnum):
    """The unit's own state, in one vocabulary for both families (EPAT FIRING = DELIVERING)."""

    IDLE = "IDLE"
    READY = "READY"
    ARMED = "ARMED"
    DELIVERING = "DELIVERING"
    PAUSED = "PAUSED"
    COMPLETE = "COMPLETE"
    FAULT = "FAULT"


#: States in which the unit's watchdog runs: the host that armed it must send heartbeats, and
#: a driver opening a unit in one of them refuses (``UnitInTreatment``) unless told to take over.
WATCHED_STATES = frozenset({UnitState.ARMED, UnitState.DELIVERING, UnitState.PAUSED})


@dataclass(frozen=True, slots=True)
class ValueRange:
    """Inclusive limits of one setting as the unit reports them; ``step`` where the unit has one."""

    minimum: Decimal
    maximum: Decimal
    step: Decimal | None = None

    def contains(self, value: Decimal) -> bool:
        if not self.minimum <= value <= self.maximum:
            return False
        return self.step is None or (value - self.minimum) % self.step == 0


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    modality: Modality
    manufacturer: str
    model: str
    serial: str
    firmware: str
    protocol_version: int


@dataclass(frozen=True, slots=True)
class DeviceEnvelope:
    """The unit's own limits. Exactly one of ``pressure_bar`` (EPAT) / ``field_mt`` (EMTT)."""

    modality: Modality
    frequency_hz: ValueRange
    pulses: ValueRange
    pressure_bar: ValueRange | None = None
    field_mt: ValueRange | None = None


@dataclass(frozen=True, slots=True)
class ApplicatorInfo:
    """The fitted applicator (handpiece or coil); ``present`` False means none is fitted."""

    present: bool
    type: str
    serial: str
    shots_used: int
    shots_rated: int
    max_pressure_bar: Decimal | None = None

    @property
    def shots_remaining(self) -> int:
        return max(0, self.shots_rated - self.shots_used)

    @property
    def wear_percent(self) -> Decimal:
        """Used share of rated life in %, one decimal (0 when no rating is known)."""
        if self.shots_rated <= 0:
            return Decimal(0)
        return (Decimal(self.shots_used) * 100 / Decimal(self.shots_rated)).quantize(Decimal("0.1"))


@dataclass(frozen=True, slots=True)
class DeviceParameters:
    """Treatment settings for one load. Exactly one of ``pressure_bar`` / ``field_mt``."""

    frequency_hz: Decimal
    pulses: int
    pressure_bar: Decimal | None = None
    field_mt: Decimal | None = None

    def __post_init__(self) -> None:
        if (self.pressure_bar is None) == (self.field_mt is None):
            raise ValueError("set exactly one of pressure_bar (EPAT) or field_mt (EMTT)")
        for name in ("frequency_hz", "pressure_bar", "field_mt"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Decimal):
                raise TypeError(f"{name} must be a Decimal, not {type(value).__name__}")
        if isinstance(self.pulses, bool) or not isinstance(self.pulses, int):
            raise TypeError("pulses must be an int")


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """One status reading. Fields a family does not report are None."""

    state: UnitState
    delivered: int
    target: int
    temperature_c: Decimal
    faults: tuple[str, ...] = ()
    pressure_set_bar: Decimal | None = None
    pressure_measured_bar: Decimal | None = None
    field_measured_mt: Decimal | None = None
    frequency_set_hz: Decimal | None = None
    applicator_present: bool | None = None
    shots_used: int | None = None
    crc_errors: int | None = None
    uptime_s: int | None = None
    fault_code: int | None = None
    received_ns: int = field(default_factory=time.monotonic_ns)


#: DeviceStatus's fields in order, and their slot setters (see :func:`status_from_values`).
STATUS_FIELDS = tuple(f.name for f in fields(DeviceStatus))
_STATUS_SETTERS = tuple(getattr(DeviceStatus, name).__set__ for name in STATUS_FIELDS)
if hasattr(DeviceStatus, "__post_init__"):
    raise ImportError("DeviceStatus gained a __post_init__: status_from_values would skip it")


def status_from_values(values: tuple[object, ...], received_ns: int) -> DeviceStatus:
    """A DeviceStatus from its field values in ``STATUS_FIELDS`` order except ``received_ns``.

    Fills the frozen instance through its slot descriptors, which costs about half of the
    generated ``__init__``: drivers build one for every status reading.
    """
    status = _new_status(DeviceStatus)
    for setter, value in zip(_VALUE_SETTERS, values, strict=True):  # ValueError if short/long
        setter(status, value)
    _set_received_ns(status, received_ns)
    return status


_new_status = DeviceStatus.__new__
_VALUE_SETTERS, _set_received_ns = _STATUS_SETTERS[:-1], _STATUS_SETTERS[-1]
if STATUS_FIELDS[-1] != "received_ns":
    raise ImportError("DeviceStatus.received_ns must stay its last field")


class EventKind(StrEnum):
    STATE_CHANGE = "state_change"
    FAULT = "fault"
    COMPLETION = "completion"


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    """An event the unit reported (live, ``index`` None) or read back from its event log."""

    kind: EventKind
    data: int
    text: str
    index: int | None = None
    uptime_ms: int | None = None
    state: UnitState | None = None
    received_ns: int = field(default_factory=time.monotonic_ns)


@dataclass(frozen=True, slots=True)
class LinkDown:
    """Sent to listeners once when the link is lost; the driver must be reopened."""

    reason: str
    received_ns: int = field(default_factory=time.monotonic_ns)


@dataclass(frozen=True, slots=True)
class SelfTestResult:
    passed: bool
    failed_checks: tuple[str, ...]
    raw: int


DeviceMessage = DeviceStatus | DeviceEvent | LinkDown
Listener = Callable[[DeviceMessage], None]


class TherapyDevice(abc.ABC):
    """The common device interface.

    Contract for implementations:
    - every method is safe to call from one owner thread while the driver's own background
      threads (reader, heartbeat, status poller) run; the driver serialises its wire access;
    - limits are rejected, never clamped; ``load_parameters`` reads the settings back and raises
      ``ProtocolError`` if the unit holds anything else;
    - opening a unit that is ARMED, DELIVERING or PAUSED raises ``UnitInTreatment`` (nothing
      sent but what reads the state) unless the constructor is given ``takeover=True``;
    - heartbeats run automatically only for a delivery armed through this driver instance,
      while the unit is ARMED, DELIVERING or PAUSED; a unit it did not arm is never kept
      alive, so its watchdog stops it when the host that armed it is gone;
    - ``close()`` leaves a unit this driver loaded or armed stopped and disarmed, leaves any
      other unit as it found it, is idempotent and never raises.
    """

    modality: Modality

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._listeners_lock = threading.Lock()

    # --- identity and limits -------------------------------------------------------------
    @abc.abstractmethod
    def identify(self) -> DeviceIdentity: ...

    @abc.abstractmethod
    def envelope(self) -> DeviceEnvelope: ...

    @abc.abstractmethod
    def applicator(self) -> ApplicatorInfo: ...

    # --- treatment -----------------------------------------------------------------------
    @abc.abstractmethod
    def load_parameters(self, params: DeviceParameters) -> DeviceParameters:
        """Load, read back and return what the unit now holds (equal to ``params``)."""

    @abc.abstractmethod
    def arm(self) -> None: ...

    @abc.abstractmethod
    def disarm(self) -> int:
        """Leave ARMED/READY/PAUSED/COMPLETE for IDLE; returns the delivered count."""

    @abc.abstractmethod
    def start(self) -> None: ...

    @abc.abstractmethod
    def pause(self) -> int:
        """Suspend delivery; returns the delivered count (final until resumed)."""

    @abc.abstractmethod
    def resume(self) -> None: ...

    @abc.abstractmethod
    def stop(self) -> int:
        """Planned end of delivery; returns the final delivered count."""

    @abc.abstractmethod
    def emergency_stop(self) -> int:
        """Immediate, latched stop (unit enters FAULT); returns the final delivered count."""

    @abc.abstractmethod
    def clear_fault(self) -> None: ...

    # --- monitoring ----------------------------------------------------------------------
    @abc.abstractmethod
    def status(self) -> DeviceStatus: ...

    @abc.abstractmethod
    def heartbeat(self) -> UnitState: ...

    @abc.abstractmethod
    def start_status_stream(self, period_s: float) -> None:
        """Deliver a DeviceStatus to listeners every ``period_s`` (unit-pushed or polled)."""

    @abc.abstractmethod
    def stop_status_stream(self) -> None: ...

    def add_listener(self, listener: Listener) -> None:
        """Receive DeviceStatus, DeviceEvent and LinkDown messages (on a driver thread)."""
        with self._listeners_lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._listeners_lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def _notify(self, message: DeviceMessage) -> None:
        with self._listeners_lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(message)
            except Exception:  # a broken listener must not kill the driver's reader thread
                _log.exception("device listener %r failed on %r", listener, message)

    # --- service -------------------------------------------------------------------------
    @abc.abstractmethod
    def self_test(self) -> SelfTestResult: ...

    @abc.abstractmethod
    def event_log(self, from_index: int = 0) -> list[DeviceEvent]:
        """The unit's event log from ``from_index`` to its end (paged internally)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop and disarm a unit this driver loaded or armed (best effort; any other unit is
        left alone), stop background threads, close the link."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
