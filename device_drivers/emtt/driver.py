"""The EMTT driver: the common TherapyDevice interface over SCPI on a VISA resource.

What it adds to the wire (``wire.py``) and the codec (``codec.py``):

- every setting and session command is judged by the unit's own error queue, drained
  before (so a stale error never blames it) and after it; the unit's error becomes a typed
  exception: ``DeviceFault`` when the unit is latched in FAULT, else ``DeviceRejected``;
- session commands are written once and never repeated blindly: the state read after each one
  says whether it took effect;
- opening reads ``*IDN?`` and ``SESS:STAT?`` and refuses a unit that is ARMED, DELIVERING or
  PAUSED (``UnitInTreatment``) before anything that changes it (``*CLS`` comes only after),
  then closes the link: no heartbeat, no stop. Those two lines feed the unit's watchdog (ICD:
  any line does), so a refused newcomer delays the trip of a unit whose host is gone by at
  most one watchdog period. ``takeover=True`` opens such a unit without refusing and without
  heartbeats (the treating console reconnecting, or recovery: it makes the unit safe at once);
- heartbeats (``SYST:HEAR``) go out automatically only for a delivery armed through this
  driver (a ``SESS:ARM`` it saw take effect, or whose confirmation was lost from a state that
  was not watched) while the unit is ARMED, DELIVERING or PAUSED; the status stream polls
  ``SESS:STAT?`` and reports state changes as events, and polls a delivery not armed here no
  faster than twice the watchdog period (all in ``monitor.py``; listeners run on its
  dispatcher thread);
- ``close()`` leaves a unit this driver loaded or armed stopped and idle (a latched FAULT stays
  latched); any other unit is left as found.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from device_drivers.commlog import CommLog
from device_drivers.emtt import constants as c
from device_drivers.emtt.codec import (
    ENVELOPE_QUERY,
    SETTINGS_QUERY,
    CoilDiagnostics,
    parse_applicator,
    parse_coil,
    parse_envelope,
    parse_identity,
    parse_log_page,
    parse_self_test,
    parse_settings,
    parse_status,
    settings_line,
)
from device_drivers.emtt.monitor import UnitMonitor
from device_drivers.emtt.scpi import is_abort, line_has_query, line_keys, split_line
from device_drivers.emtt.verdicts import fault_of, rejection
from device_drivers.emtt.wire import LinkStats, ScpiWire
from device_drivers.errors import (
    CommandRefused,
    DeviceError,
    LinkLost,
    LinkTimeout,
    ProtocolError,
    UnitInTreatment,
)
from device_drivers.interface import (
    WATCHED_STATES,
    ApplicatorInfo,
    DeviceEnvelope,
    DeviceEvent,
    DeviceIdentity,
    DeviceParameters,
    DeviceStatus,
    Modality,
    SelfTestResult,
    TherapyDevice,
    UnitState,
)
from device_drivers.transports.visa_link import DEFAULT_BACKEND, VisaLink

_log = logging.getLogger(__name__)
T = TypeVar("T")

_STOPPABLE = frozenset(
    {UnitState.READY, UnitState.ARMED, UnitState.DELIVERING, UnitState.PAUSED, UnitState.COMPLETE}
)
_REJECTED = object()
_ABORT_ERRORS = (c.EMERGENCY_STOP,)
#: Headers that load or arm the unit: a driver that sent one makes the unit safe on close.
_CLAIMING_KEYS = frozenset({"SOUR:FIEL", "SOUR:FREQ", "SOUR:PULS", "SESS:ARM"})


class EmttDriver(TherapyDevice):
    """An open EMT unit on a VISA resource, e.g. ``TCPIP0::127.0.0.1::5025::SOCKET``.

    Opening checks ``*IDN?``, reads the state and sends ``*CLS``: a resource where no EMT unit
    answers raises ``LinkTimeout`` (silence), ``ProtocolError`` (another device) or
    ``LinkLost`` (no such resource), each saying what to check; a unit that is ARMED,
    DELIVERING or PAUSED raises ``UnitInTreatment`` unless ``takeover`` (see the module
    docstring). ``heartbeat_interval_s`` must be well inside the
    unit's 1 s watchdog (divide by the speed factor of a sped-up simulator); ``timeout_ms``
    is per answer (the ICD promises 50 ms); queries are retried ``retries`` times.
    """

    modality = Modality.EMTT

    def __init__(
        self,
        resource: str,
        *,
        backend: str = DEFAULT_BACKEND,
        heartbeat_interval_s: float = 0.3,
        timeout_ms: int = 200,
        commlog: CommLog | None = None,
        retries: int = 2,
        takeover: bool = False,
    ) -> None:
        super().__init__()
        if not 0 < heartbeat_interval_s < c.WATCHDOG_S:
            raise ValueError(
                f"heartbeat_interval_s must be between 0 and the unit's {c.WATCHDOG_S} s "
                f"watchdog, got {heartbeat_interval_s!r}"
            )
        self.resource = resource
        self._state_lock = threading.Lock()
        self._envelope: DeviceEnvelope | None = None
        self._closed = False
        self._loaded_here = False  # a setting or SESS:ARM went out from here: close() stops it
        link = VisaLink(resource, backend=backend, timeout_ms=timeout_ms, commlog=commlog)
        self._wire = ScpiWire(link, retries=retries)
        self._monitor = UnitMonitor(
            self._wire, self._notify, heartbeat_interval_s=heartbeat_interval_s, name=resource
        )
        try:
            self.identity = self._open_session(takeover)
        except BaseException:
            link.close()
            raise
        self._monitor.start()

    def _open_session(self, takeover: bool) -> DeviceIdentity:
        advice = (
            f"no EMTT unit answered at {self.resource}; is it the right resource, "
            "or another kind of device?"
        )
        try:
            identity = self._wire.query("*IDN?", parse_identity)
            state = self._status().state
            if state in WATCHED_STATES and not takeover:
                raise UnitInTreatment(
                    state,
                    wire_state=state.value,
                    link=self.resource,
                    watchdog=f"{c.WATCHDOG_S:g} s",
                )
            self._wire.write("*CLS")
        except LinkTimeout as exc:
            raise LinkTimeout(f"{advice} ({exc})") from exc
        except ProtocolError as exc:
            raise ProtocolError(f"{advice} ({exc})") from exc
        except LinkLost as exc:
            if isinstance(exc.__cause__, UnicodeDecodeError):
                raise ProtocolError(f"{advice} (it answered with non-ASCII bytes)") from exc
            raise
        return identity

    # --- identity and limits ------------------------------------------------------------
    def identify(self) -> DeviceIdentity:
        return self._call(lambda: self._wire.query("*IDN?", parse_identity))

    def envelope(self) -> DeviceEnvelope:
        """The unit's limits from its ``? MIN`` / ``? MAX`` queries (read once, then cached)."""
        if self._envelope is None:
            self._envelope = self._call(lambda: self._wire.query(ENVELOPE_QUERY, parse_envelope))
        return self._envelope

    def applicator(self) -> ApplicatorInfo:
        return self._call(lambda: self._wire.query("SYST:APPL?", parse_applicator))

    def settings(self) -> DeviceParameters | None:
        """What the unit holds now (None after power-up or ``*RST``)."""
        return self._call(lambda: self._wire.query(SETTINGS_QUERY, parse_settings))

    # --- treatment ----------------------------------------------------------------------
    def load_parameters(self, params: DeviceParameters) -> DeviceParameters:
        """Check against the envelope (reject, never clamp), send, read back, compare."""
        line = settings_line(params, self.envelope())
        self._claiming(line, {UnitState.READY}, "loading the parameters")
        held = self.settings()
        if held is None or held != params:
            raise ProtocolError(
                f"the unit holds {held} after loading {params}; not using it (read-back mismatch)"
            )
        return held

    def arm(self) -> None:
        """ARM, after checking that the applicator has rated life left for the whole session."""
        applicator = self.applicator()
        target = self.status().target
        if applicator.present and applicator.shots_remaining < target:
            raise CommandRefused(
                f"the applicator {applicator.serial} has {applicator.shots_remaining:,} pulses "
                f"of rated life left, fewer than the {target:,} planned; replace it "
                "(the EMTT unit does not stop at its rating, so the console does not arm)"
            )
        self._claiming("SESS:ARM", {UnitState.ARMED}, "arming")

    def disarm(self) -> int:
        status = self.status()
        if status.state is UnitState.IDLE:
            return status.delivered
        if status.state is UnitState.FAULT:
            raise fault_of(status, "disarming")
        return self._command("SESS:STOP", {UnitState.IDLE}, "disarming").delivered

    def start(self) -> None:
        self._command("SESS:STAR", {UnitState.DELIVERING, UnitState.COMPLETE}, "starting")

    def pause(self) -> int:
        return self._command("SESS:PAUS", {UnitState.PAUSED}, "pausing").delivered

    def resume(self) -> None:
        self._command("SESS:RES", {UnitState.DELIVERING, UnitState.COMPLETE}, "resuming")

    def stop(self) -> int:
        """Planned end: ``SESS:STOP`` → IDLE with the count kept; already IDLE → its count."""
        status = self.status()
        if status.state is UnitState.IDLE:
            return status.delivered
        return self._command("SESS:STOP", {UnitState.IDLE}, "stopping").delivered

    def emergency_stop(self) -> int:
        """``ABORt`` at once (even while another thread waits for an answer), then read the
        final count; sent again only if the state read shows it did not take effect."""
        if self._closed:
            raise LinkLost("the driver is closed; open it again")
        self._wire.cancel_retries()
        try:
            self._wire.write("ABOR")
            with self._wire.exchange:
                self._wire.cancel_retries(False)
                for _ in range(3):
                    status = self._status()
                    if status.state is UnitState.FAULT:
                        return status.delivered
                    self._wire.write("ABOR")
        except LinkLost as exc:
            self._link_lost(exc)
            raise
        finally:
            self._wire.cancel_retries(False)
        raise ProtocolError("the unit did not enter FAULT after three ABORt commands")

    def clear_fault(self) -> None:
        self._command("SYST:FAUL:CLE", {UnitState.IDLE}, "clearing the fault")

    # --- monitoring ---------------------------------------------------------------------
    def status(self) -> DeviceStatus:
        if self._monitor.lost is not None or self._closed:
            raise self._unavailable()
        try:
            return self._wire.query("SESS:STAT?", self._read_status)
        except LinkLost as exc:
            self._link_lost(exc)
            raise

    def heartbeat(self) -> UnitState:
        """Feed the watchdog now and return the unit's state (one exchange)."""

        return self._call(
            lambda: self._wire.query("SYST:HEAR;:SESS:STAT?", self._read_status)
        ).state

    def start_status_stream(self, period_s: float) -> None:
        if not period_s > 0:
            raise ValueError(f"the status period must be > 0 s, got {period_s!r}")
        self._call(lambda: None)
        self._monitor.start_polling(period_s)

    def stop_status_stream(self) -> None:
        self._monitor.stop_polling()

    @property
    def heartbeat_interval_s(self) -> float:
        return self._monitor.heartbeat_interval_s

    @property
    def link_stats(self) -> LinkStats:
        """Round-trip times, timeouts, retries, garbled answers, heartbeats (service console)."""
        return self._wire.stats()

    # --- service ------------------------------------------------------------------------
    def self_test(self) -> SelfTestResult:
        """``*TST?`` (only in IDLE; otherwise the unit refuses with -221)."""
        return self._call(lambda: self._guarded_query("*TST?", parse_self_test))

    def coil_diagnostics(self) -> CoilDiagnostics:
        """``DIAGnostic:COIL?`` (the unit refuses it with -221 while no applicator is fitted)."""
        return self._call(lambda: self._guarded_query("DIAG:COIL?", parse_coil))

    def event_log(self, from_index: int = 0) -> list[DeviceEvent]:
        if from_index < 0:
            raise ValueError(f"event log indexes start at 0, got {from_index}")

        def read() -> list[DeviceEvent]:
            events: list[DeviceEvent] = []
            index = from_index
            for _ in range(c.LOG_CAPACITY // c.LOG_PAGE + 2):
                page = self._wire.query(f"DIAG:LOG? {index}", parse_log_page)
                events += page
                if len(page) < c.LOG_PAGE:
                    break
                index = (page[-1].index or 0) + 1
            return events

        return self._call(read)

    def raw_command(self, line: str) -> str | None:
        """Send one SCPI line as typed (service console); its answer, or None for a command.

        Refused (``CommandRefused``, nothing sent) while the unit is ARMED, DELIVERING or
        PAUSED. Not retried. A command the unit rejects raises its error as usual.
        """
        if not line.strip() or any(ch in line for ch in "\r\n"):
            raise ValueError("give exactly one non-empty SCPI line")

        aborts = any(is_abort(unit) for unit in split_line(line))

        def send() -> str | None:
            state = self._status().state
            if state in WATCHED_STATES:
                raise CommandRefused(
                    f"raw commands are refused while the unit is {state}; stop it first"
                )
            with self._wire.exchange:
                self._wire.write(line)
                reply = None
                if line_has_query(line):
                    try:
                        reply = self._wire.read_answer()
                    except LinkTimeout:
                        self._raise_queued(line, None)  # a refused query gives no answer
                        raise
                else:
                    self._raise_queued(line, None, expected=_ABORT_ERRORS if aborts else ())
            if line_keys(line) & _CLAIMING_KEYS:
                self._claim(self._status().state in WATCHED_STATES)  # a raw ARM is armed here
            else:
                self._status()  # learn the state the line left
            return reply

        return self._call(send)

    def close(self) -> None:
        with self._state_lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._monitor.stop_polling()
            if self._loaded_here:
                self._leave_safe()
        except Exception:  # close() never raises
            _log.exception("closing the EMTT driver at %s", self.resource)
        finally:
            self._monitor.stop()
            self._wire.link.close()

    # --- internals: exchanges -----------------------------------------------------------
    def _call(self, action: Callable[[], T]) -> T:
        if self._monitor.lost is not None or self._closed:
            raise self._unavailable()
        try:
            return action()
        except LinkLost as exc:
            self._link_lost(exc)
            raise

    def _status(self) -> DeviceStatus:
        return self._wire.query("SESS:STAT?", self._read_status)

    def _read_status(self, reply: str) -> DeviceStatus:
        """Decode and observe a status inside the exchange, so statuses are observed in the
        order they were read (a late observation of an older one would invent a change)."""
        return self._monitor.observe(parse_status(reply))

    def _command(self, line: str, expect: set[UnitState], what: str) -> DeviceStatus:
        """Write a command once; judge it by the error queue and the state it left."""

        def run() -> DeviceStatus:
            with self._wire.exchange:
                stale = self._wire.drain_errors()
                if stale:
                    _log.warning("errors queued before %r: %s", line, ", ".join(map(str, stale)))
                self._wire.write(line)
                try:
                    errors, uncertain = self._wire.drain_errors(), False
                except (LinkTimeout, ProtocolError):
                    errors, uncertain = [], True
                try:
                    status = self._status()
                except (LinkTimeout, ProtocolError):
                    if errors:
                        raise rejection(line, errors, None) from None
                    raise
            if errors:
                raise rejection(line, errors, status)
            if status.state in expect:
                return status
            if status.state is UnitState.FAULT:
                raise fault_of(status, what)
            if uncertain:
                raise LinkTimeout(
                    f"could not confirm {what}: the error queue did not answer and the unit is "
                    f"{status.state}"
                )
            raise ProtocolError(
                f"the unit took {line!r} without an error but is {status.state}, "
                f"not {' or '.join(sorted(expect))}"
            )

        return self._call(run)

    def _claiming(self, line: str, expect: set[UnitState], what: str) -> DeviceStatus:
        """A command that loads or arms: once it took effect the unit is this driver's to
        make safe (and, armed, to keep alive). If its outcome could not be confirmed from a
        state that was not watched, only this connection can have changed the unit, so it is
        claimed all the same and the heartbeats follow the state the unit reports."""
        last = self._monitor.last_status
        was_watched = last is not None and last.state in WATCHED_STATES
        arms = UnitState.ARMED in expect
        try:
            status = self._command(line, expect, what)
        except LinkTimeout:
            if not was_watched:
                self._claim(arms)
            raise
        self._claim(arms)
        return status

    def _claim(self, armed: bool) -> None:
        self._loaded_here = True
        if armed:
            self._monitor.armed_here = True

    def _guarded_query(self, query: str, parse: Callable[[str], T]) -> T:
        """A query the unit may refuse: ``*OPC?;`` in front proves a refusal without a timeout
        (answers before an error are still sent), then the error queue says why."""

        def guarded(reply: str) -> object:
            if reply == "1":
                return _REJECTED
            if not reply.startswith("1;"):
                raise ProtocolError(f"unexpected answer to {query!r}: {reply[:80]!r}")
            return parse(reply[2:])

        with self._wire.exchange:
            result = self._wire.query(f"*OPC?;{query}", guarded)
            if result is _REJECTED:
                self._raise_queued(query, f"the unit refused {query!r} but queued no error")
        return result  # type: ignore[return-value]

    def _raise_queued(self, line: str, if_none: str | None, expected: tuple[int, ...] = ()) -> None:
        """Raise the unit's queued errors as the answer to ``line`` (``if_none``: none queued);
        ``expected`` codes are the line's intended effect (204 after an ``ABORt``), not errors."""
        errors = [e for e in self._wire.drain_errors() if e.code not in expected]
        if errors:
            raise rejection(line, errors, self._status())
        if if_none is not None:
            raise ProtocolError(if_none)

    def _leave_safe(self) -> None:
        """Best effort: end stopped and idle (a latched FAULT stays latched)."""
        try:
            status: DeviceStatus | None = self._status()
        except DeviceError:
            with contextlib.suppress(DeviceError):
                self._wire.write("SESS:STOP")
            return
        assert status is not None
        if status.state not in _STOPPABLE:
            return
        self._wire.write("SESS:STOP")
        try:
            status = self._status()
        except DeviceError:
            status = None
        if status is None or status.state in WATCHED_STATES:
            self._wire.write("ABOR")  # never leave it armed or delivering

    def _link_lost(self, exc: DeviceError) -> None:
        """Latch the link as dead: LinkDown to listeners, heartbeats stop (the unit's watchdog
        then stops it), every later call raises LinkLost until the driver is reopened."""
        self._monitor.link_lost(exc)

    def _unavailable(self) -> LinkLost:
        if self._closed:
            return LinkLost(f"the driver for {self.resource} is closed; open it again")
        return LinkLost(
            f"the link to {self.resource} was lost ({self._monitor.lost}); reopen the driver"
        )
