"""The EPAT driver's safety behaviour over real links: same-SEQ retries that never execute twice,
ESTOP from every state and ahead of anything in flight, heartbeats and the watchdog, link loss
mid-delivery, routing under a STATUS stream, and close()."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from decimal import Decimal

import pytest

from device_drivers.commlog import CommLog
from device_drivers.epat.codec import Frame, decode_frames
from device_drivers.epat.constants import Command, EventCode, Fault, State
from device_drivers.epat.driver import EpatDriver
from device_drivers.errors import DeviceFault, LinkLost, LinkTimeout
from device_drivers.interface import (
    DeviceEvent,
    DeviceMessage,
    DeviceParameters,
    DeviceStatus,
    EventKind,
    LinkDown,
    UnitState,
)
from tests.device_drivers.epat.epat_helpers import SPEED, Unit, UnitFactory

D = Decimal


def epat(freq: str = "21.0", pulses: int = 1000, bar: str = "2.50") -> DeviceParameters:
    return DeviceParameters(D(freq), pulses, pressure_bar=D(bar))


def tx_frames(log: CommLog) -> list[tuple[int, Frame]]:
    return [
        (r.t_ns, f) for r in log.records() if r.direction == "tx" for f in decode_frames(r.data)
    ]


def executions(unit: Unit, state: State) -> int:
    """How many times the unit entered ``state`` (from its event log)."""
    return sum(
        1 for e in unit.sim.event_records() if (e.code, e.data) == (EventCode.STATE_CHANGE, state)
    )


# --- retries --------------------------------------------------------------------------------------
@pytest.mark.req("EPAT-RETRY-2")
def test_lost_start_reply_is_retried_with_the_same_seq_and_fires_once(
    make_unit: UnitFactory,
) -> None:
    unit = make_unit(speed=1)
    log = CommLog()
    driver = unit.driver(commlog=log)
    driver.load_parameters(epat())
    driver.arm()
    unit.sim.drop_next_replies(1)
    driver.start()
    starts = [f for _, f in tx_frames(log) if f.cmd == Command.START]
    assert len(starts) == 2 and starts[0] == starts[1]  # the same frame, the same SEQ
    assert executions(unit, State.FIRING) == 1
    assert driver.link_stats.retries == 1
    assert unit.sim.stats().retries_from_cache == 1


@pytest.mark.req("EPAT-RETRY-2")
def test_start_is_never_resent_with_a_new_seq_even_when_every_reply_is_lost(
    make_unit: UnitFactory,
) -> None:
    # Real time: 3 × 80 ms of retries must fit inside the 500 ms watchdog (the retried frames
    # feed it); at a speed factor the watchdog would be shorter than the wall-time timeouts.
    unit = make_unit(speed=1)
    log = CommLog()
    driver = unit.driver(commlog=log, retries=2)
    driver.load_parameters(epat())
    driver.arm()
    unit.sim.drop_next_replies(3)
    with pytest.raises(LinkTimeout, match="no reply to START"):
        driver.start()
    starts = [f for _, f in tx_frames(log) if f.cmd == Command.START]
    assert len(starts) == 3
    assert len({f.seq for f in starts}) == 1
    assert executions(unit, State.FIRING) == 1  # executed once; the host must read the state
    assert driver.status().state is UnitState.DELIVERING


@pytest.mark.req("EPAT-RETRY-2", "EPAT-ESTOP-1")
def test_estop_retries_only_with_its_own_seq(make_unit: UnitFactory) -> None:
    unit = make_unit(speed=1)
    log = CommLog()
    driver = unit.driver(commlog=log)
    driver.load_parameters(epat())
    driver.arm()
    driver.start()
    unit.sim.drop_next_replies(2)
    driver.emergency_stop()
    estops = [f for _, f in tx_frames(log) if f.cmd == Command.ESTOP]
    assert len(estops) == 3 and len({f.seq for f in estops}) == 1
    snap = unit.sim.snapshot()
    assert (snap.state, snap.faults) == (State.FAULT, Fault.ESTOP)


@pytest.mark.req("EPAT-RETRY-1")
def test_commands_survive_a_lossy_and_corrupting_link(make_unit: UnitFactory) -> None:
    unit = make_unit()
    driver = unit.driver(reply_timeout_s=0.05, retries=4)
    unit.sim.set_drop_fraction(0.1)
    unit.sim.set_corrupt_fraction(0.05)
    for _ in range(30):
        assert driver.status().state is UnitState.IDLE
        driver.load_parameters(epat(pulses=10))
        driver.disarm()
    stats = driver.link_stats
    assert stats.retries > 0
    assert stats.crc_errors > 0
    # every SET_PARAMS executed exactly once: one READY per load
    assert executions(unit, State.READY) == 30


# --- ESTOP --------------------------------------------------------------------------------------
def _bring_to(driver: EpatDriver, unit: Unit, state: State) -> None:
    if state is State.IDLE:
        return
    if state is State.FAULT:
        unit.sim.force_overtemp()
        unit.wait_for(lambda s: s.state is State.FAULT)
        return
    if state is State.COMPLETE:
        driver.load_parameters(epat(pulses=3))
        driver.arm()
        driver.start()
        unit.wait_for(lambda s: s.state is State.COMPLETE)
        return
    driver.load_parameters(epat())
    if state is State.READY:
        return
    driver.arm()
    if state is State.ARMED:
        return
    driver.start()
    time.sleep(0.03)
    if state is State.PAUSED:
        driver.pause()


@pytest.mark.req("EPAT-ESTOP-1")
@pytest.mark.parametrize("state", list(State))
def test_estop_from_every_state_latches_fault_and_returns_the_count(
    make_unit: UnitFactory, state: State
) -> None:
    unit = make_unit(speed=SPEED)
    driver = unit.driver()
    _bring_to(driver, unit, state)
    assert unit.sim.snapshot().state is state
    delivered = driver.emergency_stop()
    snap = unit.sim.snapshot()  # the unit acted before it answered
    assert snap.state is State.FAULT
    assert snap.faults & Fault.ESTOP
    assert snap.delivered == delivered
    time.sleep(0.05)
    assert unit.sim.snapshot().delivered == delivered  # no pulse after the reply
    with pytest.raises(DeviceFault):
        driver.arm()


@pytest.mark.req("EPAT-ESTOP-1")
def test_estop_goes_out_at_once_while_another_command_waits(make_unit: UnitFactory) -> None:
    unit = make_unit(speed=1)  # real time: the 150 ms reply delay stays inside the watchdog
    log = CommLog()
    driver = unit.driver(commlog=log, reply_timeout_s=0.5)
    driver.load_parameters(epat())
    driver.arm()
    driver.start()
    unit.sim.set_reply_delay(0.15)  # a slow unit: the next command waits 150 ms
    results: dict[str, object] = {}
    status_thread = threading.Thread(target=lambda: results.update(status=driver.status()))
    status_thread.start()
    time.sleep(0.02)
    called_ns = time.monotonic_ns()
    results["estop"] = driver.emergency_stop()
    status_thread.join()
    estop_tx = next(t for t, f in tx_frames(log) if f.cmd == Command.ESTOP)
    assert (estop_tx - called_ns) / 1e6 < 5  # written at once, not after the 150 ms exchange
    assert isinstance(results["status"], DeviceStatus)
    assert unit.sim.snapshot().state is State.FAULT


@pytest.mark.req("EPAT-ESTOP-1", "EPAT-RETRY-2")
def test_a_command_overtaken_by_estop_is_not_retried(make_unit: UnitFactory) -> None:
    unit = make_unit(speed=SPEED)
    log = CommLog()
    driver = unit.driver(commlog=log, reply_timeout_s=0.1)
    driver.load_parameters(epat())
    unit.sim.drop_next_replies(1)  # the ARM reply will be lost
    errors: list[BaseException] = []

    def arm() -> None:
        try:
            driver.arm()
        except LinkTimeout as exc:
            errors.append(exc)

    arm_thread = threading.Thread(target=arm)
    arm_thread.start()
    time.sleep(0.02)
    driver.emergency_stop()
    arm_thread.join()
    assert errors and "emergency stop was sent meanwhile" in str(errors[0])
    assert [f.cmd for _, f in tx_frames(log)].count(Command.ARM) == 1


@pytest.mark.req("EPAT-ESTOP-1", "EPAT-ROUTE-1")
def test_estop_is_answered_while_another_thread_holds_the_link_waiting_for_a_lost_reply(
    make_unit: UnitFactory,
) -> None:
    """The thread waiting for a lost reply reads the link itself; the ESTOP's reply, which it
    meets, must reach the ESTOP caller at once, not when that wait times out."""
    unit = make_unit(speed=1)
    driver = unit.driver(reply_timeout_s=0.6, retries=0)
    driver.load_parameters(epat())
    driver.arm()
    driver.start()
    driver.status()  # back-to-back exchanges: the calling thread holds the read turn
    unit.sim.drop_reply_to("GET_STATUS")  # the next status waits its whole 600 ms
    errors: list[BaseException] = []
    waiting = threading.Thread(target=lambda: _catch(errors, driver.status))
    waiting.start()
    time.sleep(0.03)
    called = time.monotonic()
    driver.emergency_stop()
    answered_after = time.monotonic() - called
    waiting.join()
    assert answered_after < 0.2  # not after the other thread's 600 ms wait
    assert errors and isinstance(errors[0], LinkTimeout)
    assert unit.sim.snapshot().state is State.FAULT


def _catch(errors: list[BaseException], call: Callable[[], object]) -> None:
    try:
        call()
    except Exception as exc:
        errors.append(exc)


class _InjectingProxy:
    """A real TCP relay between a host and a unit that can put bytes in front of the unit's next
    chunk: a partial frame the host must drop by the 20 ms rule (EPAT-FRAME-3)."""

    def __init__(self, unit_port: int) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self._listener.getsockname()[1]}"
        self._unit_port = unit_port
        self._inject = b""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def inject_before_next_reply(self, data: bytes) -> None:
        with self._lock:
            self._inject = data

    def _serve(self) -> None:
        host, _ = self._listener.accept()
        unit = socket.create_connection(("127.0.0.1", self._unit_port))
        for sock in (host, unit):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=self._pump, args=(host, unit, False), daemon=True).start()
        self._pump(unit, host, True)

    def _pump(self, src: socket.socket, dst: socket.socket, to_host: bool) -> None:
        with contextlib.suppress(OSError):
            while not self._stop.is_set():
                data = src.recv(4096)
                if not data:
                    break
                if to_host:
                    with self._lock:
                        data, self._inject = self._inject + data, b""
                dst.sendall(data)
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._stop.set()
        self._listener.close()


@pytest.mark.req("EPAT-FRAME-3", "EPAT-ROUTE-1")
def test_a_reply_behind_a_partial_frame_is_found_after_20_ms_by_the_thread_waiting_for_it(
    make_unit: UnitFactory,
) -> None:
    """A stray SOF whose frame never completes holds the reply back; the thread reading its own
    reply must drop it by the 20 ms rule and find the reply, not wait for its timeout."""
    unit = make_unit(speed=SPEED)
    proxy = _InjectingProxy(unit.server.port)
    try:
        driver = unit.driver(proxy.url, reply_timeout_s=0.15)
        driver.heartbeat()
        proxy.inject_before_next_reply(b"\xa5\x20")  # SOF, LEN 32: 36 bytes that never come
        started = time.monotonic()
        assert driver.heartbeat() is UnitState.IDLE
        took = time.monotonic() - started
        stats = driver.link_stats
        assert stats.partial_frames == 1
        assert (stats.retries, stats.timeouts) == (0, 0)  # found after ~20 ms, not re-asked
        assert 0.02 <= took < 0.15
        driver.close()
    finally:
        proxy.close()


# --- heartbeats and the watchdog ------------------------------------------------------------------
@pytest.mark.req("EPAT-HB-1", "EPAT-WDOG-1")
@pytest.mark.parametrize("state", [State.ARMED, State.FIRING, State.PAUSED])
def test_heartbeats_keep_an_idle_host_alive(make_unit: UnitFactory, state: State) -> None:
    unit = make_unit(speed=SPEED)
    log = CommLog()
    driver = unit.driver(commlog=log)  # heartbeat every 10 ms wall = 100 ms simulated
    driver.load_parameters(epat("1.0"))
    driver.arm()
    if state is not State.ARMED:
        driver.start()
    if state is State.PAUSED:
        driver.pause()
    time.sleep(0.3)  # 1.5 s simulated, three watchdog periods, without a command from the owner
    assert unit.sim.snapshot().state is state
    beats = [f for _, f in tx_frames(log) if f.cmd == Command.HEARTBEAT]
    assert len(beats) >= 10


@pytest.mark.req("EPAT-HB-1")
def test_no_heartbeats_when_nothing_is_watched(make_unit: UnitFactory) -> None:
    unit = make_unit(speed=SPEED)
    log = CommLog()
    driver = unit.driver(commlog=log)
    driver.load_parameters(epat())
    driver.arm()
    time.sleep(0.05)
    driver.disarm()
    time.sleep(0.02)
    before = len(tx_frames(log))
    time.sleep(0.15)
    assert len(tx_frames(log)) == before


@pytest.mark.req("EPAT-WDOG-1")
def test_watchdog_trips_when_the_host_goes_silent(make_unit: UnitFactory) -> None:
    unit = make_unit(speed=SPEED)
    driver = unit.driver(heartbeat_interval_s=10.0)  # a host that never heartbeats
    events: list[DeviceEvent] = []
    driver.add_listener(lambda m: events.append(m) if isinstance(m, DeviceEvent) else None)
    driver.load_parameters(epat())
    driver.arm()
    driver.start()
    time.sleep(0.2)  # 1 s simulated: well past the 500 ms watchdog
    status = driver.status()
    assert (status.state, status.faults) == (UnitState.FAULT, ("COMM_LOSS",))
    assert status.delivered == 10  # stopped within one pulse of the trip
    fault = [e for e in events if e.kind is EventKind.FAULT]
    assert fault and fault[0].data == Fault.COMM_LOSS
    with pytest.raises(DeviceFault, match="COMM_LOSS"):
        driver.resume()


# --- link loss ------------------------------------------------------------------------------------
@pytest.mark.req("EPAT-LINK-1")
def test_link_cut_mid_delivery(make_unit: UnitFactory) -> None:
    unit = make_unit(speed=SPEED)
    driver = unit.driver()
    messages: list[DeviceMessage] = []
    driver.add_listener(messages.append)
    driver.load_parameters(epat("21.0", 5000))
    driver.arm()
    driver.start()
    time.sleep(0.05)
    seen = driver.status().delivered
    unit.sim.cut_link()
    with pytest.raises(LinkLost):
        for _ in range(100):  # the reader notices at once; give it a moment
            driver.status()
            time.sleep(0.005)
    time.sleep(0.02)
    assert [m for m in messages if isinstance(m, LinkDown)]
    with pytest.raises(LinkLost):
        driver.emergency_stop()
    driver.close()  # never raises on a dead link
    time.sleep(0.2)  # 1 s simulated: the unit's watchdog trips without the host
    again = unit.driver()
    status = again.status()
    assert status.state is UnitState.FAULT
    assert status.faults == ("COMM_LOSS",)
    assert status.delivered >= seen
    time.sleep(0.05)
    assert again.status().delivered == status.delivered  # stopped: the count stays intact
    assert [e.kind for e in again.event_log()][-2:] == [EventKind.FAULT, EventKind.STATE_CHANGE]


@pytest.mark.req("EPAT-LINK-1", "EPAT-LINK-2")
def test_link_cut_on_a_pty_is_link_lost_and_a_new_terminal_is_offered(
    make_unit: UnitFactory,
) -> None:
    unit = make_unit(pty=True)
    assert unit.pty is not None
    old_path = unit.pty.path
    driver = unit.driver(old_path)
    lost = threading.Event()
    driver.add_listener(lambda m: lost.set() if isinstance(m, LinkDown) else None)
    unit.sim.cut_link()
    assert lost.wait(1.0)
    with pytest.raises(LinkLost):
        driver.status()
    deadline = time.monotonic() + 1
    while unit.pty.path == old_path and time.monotonic() < deadline:
        time.sleep(0.01)
    assert unit.driver(unit.pty.path).heartbeat() is UnitState.IDLE


@pytest.mark.req("EPAT-LINK-1")
def test_a_new_host_replaces_the_old_one_and_the_state_survives(make_unit: UnitFactory) -> None:
    unit = make_unit(speed=SPEED)
    first = unit.driver()
    lost = threading.Event()
    first.add_listener(lambda m: lost.set() if isinstance(m, LinkDown) else None)
    first.load_parameters(epat())
    second = unit.driver()
    assert lost.wait(1.0)
    assert second.status().state is UnitState.READY


# --- routing --------------------------------------------------------------------------------------
@pytest.mark.req("EPAT-ROUTE-1")
def test_replies_are_never_confused_with_status_and_event_frames(make_unit: UnitFactory) -> None:
    unit = make_unit(speed=SPEED)
    driver = unit.driver()
    statuses: list[DeviceStatus] = []
    driver.add_listener(lambda m: statuses.append(m) if isinstance(m, DeviceStatus) else None)
    driver.start_status_stream(0.02)
    driver.load_parameters(epat("21.0", 100))
    driver.arm()
    driver.start()
    end = time.monotonic() + 0.4
    while time.monotonic() < end:
        status = driver.status()
        assert isinstance(status, DeviceStatus)
        assert driver.heartbeat() in (UnitState.DELIVERING, UnitState.COMPLETE)
        assert driver.applicator().present
    stats = driver.link_stats
    assert stats.unsolicited_frames > 10 and len(statuses) > 10
    assert stats.unexpected_frames == 0
    # a late reply is only ever one that a retry (on a starved CI machine) already answered
    assert stats.stale_replies <= stats.retries


# --- close ----------------------------------------------------------------------------------------
@pytest.mark.req("EPAT-CLOSE-1")
@pytest.mark.parametrize(
    "state", [State.IDLE, State.READY, State.ARMED, State.FIRING, State.PAUSED, State.COMPLETE]
)
def test_close_leaves_the_unit_stopped_and_disarmed(make_unit: UnitFactory, state: State) -> None:
    unit = make_unit(speed=SPEED)
    driver = unit.driver()
    _bring_to(driver, unit, state)
    driver.close()
    snap = unit.sim.snapshot()
    assert (snap.state, snap.faults) == (State.IDLE, 0)
    count = snap.delivered
    time.sleep(0.2)  # well past the watchdog: nothing armed is left behind
    assert unit.sim.snapshot().state is State.IDLE
    assert unit.sim.snapshot().delivered == count


@pytest.mark.req("EPAT-CLOSE-1")
def test_close_leaves_a_fault_latched(make_unit: UnitFactory) -> None:
    unit = make_unit(speed=SPEED)
    driver = unit.driver()
    _bring_to(driver, unit, State.FIRING)
    driver.emergency_stop()
    driver.close()
    assert unit.sim.snapshot().state is State.FAULT


@pytest.mark.req("EPAT-CLOSE-1")
def test_close_is_idempotent_and_runs_from_a_context_manager(make_unit: UnitFactory) -> None:
    unit = make_unit(speed=SPEED)
    with EpatDriver(unit.url, heartbeat_interval_s=0.1 / SPEED) as driver:
        driver.load_parameters(epat())
        driver.arm()
        driver.start()
        driver.start_status_stream(0.02)
    snap = unit.sim.snapshot()
    assert snap.state is State.IDLE
    assert snap.stream_period_ms == 0  # the stream it started is stopped too
    driver.close()
    driver.close()
    with pytest.raises(LinkLost, match="closed"):
        driver.status()
    alive = [t for t in threading.enumerate() if t.name.startswith("epat-") and "sim" not in t.name]
    assert not [t for t in alive if t.name in ("epat-reader", "epat-heartbeat", "epat-listeners")]


@pytest.mark.req("EPAT-CLOSE-1")
def test_close_after_an_exception_in_a_with_block(make_unit: UnitFactory) -> None:
    unit = make_unit(speed=SPEED)
    with pytest.raises(RuntimeError), EpatDriver(unit.url, heartbeat_interval_s=0.02) as driver:
        driver.load_parameters(epat())
        driver.arm()
        driver.start()
        raise RuntimeError("the session crashed")
    assert unit.sim.snapshot().state is State.IDLE
