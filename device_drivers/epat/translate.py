"""Host-side translation of EPAT payloads into the common device values and errors.

Wire integers become ``Decimal`` values (exactly), state numbers become
:class:`~device_drivers.interface.UnitState` (FIRING → DELIVERING), NAKs become
:class:`~device_drivers.errors.DeviceRejected` with a message that says what to do, and raw
replies are decoded for the service console.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from device_drivers.epat.codec import Frame
from device_drivers.epat.constants import (
    Command,
    EventCode,
    Nak,
    Reply,
    State,
    code_name,
    fault_names,
    nak_name,
    self_test_failures,
    state_name,
)
from device_drivers.epat.payloads import (
    ApplicatorBlock,
    EventNotice,
    EventRecord,
    HelloInfo,
    NakReply,
    StatusBlock,
    unpack_events,
    unpack_uint,
)
from device_drivers.epat.units import cbar_to_bar, dc_to_celsius, dhz_to_hz
from device_drivers.errors import DeviceRejected, ProtocolError
from device_drivers.interface import (
    STATUS_FIELDS,
    ApplicatorInfo,
    DeviceEvent,
    DeviceStatus,
    EventKind,
    UnitState,
    status_from_values,
)

_UNIT_STATE = {
    State.IDLE: UnitState.IDLE,
    State.READY: UnitState.READY,
    State.ARMED: UnitState.ARMED,
    State.FIRING: UnitState.DELIVERING,
    State.PAUSED: UnitState.PAUSED,
    State.COMPLETE: UnitState.COMPLETE,
    State.FAULT: UnitState.FAULT,
}

_EVENT_KIND = {
    EventCode.STATE_CHANGE: EventKind.STATE_CHANGE,
    EventCode.FAULT: EventKind.FAULT,
    EventCode.COMPLETION: EventKind.COMPLETION,
}


#: By wire value (an int lookup: every status reading goes through here).
_UNIT_STATE_OF_VALUE = {int(k): v for k, v in _UNIT_STATE.items()}
_STATUS_FORMAT = StatusBlock.FORMAT


def unit_state(value: int) -> UnitState:
    try:
        return _UNIT_STATE_OF_VALUE[value]
    except (KeyError, TypeError):
        raise ProtocolError(
            f"the unit reported state {value}, which protocol 1 does not define"
        ) from None


#: Decoded fields by status block: polls between two changes (a second of uptime, a pulse)
#: repeat the same 30 bytes, so they skip the unpacking and the conversions (values are
#: immutable; bounded, cleared when full).
_DECODED_STATUS: dict[bytes, tuple[object, ...]] = {}
_DECODED_STATUS_MAX = 1024


def device_status(payload: bytes, received_ns: int | None = None) -> DeviceStatus:
    """The status block of a GET_STATUS reply or STATUS frame, as the common reading.

    Unpacked straight from the payload (no intermediate :class:`StatusBlock`): this runs for
    every status poll and every streamed frame.
    """
    decoded = _DECODED_STATUS.get(payload)
    if decoded is None:
        decoded = _decode_status(payload)
        if len(_DECODED_STATUS) >= _DECODED_STATUS_MAX:
            _DECODED_STATUS.clear()
        _DECODED_STATUS[payload] = decoded
    return status_from_values(decoded, time.monotonic_ns() if received_ns is None else received_ns)


def _decode_status(payload: bytes) -> tuple[object, ...]:
    """The DeviceStatus field values (``STATUS_FIELDS`` order, without ``received_ns``)."""
    if len(payload) != _STATUS_FORMAT.size:
        StatusBlock.unpack(payload)  # raises the ProtocolError that names the length
    (
        state,
        faults,
        delivered,
        target,
        pressure_set_cbar,
        pressure_meas_cbar,
        freq_set_dhz,
        handpiece_temp_dc,
        applicator_present,
        shots_used,
        crc_errors,
        uptime_s,
    ) = _STATUS_FORMAT.unpack(payload)
    named = {
        "state": unit_state(state),
        "delivered": delivered,
        "target": target,
        "temperature_c": dc_to_celsius(handpiece_temp_dc),
        "faults": fault_names(faults),
        "pressure_set_bar": cbar_to_bar(pressure_set_cbar),
        "pressure_measured_bar": cbar_to_bar(pressure_meas_cbar),
        "frequency_set_hz": dhz_to_hz(freq_set_dhz),
        "applicator_present": bool(applicator_present),
        "shots_used": shots_used,
        "crc_errors": crc_errors,
        "uptime_s": uptime_s,
        "fault_code": faults,
    }
    return tuple(named.get(name) for name in STATUS_FIELDS[:-1])  # None: EMTT-only fields


def applicator_info(block: ApplicatorBlock) -> ApplicatorInfo:
    if not block.present:
        return ApplicatorInfo(False, "", "", 0, 0, None)
    return ApplicatorInfo(
        present=True,
        type=block.type,
        serial=block.serial,
        shots_used=block.shots_used,
        shots_rated=block.shots_rated,
        max_pressure_bar=cbar_to_bar(block.p_max_cbar),
    )


def event_text(code: int, data: int) -> str:
    if code == EventCode.STATE_CHANGE:
        return f"state → {state_name(data)}"
    if code == EventCode.FAULT:
        return f"fault: {', '.join(fault_names(data)) or 'none'} (bits {data:#06x})"
    if code == EventCode.COMPLETION:
        return f"treatment complete: {data} pulses delivered"
    return f"event code {code:#04x}, data {data}"


def device_event(
    code: int, data: int, *, index: int | None = None, uptime_ms: int | None = None
) -> DeviceEvent:
    """A DeviceEvent from an EVENT frame or an event-log record."""
    try:
        kind = _EVENT_KIND[EventCode(code)]
    except ValueError:
        raise ProtocolError(
            f"the unit reported event code {code:#04x}, not defined in protocol 1"
        ) from None
    state = unit_state(data) if kind is EventKind.STATE_CHANGE else None
    return DeviceEvent(
        kind=kind,
        data=data,
        text=event_text(code, data),
        index=index,
        uptime_ms=uptime_ms,
        state=state,
    )


def live_event(notice: EventNotice) -> DeviceEvent:
    return device_event(notice.code, notice.data)


def logged_event(record: EventRecord) -> DeviceEvent:
    return device_event(record.code, record.data, index=record.index, uptime_ms=record.uptime_ms)


_ADVICE = {
    Nak.UNKNOWN_CMD: "the unit does not know this command (protocol mismatch?)",
    Nak.BAD_LENGTH: "the unit rejected the payload length (protocol mismatch?)",
    Nak.NO_APPLICATOR: "no applicator is fitted; fit one and try again",
    Nak.APPLICATOR_LIMIT: (
        "the applicator has fewer shots left than the pulses requested; "
        "reduce the pulses or fit a new applicator"
    ),
}
_FIELDS = {1: "pressure", 2: "frequency", 3: "pulses"}
_STATE_ADVICE = {
    State.IDLE: "load parameters first",
    State.READY: "arm first",
    State.ARMED: "start, or disarm first",
    State.FIRING: "pause or stop first",
    State.PAUSED: "resume, or stop first",
    State.COMPLETE: "load new parameters or disarm",
    State.FAULT: "the unit is in FAULT; read the faults, remove the cause and clear the fault",
}


def rejection(command: int, nak: NakReply) -> DeviceRejected:
    """The DeviceRejected for a NAK to ``command``, with a message that says what to do."""
    what = code_name(command)
    name = nak_name(nak.code)
    if nak.code == Nak.OUT_OF_RANGE:
        field = _FIELDS.get(nak.detail, f"field {nak.detail}")
        if command == Command.SET_STREAM:
            field = "stream period"
        advice = (
            f"{field} is outside the unit's envelope or the fitted applicator's limit; "
            "choose a value within the limits `device info` shows"
        )
    elif nak.code == Nak.WRONG_STATE:
        try:
            state = State(nak.detail)
            advice = f"not accepted while the unit is {state.name}: {_STATE_ADVICE[state]}"
        except ValueError:
            advice = f"not accepted in the unit's state {nak.detail}"
    elif nak.code == Nak.FAULT_ACTIVE:
        faults = ", ".join(fault_names(nak.detail)) or "a fault"
        advice = (
            f"the fault cannot be cleared while its cause persists ({faults}): fit a working "
            "applicator and let the handpiece cool below 40.0 °C, then try again"
        )
    else:
        advice = _ADVICE.get(Nak(nak.code), "") if nak.code in Nak._value2member_map_ else ""
        advice = advice or f"the unit answered an unknown NAK code {nak.code:#04x}"
    return DeviceRejected(
        f"{what} refused by the unit ({name}, detail {nak.detail}): {advice}",
        code=nak.code,
        name=name,
        detail=nak.detail,
    )


@dataclass(frozen=True, slots=True)
class RawReply:
    """A decoded reply to a raw service command."""

    command: int
    seq: int
    ack: bool
    payload: bytes
    nak_code: int | None = None
    nak_name: str | None = None
    nak_detail: int | None = None
    decoded: str = ""

    def __str__(self) -> str:
        head = f"{code_name(self.command)} (SEQ {self.seq}): "
        if not self.ack:
            return (
                head
                + f"NAK {self.nak_name} detail {self.nak_detail}"
                + (f" — {self.decoded}" if self.decoded else "")
            )
        body = self.decoded or (self.payload.hex(" ") if self.payload else "no payload")
        return head + "ACK " + body


def raw_reply(command: int, frame: Frame) -> RawReply:
    if frame.cmd == Reply.NAK:
        try:
            nak = NakReply.unpack(frame.payload)
        except ProtocolError as exc:
            return RawReply(command, frame.seq, False, frame.payload, decoded=f"undecodable: {exc}")
        detail = ""
        if nak.code == Nak.WRONG_STATE:
            detail = f"unit is {state_name(nak.detail)}"
        elif nak.code == Nak.FAULT_ACTIVE:
            detail = "latched: " + ", ".join(fault_names(nak.detail))
        return RawReply(
            command,
            frame.seq,
            False,
            frame.payload,
            nak.code,
            nak_name(nak.code),
            nak.detail,
            detail,
        )
    try:
        decoded = _decode_ack(command, frame.payload)
    except ProtocolError as exc:
        decoded = f"undecodable payload {frame.payload.hex(' ')}: {exc}"
    return RawReply(command, frame.seq, True, frame.payload, decoded=decoded)


def _decode_ack(command: int, payload: bytes) -> str:
    if command == Command.HELLO:
        return str(HelloInfo.unpack(payload))
    if command == Command.GET_STATUS:
        block = StatusBlock.unpack(payload)
        return f"{block} state={state_name(block.state)} faults={fault_names(block.faults)}"
    if command == Command.GET_APPLICATOR:
        return str(ApplicatorBlock.unpack(payload))
    if command == Command.HEARTBEAT:
        return f"state {state_name(unpack_uint(payload, 1, 'state'))}"
    if command in (Command.DISARM, Command.PAUSE, Command.STOP, Command.ESTOP):
        return f"delivered {unpack_uint(payload, 4, 'delivered')}"
    if command == Command.SELF_TEST:
        result = unpack_uint(payload, 2, "result")
        failed = self_test_failures(result)
        return "self-test passed" if not failed else "self-test FAILED: " + ", ".join(failed)
    if command == Command.READ_EVENTS:
        records = unpack_events(payload)
        lines = [f"{len(records)} events"]
        lines += [
            f"  #{r.index} at {r.uptime_ms} ms: {event_text(r.code, r.data)}" for r in records
        ]
        return "\n".join(lines)
    return payload.hex(" ") if payload else "no payload"
