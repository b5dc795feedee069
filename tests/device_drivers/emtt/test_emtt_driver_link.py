"""EmttDriver on a troubled link: retries and timeouts, heartbeats and the watchdog, the
emergency stop from every state, a link cut mid-delivery, the status stream and close()."""

from __future__ import annotations

import threading
import time

import pytest

from device_drivers.commlog import CommLog
from device_drivers.emtt import constants as c
from device_drivers.emtt.driver import EmttDriver
from device_drivers.emtt.server import EmttTcpServer
from device_drivers.emtt.simulator import EmttSimulator
from device_drivers.errors import DeviceFault, LinkLost, LinkTimeout, ProtocolError
from device_drivers.interface import DeviceEvent, DeviceStatus, EventKind, LinkDown, UnitState
from tests.device_drivers.emtt.conftest import SPEED
from tests.device_drivers.emtt.emtt_helpers import Inbox, sent_lines, session_params, wait_for
from tests.device_drivers.emtt.test_emtt_driver import to_state

ALL_STATES = list(UnitState)


# --- retries and timeouts -----------------------------------------------------------------
@pytest.mark.req("EMTT-DRV-RETRY-1")
def test_queries_are_retried_through_dropped_and_garbled_answers(
    fast_server: EmttTcpServer, fast_simulator: EmttSimulator
) -> None:
    driver = EmttDriver(fast_server.resource, heartbeat_interval_s=0.3 / SPEED, retries=4)
    fast_simulator.set_drop_fraction(0.1)
    fast_simulator.set_corrupt_fraction(0.1)
    for _ in range(20):
        assert driver.status().state is UnitState.IDLE
        assert driver.applicator().present
    stats = driver.link_stats
    assert stats.timeouts > 0 and stats.garbled > 0
    assert stats.retries >= stats.timeouts + stats.garbled - 2
    assert stats.resyncs > 0
    fast_simulator.set_drop_fraction(0.0)
    fast_simulator.set_corrupt_fraction(0.0)
    assert driver.load_parameters(session_params()) == session_params()
    driver.close()


@pytest.mark.req("EMTT-DRV-RETRY-1")
def test_a_unit_that_stays_silent_is_a_timeout_after_the_retries(
    driver: EmttDriver, fast_simulator: EmttSimulator, commlog: CommLog
) -> None:
    fast_simulator.set_drop_fraction(1.0)
    before = driver.link_stats.timeouts
    started = time.monotonic()
    with pytest.raises(
        LinkTimeout, match=r"did not answer 'SESS:STAT\?' within 200 ms \(3 attempts\)"
    ):
        driver.status()
    assert 0.55 < time.monotonic() - started < 1.5
    assert driver.link_stats.timeouts - before == 3
    fast_simulator.set_drop_fraction(0.0)
    assert driver.status().state is UnitState.IDLE  # the driver survives a silent spell


@pytest.mark.req("EMTT-DRV-RETRY-1")
def test_garbage_every_time_is_a_protocol_error(
    driver: EmttDriver, fast_simulator: EmttSimulator
) -> None:
    fast_simulator.set_corrupt_fraction(1.0)
    with pytest.raises(ProtocolError, match="does not follow the ICD"):
        driver.status()


@pytest.mark.req("EMTT-DRV-RETRY-1")
def test_late_answers_are_never_taken_for_later_questions(
    driver: EmttDriver, fast_simulator: EmttSimulator
) -> None:
    fast_simulator.set_reply_delay(0.25)  # later than the 200 ms timeout
    with pytest.raises(LinkTimeout):
        driver.status()
    fast_simulator.set_reply_delay(0.0)
    # the late SESS:STAT? answers are still arriving; the driver resynchronises first
    assert driver.applicator().type == "EMT-A1"
    assert driver.settings() is None
    assert driver.status().state is UnitState.IDLE
    assert driver.link_stats.resyncs >= 1
    fast_simulator.set_reply_delay(0.05)  # slow but inside the timeout: fine
    assert driver.identify().model == "EMT-100"


class _LosesAnswersAfter(EmttSimulator):
    """A unit that loses its next ``count`` answers after it has taken ``trigger``."""

    def __init__(self, trigger: str, count: int) -> None:
        super().__init__(speed=SPEED)
        self.trigger, self.count, self.armed = trigger, count, False

    def handle_line(self, line: str) -> str | None:
        reply = super().handle_line(line)
        if line == self.trigger:
            self.armed = True
        elif self.armed and reply is not None and self.count > 0:
            self.count -= 1
            return None
        return reply


