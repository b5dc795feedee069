"""The EMTT unit's firmware model: SCPI execution, state machine, error queue and event log.

Time is an explicit argument (simulated seconds since power-up), so the model is deterministic
and single-threaded; :class:`~device_drivers.emtt.simulator.EmttSimulator` adds the clock, the
lock and the link faults. Every rule here is a sentence of ``shared/icd/emtt-scpi.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from device_drivers.emtt import constants as c
from device_drivers.emtt.physics import (
    CoilElectrics,
    ThermalModel,
    pulses_between,
    time_of_pulse,
)
from device_drivers.emtt.records import ErrorQueue, EventLog
from device_drivers.emtt.scpi import (
    Command,
    ScpiError,
    format_error,
    format_tenths,
    is_abort,
    resolve,
    split_line,
)

# The thresholds are checked against the temperature as the unit shows it (one decimal, half
# up), so the host never reads 45.0 from a unit that has not tripped.
_TRIP_RAW_C = float(c.OVERTEMP_TRIP_C) - 0.05
_CLEAR_RAW_C = float(c.OVERTEMP_CLEAR_C) - 0.05

_SETTING_LIMITS: dict[str, tuple[Decimal, Decimal, Decimal | None]] = {
    "SOUR:FIEL": (c.FIELD_MIN_MT, c.FIELD_MAX_MT, c.FIELD_STEP_MT),
    "SOUR:FREQ": (c.FREQUENCY_MIN_HZ, c.FREQUENCY_MAX_HZ, c.FREQUENCY_STEP_HZ),
    "SOUR:PULS": (Decimal(c.PULSES_MIN), Decimal(c.PULSES_MAX), None),
}


@dataclass(frozen=True, slots=True)
class Applicator:
    type: str
    serial: str
    pulses_used: int
    pulses_rated: int = c.APPLICATOR_RATED_PULSES


@dataclass(frozen=True, slots=True)
class UnitSnapshot:
    """The unit's inside view, for tests and the simulator console (not on the wire)."""

    state: str
    delivered: int
    target: int
    field_mt: Decimal | None
    frequency_hz: Decimal | None
    pulses: int | None
    coil_temp_c: float
    fault_code: int
    applicator: Applicator | None
    error_queue: tuple[int, ...]
    esr: int
    log_size: int
    uptime_s: float


