"""The simulated EPAT unit: the firmware model on a simulated clock, a host link, fault injection.

:class:`EpatSimulator` is thread-safe (one lock). It owns a
:class:`~device_drivers.epat.firmware.UnitModel`, advances it on its own
:class:`~device_drivers.simclock.SimClock` (``speed`` times faster than the wall clock) and
transmits what it produces to the one host attached now. A server
(:mod:`device_drivers.epat.server`) attaches each host connection with :meth:`attach` and feeds
the received bytes to the returned :class:`HostSession`, which applies the framing rules
(resynchronisation, 20 ms inter-byte timeout, CRC counting). While a host is attached a unit
thread wakes for the next timed event (completion, watchdog, over-temperature, …) and for the
STATUS stream, whose period is wall time.

Fault injection (same names as the EMTT simulator): :meth:`set_drop_fraction`,
:meth:`set_corrupt_fraction`, :meth:`set_reply_delay`, :meth:`cut_link`, :meth:`power_cycle`,
:meth:`force_overtemp`, :meth:`remove_applicator`, :meth:`fit_applicator`,
:meth:`wear_out_applicator`, :meth:`set_pressure_deviation`, :meth:`drop_reply_to`; plus
:meth:`drop_next_replies`, :meth:`set_self_test_failures` and
:meth:`set_handpiece_temperature` for exact tests. :meth:`stats` counts what happened since the
simulator was made (``pulses_fired_total`` is the ground truth of a fault campaign).
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from dataclasses import dataclass

from device_drivers.epat.codec import Frame
from device_drivers.epat.constants import (
    FIRMWARE_LEN,
    MODEL_LEN,
    OVERTEMP_TRIP_DC,
    PROTOCOL_VERSION,
    REFERENCE_F_MAX_DHZ,
    REFERENCE_F_MIN_DHZ,
    REFERENCE_FIRMWARE,
    REFERENCE_MAX_PULSES,
    REFERENCE_MODEL,
    REFERENCE_P_MAX_CBAR,
    REFERENCE_P_MIN_CBAR,
    REFERENCE_SERIAL,
    SERIAL_LEN,
    Command,
    State,
)
from device_drivers.epat.firmware import OutKind, UnitModel
from device_drivers.epat.handpiece import Applicator, applicator_type
from device_drivers.epat.hostlink import HostPort, HostSession
from device_drivers.epat.payloads import EventRecord, HelloInfo, pack_string
from device_drivers.simclock import SimClock

_MAX_IDLE_WAIT_S = 0.1  # the unit thread re-checks at least this often (wall)


@dataclass(frozen=True, slots=True)
class SimSnapshot:
    """The unit's state at one instant, for tests and the simulate command."""

    state: State
    faults: int
    delivered: int
    target: int
    pressure_set_cbar: int
    freq_set_dhz: int
    temperature_c: float
    applicator_type: str | None
    shots_used: int | None
    crc_errors: int
    uptime_s: float
    stream_period_ms: int
    events_logged: int
    host_attached: bool


@dataclass(frozen=True, slots=True)
class SimStats:
    """Counters since the simulator was made (not reset by a power cycle)."""

    frames_received: int
    commands_executed: int
    retries_from_cache: int
    replies_sent: int
    replies_dropped: int
    frames_corrupted: int
    status_frames_sent: int
    event_frames_sent: int
    connections: int
    #: Pulses fired since the simulator was made, across power cycles (ground truth).
    pulses_fired_total: int
    #: HEARTBEAT frames received (retries included), from any host.
    heartbeats_received: int


