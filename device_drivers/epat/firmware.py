"""The simulated unit's firmware: state machine, command execution and simulated time.

:class:`UnitModel` is the ICD as code, without threads, sockets or a clock of its own: the
caller passes the simulated time ``t`` to :meth:`UnitModel.advance` and
:meth:`UnitModel.handle_frame`, and collects what the unit transmits from ``outbox``. Time-driven
behaviour (pulses at the set frequency, completion, watchdog, over-temperature, pressure
deviation, applicator wear) is computed exactly at the simulated instant it happens, however
late the caller looks, so results do not depend on thread scheduling or the speed factor.
:class:`~device_drivers.epat.simulator.EpatSimulator` adds the lock, the clock and the link.
"""

from __future__ import annotations

import math
from typing import Literal

from device_drivers.epat.codec import Frame, encode_frame
from device_drivers.epat.constants import (
    ACCEPTED_STATES,
    CRC_ERRORS_MAX,
    OVERTEMP_CLEAR_DC,
    OVERTEMP_TRIP_DC,
    PRESSURE_DEVIATION_LIMIT_PERCENT,
    PRESSURE_DEVIATION_TIME_S,
    REQUEST_PAYLOAD_LENGTH,
    STREAM_PERIOD_MAX_MS,
    STREAM_PERIOD_MIN_MS,
    UNSOLICITED_SEQ,
    WATCHDOG_S,
    WATCHDOG_STATES,
    Command,
    EventCode,
    Fault,
    Nak,
    Reply,
    SelfTestCheck,
    State,
    Unsolicited,
)
from device_drivers.epat.eventlog import EventLog
from device_drivers.epat.handpiece import Applicator, ThermalModel
from device_drivers.epat.payloads import (
    ApplicatorBlock,
    EventNotice,
    HelloInfo,
    NakReply,
    SetParams,
    StatusBlock,
    pack_events,
    pack_uint,
    unpack_uint,
)

OutKind = Literal["reply", "event", "status"]
Answer = tuple[int, bytes]  # reply code (ACK/NAK), payload
_SAME_INSTANT_S = 1e-12


def _nak(code: Nak, detail: int = 0) -> Answer:
    return Reply.NAK, NakReply(int(code), detail).pack()


def _ack(payload: bytes = b"") -> Answer:
    return Reply.ACK, payload