@pytest.mark.req("EMTT-DRV-RETRY-1")
@pytest.mark.parametrize("lost", [3, 1000])
def test_state_changing_commands_are_never_sent_twice(lost: int) -> None:
    """The error queue's answers are lost after SESS:STAR: the state read decides (3 lost),
    or nothing can be confirmed (all lost); SESS:STAR is never repeated either way."""
    unit = _LosesAnswersAfter("SESS:STAR", lost)
    commlog = CommLog()
    with EmttTcpServer(unit) as server:
        driver = EmttDriver(server.resource, heartbeat_interval_s=0.3 / SPEED, commlog=commlog)
        to_state(driver, unit, UnitState.ARMED)
        if lost == 3:
            driver.start()  # three SYST:ERR? answers lost, then SESS:STAT? says DELIVERING
            assert driver.status().state is UnitState.DELIVERING
        else:
            with pytest.raises(LinkTimeout):
                driver.start()
            assert unit.snapshot().state == "DELIVERING"  # it did take effect
        assert sent_lines(commlog).count("SESS:STAR") == 1
        driver.close()


@pytest.mark.req("EMTT-DRV-RETRY-1")
def test_a_command_is_not_sent_to_a_unit_that_does_not_answer(
    driver: EmttDriver, fast_simulator: EmttSimulator, commlog: CommLog
) -> None:
    to_state(driver, fast_simulator, UnitState.ARMED)
    fast_simulator.set_drop_fraction(1.0)
    with pytest.raises(LinkTimeout):
        driver.start()  # the error queue cannot be read first: nothing is started
    assert "SESS:STAR" not in sent_lines(commlog)
    assert fast_simulator.snapshot().state != "DELIVERING"


# --- heartbeats and the watchdog -----------------------------------------------------------
@pytest.mark.req("EMTT-WDOG-1")
@pytest.mark.parametrize("state", [UnitState.ARMED, UnitState.PAUSED])
def test_heartbeats_keep_a_quiet_session_alive(
    driver: EmttDriver, fast_simulator: EmttSimulator, commlog: CommLog, state: UnitState
) -> None:
    to_state(driver, fast_simulator, state)
    time.sleep(3 / SPEED)  # three watchdog periods, with no traffic but the heartbeats
    assert fast_simulator.snapshot().state == state.value
    assert sent_lines(commlog).count("SYST:HEAR") >= 8  # one per interval (0.3 s simulated)


@pytest.mark.req("EMTT-WDOG-1")
def test_no_heartbeats_when_nothing_is_armed(driver: EmttDriver, commlog: CommLog) -> None:
    driver.load_parameters(session_params())
    time.sleep(0.2)
    assert "SYST:HEAR" not in sent_lines(commlog)


@pytest.mark.req("EMTT-WDOG-1")
def test_a_silent_host_trips_the_watchdog(
    driver: EmttDriver, fast_simulator: EmttSimulator
) -> None:
    to_state(driver, fast_simulator, UnitState.DELIVERING)
    inbox = Inbox()
    driver.add_listener(inbox)
    driver.start_status_stream(0.01)
    # the host's sending path hangs for 3 s simulated: nothing reaches the unit
    with driver._wire._tx_lock:  # a stuck host, on purpose (white-box)
        time.sleep(3 / SPEED)
    wait_for(lambda: any(e.kind is EventKind.FAULT for e in inbox.of(DeviceEvent)))
    fault = next(e for e in inbox.of(DeviceEvent) if e.kind is EventKind.FAULT)
    assert (fault.data, fault.state) == (c.WATCHDOG_EXPIRED, UnitState.FAULT)
    status = driver.status()
    assert (status.state, status.faults) == (UnitState.FAULT, ("WATCHDOG_EXPIRED",))
    assert status.delivered == fast_simulator.snapshot().delivered
    time.sleep(0.1)
    assert driver.status().delivered == status.delivered  # delivery really stopped


# --- emergency stop -------------------------------------------------------------------------
@pytest.mark.req("EMTT-ABORT-1")
@pytest.mark.req("EMTT-ESTOP-1")
@pytest.mark.parametrize("state", ALL_STATES)
def test_emergency_stop_from_every_state(
    driver: EmttDriver, fast_simulator: EmttSimulator, commlog: CommLog, state: UnitState
) -> None:
    to_state(driver, fast_simulator, state)
    final = driver.emergency_stop()
    snap = fast_simulator.snapshot()
    assert snap.state == "FAULT"
    assert snap.fault_code == c.EMERGENCY_STOP
    assert final == snap.delivered
    assert sent_lines(commlog).count("ABOR") == (2 if state is UnitState.FAULT else 1)
    time.sleep(0.05)
    assert fast_simulator.snapshot().delivered == final
    with pytest.raises(DeviceFault, match="EMERGENCY_STOP"):
        driver.arm()
    driver.clear_fault()
    assert driver.status().state is UnitState.IDLE


