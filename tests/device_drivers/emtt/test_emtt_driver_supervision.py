"""Who supervises a treatment (issue 10), EMTT: a second host opening a unit in treatment is
refused and keeps nothing alive, the treating console takes over to stop it, heartbeats and
polls never keep alive a delivery armed elsewhere; and the simulator's ground truth: the
cumulative fired count across power cycles, and the deterministic lost answer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from device_drivers.commlog import CommLog
from device_drivers.emtt import constants as c
from device_drivers.emtt.driver import EmttDriver
from device_drivers.emtt.server import EmttPtyServer, EmttTcpServer
from device_drivers.emtt.simulator import EmttSimulator
from device_drivers.errors import LinkLost, LinkTimeout, UnitInTreatment
from device_drivers.interface import DeviceStatus, UnitState
from tests.device_drivers.emtt.conftest import SPEED
from tests.device_drivers.emtt.emtt_helpers import Inbox, Wire, sent_lines, session_params, wait_for

HZ = 10  # pulses per simulated second in these tests
WATCHDOG_S = 1.0  # the unit's, simulated


@pytest.fixture
def hosts(fast_server: EmttTcpServer) -> Iterator[list[EmttDriver]]:
    """Drivers opened by a test, closed after it."""
    opened: list[EmttDriver] = []
    yield opened
    for driver in opened:
        driver.close()


def open_host(server: EmttTcpServer, hosts: list[EmttDriver], **kw: Any) -> EmttDriver:
    driver = EmttDriver(server.resource, heartbeat_interval_s=0.3 / SPEED, **kw)
    hosts.append(driver)
    return driver


def treating(server: EmttTcpServer, sim: EmttSimulator, hosts: list[EmttDriver]) -> EmttDriver:
    """The console that treats: it armed and started a long delivery."""
    driver = open_host(server, hosts)
    driver.load_parameters(session_params(freq=str(HZ), pulses=4000))
    driver.arm()
    driver.start()
    time.sleep(0.05)
    assert sim.snapshot().state == "DELIVERING"
    return driver


def status_read(log: CommLog) -> tuple[str, int]:
    """State and count of the last ``SESS:STAT?`` answer a host received, from its comm log."""
    answers = [r.data.decode().strip() for r in log.records() if r.direction == "rx"]
    state, delivered = answers[-1].split(",")[:2]
    return state, int(delivered)


# --- a second host ----------------------------------------------------------------------------
@pytest.mark.req("EMTT-HOST-1", "EMTT-HB-1", "EMTT-SIM-4")
def test_second_host_connecting_mid_delivery_is_refused_and_unit_stops(
    fast_server: EmttTcpServer, fast_simulator: EmttSimulator, hosts: list[EmttDriver]
) -> None:
    """The defect: a second console's Connect (or `device info`) replaced the treating host and
    its heartbeats kept the unit delivering unsupervised (recorded 96, delivered 424)."""
    treating(fast_server, fast_simulator, hosts)
    log = CommLog()
    beats = fast_simulator.stats().heartbeats_received
    with pytest.raises(UnitInTreatment) as refused:
        EmttDriver(fast_server.resource, heartbeat_interval_s=0.3 / SPEED, commlog=log)
    message = str(refused.value)
    assert message.startswith("this unit is in another console's treatment (state DELIVERING): ")
    assert "\n" not in message and "watchdog stops it within 1 s" in message
    assert refused.value.state is UnitState.DELIVERING
    assert sent_lines(log) == ["*IDN?", "SESS:STAT?"]  # read the state; nothing else, no *CLS
    state, seen = status_read(log)
    assert state == "DELIVERING"

    wait_for(lambda: fast_simulator.snapshot().state == "FAULT", timeout=2.0, what="the trip")
    tripped = fast_simulator.snapshot()
    assert tripped.fault_code == c.WATCHDOG_EXPIRED
    # the newcomer's SESS:STAT? was the last line the unit heard (it fed the watchdog once more,
    # as any line does); the unit stopped one watchdog period later: at 10 Hz at most 11 pulses
    # after the count it read. Nothing kept it alive.
    assert 0 <= tripped.delivered - seen <= HZ * WATCHDOG_S + 1
    assert fast_simulator.stats().heartbeats_received == beats  # none since the treating host's
    time.sleep(0.1)
    truth = fast_simulator.stats().pulses_fired_total
    assert truth == tripped.delivered == fast_simulator.snapshot().delivered

    # the treating console reconnects (takeover: it is its own session) and reads the count
    again = open_host(fast_server, hosts, takeover=True)
    status = again.status()
    assert (status.state, status.fault_code, status.delivered) == (
        UnitState.FAULT,
        c.WATCHDOG_EXPIRED,
        truth,
    )


@pytest.mark.req("EMTT-HOST-1")
@pytest.mark.parametrize("state", [UnitState.ARMED, UnitState.PAUSED])
def test_opening_an_armed_or_paused_unit_is_refused_without_changing_it(
    fast_server: EmttTcpServer, fast_simulator: EmttSimulator, state: UnitState
) -> None:
    wire = Wire(fast_server.port)  # a raw host that armed the unit and then went quiet
    try:
        wire.send("SOUR:FIEL 40;FREQ 10;PULS 4000;:SESS:ARM")
        if state is UnitState.PAUSED:
            wire.send("SESS:STAR;PAUS")
        assert wire.state() == state.value
        wire.send("*CLS;SOUR:FIEL 45")  # an error of the treating host's, left in the queue
        with pytest.raises(UnitInTreatment, match=f"state {state.value}") as refused:
            EmttDriver(fast_server.resource, heartbeat_interval_s=0.3 / SPEED)
        assert refused.value.state is state
        wait_for(lambda: fast_simulator.snapshot().state == "FAULT", timeout=1.0)
        snap = fast_simulator.snapshot()
        assert snap.fault_code == c.WATCHDOG_EXPIRED  # not stopped by the newcomer: its watchdog
        # not even the treating host's error queue was cleared (no *CLS): -221, then the 203
        assert snap.error_queue == (c.SETTINGS_CONFLICT, c.WATCHDOG_EXPIRED)
    finally:
        wire.close()


@pytest.mark.req("EMTT-HOST-2", "EMTT-HB-1")
def test_treating_console_reconnecting_with_takeover_stops_the_unit_and_reads_the_count(
    fast_server: EmttTcpServer, fast_simulator: EmttSimulator, hosts: list[EmttDriver]
) -> None:
    treating(fast_server, fast_simulator, hosts)
    log = CommLog()
    again = open_host(fast_server, hosts, takeover=True, commlog=log)
    assert again.status().state is UnitState.DELIVERING
    count = again.stop()
    snap = fast_simulator.snapshot()
    assert (snap.state, snap.delivered) == ("IDLE", count)
    assert count == fast_simulator.stats().pulses_fired_total > 0
    assert "SYST:HEAR" not in sent_lines(log)


@pytest.mark.req("EMTT-HB-1")
def test_a_driver_that_did_not_arm_never_heartbeats_and_its_polls_do_not_keep_the_unit_alive(
    fast_server: EmttTcpServer, fast_simulator: EmttSimulator, hosts: list[EmttDriver]
) -> None:
    """A status poll is a line and every line feeds the watchdog: a 10 ms stream on a taken-over
    delivery would keep it alive as surely as heartbeats. It is slowed to twice the watchdog."""
    treating(fast_server, fast_simulator, hosts)
    log = CommLog()
    watcher = open_host(fast_server, hosts, takeover=True, commlog=log)
    inbox = Inbox()
    watcher.add_listener(inbox)
    watcher.start_status_stream(0.01)
    wait_for(lambda: fast_simulator.snapshot().state == "FAULT", timeout=1.0, what="the trip")
    assert fast_simulator.snapshot().fault_code == c.WATCHDOG_EXPIRED
    lines = sent_lines(log)
    assert "SYST:HEAR" not in lines
    assert lines.count("SESS:STAT?") <= 3  # the opening read and the stream's first poll
    assert [s.state for s in inbox.of(DeviceStatus)] == [UnitState.DELIVERING]
    # once the unit is out of the watched states the stream runs at its own period again
    wait_for(lambda: inbox.of(DeviceStatus)[-1].state is UnitState.FAULT, timeout=3.0)
    polled = len(inbox.of(DeviceStatus))
    time.sleep(0.2)
    assert len(inbox.of(DeviceStatus)) > polled + 5


@pytest.mark.req("EMTT-CLOSE-2")
def test_closing_a_taken_over_driver_leaves_the_unit_to_its_watchdog(
    fast_server: EmttTcpServer, fast_simulator: EmttSimulator, hosts: list[EmttDriver]
) -> None:
    """close() used to stop whatever it found: a driver may only make safe what it armed."""
    treating(fast_server, fast_simulator, hosts)
    log = CommLog()
    EmttDriver(
        fast_server.resource, heartbeat_interval_s=0.3 / SPEED, takeover=True, commlog=log
    ).close()
    assert sent_lines(log) == ["*IDN?", "SESS:STAT?", "*CLS"]  # no heartbeat, stop or abort
    wait_for(lambda: fast_simulator.snapshot().state == "FAULT", timeout=1.0, what="the trip")
    assert fast_simulator.snapshot().fault_code == c.WATCHDOG_EXPIRED


# --- a lost START confirmation ----------------------------------------------------------------
@pytest.mark.req("EMTT-SIM-5", "EMTT-HB-1")
def test_lost_start_confirmation_times_out_while_the_unit_delivers_and_the_driver_keeps_supervising(
    fast_server: EmttTcpServer, fast_simulator: EmttSimulator, hosts: list[EmttDriver]
) -> None:
    """The defect: a lost START reply left the workflow "armed" while the unit delivered the
    whole dose. The driver's part: start() times out, the unit delivers (started once), the
    driver that armed it keeps it supervised, and pause and stop work."""
    log = CommLog()
    driver = open_host(fast_server, hosts, commlog=log)
    driver.load_parameters(session_params(freq=str(HZ), pulses=4000))
    driver.arm()
    # the error queue read after SESS:STAR and the state read after it, each with its retries
    # (three attempts, the later ones resynchronising first): six answers in all
    fast_simulator.drop_reply_to("SESS:STAR", times=6)
    with pytest.raises(LinkTimeout):
        driver.start()
    assert fast_simulator.snapshot().state == "DELIVERING"
    assert fast_simulator.stats().responses_dropped == 6
    assert sent_lines(log).count("SESS:STAR") == 1
    assert driver.status().state is UnitState.DELIVERING
    time.sleep(3 * WATCHDOG_S / SPEED)  # three watchdog periods without a command
    assert fast_simulator.snapshot().state == "DELIVERING"
    assert sent_lines(log).count("SYST:HEAR") >= 5
    paused = driver.pause()
    assert fast_simulator.snapshot().state == "PAUSED"
    count = driver.stop()
    assert count == paused == fast_simulator.stats().pulses_fired_total > 0
    assert fast_simulator.snapshot().state == "IDLE"


@pytest.mark.req("EMTT-SIM-5")
def test_drop_reply_to_loses_the_answers_after_that_header(
    wire: Wire, simulator: EmttSimulator
) -> None:
    wire.send("SOUR:FIEL 40;FREQ 10;PULS 4000;:SESS:ARM")
    simulator.drop_reply_to("SESSion:STARt", times=1)
    assert wire.query("*OPC?") == "1"  # nothing is lost before the header comes
    wire.send("sess:star")
    wire.send("SYST:ERR?")  # the answer after it is lost …
    with pytest.raises(TimeoutError):
        wire.read(timeout=0.2)
    assert wire.query("SYST:ERR?") == '0,"No error"'  # … the next one is not
    assert wire.state() == "DELIVERING"
    simulator.drop_reply_to("SESS:STAT?", times=2)  # a query's own answer is the first lost
    wire.send("SESS:STAT?;*OPC?")
    wire.send("*IDN?")
    with pytest.raises(TimeoutError):
        wire.read(timeout=0.2)
    assert wire.query("*OPC?") == "1"
    assert simulator.stats().responses_dropped == 3
    with pytest.raises(ValueError, match="not one EMTT header"):
        simulator.drop_reply_to("SESS:FIRE")


# --- ground truth across power cycles ---------------------------------------------------------
@pytest.mark.req("EMTT-SIM-4")
def test_pulses_fired_total_and_the_applicator_counter_survive_a_power_cycle_mid_delivery(
    fast_server: EmttTcpServer, fast_simulator: EmttSimulator, hosts: list[EmttDriver]
) -> None:
    fast_simulator.fit_applicator(pulses_used=1000)
    driver = treating(fast_server, fast_simulator, hosts)
    time.sleep(0.1)
    fast_simulator.power_cycle()  # a reset mid-delivery: the unit forgets its count …
    after = fast_simulator.snapshot()
    assert (after.state, after.delivered, after.log_size) == ("IDLE", 0, 0)
    assert after.uptime_s < 0.1
    fired = fast_simulator.stats().pulses_fired_total
    assert fired > 0  # … the ground truth and the applicator do not
    assert after.applicator is not None and after.applicator.pulses_used == 1000 + fired
    assert driver.applicator().shots_used == 1000 + fired
    time.sleep(0.05)
    assert fast_simulator.stats().pulses_fired_total == fired  # nothing fires after the reset
    driver.load_parameters(session_params(freq=str(HZ), pulses=5))
    driver.arm()
    driver.start()
    wait_for(lambda: fast_simulator.snapshot().state == "COMPLETE", timeout=3.0)
    assert fast_simulator.stats().pulses_fired_total == fired + 5
    assert driver.applicator().shots_used == 1000 + fired + 5


# --- one process, several drivers ---------------------------------------------------------------
@pytest.mark.req("EMTT-LINK-2", "EMTT-HOST-1")
def test_a_refused_driver_closing_does_not_cut_the_treating_drivers_link_in_the_same_process(
    fast_server: EmttTcpServer, fast_simulator: EmttSimulator, hosts: list[EmttDriver]
) -> None:
    """Closing a driver used to close pyvisa's resource manager, which is shared by the whole
    process: every other EMTT session died with it (InvalidSession, a raw pyvisa error, in the
    treating driver's heartbeat thread). The unit is served on a second port so that the
    newcomer does not replace the treating host on the wire: only the process is shared."""
    first = treating(fast_server, fast_simulator, hosts)
    with EmttTcpServer(fast_simulator) as second_port:
        with pytest.raises(UnitInTreatment):
            EmttDriver(second_port.resource, heartbeat_interval_s=0.3 / SPEED)
        time.sleep(3 * WATCHDOG_S / SPEED)  # three watchdog periods: the heartbeats go on
    assert fast_simulator.snapshot().state == "DELIVERING"
    assert first.status().state is UnitState.DELIVERING
    assert first.stop() == fast_simulator.stats().pulses_fired_total > 0


# --- serial ports -----------------------------------------------------------------------------
@pytest.mark.req("EMTT-LINK-3", "EMTT-SIM-3")
def test_a_second_program_opening_the_serial_port_mid_delivery_is_refused() -> None:
    simulator = EmttSimulator(speed=SPEED, seed=11)
    with EmttPtyServer(simulator) as pty:
        first = EmttDriver(pty.resource, heartbeat_interval_s=0.3 / SPEED)
        try:
            first.load_parameters(session_params(freq=str(HZ), pulses=4000))
            first.arm()
            first.start()
            with pytest.raises(LinkLost) as refused:
                EmttDriver(pty.resource, heartbeat_interval_s=0.3 / SPEED)
            assert str(refused.value) == (
                f"serial port {pty.resource!r} is in use by another program (another console "
                "or a service tool has it open); close that program first"
            )
            time.sleep(3 * WATCHDOG_S / SPEED)  # the owner's link and heartbeats are untouched
            assert simulator.snapshot().state == "DELIVERING"
            assert first.status().state is UnitState.DELIVERING
        finally:
            first.close()
        with EmttDriver(pty.resource, heartbeat_interval_s=0.3 / SPEED) as again:
            assert again.status().state is UnitState.IDLE  # free once closed
