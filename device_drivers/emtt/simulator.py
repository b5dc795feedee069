"""The simulated EMT-100: the unit model on a simulated clock, thread-safe, with fault injection.

:class:`EmttSimulator` is what a server (``server.py``) serves and what tests break on purpose.
It wraps :class:`~device_drivers.emtt.unit.EmttUnit` (the ICD's rules, time as an argument)
with a :class:`~device_drivers.simclock.SimClock` (``speed`` × faster), one lock, and the link
faults a real installation suffers: dropped, corrupted and late response lines, a cut link.
The fault-injection method names are shared with the EPAT simulator (see ``simcontrol``);
:meth:`EmttSimulator.drop_reply_to` is the deterministic lost answer. :meth:`stats` counts what
happened since the simulator was made (``pulses_fired_total`` is a fault campaign's ground truth).
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

from device_drivers.emtt import constants as c
from device_drivers.emtt.physics import ThermalModel
from device_drivers.emtt.scpi import line_keys
from device_drivers.emtt.unit import Applicator, EmttUnit, UnitSnapshot
from device_drivers.simclock import SimClock

_SERIAL = re.compile(r"[A-Z0-9][A-Z0-9-]{0,31}\Z")
#: Characters never found in a valid response, so a corrupted line is always detectable.
_GARBAGE = "#@%^~"
_FIRST_APPLICATOR_SERIAL = 20417


@dataclass(frozen=True, slots=True)
class EmttSimStats:
    """Counters since the simulator was made (not reset by a power cycle)."""

    lines_received: int
    responses_dropped: int
    heartbeats_received: int  # SYST:HEAR units executed, from any host
    pulses_fired_total: int  # ground truth: every pulse the coil fired


class EmttSimulator:
    """The EMT-100 reference unit, stateful and time-based; see the module docstring."""

    def __init__(
        self,
        speed: float = 1.0,
        serial: str = c.DEFAULT_SERIAL,
        applicator_present: bool = True,
        *,
        seed: int | None = None,
        thermal: ThermalModel | None = None,
    ) -> None:
        if not _SERIAL.match(serial):
            raise ValueError(
                f"serial {serial!r} is not a word the unit can print: use up to 32 capital "
                "letters, digits and hyphens, e.g. E100-24-0117"
            )
        self._lock = threading.Lock()
        self._clock = SimClock(speed)
        self._next_applicator_serial = _FIRST_APPLICATOR_SERIAL
        applicator = self._new_applicator(c.APPLICATOR_TYPE, 0) if applicator_present else None
        self._unit = EmttUnit(serial=serial, applicator=applicator, thermal=thermal)
        self._rng = random.Random(seed)
        self._drop_fraction = 0.0
        self._corrupt_fraction = 0.0
        self._reply_delay_s = 0.0
        self._lines_received = 0
        self._responses_dropped = 0
        self._drop_key: str | None = None  # drop_reply_to: the header that starts the drop
        self._drop_started = False
        self._drop_left = 0
        self._link_cut_listeners: list[Callable[[], None]] = []

    @property
    def speed(self) -> float:
        return self._clock.speed

    @property
    def serial(self) -> str:
        return self._unit.serial

    # --- the wire -----------------------------------------------------------------------
    def handle_line(self, line: str) -> str | None:
        """Execute one received line; the response line to send (link faults applied) or None.

        A dropped response is None (the host times out); a corrupted one carries characters no
        valid response contains. The reply delay is the server's to apply (``reply_delay_s``).
        """
        with self._lock:
            response = self._unit.execute_line(line, self._clock.now())
            self._lines_received += 1
            if self._drop_key is not None and not self._drop_started:
                self._drop_started = self._drop_key in line_keys(line)
            if response is None:
                return None
            if self._drop_started:
                self._drop_left -= 1
                if self._drop_left <= 0:
                    self._drop_key, self._drop_started = None, False
                self._responses_dropped += 1
                return None
            if self._drop_fraction and self._rng.random() < self._drop_fraction:
                self._responses_dropped += 1
                return None
            if self._corrupt_fraction and self._rng.random() < self._corrupt_fraction:
                return self._corrupt(response)
            return response

    def execute_line(self, line: str) -> str | None:
        """Execute one line without any link fault (the unit's own answer)."""
        with self._lock:
            return self._unit.execute_line(line, self._clock.now())

    def _corrupt(self, response: str) -> str:
        chars = list(response) or [" "]
        for _ in range(1 + len(chars) // 8):
            chars[self._rng.randrange(len(chars))] = self._rng.choice(_GARBAGE)
        return "".join(chars)

    @property
    def reply_delay_s(self) -> float:
        return self._reply_delay_s

    def add_link_cut_listener(self, listener: Callable[[], None]) -> None:
        """Called by a server: ``listener()`` must drop the current host connection."""
        with self._lock:
            self._link_cut_listeners.append(listener)

    def remove_link_cut_listener(self, listener: Callable[[], None]) -> None:
        with self._lock:
            if listener in self._link_cut_listeners:
                self._link_cut_listeners.remove(listener)

    # --- link faults --------------------------------------------------------------------
    def set_drop_fraction(self, fraction: float) -> None:
        """Drop this fraction (0..1) of response lines; the host times out on them."""
        self._drop_fraction = _fraction("drop", fraction)

    def drop_reply_to(self, command: str, times: int = 1) -> None:
        """Lose answers after the next line holding ``command`` (a header in any form, e.g.
        ``"SESS:STAR"``): that line's own answer if it has one, then the following answer
        lines, ``times`` in all. After ``SESS:STAR`` (which has none) the first lost line is
        the answer to the ``SYST:ERR?`` a host reads next: the deterministic lost START
        confirmation. ``times=0`` cancels."""
        keys = line_keys(command) or line_keys(command.rstrip("?") + "?")
        if len(keys) != 1:
            raise ValueError(f"{command!r} is not one EMTT header (e.g. SESS:STAR)")
        if isinstance(times, bool) or not isinstance(times, int) or times < 0:
            raise ValueError(f"times must be a whole number >= 0, got {times!r}")
        with self._lock:
            self._drop_key = next(iter(keys)) if times else None
            self._drop_started = False
            self._drop_left = times

    def set_corrupt_fraction(self, fraction: float) -> None:
        """Garble this fraction (0..1) of response lines."""
        self._corrupt_fraction = _fraction("corrupt", fraction)

    def set_reply_delay(self, seconds: float) -> None:
        """Send every response line this many wall seconds late (commands still run at once)."""
        if not seconds >= 0:
            raise ValueError(f"a reply delay cannot be negative, got {seconds!r}")
        self._reply_delay_s = float(seconds)

    def cut_link(self) -> None:
        """Drop the host's connection now; the unit keeps running (its watchdog will trip)."""
        with self._lock:
            self._unit.advance(self._clock.now())
            listeners = list(self._link_cut_listeners)
        for listener in listeners:
            listener()

    # --- unit faults --------------------------------------------------------------------
    def power_cycle(self) -> None:
        """Reset to power-up: IDLE, nothing set, error queue, *ESR and event log cleared,
        uptime 0. The applicator (and its wear) and the coil's heat are physical and persist;
        the host's connection stays open (use :meth:`cut_link` for a lost link)."""
        with self._lock:
            self._unit.advance(self._clock.now())
            self._clock.reset()
            self._unit.power_up()

    def force_overtemp(self) -> None:
        """Heat the coil to 45.5 °C: FAULT 201 if ARMED/DELIVERING/PAUSED, else ARM refused."""
        with self._lock:
            self._unit.force_overtemp(self._clock.now())

    def remove_applicator(self) -> None:
        """Pull the applicator: FAULT 202 if ARMED/DELIVERING/PAUSED; ARM/STARt refused."""
        with self._lock:
            self._unit.remove_applicator(self._clock.now())

    def fit_applicator(self, type: str = c.APPLICATOR_TYPE, pulses_used: int = 0) -> None:
        """Fit a (new) applicator of ``type`` that has already fired ``pulses_used`` pulses."""
        if type != c.APPLICATOR_TYPE:
            raise ValueError(
                f"unknown EMTT applicator type {type!r}; the reference unit takes "
                f"{c.APPLICATOR_TYPE}"
            )
        if isinstance(pulses_used, bool) or not isinstance(pulses_used, int) or pulses_used < 0:
            raise ValueError(f"pulses_used must be a whole number >= 0, got {pulses_used!r}")
        with self._lock:
            self._unit.fit_applicator(self._new_applicator(type, pulses_used), self._clock.now())

    def wear_out_applicator(self, remaining: int = 0) -> None:
        """Leave ``remaining`` pulses of the fitted applicator's rated life.

        The EMTT ICD defines no worn-out fault, so the unit only shows it in
        ``SYSTem:APPLicator?`` and keeps counting past the rating; the driver refuses to arm
        a worn applicator (requirement EMTT-WEAR-1).
        """
        if isinstance(remaining, bool) or not isinstance(remaining, int) or remaining < 0:
            raise ValueError(f"remaining pulses must be a whole number >= 0, got {remaining!r}")
        with self._lock:
            unit = self._unit
            unit.advance(self._clock.now())
            a = unit.applicator
            if a is None:
                raise ValueError("no applicator is fitted; fit one first")
            if remaining > a.pulses_rated:
                raise ValueError(f"remaining must be at most the rating ({a.pulses_rated})")
            unit.applicator = Applicator(a.type, a.serial, a.pulses_rated - remaining)

    def set_field_deviation(self, percent: float) -> None:
        """Make the measured field read ``percent`` off the setting while delivering.

        The ICD defines no fault for a field deviation: it is a measurement only (``MEAS:FIEL?``
        and ``SESS:STAT?``); the host decides what to make of it.
        """
        if not -100.0 <= float(percent) <= 100.0:
            raise ValueError(f"a field deviation is between -100 and +100 %, got {percent!r}")
        with self._lock:
            self._unit.field_deviation_percent = float(percent)

    def set_self_test_failures(self, mask: int) -> None:
        """Make ``*TST?`` report these failed checks (bit 0 coil driver … bit 3 applicator)."""
        if not 0 <= mask <= 0b1111:
            raise ValueError(f"a self-test mask has bits 0..3, got {mask!r}")
        with self._lock:
            self._unit.self_test_failures = mask

    # --- inspection ---------------------------------------------------------------------
    def stats(self) -> EmttSimStats:
        with self._lock:
            self._unit.advance(self._clock.now())  # pulses fired up to now count
            return EmttSimStats(
                lines_received=self._lines_received,
                responses_dropped=self._responses_dropped,
                heartbeats_received=self._unit.heartbeats_received,
                pulses_fired_total=self._unit.pulses_fired_total,
            )

    def snapshot(self) -> UnitSnapshot:
        """The unit's inside view now (state, counts, temperature, queues), for tests."""
        with self._lock:
            self._unit.advance(self._clock.now())
            return self._unit.snapshot()

    def _new_applicator(self, type_: str, pulses_used: int) -> Applicator:
        serial = f"A1-{self._next_applicator_serial}"
        self._next_applicator_serial += 1
        return Applicator(type_, serial, pulses_used)


def _fraction(what: str, value: float) -> float:
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"the {what} fraction must be between 0 and 1, got {value!r}")
    return float(value)