@pytest.mark.req("EMTT-ESTOP-1")
def test_emergency_stop_does_not_wait_behind_a_slow_exchange(
    driver: EmttDriver, fast_simulator: EmttSimulator
) -> None:
    to_state(driver, fast_simulator, UnitState.DELIVERING)
    fast_simulator.set_drop_fraction(1.0)  # another thread is stuck in retries
    failures: list[Exception] = []

    def read_applicator() -> None:
        try:
            driver.applicator()
        except LinkTimeout as exc:
            failures.append(exc)

    stuck = threading.Thread(target=read_applicator)
    stuck.start()
    time.sleep(0.05)
    result: list[int] = []
    estop = threading.Thread(target=lambda: result.append(driver.emergency_stop()))
    pressed = time.monotonic()
    estop.start()
    wait_for(lambda: fast_simulator.snapshot().state == "FAULT", timeout=1.0)
    assert time.monotonic() - pressed < 0.05  # ABORt was on the wire at once
    fast_simulator.set_drop_fraction(0.0)
    estop.join(3.0)
    stuck.join(3.0)
    assert result == [fast_simulator.snapshot().delivered]
    assert len(failures) == 1  # the stuck query gave up instead of holding the stop back


# --- link loss ------------------------------------------------------------------------------
@pytest.mark.req("EMTT-LINK-1")
def test_link_cut_mid_delivery(
    fast_server: EmttTcpServer, fast_simulator: EmttSimulator, driver: EmttDriver
) -> None:
    inbox = Inbox()
    driver.add_listener(inbox)
    to_state(driver, fast_simulator, UnitState.DELIVERING)
    driver.start_status_stream(0.01)
    wait_for(lambda: any(s.delivered > 10 for s in inbox.of(DeviceStatus)))
    fast_simulator.cut_link()
    wait_for(lambda: bool(inbox.of(LinkDown)), what="LinkDown")
    with pytest.raises(LinkLost, match="reopen the driver"):
        driver.status()
    with pytest.raises(LinkLost):
        driver.pause()
    last_seen = max(s.delivered for s in inbox.of(DeviceStatus))
    time.sleep(2 / SPEED)  # 2 s simulated: the unit's watchdog stops it
    assert len(inbox.of(LinkDown)) == 1

    with EmttDriver(fast_server.resource, heartbeat_interval_s=0.3 / SPEED) as again:
        status = again.status()
        assert (status.state, status.fault_code) == (UnitState.FAULT, c.WATCHDOG_EXPIRED)
        assert status.delivered >= last_seen > 0
        time.sleep(0.05)
        assert again.status().delivered == status.delivered  # stopped, count intact
        log = again.event_log()
        assert [(e.kind, e.data) for e in log[-2:]] == [
            (EventKind.FAULT, c.WATCHDOG_EXPIRED),
            (EventKind.STATE_CHANGE, 6),
        ]
    driver.close()  # closing a driver whose link is gone never raises


@pytest.mark.req("EMTT-LINK-1")
@pytest.mark.req("EMTT-STREAM-1")
def test_a_unit_that_stops_answering_is_reported_down_and_left_to_its_watchdog(
    driver: EmttDriver, fast_simulator: EmttSimulator
) -> None:
    inbox = Inbox()
    driver.add_listener(inbox)
    to_state(driver, fast_simulator, UnitState.DELIVERING)
    driver.start_status_stream(0.02)
    fast_simulator.set_drop_fraction(1.0)
    wait_for(lambda: bool(inbox.of(LinkDown)), timeout=5.0, what="LinkDown")
    assert "stopped answering" in inbox.of(LinkDown)[0].reason
    # the driver went quiet, so the unit's watchdog stops the delivery
    wait_for(lambda: fast_simulator.snapshot().state == "FAULT", timeout=1.0)
    assert fast_simulator.snapshot().fault_code == c.WATCHDOG_EXPIRED


# --- status stream --------------------------------------------------------------------------
@pytest.mark.req("EMTT-STREAM-1")
def test_status_stream_reports_statuses_and_state_changes(
    driver: EmttDriver, fast_simulator: EmttSimulator
) -> None:
    inbox = Inbox()
    driver.add_listener(inbox)
    driver.start_status_stream(0.01)
    driver.load_parameters(session_params(freq="10", pulses=50))
    driver.arm()
    driver.start()
    wait_for(lambda: any(e.kind is EventKind.COMPLETION for e in inbox.of(DeviceEvent)))
    driver.stop_status_stream()
    time.sleep(0.02)  # let the dispatcher hand over what the poller queued last
    statuses = inbox.of(DeviceStatus)
    assert len(statuses) >= 10
    counts = [s.delivered for s in statuses if s.state is UnitState.DELIVERING]
    assert counts == sorted(counts) and len(set(counts)) > 2
    events = inbox.of(DeviceEvent)
    changes = [e.state for e in events if e.kind is EventKind.STATE_CHANGE]
    assert changes == [UnitState.READY, UnitState.ARMED, UnitState.DELIVERING, UnitState.COMPLETE]
    completion = next(e for e in events if e.kind is EventKind.COMPLETION)
    assert completion.data == 50
    settled = len(inbox.messages)
    time.sleep(0.05)
    assert len(inbox.messages) == settled  # the stream really stopped