class EpatSimulator:
    """The reference EPAT unit (RPW-200) on a simulated clock; see the module docstring.

    ``speed`` runs simulated time that many times faster (pulses, watchdog, temperature,
    uptimes); ``serial``/``model``/``firmware`` are what HELLO reports (ASCII, fitting their
    fields); ``applicator`` is the type fitted at power-up (``"R15"``, ``"D20-S"`` or None)
    with ``applicator_shots_used`` shots of wear; ``protocol`` lets a test pose as a unit of
    another protocol version; ``seed`` makes the drop/corrupt faults reproducible.
    """

    def __init__(
        self,
        speed: float = 1.0,
        serial: str = REFERENCE_SERIAL,
        applicator: str | None = "R15",
        *,
        applicator_shots_used: int = 0,
        model: str = REFERENCE_MODEL,
        firmware: str = REFERENCE_FIRMWARE,
        protocol: int = PROTOCOL_VERSION,
        seed: int | None = None,
    ) -> None:
        pack_string(serial, SERIAL_LEN, "serial")  # ValueError if it would not fit the wire
        pack_string(model, MODEL_LEN, "model")
        pack_string(firmware, FIRMWARE_LEN, "firmware")
        self.clock = SimClock(speed)
        self.speed = self.clock.speed
        identity = HelloInfo(
            protocol=protocol,
            model=model,
            serial=serial,
            firmware=firmware,
            p_min_cbar=REFERENCE_P_MIN_CBAR,
            p_max_cbar=REFERENCE_P_MAX_CBAR,
            f_min_dhz=REFERENCE_F_MIN_DHZ,
            f_max_dhz=REFERENCE_F_MAX_DHZ,
            max_pulses=REFERENCE_MAX_PULSES,
        )
        self._serials = itertools.count(1)
        fitted = None
        if applicator is not None:
            fitted = self._new_applicator(applicator, applicator_shots_used)
        self._model = UnitModel(identity, fitted)
        self._cond = threading.Condition()
        self._rng = random.Random(seed)
        self._port: HostPort | None = None
        self._ticker: threading.Thread | None = None
        self._closed = False
        self._stream_next: float | None = None
        self._drop_fraction = 0.0
        self._corrupt_fraction = 0.0
        self._reply_delay_s = 0.0
        self._drop_next = 0
        self._drop_reply_cmd: int | None = None
        self._drop_reply_count = 0
        self._frames_received = 0
        self._heartbeats_received = 0
        self._replies_sent = 0
        self._replies_dropped = 0
        self._frames_corrupted = 0
        self._status_sent = 0
        self._events_sent = 0
        self._connections = 0

    # --- host connections ------------------------------------------------------------------
    def attach(self, port: HostPort) -> HostSession:
        """Make ``port`` the host link (one host at a time: a previous one is hung up)."""
        with self._cond:
            if self._closed:
                raise RuntimeError("the simulator is closed")
            self._sync()  # what happened while nobody listened went nowhere
            old, self._port = self._port, port
            self._connections += 1
            if self._ticker is None:
                self._ticker = threading.Thread(target=self._run_unit, name="epat-sim", daemon=True)
                self._ticker.start()
            self._cond.notify_all()
        if old is not None:
            old.close()
        return HostSession(self, port)

    def detach(self, port: HostPort) -> None:
        """The host behind ``port`` went away (the unit keeps running)."""
        with self._cond:
            if self._port is port:
                self._port = None
                self._cond.notify_all()

    def close(self) -> None:
        """Stop the unit thread and hang up; the simulator cannot be attached again."""
        with self._cond:
            self._closed = True
            port, self._port = self._port, None
            ticker = self._ticker
            self._cond.notify_all()
        if port is not None:
            port.close()
        if ticker is not None and ticker is not threading.current_thread():
            ticker.join(1.0)

    # --- fault injection ---------------------------------------------------------------------
    def set_drop_fraction(self, fraction: float) -> None:
        """Drop this fraction (0..1) of replies after executing the command (host retries)."""
        with self._cond:
            self._drop_fraction = _fraction(fraction, "drop fraction")

    def drop_next_replies(self, count: int = 1) -> None:
        """Drop exactly the next ``count`` replies (deterministic form of the drop fault)."""
        if count < 0:
            raise ValueError("count cannot be negative")
        with self._cond:
            self._drop_next = count

    def drop_reply_to(self, command: str, times: int = 1) -> None:
        """Drop the unit's replies to the next ``times`` frames of ``command`` (a Command name,
        e.g. ``"START"``), same-SEQ retries included: the command is executed once and its
        events are sent, only its replies are lost. ``times=1`` is a lost reply the host's
        first retry recovers (from the retry cache); ``retries + 1`` makes the host's command
        time out while the unit acts on it. ``times=0`` cancels."""
        try:
            cmd = Command[command.strip().upper()]
        except KeyError:
            names = ", ".join(c.name for c in Command)
            raise ValueError(f"unknown EPAT command {command!r}; one of {names}") from None
        if isinstance(times, bool) or not isinstance(times, int) or times < 0:
            raise ValueError(f"times must be a whole number >= 0, got {times!r}")
        with self._cond:
            self._drop_reply_cmd = int(cmd) if times else None
            self._drop_reply_count = times

    def set_corrupt_fraction(self, fraction: float) -> None:
        """Flip one byte in this fraction (0..1) of all outgoing frames."""
        with self._cond:
            self._corrupt_fraction = _fraction(fraction, "corrupt fraction")

    def set_reply_delay(self, seconds: float) -> None:
        """Hold every reply back this long (wall time); > 0.05 breaks the ICD's deadline."""
        if not seconds >= 0:
            raise ValueError(f"a delay cannot be negative, got {seconds!r}")
        with self._cond:
            self._reply_delay_s = float(seconds)

    def cut_link(self) -> None:
        """Hang up on the host now; the unit keeps running (its watchdog will trip if armed)."""
        with self._cond:
            port, self._port = self._port, None
            self._cond.notify_all()
        if port is not None:
            port.close()

    def power_cycle(self) -> None:
        """Reset: IDLE, uptime 0, log/crc_errors/stream/retry cache cleared; wear persists."""
        with self._cond:
            self._sync()
            self.clock.reset()
            self._model.power_up()
            self._stream_next = None
            self._model.stream_changed = False
            self._cond.notify_all()

    def force_overtemp(self) -> None:
        """Heat the handpiece past the 43.0 °C cut-out (to 43.5 °C; OVERTEMP latches at once)."""
        with self._cond:
            self._model.advance(self.clock.now())
            self._model.heat_to(OVERTEMP_TRIP_DC / 10 + 0.5)
            self._transmit_unsolicited()

    def set_handpiece_temperature(self, celsius: float) -> None:
        """Set the handpiece temperature (a test aid: skip minutes of heating or cooling)."""
        if not -40.0 <= celsius <= 150.0:
            raise ValueError(f"temperature must be -40..150 °C, got {celsius!r}")
        with self._cond:
            self._model.advance(self.clock.now())
            self._model.thermal.temperature_c = float(celsius)
            self._model.advance(self._model.t)
            self._transmit_unsolicited()

    def remove_applicator(self) -> None:
        with self._cond:
            self._model.advance(self.clock.now())
            self._model.remove_applicator()
            self._transmit_unsolicited()

    def fit_applicator(self, type: str = "R15", shots_used: int = 0) -> None:
        """Fit a new applicator of ``type`` (R15 or D20-S) that has fired ``shots_used``."""
        with self._cond:
            self._model.advance(self.clock.now())
            self._model.applicator = self._new_applicator(type, shots_used)
            self._transmit_unsolicited()

    def wear_out_applicator(self, remaining: int = 0) -> None:
        """Leave the fitted applicator ``remaining`` shots of its rated life."""
        with self._cond:
            self._model.advance(self.clock.now())
            appl = self._model.applicator
            if appl is None:
                raise ValueError("no applicator is fitted; fit one first")
            rated = appl.kind.shots_rated
            if isinstance(remaining, bool) or not 0 <= remaining <= rated:
                raise ValueError(f"remaining shots must be 0..{rated}, got {remaining!r}")
            self._model.set_shots_used(rated - remaining)
            self._transmit_unsolicited()

    def set_pressure_deviation(self, percent: float) -> None:
        """Make the measured pressure read ``percent`` off the set value while firing."""
        if not -100.0 <= percent <= 1000.0:
            raise ValueError(f"deviation must be -100..1000 %, got {percent!r}")
        with self._cond:
            self._model.advance(self.clock.now())
            self._model.set_deviation(float(percent))
            self._transmit_unsolicited()

    def set_self_test_failures(self, mask: int) -> None:
        """Make SELF_TEST report these failed checks (bits 0..3 of its result)."""
        if not 0 <= mask <= 0xFFFF:
            raise ValueError("mask must be 0..0xFFFF")
        with self._cond:
            self._model.self_test_failures = mask

    # --- introspection ---------------------------------------------------------------------------
    def snapshot(self) -> SimSnapshot:
        with self._cond:
            self._sync()
            m = self._model
            appl = m.applicator
            return SimSnapshot(
                state=m.state,
                faults=m.faults,
                delivered=m.delivered,
                target=m.target,
                pressure_set_cbar=m.pressure_set_cbar,
                freq_set_dhz=m.freq_set_dhz,
                temperature_c=m.thermal.temperature_c,
                applicator_type=appl.kind.name if appl else None,
                shots_used=appl.shots_used if appl else None,
                crc_errors=m.crc_errors,
                uptime_s=m.t,
                stream_period_ms=m.stream_period_ms,
                events_logged=len(m.log),
                host_attached=self._port is not None,
            )

    def event_records(self) -> list[EventRecord]:
        with self._cond:
            self._sync()
            return self._model.log.records()

    def stats(self) -> SimStats:
        with self._cond:
            self._sync()  # pulses fired up to now count
            return SimStats(
                frames_received=self._frames_received,
                commands_executed=self._model.executed,
                retries_from_cache=self._model.cache_hits,
                replies_sent=self._replies_sent,
                replies_dropped=self._replies_dropped,
                frames_corrupted=self._frames_corrupted,
                status_frames_sent=self._status_sent,
                event_frames_sent=self._events_sent,
                connections=self._connections,
                pulses_fired_total=self._model.pulses_fired_total,
                heartbeats_received=self._heartbeats_received,
            )

    # --- internals -----------------------------------------------------------------------------
    def _new_applicator(self, type_name: str, shots_used: int) -> Applicator:
        kind = applicator_type(type_name)
        if isinstance(shots_used, bool) or not 0 <= shots_used <= kind.shots_rated:
            raise ValueError(f"shots_used must be 0..{kind.shots_rated}, got {shots_used!r}")
        serial = f"{kind.name}-{next(self._serials):06d}"
        return Applicator(kind, serial, shots_used)

    def _sync(self) -> None:
        """Bring the model to now and send what that produced (caller holds the lock)."""
        self._model.advance(self.clock.now())
        self._transmit_unsolicited()

    def receive_frame(self, frame: Frame, port: HostPort) -> None:
        """A valid frame from the host behind ``port`` (called by its :class:`HostSession`)."""
        with self._cond:
            if port is not self._port:
                return  # a replaced or cut connection: its frames do not reach the unit
            self._frames_received += 1
            if frame.cmd == Command.HEARTBEAT:
                self._heartbeats_received += 1
            self._model.handle_frame(frame, self.clock.now())
            self._follow_stream_setting(time.monotonic())
            out, self._model.outbox = self._model.outbox, []
            if frame.cmd == self._drop_reply_cmd:
                out = self._drop_the_reply(out)
            delay = self._reply_delay_s
            if delay <= 0:
                self._transmit(out, port)
            self._cond.notify_all()
        if delay > 0:
            time.sleep(delay)
            with self._cond:
                if port is self._port:
                    self._transmit(out, port)

    def _drop_the_reply(self, out: list[tuple[OutKind, bytes]]) -> list[tuple[OutKind, bytes]]:
        """``drop_reply_to``: take the reply out of what one frame produced (lock held)."""
        kept = [item for item in out if item[0] != "reply"]
        if len(kept) < len(out):
            self._replies_dropped += 1
            self._drop_reply_count -= 1
            if self._drop_reply_count <= 0:
                self._drop_reply_cmd = None
        return kept

    def count_crc_errors(self, count: int) -> None:
        """Candidate frames with a valid LEN whose CRC failed (saturating at 65535)."""
        if count:
            with self._cond:
                self._model.count_crc_errors(count)

    def _follow_stream_setting(self, now_wall: float) -> None:
        m = self._model
        if m.stream_changed:
            m.stream_changed = False
            period = m.stream_period_ms
            self._stream_next = now_wall + period / 1000 if period else None

    def _transmit_unsolicited(self) -> None:
        """Send (or, with no host attached, discard) what the model produced (lock held)."""
        out, self._model.outbox = self._model.outbox, []
        self._transmit(out, self._port)
        self._cond.notify_all()

    def _transmit(self, out: list[tuple[OutKind, bytes]], port: HostPort | None) -> None:
        """Send frames in order as one write, applying the drop/corrupt faults (lock held)."""
        if port is None or not out:
            return
        data = bytearray()
        for kind, frame in out:
            if kind == "reply":
                if self._drop_next > 0 or self._rng.random() < self._drop_fraction:
                    self._drop_next = max(0, self._drop_next - 1)
                    self._replies_dropped += 1
                    continue
                self._replies_sent += 1
            elif kind == "status":
                self._status_sent += 1
            else:
                self._events_sent += 1
            if self._corrupt_fraction and self._rng.random() < self._corrupt_fraction:
                frame = _corrupt(frame, self._rng)
                self._frames_corrupted += 1
            data += frame
        try:
            port.send(bytes(data))
        except OSError:
            if self._port is port:
                self._port = None

    def _run_unit(self) -> None:
        """Unit thread: timed events and the STATUS stream while a host is attached."""
        with self._cond:
            try:
                while not self._closed and self._port is not None:
                    now_wall = time.monotonic()
                    t = self.clock.now()
                    self._model.advance(t)
                    self._follow_stream_setting(now_wall)
                    self._stream_due(now_wall)
                    out, self._model.outbox = self._model.outbox, []
                    self._transmit(out, self._port)
                    self._cond.wait(self._wait_s(t, now_wall))
            finally:
                self._ticker = None  # a later attach starts a new unit thread

    def _stream_due(self, now_wall: float) -> None:
        if self._stream_next is None or now_wall < self._stream_next:
            return
        self._model.outbox.append(("status", self._model.status_frame()))
        period = self._model.stream_period_ms / 1000
        self._stream_next += period
        if self._stream_next <= now_wall:  # fell far behind: skip the missed periods
            self._stream_next = now_wall + period

    def _wait_s(self, t: float, now_wall: float) -> float:
        wait = _MAX_IDLE_WAIT_S
        if self._stream_next is not None:
            wait = min(wait, self._stream_next - now_wall)
        next_event = self._model.next_event_time()
        if next_event is not None:
            wait = min(wait, self.clock.wall_seconds(next_event - t))
        return max(0.0, wait)


def _fraction(value: float, what: str) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{what} must be between 0 and 1, got {value!r}")
    return float(value)


def _corrupt(frame: bytes, rng: random.Random) -> bytes:
    """Flip bits of one byte after the SOF (the receiver must resynchronise)."""
    data = bytearray(frame)
    data[rng.randrange(1, len(data))] ^= rng.randrange(1, 256)
    return bytes(data)
