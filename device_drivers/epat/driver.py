"""The EPAT driver: the host side of the serial ICD behind the common device interface.

Open it on any pyserial URL (device path, pty path, ``socket://HOST:PORT``, ``loop://``)::

    with EpatDriver("socket://127.0.0.1:7000") as unit:
        unit.load_parameters(DeviceParameters(Decimal("8.0"), 2000, pressure_bar=Decimal("2.50")))
        unit.arm()
        unit.start()
        ...

Threads: whoever waits for a reply reads the link itself, and a reader thread reads while no
exchange does (one at a time; replies routed by SEQ and STATUS/EVENT frames by CMD, see
:mod:`device_drivers.epat.channel`); a heartbeat thread; and a dispatcher that calls listeners,
so a slow listener never delays a reply. The unit's state is tracked by the reading thread in
wire order (EVENT frames precede the ACK that caused them).

Supervision (EPAT-HOST-1/2, EPAT-HB-1/2, EPAT-CLOSE-1/2 in docs/requirements/epat.md): a unit
serves one host at a time, and a unit kept alive by a host that did not arm it fires
unsupervised. So:

- opening reads the state with GET_STATUS (never HEARTBEAT) and refuses a unit that is ARMED,
  FIRING or PAUSED with ``UnitInTreatment``, then closes the link. Its HELLO and GET_STATUS
  are valid frames and feed the unit's watchdog (ICD: any valid frame does), so a refused
  newcomer delays the trip of a unit whose host is gone by at most one watchdog period after
  its last frame; nothing more is ever sent. ``takeover=True`` (the treating console
  reconnecting, or recovery) opens such a unit without refusing, and without heartbeats: the
  caller makes it safe at once, or its watchdog does;
- the heartbeat thread sends HEARTBEAT (whenever no other frame went out for
  ``heartbeat_interval_s``) only while the unit is ARMED, FIRING or PAUSED **and** an ARM was
  acknowledged on this driver instance; the mark is cleared when the unit is seen in any other
  state. An ARM whose reply was lost from a state that is not watched counts as acknowledged
  (only this connection can have armed the unit): heartbeats then follow the unit's state;
- ``close()`` stops and disarms only a unit this instance loaded (SET_PARAMS acknowledged) or
  armed; any other unit — one whose opening was refused, or one taken over — is left exactly
  as found: no heartbeat, no stop, no disarm.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time

from device_drivers.commlog import CommLog
from device_drivers.epat.channel import FrameChannel, LinkStats
from device_drivers.epat.codec import Frame
from device_drivers.epat.constants import (
    MAX_PAYLOAD,
    READ_EVENTS_MAX,
    STREAM_PERIOD_MAX_MS,
    STREAM_PERIOD_MIN_MS,
    WATCHDOG_S,
    Command,
    EventCode,
    Nak,
    Reply,
    State,
    Unsolicited,
    fault_names,
    self_test_failures,
)
from device_drivers.epat.limits import (
    encode_parameters,
    envelope_from_hello,
    identity_from_hello,
    parse_hello,
)
from device_drivers.epat.payloads import (
    ApplicatorBlock,
    EventNotice,
    HelloInfo,
    NakReply,
    StatusBlock,
    pack_uint,
    unpack_events,
    unpack_uint,
)
from device_drivers.epat.translate import (
    RawReply,
    applicator_info,
    device_status,
    live_event,
    logged_event,
    raw_reply,
    rejection,
    unit_state,
)
from device_drivers.epat.units import (
    ParameterRejected,
    cbar_to_bar,
    dhz_to_hz,
)
from device_drivers.errors import (
    CommandRefused,
    DeviceError,
    DeviceFault,
    DeviceRejected,
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
    DeviceMessage,
    DeviceParameters,
    DeviceStatus,
    LinkDown,
    Modality,
    SelfTestResult,
    TherapyDevice,
    UnitState,
)
from device_drivers.transports.serial_link import SerialLink

__all__ = ["EpatDriver", "LinkStats", "ParameterRejected", "RawReply"]

_log = logging.getLogger(__name__)

#: Longer than the ICD's 50 ms reply deadline by a margin for the host's own scheduling;
#: a retry is safe, so a spurious timeout costs one duplicate frame, nothing more.
DEFAULT_REPLY_TIMEOUT_S = 0.08
_MAX_EVENT_PAGES = 64
_STATE_FROM_EVENT = EventCode.STATE_CHANGE
#: Replies whose first byte is the unit's state, with their length.
_STATE_FIRST_REPLIES = {int(Command.HEARTBEAT): 1, int(Command.GET_STATUS): StatusBlock.size()}
#: Commands whose acknowledgement makes the unit's treatment this driver's own.
_CLAIMING = frozenset({int(Command.SET_PARAMS), int(Command.ARM)})
_WATCHED_WIRE_STATES = frozenset({State.ARMED, State.FIRING, State.PAUSED})


class EpatDriver(TherapyDevice):
    """An open EPAT unit; see the module docstring. Opening sends HELLO, then GET_STATUS.

    Raises ``UnitInTreatment`` if the unit is ARMED, FIRING or PAUSED, unless ``takeover``
    (for the console that treats with the unit reconnecting after a lost link, or recovery:
    it makes the unit safe at once; this driver never keeps alive a delivery it did not arm).
    """

    modality = Modality.EPAT

    def __init__(
        self,
        url: str,
        *,
        heartbeat_interval_s: float = 0.2,
        reply_timeout_s: float = DEFAULT_REPLY_TIMEOUT_S,
        retries: int = 2,
        commlog: CommLog | None = None,
        takeover: bool = False,
    ) -> None:
        super().__init__()
        if not heartbeat_interval_s > 0:
            raise ValueError("heartbeat_interval_s must be > 0")
        self.url = url
        self.heartbeat_interval_s = heartbeat_interval_s
        self._state: State | None = None
        self._armed_here = False  # an ARM was acknowledged here and the unit is still watched
        self._loaded_here = False  # SET_PARAMS or ARM acknowledged here: close() makes it safe
        self._streaming = False
        self._closed = False
        self._close_lock = threading.Lock()
        self._messages: queue.SimpleQueue[DeviceMessage | None] = queue.SimpleQueue()
        self._hb_wake = threading.Event()
        link = SerialLink(url, read_timeout_s=0.02, commlog=commlog)  # LinkLost if it won't open
        self._channel = FrameChannel(
            link,
            reply_timeout_s=reply_timeout_s,
            retries=retries,
            on_reply=self._on_reply,
            on_unsolicited=self._on_unsolicited,
            on_link_lost=self._on_link_lost,
        )
        self._dispatcher = threading.Thread(
            target=self._dispatch_loop, name="epat-listeners", daemon=True
        )
        self._dispatcher.start()
        try:
            self._hello = self._say_hello()
            state = StatusBlock.unpack(self._ack(Command.GET_STATUS)).state
            if state in _WATCHED_WIRE_STATES and not takeover:
                raise UnitInTreatment(
                    unit_state(state),
                    wire_state=State(state).name,
                    link=url,
                    watchdog=f"{WATCHDOG_S * 1000:.0f} ms",
                )
        except BaseException:
            self._shutdown_threads()
            raise
        self._heartbeats = threading.Thread(
            target=self._heartbeat_loop, name="epat-heartbeat", daemon=True
        )
        self._heartbeats.start()

    # --- opening -------------------------------------------------------------------------------
    def _say_hello(self) -> HelloInfo:
        try:
            reply = self._channel.exchange(Command.HELLO)
        except LinkTimeout as exc:
            if self._channel.heard_only_garbage:
                raise ProtocolError(
                    f"something answered at {self.url} but not in EPAT frames: "
                    "is it another kind of device, or the wrong port?"
                ) from exc
            raise LinkTimeout(
                f"no EPAT unit answered at {self.url}: is it the right port, is the unit on, "
                "or is it another kind of device?"
            ) from exc
        return parse_hello(reply, self.url)

    # --- identity and limits -----------------------------------------------------------------
    def identify(self) -> DeviceIdentity:
        return identity_from_hello(self._hello)

    def envelope(self) -> DeviceEnvelope:
        return envelope_from_hello(self._hello)

    def applicator(self) -> ApplicatorInfo:
        return applicator_info(ApplicatorBlock.unpack(self._ack(Command.GET_APPLICATOR)))

    # --- treatment ---------------------------------------------------------------------------
    def load_parameters(self, params: DeviceParameters) -> DeviceParameters:
        """Check against the unit's envelope, SET_PARAMS, read back; reject, never clamp.

        The unit itself judges the applicator fitted now (NO_APPLICATOR, its pressure limit,
        APPLICATOR_LIMIT) and answers with a NAK, raised as ``DeviceRejected``.
        """
        wanted = encode_parameters(params, self._hello)
        self._ack(Command.SET_PARAMS, wanted.pack())  # the reply hook marks the unit as loaded
        held = StatusBlock.unpack(self._ack(Command.GET_STATUS))
        if held.state == State.FAULT:
            raise DeviceFault(
                "the unit entered FAULT right after taking the parameters "
                f"({', '.join(fault_names(held.faults)) or 'cause unknown'}); do not arm",
                faults=fault_names(held.faults),
                delivered=held.delivered,
            )
        if (held.pressure_set_cbar, held.freq_set_dhz, held.target) != (
            wanted.pressure_cbar,
            wanted.freq_dhz,
            wanted.pulses,
        ) or held.state != State.READY:
            raise ProtocolError(
                f"read-back mismatch: sent {wanted}, the unit holds pressure "
                f"{held.pressure_set_cbar} cbar, frequency {held.freq_set_dhz} dHz, "
                f"{held.target} pulses in state {held.state}; do not arm"
            )
        return DeviceParameters(
            frequency_hz=dhz_to_hz(held.freq_set_dhz),
            pulses=held.target,
            pressure_bar=cbar_to_bar(held.pressure_set_cbar),
        )

    def arm(self) -> None:
        self._ack(Command.ARM)  # the reply hook marks the delivery as armed here

    def disarm(self) -> int:
        return unpack_uint(self._ack(Command.DISARM), 4, "delivered")

    def start(self) -> None:
        self._ack(Command.START)

    def pause(self) -> int:
        return unpack_uint(self._ack(Command.PAUSE), 4, "delivered")

    def resume(self) -> None:
        self._ack(Command.RESUME)

    def stop(self) -> int:
        return unpack_uint(self._ack(Command.STOP), 4, "delivered")

    def emergency_stop(self) -> int:
        """ESTOP ahead of anything in flight; the unit latches FAULT before it answers."""
        reply = self._channel.exchange(Command.ESTOP, priority=True)
        if reply.cmd != Reply.ACK:
            raise self._refused(Command.ESTOP, reply)
        return unpack_uint(reply.payload, 4, "delivered")

    def clear_fault(self) -> None:
        self._ack(Command.CLEAR_FAULT, fault_as_rejection=True)

    # --- monitoring ----------------------------------------------------------------------------
    def status(self) -> DeviceStatus:
        return device_status(self._ack(Command.GET_STATUS))

    def heartbeat(self) -> UnitState:
        return unit_state(unpack_uint(self._ack(Command.HEARTBEAT), 1, "state"))

    def start_status_stream(self, period_s: float) -> None:
        """Ask the unit to push STATUS every ``period_s`` (0.02..1.0 s in whole ms)."""
        period_ms = round(period_s * 1000)
        if abs(period_ms - period_s * 1000) > 1e-6 or not (
            STREAM_PERIOD_MIN_MS <= period_ms <= STREAM_PERIOD_MAX_MS
        ):
            raise ParameterRejected(
                f"a status period of {period_s} s is not possible: the unit streams every "
                "0.020..1.000 s in whole milliseconds",
                field="period_s",
                value=period_s,
            )
        self._ack(Command.SET_STREAM, pack_uint(period_ms, 2, "period_ms"))
        self._streaming = True

    def stop_status_stream(self) -> None:
        self._ack(Command.SET_STREAM, pack_uint(0, 2, "period_ms"))
        self._streaming = False

    @property
    def link_stats(self) -> LinkStats:
        """Round-trip times, retries, timeouts, CRC errors seen (service console)."""
        return self._channel.stats()

    @property
    def unit_state_seen(self) -> UnitState | None:
        """The state as last reported on the wire (no exchange)."""
        return unit_state(self._state) if self._state is not None else None

    # --- service -------------------------------------------------------------------------------
    def self_test(self) -> SelfTestResult:
        """Run SELF_TEST (unit IDLE). A failure latches the unit's INTERNAL fault."""
        result = unpack_uint(self._ack(Command.SELF_TEST), 2, "result")
        return SelfTestResult(
            passed=result == 0, failed_checks=self_test_failures(result), raw=result
        )

    def event_log(self, from_index: int = 0) -> list[DeviceEvent]:
        if not 0 <= from_index <= 0xFFFF:
            raise ValueError(f"event index must be 0..65535, got {from_index}")
        events: list[DeviceEvent] = []
        index = from_index
        for _ in range(_MAX_EVENT_PAGES):
            page = unpack_events(self._ack(Command.READ_EVENTS, pack_uint(index, 2, "from")))
            events.extend(logged_event(r) for r in page)
            if len(page) < READ_EVENTS_MAX:
                break
            index = (page[-1].index + 1) & 0xFFFF
        return events

    def raw_command(self, cmd: int, payload: bytes = b"") -> RawReply:
        """Send one raw command (service console) and decode the reply.

        Refused with ``CommandRefused`` — and nothing sent — while the unit is ARMED,
        DELIVERING or PAUSED: a raw frame must never interfere with a treatment.
        """
        if isinstance(cmd, bool) or not isinstance(cmd, int) or not 0 <= cmd <= 0xFF:
            raise ValueError(f"a command code is 0..255 (0x00..0xFF), got {cmd!r}")
        if len(payload) > MAX_PAYLOAD:
            raise ValueError(f"a payload holds at most {MAX_PAYLOAD} bytes, got {len(payload)}")
        state = self.unit_state_seen  # known from the wire: refuse without any traffic
        if state not in WATCHED_STATES:
            state = self.status().state  # not known to be busy: make sure, now
        if state in WATCHED_STATES:
            raise CommandRefused(
                f"raw commands are refused while the unit is {state.value}: "
                "stop or disarm it first (nothing was sent)"
            )
        reply = self._exchange_claiming(cmd, bytes(payload))
        self._hb_wake.set()
        return raw_reply(cmd, reply)

    # --- close ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Leave a unit this driver loaded or armed stopped and disarmed (a FAULT stays
        latched), then release the link. A unit it did not load or arm is left as found.

        Idempotent; never raises.
        """
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        try:
            if self._channel.lost is None:
                if self._loaded_here:
                    self._make_safe()
                if self._streaming and (self._armed_here or not self._watched_seen()):
                    with contextlib.suppress(DeviceError):
                        self.stop_status_stream()  # a stream is harmless; a frame is not
        except Exception:
            _log.warning("EPAT close: could not leave the unit idle", exc_info=True)
        finally:
            self._shutdown_threads()

    def _make_safe(self) -> None:
        for _ in range(4):
            try:
                state = self.status().state
                if state in (UnitState.DELIVERING, UnitState.PAUSED):
                    self.stop()
                elif state in (UnitState.ARMED, UnitState.READY, UnitState.COMPLETE):
                    self.disarm()
                else:
                    break  # IDLE, or FAULT (left latched: a fault is never cleared silently)
            except DeviceRejected:
                continue  # the state moved under us (e.g. completed): look again

    def _shutdown_threads(self) -> None:
        self._closed = True
        self._hb_wake.set()
        self._channel.close()
        self._messages.put(None)
        current = threading.current_thread()
        for thread in (getattr(self, "_heartbeats", None), self._dispatcher):
            if thread is not None and thread is not current and thread.is_alive():
                thread.join(1.0)

    # --- exchanges -----------------------------------------------------------------------------
    def _ack(
        self, cmd: Command, payload: bytes = b"", *, fault_as_rejection: bool = False
    ) -> bytes:
        reply = self._exchange_claiming(cmd, payload)
        if reply.cmd != Reply.ACK:
            raise self._refused(cmd, reply, fault_as_rejection=fault_as_rejection)
        return reply.payload

    def _exchange_claiming(self, cmd: int, payload: bytes) -> Frame:
        """One exchange; a SET_PARAMS or ARM whose reply never came, sent while the unit was not
        in a watched state, is claimed as if acknowledged: only this connection can have
        loaded or armed the unit, so it must be made safe on close and kept alive if armed."""
        watched_before = self._watched_seen()
        try:
            return self._channel.exchange(cmd, payload)
        except LinkTimeout:
            if cmd in _CLAIMING and not watched_before:
                self._claim(cmd)
            raise

    def _claim(self, cmd: int) -> None:
        self._loaded_here = True
        if cmd == Command.ARM:
            self._armed_here = True
            self._hb_wake.set()

    def _on_arm_acknowledged(self) -> None:
        """An ARM ACK follows the EVENT frames the ARM caused, so the unit is ARMED now even
        if those frames were lost on the way: heartbeats must not wait for a status."""
        if not self._watched_seen():
            self._set_state(State.ARMED)
        self._claim(Command.ARM)

    def _watched_seen(self) -> bool:
        return self._state in _WATCHED_WIRE_STATES

    def _refused(self, cmd: int, reply: Frame, *, fault_as_rejection: bool = False) -> DeviceError:
        if reply.cmd != Reply.NAK:
            return ProtocolError(f"reply to {Command(cmd).name} has code {reply.cmd:#04x}")
        nak = NakReply.unpack(reply.payload)
        error = rejection(cmd, nak)
        if nak.code == Nak.WRONG_STATE and nak.detail == State.FAULT and not fault_as_rejection:
            faults: tuple[str, ...] = ()
            delivered = None
            with contextlib.suppress(DeviceError):
                block = StatusBlock.unpack(self._channel.exchange(Command.GET_STATUS).payload)
                faults, delivered = fault_names(block.faults), block.delivered
            fault = DeviceFault(
                f"{Command(cmd).name} refused: the unit is latched in FAULT "
                f"({', '.join(faults) or 'cause unknown'}); remove the cause and clear the fault",
                faults=faults,
                delivered=delivered,
            )
            fault.__cause__ = error
            return fault
        return error

    # --- hooks of the thread reading the link (wire order) ------------------------------------
    def _on_reply(self, cmd: int, frame: Frame) -> None:
        if frame.cmd != Reply.ACK:
            return
        if cmd == Command.ARM:
            self._on_arm_acknowledged()  # by the reading thread, in wire order
        elif cmd in _CLAIMING:
            self._claim(cmd)
        expected = _STATE_FIRST_REPLIES.get(cmd)
        if expected is not None and len(frame.payload) == expected:
            self._set_state(frame.payload[0])  # both replies start with the state byte

    def _on_unsolicited(self, frame: Frame) -> None:
        now = time.monotonic_ns()
        try:
            if frame.cmd == Unsolicited.STATUS:
                status = device_status(frame.payload, received_ns=now)
                self._set_state(frame.payload[0])
                self._messages.put(status)
            else:
                notice = EventNotice.unpack(frame.payload)
                if notice.code == _STATE_FROM_EVENT:
                    self._set_state(notice.data)
                self._messages.put(live_event(notice))
        except ProtocolError as exc:
            _log.warning("EPAT unsolicited frame not understood (%s): %s", exc, frame)

    def _on_link_lost(self, reason: str) -> None:
        self._messages.put(LinkDown(reason))
        self._hb_wake.set()

    def _set_state(self, value: int) -> None:
        if value == self._state:
            return
        try:
            state = State(value)
        except ValueError:
            return
        if state != self._state:
            self._state = state
            if state not in _WATCHED_WIRE_STATES:
                self._armed_here = False  # the delivery armed here is over
            self._hb_wake.set()

    # --- background threads --------------------------------------------------------------------
    def _heartbeat_loop(self) -> None:
        interval = self.heartbeat_interval_s
        while not self._closed and self._channel.lost is None:
            self._hb_wake.clear()
            if self._armed_here and self._watched_seen():
                due = self._channel.last_tx + interval
                wait = due - time.monotonic()
                if wait <= 0:
                    try:
                        self.heartbeat()
                    except LinkTimeout:
                        _log.warning("EPAT heartbeat unanswered")
                    except DeviceError:
                        pass  # LinkLost ends the loop; a NAK cannot happen to HEARTBEAT
                    continue
            else:
                wait = interval
            self._hb_wake.wait(wait)

    def _dispatch_loop(self) -> None:
        while True:
            message = self._messages.get()
            if message is None:
                return
            self._notify(message)