@pytest.mark.req("EMTT-STREAM-1")
@pytest.mark.req("EMTT-APPL-1")
def test_status_stream_reports_a_fault_with_its_cause(
    driver: EmttDriver, fast_simulator: EmttSimulator
) -> None:
    inbox = Inbox()
    driver.add_listener(inbox)
    to_state(driver, fast_simulator, UnitState.DELIVERING)
    driver.start_status_stream(0.01)
    fast_simulator.remove_applicator()
    wait_for(lambda: any(e.kind is EventKind.FAULT for e in inbox.of(DeviceEvent)))
    fault = next(e for e in inbox.of(DeviceEvent) if e.kind is EventKind.FAULT)
    assert fault.data == c.APPLICATOR_NOT_CONNECTED and "APPLICATOR_NOT_CONNECTED" in fault.text
    assert any(s.faults == ("APPLICATOR_NOT_CONNECTED",) for s in inbox.of(DeviceStatus))


def test_a_broken_listener_does_not_stop_the_stream(driver: EmttDriver) -> None:
    inbox = Inbox()

    def broken(_message: object) -> None:
        raise RuntimeError("listener bug")

    driver.add_listener(broken)
    driver.add_listener(inbox)
    driver.start_status_stream(0.01)
    wait_for(lambda: len(inbox.of(DeviceStatus)) >= 5)
    driver.remove_listener(inbox)
    with pytest.raises(ValueError, match="> 0"):
        driver.start_status_stream(0)


# --- close ----------------------------------------------------------------------------------
@pytest.mark.req("EMTT-CLOSE-1")
@pytest.mark.parametrize(
    "state",
    [UnitState.READY, UnitState.ARMED, UnitState.DELIVERING, UnitState.PAUSED, UnitState.COMPLETE],
)
def test_close_leaves_the_unit_stopped_and_idle(
    fast_server: EmttTcpServer, fast_simulator: EmttSimulator, state: UnitState
) -> None:
    with EmttDriver(fast_server.resource, heartbeat_interval_s=0.3 / SPEED) as driver:
        to_state(driver, fast_simulator, state)
        driver.start_status_stream(0.01)
        counted = driver.status().delivered
    snap = fast_simulator.snapshot()
    assert snap.state == "IDLE"
    assert snap.delivered >= counted
    time.sleep(2 / SPEED)  # and nothing is left running: no watchdog fault later
    assert fast_simulator.snapshot().state == "IDLE"
    with pytest.raises(LinkLost, match="closed"):
        driver.status()
    driver.close()  # idempotent


@pytest.mark.req("EMTT-CLOSE-1")
def test_close_leaves_a_latched_fault_latched(
    fast_server: EmttTcpServer, fast_simulator: EmttSimulator
) -> None:
    driver = EmttDriver(fast_server.resource, heartbeat_interval_s=0.3 / SPEED)
    to_state(driver, fast_simulator, UnitState.DELIVERING)
    driver.emergency_stop()
    driver.close()
    driver.close()
    assert fast_simulator.snapshot().state == "FAULT"
    assert fast_simulator.snapshot().fault_code == c.EMERGENCY_STOP


@pytest.mark.req("EMTT-CLOSE-1")
def test_close_never_raises_and_stops_its_threads(
    fast_server: EmttTcpServer, fast_simulator: EmttSimulator
) -> None:
    before = {t.name for t in threading.enumerate()}
    driver = EmttDriver(fast_server.resource, heartbeat_interval_s=0.3 / SPEED)
    driver.start_status_stream(0.01)
    fast_server.stop()  # the unit vanishes
    driver.close()
    leftover = {t.name for t in threading.enumerate() if t.name.startswith("emtt-")} - before
    assert leftover == set()


@pytest.mark.req("EMTT-COMMLOG-1")
def test_every_line_is_in_the_communication_log(
    driver: EmttDriver, commlog: CommLog, fast_simulator: EmttSimulator
) -> None:
    driver.self_test()
    driver.load_parameters(session_params())
    records = commlog.records()
    assert all(r.data.endswith(b"\n") for r in records)
    assert [r.t_ns for r in records] == sorted(r.t_ns for r in records)
    queries = [r for r in records if r.direction == "tx" and b"?" in r.data]
    answers = [r for r in records if r.direction == "rx"]
    assert len(queries) == len(answers)  # every answer the host read is logged too
    assert b"SOUR:FIEL 40;FREQ 5;PULS 4000\n" in [r.data for r in records]
    assert b"1;0\n" in [r.data for r in answers]  # the guarded *TST? answer
