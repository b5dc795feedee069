"""Host-side codec of the EMTT unit: strict decoders of every response and a checked encoder.

Each decoder accepts exactly the response format of the ICD and raises ``ProtocolError`` for
anything else (a garbled or misaligned line must never become a number). Numbers become
``Decimal`` exactly as the unit printed them. The settings encoder checks the unit's envelope
and step and refuses, never clamps or rounds: what is sent is what was validated.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, fields
from decimal import Decimal

from device_drivers.emtt import constants as c
from device_drivers.emtt.scpi import format_number
from device_drivers.errors import ImpossibleEnvelope, ParameterRejected, ProtocolError
from device_drivers.interface import (
    ApplicatorInfo,
    DeviceEnvelope,
    DeviceEvent,
    DeviceIdentity,
    DeviceParameters,
    DeviceStatus,
    EventKind,
    Modality,
    SelfTestResult,
    UnitState,
    ValueRange,
)


@dataclass(frozen=True, slots=True)
class ErrorEntry:
    """One ``SYSTem:ERRor?`` entry."""

    code: int
    message: str

    def __str__(self) -> str:
        return f'{self.code},"{self.message}"'


_TENTHS = r"-?\d+\.\d"
_STATUS = re.compile(rf"({'|'.join(c.STATES)}),(\d+),(\d+),({_TENTHS}),({_TENTHS}),(0|20[1-4])\Z")
_ERROR = re.compile(r'([+-]?\d+),"([^"]*)"\Z')
_WORD = r"[A-Z0-9][A-Z0-9-]*"
_APPLICATOR = re.compile(rf"([01]),({_WORD}),({_WORD}),(\d+),(\d+)\Z")
_LOG_RECORD = re.compile(r"(\d+),(\d+),([123]),(\d+)\Z")
_TENTHS_ONLY = re.compile(rf"{_TENTHS}\Z")
_COIL = re.compile(r"(\d+\.\d),(\d+)\Z")
_INTEGER = re.compile(r"\d+\Z")
_UNIT_STATES = tuple(UnitState(name) for name in c.STATES)


def _garbled(what: str, reply: str) -> ProtocolError:
    return ProtocolError(f"the unit's answer to {what} does not follow the ICD: {reply[:80]!r}")


def _tenths(reply: str, what: str) -> Decimal:
    if not _TENTHS_ONLY.match(reply):
        raise _garbled(what, reply)
    return Decimal(reply)


def _integer(reply: str, what: str) -> int:
    if not _INTEGER.match(reply):
        raise _garbled(what, reply)
    return int(reply)


def _parts(reply: str, count: int, what: str) -> list[str]:
    parts = reply.split(";")
    if len(parts) != count:
        raise _garbled(what, reply)
    return parts


# --- decoders -------------------------------------------------------------------------------
# parse_status is the hot path of status polling (bench/emtt_query.py holds the driver within
# 1.1x of a bare pyvisa query). States and fault names come from lookup tables, and the frozen
# DeviceStatus is filled through its slot descriptors, which costs half of the generated
# __init__ (DeviceStatus has no __post_init__, so nothing is skipped). The field list is checked
# here once, so a change to the interface fails at import instead of leaving a field unset.
_STATE_BY_NAME = {state.value: state for state in UnitState}
_FAULTS_BY_CODE = {"0": (0, ())} | {str(k): (k, (v,)) for k, v in c.FAULT_NAMES.items()}
_STATUS_FIELDS = (
    "state",
    "delivered",
    "target",
    "temperature_c",
    "faults",
    "pressure_set_bar",
    "pressure_measured_bar",
    "field_measured_mt",
    "frequency_set_hz",
    "applicator_present",
    "shots_used",
    "crc_errors",
    "uptime_s",
    "fault_code",
    "received_ns",
)
if tuple(f.name for f in fields(DeviceStatus)) != _STATUS_FIELDS or hasattr(
    DeviceStatus, "__post_init__"
):
    raise ImportError("DeviceStatus changed: update parse_status in device_drivers/emtt/codec.py")
(
    _set_state,
    _set_delivered,
    _set_target,
    _set_temperature,
    _set_faults,
    _set_pressure_set,
    _set_pressure_measured,
    _set_field_measured,
    _set_frequency_set,
    _set_applicator_present,
    _set_shots_used,
    _set_crc_errors,
    _set_uptime,
    _set_fault_code,
    _set_received_ns,
) = (getattr(DeviceStatus, name).__set__ for name in _STATUS_FIELDS)
_new_status = DeviceStatus.__new__


#: Decoded fields by answer: a unit that is not delivering repeats the same answer, so most
#: polls skip the match and the conversions (values are immutable; bounded, cleared when full).
_DECODED_STATUS: dict[str, tuple[UnitState, int, int, Decimal, tuple[str, ...], Decimal, int]] = {}
_DECODED_STATUS_MAX = 1024


def parse_status(reply: str) -> DeviceStatus:
    """``SESSion:STATe?`` → DeviceStatus (faults named from the latched fault code)."""
    decoded = _DECODED_STATUS.get(reply)
    if decoded is None:
        m = _STATUS.match(reply)
        if m is None:
            raise _garbled("SESS:STAT?", reply)
        state_name, delivered_s, target_s, field_s, temperature_s, fault = m.groups()
        code, faults = _FAULTS_BY_CODE[fault]
        decoded = (
            _STATE_BY_NAME[state_name],
            int(delivered_s),
            int(target_s),
            Decimal(temperature_s),
            faults,
            Decimal(field_s),
            code,
        )
        if len(_DECODED_STATUS) >= _DECODED_STATUS_MAX:
            _DECODED_STATUS.clear()
        _DECODED_STATUS[reply] = decoded
    state, delivered, target, temperature, faults, field, code = decoded
    status = _new_status(DeviceStatus)
    _set_state(status, state)
    _set_delivered(status, delivered)
    _set_target(status, target)
    _set_temperature(status, temperature)
    _set_faults(status, faults)
    _set_pressure_set(status, None)
    _set_pressure_measured(status, None)
    _set_field_measured(status, field)
    _set_frequency_set(status, None)
    _set_applicator_present(status, None)
    _set_shots_used(status, None)
    _set_crc_errors(status, None)
    _set_uptime(status, None)
    _set_fault_code(status, code)
    _set_received_ns(status, time.monotonic_ns())
    return status


def parse_error(reply: str) -> ErrorEntry:
    m = _ERROR.match(reply)
    if m is None:
        raise _garbled("SYST:ERR?", reply)
    return ErrorEntry(int(m[1]), m[2])


def parse_identity(reply: str) -> DeviceIdentity:
    """``*IDN?`` of an EMT unit; anything else means the wrong device (ProtocolError)."""
    fields = reply.split(",")
    if len(fields) != 4 or fields[0] != c.MANUFACTURER or not fields[1].startswith("EMT-"):
        raise ProtocolError(f"it identified as {reply[:80]!r}, not as a {c.MANUFACTURER} EMT unit")
    if not fields[2] or not fields[3]:
        raise _garbled("*IDN?", reply)
    return DeviceIdentity(
        modality=Modality.EMTT,
        manufacturer=fields[0],
        model=fields[1],
        serial=fields[2],
        firmware=fields[3],
        protocol_version=c.PROTOCOL_VERSION,
    )


ENVELOPE_QUERY = "SOUR:FIEL? MIN;FIEL? MAX;FREQ? MIN;FREQ? MAX;PULS? MIN;PULS? MAX"
SETTINGS_QUERY = "SOUR:FIEL?;FREQ?;PULS?"


def parse_envelope(reply: str) -> DeviceEnvelope:
    """The answer to :data:`ENVELOPE_QUERY`; steps from the ICD (the unit does not report them)."""
    p = _parts(reply, 6, "the limit queries")
    field = ValueRange(_tenths(p[0], "FIEL? MIN"), _tenths(p[1], "FIEL? MAX"), c.FIELD_STEP_MT)
    freq = ValueRange(_tenths(p[2], "FREQ? MIN"), _tenths(p[3], "FREQ? MAX"), c.FREQUENCY_STEP_HZ)
    pulses = ValueRange(
        Decimal(_integer(p[4], "PULS? MIN")), Decimal(_integer(p[5], "PULS? MAX")), Decimal(1)
    )
    for name, r in (("field", field), ("frequency", freq), ("pulses", pulses)):
        if not Decimal(0) <= r.minimum <= r.maximum:
            raise ImpossibleEnvelope(
                f"the unit reports an impossible {name} range {r}: service the unit"
            )
    return DeviceEnvelope(Modality.EMTT, frequency_hz=freq, pulses=pulses, field_mt=field)


def parse_settings(reply: str) -> DeviceParameters | None:
    """The answer to :data:`SETTINGS_QUERY`; None while nothing is set (pulses 0)."""
    p = _parts(reply, 3, SETTINGS_QUERY)
    field, freq, pulses = _tenths(p[0], "FIEL?"), _tenths(p[1], "FREQ?"), _integer(p[2], "PULS?")
    if pulses == 0:
        return None
    return DeviceParameters(frequency_hz=freq, pulses=pulses, field_mt=field)


def parse_applicator(reply: str) -> ApplicatorInfo:
    m = _APPLICATOR.match(reply)
    if m is None:
        raise _garbled("SYST:APPL?", reply)
    return ApplicatorInfo(
        present=m[1] == "1",
        type=m[2],
        serial=m[3],
        shots_used=int(m[4]),
        shots_rated=int(m[5]),
    )


@dataclass(frozen=True, slots=True)
class CoilDiagnostics:
    """``DIAGnostic:COIL?``: the applicator coil's inductance and (temperature-dependent)
    resistance, for the service console."""

    inductance_uh: Decimal
    resistance_mohm: int


def parse_coil(reply: str) -> CoilDiagnostics:
    m = _COIL.match(reply)
    if m is None:
        raise _garbled("DIAG:COIL?", reply)
    return CoilDiagnostics(Decimal(m[1]), int(m[2]))


def parse_self_test(reply: str) -> SelfTestResult:
    mask = _integer(reply, "*TST?")
    if mask >= 1 << len(c.SELF_TEST_CHECKS):
        raise _garbled("*TST?", reply)
    failed = tuple(name for bit, name in enumerate(c.SELF_TEST_CHECKS) if mask & (1 << bit))
    return SelfTestResult(passed=mask == 0, failed_checks=failed, raw=mask)


def parse_log_page(reply: str) -> list[DeviceEvent]:
    """One ``DIAGnostic:LOG?`` page: records joined by ``|``; an empty line is no record."""
    if reply == "":
        return []
    events = []
    for record in reply.split("|"):
        m = _LOG_RECORD.match(record)
        if m is None:
            raise _garbled("DIAG:LOG?", reply)
        index, uptime_ms, code, data = int(m[1]), int(m[2]), int(m[3]), int(m[4])
        events.append(log_event(code, data, index=index, uptime_ms=uptime_ms))
    return events


def log_event(code: int, data: int, *, index: int | None, uptime_ms: int | None) -> DeviceEvent:
    """A DeviceEvent for an event-log code (1 state change, 2 device error, 3 completion)."""
    if code == c.LOG_STATE_CHANGE:
        if data >= len(_UNIT_STATES):
            raise ProtocolError(f"event log record {index}: no state number {data}")
        state = _UNIT_STATES[data]
        return DeviceEvent(
            EventKind.STATE_CHANGE, data, f"state {state}", index, uptime_ms, state=state
        )
    if code == c.LOG_ERROR:
        if data not in c.DEVICE_ERRORS:
            raise ProtocolError(f"event log record {index}: {data} is not a device error")
        text = f"fault {c.FAULT_NAMES[data]} ({data}, {c.ERROR_MESSAGES[data]})"
        return DeviceEvent(EventKind.FAULT, data, text, index, uptime_ms, state=UnitState.FAULT)
    text = f"session complete: {data} pulses delivered"
    return DeviceEvent(EventKind.COMPLETION, data, text, index, uptime_ms, UnitState.COMPLETE)


# --- the checked encoder --------------------------------------------------------------------
def settings_line(params: DeviceParameters, envelope: DeviceEnvelope) -> str:
    """The one line that loads ``params``; ParameterRejected if the unit could not take them."""
    if params.field_mt is None:
        raise ParameterRejected(
            "the EMTT unit is set by field intensity (mT), not pressure: give field_mt"
        )
    assert envelope.field_mt is not None
    _check("field", params.field_mt, envelope.field_mt, "mT")
    _check("frequency", params.frequency_hz, envelope.frequency_hz, "Hz")
    _check("pulse count", Decimal(params.pulses), envelope.pulses, "pulses")
    return (
        f"SOUR:FIEL {format_number(params.field_mt)};"
        f"FREQ {format_number(params.frequency_hz)};PULS {params.pulses}"
    )


def _check(name: str, value: Decimal, limits: ValueRange, unit: str) -> None:
    if not value.is_finite() or not limits.minimum <= value <= limits.maximum:
        raise ParameterRejected(
            f"{name} {value} {unit} is outside the unit's envelope "
            f"{limits.minimum}–{limits.maximum} {unit}; choose a value within it"
        )
    step = limits.step
    if step is not None and (value - limits.minimum) % step != 0:
        below = limits.minimum + (value - limits.minimum) // step * step
        raise ParameterRejected(
            f"{name} {value} {unit} is not on the unit's {step} {unit} step; choose "
            f"{below} or {below + step} (the console never rounds a setting)"
        )
