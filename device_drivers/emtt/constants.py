"""The EMTT unit's fixed vocabulary from its ICD (``shared/icd/emtt-scpi.md``, protocol 1).

States and their log positions, SCPI/device error codes and messages, *ESR bits, self-test bits,
event-log codes and the reference unit's identity, envelope and applicator. Both the simulator
and the driver read these, so the two sides cannot drift apart on a number.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

PROTOCOL_VERSION: Final = 1

# --- states ---------------------------------------------------------------------------------
#: The STATE list of ``SESSion:STATe?``; a state's position is its event-log data (0 = IDLE).
STATES: Final = ("IDLE", "READY", "ARMED", "DELIVERING", "PAUSED", "COMPLETE", "FAULT")
#: States in which the watchdog runs and the coil-temperature / applicator faults latch.
WATCHED_STATES: Final = frozenset({"ARMED", "DELIVERING", "PAUSED"})
#: States in which the three settings are accepted.
SETTINGS_STATES: Final = frozenset({"IDLE", "READY", "COMPLETE"})
#: States in which ``*RST`` is accepted.
RESET_STATES: Final = frozenset({"IDLE", "READY", "COMPLETE"})
#: States ``SESSion:STOP`` leaves for IDLE.
STOP_STATES: Final = frozenset({"READY", "ARMED", "DELIVERING", "PAUSED", "COMPLETE"})

# --- errors ---------------------------------------------------------------------------------
NO_ERROR: Final = 0
SYNTAX_ERROR: Final = -102
PARAMETER_NOT_ALLOWED: Final = -108
MISSING_PARAMETER: Final = -109
UNDEFINED_HEADER: Final = -113
SETTINGS_CONFLICT: Final = -221
DATA_OUT_OF_RANGE: Final = -222
ILLEGAL_PARAMETER_VALUE: Final = -224
QUEUE_OVERFLOW: Final = -350
COIL_OVERTEMP: Final = 201
APPLICATOR_NOT_CONNECTED: Final = 202
WATCHDOG_EXPIRED: Final = 203
EMERGENCY_STOP: Final = 204

ERROR_MESSAGES: Final[dict[int, str]] = {
    NO_ERROR: "No error",
    SYNTAX_ERROR: "Syntax error",
    PARAMETER_NOT_ALLOWED: "Parameter not allowed",
    MISSING_PARAMETER: "Missing parameter",
    UNDEFINED_HEADER: "Undefined header",
    SETTINGS_CONFLICT: "Settings conflict",
    DATA_OUT_OF_RANGE: "Data out of range",
    ILLEGAL_PARAMETER_VALUE: "Illegal parameter value",
    QUEUE_OVERFLOW: "Queue overflow",
    COIL_OVERTEMP: "Coil overtemperature",
    APPLICATOR_NOT_CONNECTED: "Applicator not connected",
    WATCHDOG_EXPIRED: "Watchdog expired",
    EMERGENCY_STOP: "Emergency stop",
}

#: The device errors that latch FAULT (and the only ones the event log records, code 2).
DEVICE_ERRORS: Final = frozenset(
    {COIL_OVERTEMP, APPLICATOR_NOT_CONNECTED, WATCHDOG_EXPIRED, EMERGENCY_STOP}
)
#: Host-side names of the device errors, for ``DeviceFault.faults`` and ``DeviceStatus.faults``.
FAULT_NAMES: Final[dict[int, str]] = {
    COIL_OVERTEMP: "COIL_OVERTEMP",
    APPLICATOR_NOT_CONNECTED: "APPLICATOR_NOT_CONNECTED",
    WATCHDOG_EXPIRED: "WATCHDOG_EXPIRED",
    EMERGENCY_STOP: "EMERGENCY_STOP",
}

ERROR_QUEUE_SIZE: Final = 16

# --- *ESR? bits -----------------------------------------------------------------------------
ESR_QUERY_ERROR: Final = 1 << 2
ESR_DEVICE_ERROR: Final = 1 << 3
ESR_EXECUTION_ERROR: Final = 1 << 4
ESR_COMMAND_ERROR: Final = 1 << 5


def esr_bit_for(code: int) -> int:
    """The *ESR bit an error sets: -1xx command, -2xx execution, device errors and -350 device."""
    if code in DEVICE_ERRORS or code == QUEUE_OVERFLOW:
        return ESR_DEVICE_ERROR
    if -199 <= code <= -100:
        return ESR_COMMAND_ERROR
    if -299 <= code <= -200:
        return ESR_EXECUTION_ERROR
    if -499 <= code <= -400:
        return ESR_QUERY_ERROR
    return 0


# --- *TST? bits -----------------------------------------------------------------------------
SELF_TEST_CHECKS: Final = ("COIL_DRIVER", "FIELD_SENSOR", "TEMPERATURE_SENSOR", "APPLICATOR_LINK")
SELF_TEST_APPLICATOR_LINK: Final = 1 << 3

# --- event log ------------------------------------------------------------------------------
LOG_STATE_CHANGE: Final = 1
LOG_ERROR: Final = 2
LOG_SESSION_COMPLETE: Final = 3
LOG_CAPACITY: Final = 256
LOG_PAGE: Final = 16

# --- timing and thermal limits --------------------------------------------------------------
WATCHDOG_S: Final = 1.0
QUERY_DEADLINE_S: Final = 0.050
OVERTEMP_TRIP_C: Final = Decimal("45.0")
OVERTEMP_CLEAR_C: Final = Decimal("40.0")

# --- the reference unit ---------------------------------------------------------------------
MANUFACTURER: Final = "STORM-LABS"
MODEL: Final = "EMT-100"
FIRMWARE: Final = "1.0.0"
DEFAULT_SERIAL: Final = "E100-24-0117"
DEFAULT_PORT: Final = 5025

FIELD_MIN_MT: Final = Decimal("5.0")
FIELD_MAX_MT: Final = Decimal("80.0")
FIELD_STEP_MT: Final = Decimal("0.5")
FREQUENCY_MIN_HZ: Final = Decimal("1.0")
FREQUENCY_MAX_HZ: Final = Decimal("10.0")
FREQUENCY_STEP_HZ: Final = Decimal("0.5")
PULSES_MIN: Final = 1
PULSES_MAX: Final = 10_000

APPLICATOR_TYPE: Final = "EMT-A1"
APPLICATOR_RATED_PULSES: Final = 5_000_000
#: ``SYSTem:APPLicator?`` words when no applicator is fitted (the ICD gives none; see emtt.md).
NO_APPLICATOR_WORD: Final = "NONE"