class UnitModel:
    """One simulated EPAT unit. Not thread-safe: the simulator calls it under its lock."""

    def __init__(self, identity: HelloInfo, applicator: Applicator | None) -> None:
        self.identity = identity
        self.applicator = applicator
        self.thermal = ThermalModel()
        self.deviation_percent = 0.0
        self.self_test_failures = 0
        #: Frames to transmit, in order: (kind, bytes). The simulator drains it.
        self.outbox: list[tuple[OutKind, bytes]] = []
        self.executed = 0  # commands executed (not answered from the retry cache)
        self.cache_hits = 0
        #: Pulses fired since the unit was made; a power cycle does not reset it (ground truth).
        self.pulses_fired_total = 0
        self.power_up()

    # --- power-up ---------------------------------------------------------------------------
    def power_up(self) -> None:
        """Reset to IDLE at t = 0: log, crc_errors, stream and retry cache cleared.

        Physical things survive: the applicator and its wear, the handpiece temperature,
        injected conditions (pressure deviation, self-test failures) and the count of pulses
        ever fired.
        """
        self.t = 0.0
        self.state = State.IDLE
        self.faults = 0
        self.delivered = 0
        self.target = 0
        self.pressure_set_cbar = 0
        self.freq_set_dhz = 0
        self.crc_errors = 0
        self.log = EventLog()
        self.stream_period_ms = 0
        self.stream_changed = True
        self.retry: tuple[int, int, bytes] | None = None
        self.fed_at = 0.0
        self._grid_t0 = 0.0  # START/RESUME time; pulse k fires at grid_t0 + k/f
        self._fired = 0  # pulses since grid_t0 already counted
        self._deviation_since: float | None = None

    # --- receiving ---------------------------------------------------------------------------
    def count_crc_errors(self, count: int) -> None:
        self.crc_errors = min(CRC_ERRORS_MAX, self.crc_errors + count)

    def handle_frame(self, frame: Frame, t: float) -> None:
        """Answer one valid host frame at simulated time ``t`` (events, then the reply)."""
        self.advance(t)
        self.fed_at = t  # any valid frame feeds the watchdog, NAKed and retried ones included
        if self.retry is not None and self.retry[:2] == (frame.seq, frame.cmd):
            self.cache_hits += 1
            self.outbox.append(("reply", self.retry[2]))
            return
        code, payload = self._execute(frame)
        self.executed += 1
        reply = encode_frame(frame.seq, code, payload)
        self.retry = None if frame.cmd == Command.HELLO else (frame.seq, frame.cmd, reply)
        self.advance(t)  # conditions the command made true at once (e.g. START when worn)
        self.outbox.append(("reply", reply))

    def _execute(self, frame: Frame) -> Answer:
        try:
            cmd = Command(frame.cmd)
        except ValueError:
            return _nak(Nak.UNKNOWN_CMD)
        if len(frame.payload) != REQUEST_PAYLOAD_LENGTH[cmd]:
            return _nak(Nak.BAD_LENGTH)
        accepted = ACCEPTED_STATES[cmd]
        if accepted is not None and self.state not in accepted:
            return _nak(Nak.WRONG_STATE, int(self.state))  # FAULT: detail 6
        return getattr(self, f"_cmd_{cmd.name.lower()}")(frame.payload)  # type: ignore[no-any-return]

    # --- commands ------------------------------------------------------------------------------
    def _cmd_hello(self, _: bytes) -> Answer:
        self.retry = None
        return _ack(self.identity.pack())

    def _cmd_heartbeat(self, _: bytes) -> Answer:
        return _ack(pack_uint(int(self.state), 1, "state"))

    def _cmd_get_status(self, _: bytes) -> Answer:
        return _ack(self.status_block().pack())

    def _cmd_get_applicator(self, _: bytes) -> Answer:
        return _ack(self.applicator_block().pack())

    def _cmd_set_params(self, payload: bytes) -> Answer:
        params = SetParams.unpack(payload)
        appl = self.applicator
        if appl is None:
            return _nak(Nak.NO_APPLICATOR)
        ident = self.identity
        if not ident.p_min_cbar <= params.pressure_cbar <= ident.p_max_cbar:
            return _nak(Nak.OUT_OF_RANGE, 1)
        if params.pressure_cbar > appl.kind.p_max_cbar:
            return _nak(Nak.OUT_OF_RANGE, 1)
        if not ident.f_min_dhz <= params.freq_dhz <= ident.f_max_dhz:
            return _nak(Nak.OUT_OF_RANGE, 2)
        if not 1 <= params.pulses <= ident.max_pulses:
            return _nak(Nak.OUT_OF_RANGE, 3)
        if params.pulses > appl.remaining:
            return _nak(Nak.APPLICATOR_LIMIT)
        self.pressure_set_cbar = params.pressure_cbar
        self.freq_set_dhz = params.freq_dhz
        self.target = params.pulses
        self.delivered = 0
        self._set_state(State.READY)
        return _ack()

    def _cmd_arm(self, _: bytes) -> Answer:
        appl = self.applicator
        if appl is None:
            return _nak(Nak.NO_APPLICATOR)
        if self.pressure_set_cbar > appl.kind.p_max_cbar:
            return _nak(Nak.OUT_OF_RANGE, 1)
        if self.target - self.delivered > appl.remaining:
            return _nak(Nak.APPLICATOR_LIMIT)
        self._set_state(State.ARMED)
        return _ack()

    def _cmd_disarm(self, _: bytes) -> Answer:
        self._set_state(State.IDLE)
        return _ack(pack_uint(self.delivered, 4, "delivered"))

    def _cmd_start(self, _: bytes) -> Answer:
        if self.applicator is None:
            return _nak(Nak.NO_APPLICATOR)
        self._set_state(State.FIRING)
        return _ack()

    def _cmd_pause(self, _: bytes) -> Answer:
        self._set_state(State.PAUSED)
        return _ack(pack_uint(self.delivered, 4, "delivered"))

    def _cmd_resume(self, _: bytes) -> Answer:
        self._set_state(State.FIRING)
        return _ack()

    def _cmd_stop(self, _: bytes) -> Answer:
        self._set_state(State.IDLE)
        return _ack(pack_uint(self.delivered, 4, "delivered"))

    def _cmd_estop(self, _: bytes) -> Answer:
        self._raise_faults(Fault.ESTOP)  # takes effect before the reply exists
        return _ack(pack_uint(self.delivered, 4, "delivered"))

    def _cmd_clear_fault(self, _: bytes) -> Answer:
        appl = self.applicator
        hot = bool(self.faults & Fault.OVERTEMP) and self.thermal.decidegrees >= OVERTEMP_CLEAR_DC
        if appl is None or appl.worn or hot:
            return _nak(Nak.FAULT_ACTIVE, self.faults & 0xFF)
        self.faults = 0
        self._set_state(State.IDLE)
        return _ack()

    def _cmd_self_test(self, _: bytes) -> Answer:
        result = self.self_test_failures
        if self.applicator is None:
            result |= SelfTestCheck.APPLICATOR_LINK
        if result:
            self._raise_faults(Fault.INTERNAL)
        return _ack(pack_uint(int(result), 2, "result"))

    def _cmd_read_events(self, payload: bytes) -> Answer:
        return _ack(pack_events(self.log.read(unpack_uint(payload, 2, "from"))))

    def _cmd_set_stream(self, payload: bytes) -> Answer:
        period = unpack_uint(payload, 2, "period_ms")
        if period != 0 and not STREAM_PERIOD_MIN_MS <= period <= STREAM_PERIOD_MAX_MS:
            return _nak(Nak.OUT_OF_RANGE, 1)
        self.stream_period_ms = period
        self.stream_changed = True
        return _ack()

    # --- readings ------------------------------------------------------------------------------
    @property
    def pressure_measured_cbar(self) -> int:
        if self.state is not State.FIRING:
            return 0
        measured = round(self.pressure_set_cbar * (1 + self.deviation_percent / 100))
        return min(0xFFFF, max(0, measured))

    def status_block(self) -> StatusBlock:
        appl = self.applicator
        return StatusBlock(
            state=int(self.state),
            faults=self.faults,
            delivered=self.delivered,
            target=self.target,
            pressure_set_cbar=self.pressure_set_cbar,
            pressure_meas_cbar=self.pressure_measured_cbar,
            freq_set_dhz=self.freq_set_dhz,
            handpiece_temp_dc=max(-0x8000, min(0x7FFF, self.thermal.decidegrees)),
            applicator_present=int(appl is not None),
            shots_used=appl.shots_used if appl is not None else 0,
            crc_errors=self.crc_errors,
            uptime_s=int(self.t) & 0xFFFF_FFFF,
        )

    def applicator_block(self) -> ApplicatorBlock:
        appl = self.applicator
        if appl is None:
            return ApplicatorBlock(0, "", "", 0, 0, 0)
        kind = appl.kind
        return ApplicatorBlock(
            1, kind.name, appl.serial, appl.shots_used, kind.shots_rated, kind.p_max_cbar
        )

    def status_frame(self) -> bytes:
        return encode_frame(UNSOLICITED_SEQ, Unsolicited.STATUS, self.status_block().pack())

    # --- physical changes (fault injection) ---------------------------------------------------
    def remove_applicator(self) -> None:
        self.applicator = None
        if self.state in WATCHDOG_STATES:
            self._raise_faults(Fault.APPLICATOR_REMOVED)

    def set_shots_used(self, shots_used: int) -> None:
        """Change the wear counter (firing continues from here; wear-out is checked at once)."""
        if self.applicator is None:
            raise ValueError("no applicator is fitted")
        self.applicator.shots_used = shots_used
        self.advance(self.t)

    def set_deviation(self, percent: float) -> None:
        self.deviation_percent = percent
        self._update_deviation_timer()
        self.advance(self.t)

    def heat_to(self, celsius: float) -> None:
        self.thermal.temperature_c = max(self.thermal.temperature_c, celsius)
        self.advance(self.t)

    # --- simulated time ------------------------------------------------------------------------
    def advance(self, now: float) -> None:
        """Let simulated time run to ``now``, handling each timed event at its own instant."""
        while True:
            when, causes = self._next_events()
            if when is None or when > now:
                self._evolve(now)
                return
            self._evolve(max(when, self.t))
            self._handle(causes)

    def next_event_time(self) -> float | None:
        """Simulated time of the next timed event (for the simulator's wake-up), or None."""
        return self._next_events()[0]

    def _next_events(self) -> tuple[float | None, set[str]]:
        candidates: list[tuple[float, str]] = []
        if self.state in WATCHDOG_STATES:
            candidates.append((self.fed_at + WATCHDOG_S, "watchdog"))
        if self.state is State.FIRING:
            candidates.append((self._pulse_time(self.target - self.delivered), "target"))
            if self.applicator is not None:
                left = self.applicator.kind.shots_rated - self.applicator.shots_used
                candidates.append((self._pulse_time(left), "worn"))
            if self._deviation_since is not None:
                candidates.append((self._deviation_since + PRESSURE_DEVIATION_TIME_S, "deviation"))
        if not self.faults & Fault.OVERTEMP:
            if self.thermal.decidegrees >= OVERTEMP_TRIP_DC:
                candidates.append((self.t, "overtemp"))
            elif self.state is State.FIRING:
                wait = self.thermal.seconds_until(OVERTEMP_TRIP_DC / 10, self._load())
                if wait is not None:
                    candidates.append((self.t + wait, "overtemp"))
        if not candidates:
            return None, set()
        when = min(t for t, _ in candidates)
        return when, {cause for t, cause in candidates if t <= when + _SAME_INSTANT_S}

    def _pulse_time(self, more_pulses: int) -> float:
        """When the ``more_pulses``-th pulse from now fires (now if it is not positive)."""
        if more_pulses <= 0:
            return self.t
        return self._grid_t0 + (self._fired + more_pulses) / (self.freq_set_dhz / 10)

    def _load(self) -> float:
        if self.state is not State.FIRING:
            return 0.0
        return (self.pressure_set_cbar / 100) * (self.freq_set_dhz / 10)

    def _evolve(self, t: float) -> None:
        if t <= self.t:
            return
        if self.state is State.FIRING:
            fired = math.floor((t - self._grid_t0) * self.freq_set_dhz / 10 + 1e-9)
            new = max(0, min(fired - self._fired, self.target - self.delivered))
            self._fired += new
            self.delivered += new
            self.pulses_fired_total += new
            if self.applicator is not None:
                self.applicator.shots_used += new
        self.thermal.advance(t - self.t, self._load())
        self.t = t

    def _handle(self, causes: set[str]) -> None:
        bits = Fault(0)
        if "watchdog" in causes:
            bits |= Fault.COMM_LOSS
        if "worn" in causes:
            bits |= Fault.APPLICATOR_WORN
        if "deviation" in causes:
            bits |= Fault.PRESSURE_DEVIATION
        if "overtemp" in causes:
            bits |= Fault.OVERTEMP
        if bits:
            self._raise_faults(bits)  # a fault on the last pulse wins over completion
        elif "target" in causes:
            self._set_state(State.COMPLETE)
            self._event(EventCode.COMPLETION, self.delivered)

    # --- state and events ----------------------------------------------------------------------
    def _raise_faults(self, bits: Fault) -> None:
        """Latch ``bits``: one fault event with all latched bits if they changed, then FAULT."""
        latched = self.faults | int(bits)
        if latched != self.faults:
            self.faults = latched
            self._event(EventCode.FAULT, latched)
        self._set_state(State.FAULT)

    def _set_state(self, new: State) -> None:
        if new is self.state:
            return
        self.state = new
        if new is State.FIRING:
            self._grid_t0 = self.t
            self._fired = 0
        if new is State.ARMED:
            self.fed_at = self.t  # the watchdog starts on entering ARMED
        self._update_deviation_timer()
        self._event(EventCode.STATE_CHANGE, int(new))

    def _update_deviation_timer(self) -> None:
        set_cbar = self.pressure_set_cbar
        off = abs(self.pressure_measured_cbar - set_cbar) * 100
        deviating = self.state is State.FIRING and off > PRESSURE_DEVIATION_LIMIT_PERCENT * set_cbar
        if not deviating:
            self._deviation_since = None
        elif self._deviation_since is None:
            self._deviation_since = self.t

    def _event(self, code: EventCode, data: int) -> None:
        self.log.append(int(self.t * 1000), int(code), data)
        notice = EventNotice(int(code), data).pack()
        self.outbox.append(("event", encode_frame(UNSOLICITED_SEQ, Unsolicited.EVENT, notice)))
