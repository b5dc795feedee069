"""Numbers of the EPAT serial ICD (protocol 1): codes, states, faults, timings, reference unit.

Everything here is read off ``shared/icd/epat-serial.md``; the codec, the simulator and the
driver take their numbers from this one module so the two sides cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag

# --- framing -------------------------------------------------------------------------------
SOF = 0xA5
LEN_MIN = 2  # SEQ + CMD
LEN_MAX = 250
MAX_PAYLOAD = LEN_MAX - 2
#: Longest frame on the wire: SOF, LEN, SEQ, CMD, 248 payload bytes, CRC.
MAX_FRAME = 1 + 1 + LEN_MAX + 2
#: SEQ of the frames the unit sends on its own (STATUS, EVENT).
UNSOLICITED_SEQ = 0x00

# --- timings (ICD; simulated ones scale with the speed factor, wall ones do not) -----------
REPLY_DEADLINE_S = 0.050  # wall: every host frame is answered within this
INTER_BYTE_TIMEOUT_S = 0.020  # wall: a partial frame is dropped after this gap
WATCHDOG_S = 0.500  # simulated: ARMED/FIRING/PAUSED need a valid frame this often
HEARTBEAT_PERIOD_S = 0.200  # simulated: what the ICD asks hosts to send at least
STREAM_PERIOD_MIN_MS = 20
STREAM_PERIOD_MAX_MS = 1000
EVENT_LOG_CAPACITY = 256
READ_EVENTS_MAX = 16
EVENT_INDEX_MODULUS = 0x10000
CRC_ERRORS_MAX = 0xFFFF

# --- thermal limits (OVERTEMP) in dC ----------------------------------------------------------
OVERTEMP_TRIP_DC = 430  # >= 43.0 °C raises OVERTEMP
OVERTEMP_CLEAR_DC = 400  # the condition ends below 40.0 °C
PRESSURE_DEVIATION_LIMIT_PERCENT = 15
PRESSURE_DEVIATION_TIME_S = 1.0  # simulated


class Command(IntEnum):
    """Host → unit command codes."""

    HELLO = 0x01
    HEARTBEAT = 0x02
    GET_STATUS = 0x03
    GET_APPLICATOR = 0x10
    SET_PARAMS = 0x20
    ARM = 0x21
    DISARM = 0x22
    START = 0x23
    PAUSE = 0x24
    RESUME = 0x25
    STOP = 0x26
    ESTOP = 0x2F
    CLEAR_FAULT = 0x30
    SELF_TEST = 0x40
    READ_EVENTS = 0x41
    SET_STREAM = 0x50


class Reply(IntEnum):
    """Reply codes; a reply never echoes the command code (Clarifications: Replies)."""

    ACK = 0x06
    NAK = 0x15


class Unsolicited(IntEnum):
    """Frames the unit sends on its own, with SEQ 0."""

    STATUS = 0x80
    EVENT = 0x81


class State(IntEnum):
    IDLE = 0
    READY = 1
    ARMED = 2
    FIRING = 3
    PAUSED = 4
    COMPLETE = 5
    FAULT = 6


#: States in which the unit's watchdog runs.
WATCHDOG_STATES = frozenset({State.ARMED, State.FIRING, State.PAUSED})


class Fault(IntFlag):
    ESTOP = 1 << 0
    COMM_LOSS = 1 << 1
    OVERTEMP = 1 << 2
    PRESSURE_DEVIATION = 1 << 3
    APPLICATOR_REMOVED = 1 << 4
    APPLICATOR_WORN = 1 << 5
    INTERNAL = 1 << 6


class Nak(IntEnum):
    UNKNOWN_CMD = 0x01
    BAD_LENGTH = 0x02
    OUT_OF_RANGE = 0x03
    WRONG_STATE = 0x04
    NO_APPLICATOR = 0x05
    APPLICATOR_LIMIT = 0x06
    FAULT_ACTIVE = 0x07


class EventCode(IntEnum):
    STATE_CHANGE = 0x01
    FAULT = 0x02
    COMPLETION = 0x03


class SelfTestCheck(IntFlag):
    HV_SUPPLY = 1 << 0
    PRESSURE_SENSOR = 1 << 1
    TEMPERATURE_SENSOR = 1 << 2
    APPLICATOR_LINK = 1 << 3


#: Exact request payload length of every command (BAD_LENGTH for any other).
REQUEST_PAYLOAD_LENGTH: dict[Command, int] = {
    Command.HELLO: 0,
    Command.HEARTBEAT: 0,
    Command.GET_STATUS: 0,
    Command.GET_APPLICATOR: 0,
    Command.SET_PARAMS: 8,
    Command.ARM: 0,
    Command.DISARM: 0,
    Command.START: 0,
    Command.PAUSE: 0,
    Command.RESUME: 0,
    Command.STOP: 0,
    Command.ESTOP: 0,
    Command.CLEAR_FAULT: 0,
    Command.SELF_TEST: 0,
    Command.READ_EVENTS: 2,
    Command.SET_STREAM: 2,
}

#: States in which a command is accepted; ``None`` means "any" (ICD command table plus the
#: Clarifications: DISARM is also accepted in READY).
ACCEPTED_STATES: dict[Command, frozenset[State] | None] = {
    Command.HELLO: None,
    Command.HEARTBEAT: None,
    Command.GET_STATUS: None,
    Command.GET_APPLICATOR: None,
    Command.SET_PARAMS: frozenset({State.IDLE, State.READY, State.COMPLETE}),
    Command.ARM: frozenset({State.READY}),
    Command.DISARM: frozenset({State.READY, State.ARMED, State.PAUSED, State.COMPLETE}),
    Command.START: frozenset({State.ARMED}),
    Command.PAUSE: frozenset({State.FIRING}),
    Command.RESUME: frozenset({State.PAUSED}),
    Command.STOP: frozenset({State.FIRING, State.PAUSED}),
    Command.ESTOP: None,
    Command.CLEAR_FAULT: frozenset({State.FAULT}),
    Command.SELF_TEST: frozenset({State.IDLE}),
    Command.READ_EVENTS: None,
    Command.SET_STREAM: None,
}


# --- the reference unit (what the simulator reports by default) ----------------------------
PROTOCOL_VERSION = 1
REFERENCE_MODEL = "RPW-200"
REFERENCE_SERIAL = "RPW200-00001"  # fills its 12-byte field: no NUL on the wire
REFERENCE_FIRMWARE = "1.2.0"
REFERENCE_P_MIN_CBAR = 100
REFERENCE_P_MAX_CBAR = 500
REFERENCE_F_MIN_DHZ = 10
REFERENCE_F_MAX_DHZ = 210
REFERENCE_MAX_PULSES = 10_000


@dataclass(frozen=True, slots=True)
class ApplicatorType:
    """One applicator model of the reference unit."""

    name: str
    shots_rated: int
    p_max_cbar: int


APPLICATOR_TYPES: dict[str, ApplicatorType] = {
    "R15": ApplicatorType("R15", 1_000_000, 400),
    "D20-S": ApplicatorType("D20-S", 1_500_000, 500),
}

# --- string fields (bytes on the wire) -------------------------------------------------------
MODEL_LEN = 16
SERIAL_LEN = 12
FIRMWARE_LEN = 8
APPLICATOR_TYPE_LEN = 8


def command_code(name: str) -> int | None:
    """The code of a command named like ``GET_STATUS`` / ``get-status``; None if unknown."""
    key = name.strip().upper().replace("-", "_")
    try:
        return int(Command[key])
    except KeyError:
        return None


def code_name(code: int) -> str:
    """A readable name for any CMD byte (command, reply or unsolicited frame)."""
    for enum in (Command, Reply, Unsolicited):
        try:
            return enum(code).name
        except ValueError:
            continue
    return f"0x{code:02X}"


def fault_names(bits: int) -> tuple[str, ...]:
    """The names of the set fault bits, lowest bit first; unknown bits as ``BIT7`` etc."""
    if not bits:
        return ()
    names: list[str] = []
    for bit in range(16):
        if bits & (1 << bit):
            try:
                names.append(Fault(1 << bit).name or f"BIT{bit}")
            except ValueError:
                names.append(f"BIT{bit}")
    return tuple(names)


def self_test_failures(result: int) -> tuple[str, ...]:
    """Names of the failed self-test checks in a SELF_TEST result word."""
    names: list[str] = []
    for bit in range(16):
        if result & (1 << bit):
            try:
                names.append(SelfTestCheck(1 << bit).name or f"CHECK{bit}")
            except ValueError:
                names.append(f"CHECK{bit}")
    return tuple(names)


def state_name(value: int) -> str:
    try:
        return State(value).name
    except ValueError:
        return f"STATE{value}"


def nak_name(code: int) -> str:
    try:
        return Nak(code).name
    except ValueError:
        return f"NAK{code:#04x}"