class EmttUnit:
    """One EMT-100 as its ICD describes it; ``t`` arguments are simulated seconds."""

    def __init__(
        self,
        serial: str = c.DEFAULT_SERIAL,
        applicator: Applicator | None = None,
        thermal: ThermalModel | None = None,
    ) -> None:
        self.serial = serial
        self.applicator = applicator
        self.thermal = thermal or ThermalModel()
        self.electrics = CoilElectrics()
        self.coil_temp_c = self.thermal.ambient_c
        self.field_deviation_percent = 0.0
        self.self_test_failures = 0
        #: Since the unit was made, not reset by a power cycle (ground truth for tests).
        self.pulses_fired_total = 0
        self.heartbeats_received = 0
        self._handlers: dict[str, Callable[[Command, float], str | None]] = {
            "*IDN": self._idn,
            "*RST": self._rst,
            "*CLS": self._cls,
            "*ESR": self._esr,
            "*OPC": lambda _cmd, _t: "1",
            "*TST": self._tst,
            "SYST:ERR": self._next_error,
            "SOUR:FIEL": self._setting,
            "SOUR:FREQ": self._setting,
            "SOUR:PULS": self._setting,
            "SESS:ARM": self._arm,
            "SESS:STAR": self._start,
            "SESS:PAUS": self._pause,
            "SESS:RES": self._resume,
            "SESS:STOP": self._stop,
            "SESS:STAT": lambda _cmd, _t: self.status_line(),
            "ABOR": lambda _cmd, t: self.abort(t),
            "SYST:FAUL:CLE": self._clear_fault,
            "SYST:HEAR": self._heartbeat,
            "SYST:APPL": lambda _cmd, _t: self._applicator_line(),
            "MEAS:TEMP": lambda _cmd, _t: format_tenths(self.coil_temp_c),
            "MEAS:FIEL": lambda _cmd, _t: format_tenths(self._field_measured()),
            "DIAG:COIL": self._coil,
            "DIAG:LOG": self._log_query,
        }
        self.power_up()

    # --- power and time -----------------------------------------------------------------
    def power_up(self) -> None:
        """Power-up state: IDLE, nothing set, queues and log empty, uptime 0.

        The coil's temperature, the fitted applicator and its wear are physical and persist,
        and so do the counts of pulses ever fired and heartbeats ever received.
        """
        self.state = "IDLE"
        self.field: Decimal | None = None
        self.frequency: Decimal | None = None
        self.pulses: int | None = None
        self._set_since_idle: set[str] = set()
        self.delivered = 0
        self.fault_code = 0
        self.errors = ErrorQueue()
        self.log = EventLog()
        self._t = 0.0
        self._last_line_t = 0.0
        self._run_start_t = 0.0
        self._run_start_count = 0

    def advance(self, t: float) -> None:
        """Run the unit to simulated time ``t``: pulses, heat, completion, watchdog, cut-out."""
        while self._t < t:
            end, event = t, None
            if self.state in c.WATCHED_STATES:
                if self.coil_temp_c >= _TRIP_RAW_C:
                    self._latch(c.COIL_OVERTEMP, self._t)
                    continue
                deadline = self._last_line_t + c.WATCHDOG_S
                if deadline < end:
                    end, event = deadline, "watchdog"
            if self.state == "DELIVERING":
                assert self.frequency is not None and self.pulses is not None
                done_at = time_of_pulse(
                    self._run_start_t, self.pulses - self._run_start_count, self.frequency
                )
                if done_at <= end:
                    end, event = done_at, "complete"
                heat_at = self.thermal.seconds_to_reach(
                    self.coil_temp_c, self._steady_c(), _TRIP_RAW_C
                )
                if heat_at is not None and self._t + heat_at < end:
                    end, event = self._t + heat_at, "overtemp"
            self._evolve(max(end, self._t))
            if event == "watchdog":
                self._latch(c.WATCHDOG_EXPIRED, end)
            elif event == "overtemp":
                self.coil_temp_c = max(self.coil_temp_c, _TRIP_RAW_C + 1e-6)  # shows 45.0
                self._latch(c.COIL_OVERTEMP, end)
            elif event == "complete":
                self._count_pulses_to(self.pulses or 0)
                self._enter("COMPLETE", end)
                self._log(c.LOG_SESSION_COMPLETE, self.delivered, end)

    def _steady_c(self) -> float:
        if self.state != "DELIVERING":
            return self.thermal.ambient_c
        return self.thermal.steady_c(self.field, self.frequency)

    def _evolve(self, end: float) -> None:
        self.coil_temp_c = self.thermal.after(self.coil_temp_c, self._steady_c(), end - self._t)
        if self.state == "DELIVERING":
            assert self.frequency is not None and self.pulses is not None
            fired = pulses_between(self._run_start_t, end, self.frequency)
            self._count_pulses_to(min(self.pulses, self._run_start_count + fired))
        self._t = end

    def _count_pulses_to(self, delivered: int) -> None:
        fired = delivered - self.delivered
        if fired > 0:
            self.pulses_fired_total += fired
            if self.applicator is not None:
                a = self.applicator
                self.applicator = Applicator(
                    a.type, a.serial, a.pulses_used + fired, a.pulses_rated
                )
        self.delivered = delivered

    # --- the wire -----------------------------------------------------------------------
    def execute_line(self, line: str, t: float) -> str | None:
        """Execute one received line at time ``t``; the response line, or None if none."""
        self.advance(t)
        self._last_line_t = t  # any complete line feeds the watchdog, even an empty or bad one
        segments = split_line(line)
        answers: list[str] = []
        path: tuple[str, ...] = ()
        for position, segment in enumerate(segments):
            try:
                command, path = resolve(segment, path)
                answer = self._handlers[command.key](command, t)
            except ScpiError as error:
                self.queue_error(error.code)
                for later in segments[position + 1 :]:
                    if is_abort(later):  # an emergency stop on a line always runs
                        self.abort(t)
                break
            if answer is not None:
                answers.append(answer)
        return ";".join(answers) if answers else None

    def status_line(self) -> str:
        return (
            f"{self.state},{self.delivered},{self.pulses or 0},"
            f"{format_tenths(self._field_measured())},{format_tenths(self.coil_temp_c)},"
            f"{self.fault_code}"
        )

    # --- errors, log and state ------------------------------------------------------------
    def queue_error(self, code: int) -> None:
        self.errors.add(code)

    def _device_error(self, code: int, t: float) -> None:
        self.queue_error(code)
        self._log(c.LOG_ERROR, code, t)

    def _log(self, code: int, data: int, t: float) -> None:
        self.log.append(code, data, t)

    def _enter(self, state: str, t: float) -> None:
        if state == self.state:
            return
        was_watched = self.state in c.WATCHED_STATES
        self.state = state
        self._log(c.LOG_STATE_CHANGE, c.STATES.index(state), t)
        if state == "IDLE":
            self._set_since_idle.clear()
        if state in c.WATCHED_STATES and not was_watched:
            self._last_line_t = t  # the watchdog starts on entering ARMED
        if state == "DELIVERING":
            self._run_start_t, self._run_start_count = t, self.delivered

    def _latch(self, code: int, t: float) -> None:
        """A device error that stops delivery and latches FAULT (error record, then state)."""
        self._device_error(code, t)
        if self.state != "FAULT":
            self.fault_code = code
            self._enter("FAULT", t)

    def abort(self, t: float) -> None:
        """``ABORt``: any state → FAULT with 204; in FAULT accepted without a new error."""
        if self.state != "FAULT":
            self._latch(c.EMERGENCY_STOP, t)

    def _field_measured(self) -> Decimal:
        if self.state != "DELIVERING" or self.field is None:
            return Decimal(0)
        return self.field * (1 + Decimal(repr(self.field_deviation_percent)) / 100)

    # --- physical events (fault injection) ------------------------------------------------
    def force_overtemp(self, t: float) -> None:
        self.advance(t)
        self.coil_temp_c = max(self.coil_temp_c, float(c.OVERTEMP_TRIP_C) + 0.5)
        if self.state in c.WATCHED_STATES:
            self._latch(c.COIL_OVERTEMP, t)

    def remove_applicator(self, t: float) -> None:
        self.advance(t)
        self.applicator = None
        if self.state in c.WATCHED_STATES:
            self._latch(c.APPLICATOR_NOT_CONNECTED, t)

    def fit_applicator(self, applicator: Applicator, t: float) -> None:
        self.advance(t)
        self.applicator = applicator

    # --- command handlers (state checks before value checks, as the ICD ranks them) --------
    def _require(self, states: frozenset[str] | set[str]) -> None:
        if self.state not in states:
            raise ScpiError(c.SETTINGS_CONFLICT)

    def _idn(self, _cmd: Command, _t: float) -> str:
        return f"{c.MANUFACTURER},{c.MODEL},{self.serial},{c.FIRMWARE}"

    def _rst(self, _cmd: Command, t: float) -> None:
        self._require(c.RESET_STATES)
        self.field = self.frequency = None
        self.pulses = None
        self.delivered = 0
        self._enter("IDLE", t)
        self._set_since_idle.clear()

    def _heartbeat(self, _cmd: Command, _t: float) -> None:
        self.heartbeats_received += 1  # no effect but feeding the watchdog (done per line)

    def _cls(self, _cmd: Command, _t: float) -> None:
        self.errors.clear()

    def _esr(self, _cmd: Command, _t: float) -> str:
        return str(self.errors.read_esr())

    def _tst(self, _cmd: Command, _t: float) -> str:
        self._require({"IDLE"})
        mask = self.self_test_failures
        if self.applicator is None:
            mask |= c.SELF_TEST_APPLICATOR_LINK
        return str(mask)

    def _next_error(self, _cmd: Command, _t: float) -> str:
        return format_error(self.errors.pop())

    def _setting(self, cmd: Command, t: float) -> str | None:
        low, high, step = _SETTING_LIMITS[cmd.key]
        if cmd.query:
            if cmd.limit is not None:
                bound = low if cmd.limit == "MIN" else high
                return str(int(bound)) if cmd.key == "SOUR:PULS" else format_tenths(bound)
            if cmd.key == "SOUR:PULS":
                return str(self.pulses or 0)
            value = self.field if cmd.key == "SOUR:FIEL" else self.frequency
            return format_tenths(value if value is not None else Decimal(0))
        self._require(c.SETTINGS_STATES)
        value = cmd.number
        assert value is not None
        if not low <= value <= high:
            raise ScpiError(c.DATA_OUT_OF_RANGE)
        off_step = (value - low) % step != 0 if step is not None else value != int(value)
        if off_step:
            raise ScpiError(c.ILLEGAL_PARAMETER_VALUE)
        if cmd.key == "SOUR:FIEL":
            self.field = value
        elif cmd.key == "SOUR:FREQ":
            self.frequency = value
        else:
            self.pulses = int(value)
        self.delivered = 0
        self._set_since_idle.add(cmd.key)
        if self.state == "COMPLETE" or len(self._set_since_idle) == len(_SETTING_LIMITS):
            self._enter("READY", t)
        return None

    def _arm(self, _cmd: Command, t: float) -> None:
        self._require({"READY"})
        if self.applicator is None:
            self._device_error(c.APPLICATOR_NOT_CONNECTED, t)
        elif self.coil_temp_c >= _TRIP_RAW_C:
            self._device_error(c.COIL_OVERTEMP, t)
        else:
            self._enter("ARMED", t)

    def _start(self, _cmd: Command, t: float) -> None:
        self._require({"ARMED"})
        if self.applicator is None:
            self._device_error(c.APPLICATOR_NOT_CONNECTED, t)
        else:
            self._enter("DELIVERING", t)

    def _pause(self, _cmd: Command, t: float) -> None:
        self._require({"DELIVERING"})
        self._enter("PAUSED", t)

    def _resume(self, _cmd: Command, t: float) -> None:
        self._require({"PAUSED"})
        self._enter("DELIVERING", t)

    def _stop(self, _cmd: Command, t: float) -> None:
        self._require(c.STOP_STATES)
        self._enter("IDLE", t)

    def _clear_fault(self, _cmd: Command, t: float) -> None:
        self._require({"FAULT"})
        if self.applicator is None:
            self._device_error(c.APPLICATOR_NOT_CONNECTED, t)
        elif self.coil_temp_c >= _CLEAR_RAW_C:
            self._device_error(c.COIL_OVERTEMP, t)
        else:
            self.fault_code = 0
            self._enter("IDLE", t)

    def _applicator_line(self) -> str:
        a = self.applicator
        if a is None:
            word = c.NO_APPLICATOR_WORD
            return f"0,{word},{word},0,0"
        return f"1,{a.type},{a.serial},{a.pulses_used},{a.pulses_rated}"

    def _coil(self, _cmd: Command, _t: float) -> str:
        if self.applicator is None:
            raise ScpiError(c.SETTINGS_CONFLICT)  # no coil to measure: the ICD is silent
        inductance = format_tenths(self.electrics.inductance_uh)
        return f"{inductance},{self.electrics.resistance_mohm(self.coil_temp_c)}"

    def _log_query(self, cmd: Command, _t: float) -> str:
        start = cmd.number
        assert start is not None
        if start < 0:
            raise ScpiError(c.DATA_OUT_OF_RANGE)
        if start != int(start):
            raise ScpiError(c.ILLEGAL_PARAMETER_VALUE)
        return self.log.page(int(start))

    # --- inspection -----------------------------------------------------------------------
    def snapshot(self) -> UnitSnapshot:
        return UnitSnapshot(
            state=self.state,
            delivered=self.delivered,
            target=self.pulses or 0,
            field_mt=self.field,
            frequency_hz=self.frequency,
            pulses=self.pulses,
            coil_temp_c=self.coil_temp_c,
            fault_code=self.fault_code,
            applicator=self.applicator,
            error_queue=tuple(self.errors.entries),
            esr=self.errors.esr,
            log_size=len(self.log),
            uptime_s=self._t,
        )
