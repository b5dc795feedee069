"""Who supervises a treatment (issue 10): a second host opening a unit in treatment is refused and
keeps nothing alive, the treating console takes over to stop it, heartbeats come only from the
driver that armed, serial ports are exclusive; and the simulator's ground truth for all of it:
the cumulative fired count across power cycles, and the deterministic lost reply."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest

from device_drivers.commlog import CommLog
from device_drivers.epat.codec import decode_frames
from device_drivers.epat.constants import Command, EventCode, Fault, Reply, State
from device_drivers.epat.driver import EpatDriver
from device_drivers.epat.payloads import StatusBlock
from device_drivers.errors import LinkLost, LinkTimeout, UnitInTreatment
from device_drivers.interface import DeviceParameters, DeviceStatus, LinkDown, UnitState
from tests.device_drivers.epat.epat_helpers import SPEED, Unit, UnitFactory, params

#: The unit's watchdog in simulated ms, and the pulse rate of these tests (pulses per simulated s).
WATCHDOG_MS = 500
HZ = 21


def epat(pulses: int = 5000) -> DeviceParameters:
    return DeviceParameters(Decimal(f"{HZ}.0"), pulses, pressure_bar=Decimal("2.50"))


def sent(log: CommLog) -> list[int]:
    """The commands a host wrote, in order, from its communication log."""
    return [f.cmd for r in log.records() if r.direction == "tx" for f in decode_frames(r.data)]


def status_read(log: CommLog) -> StatusBlock:
    """The last status block a host received (its GET_STATUS reply), from its comm log."""
    blocks = [
        StatusBlock.unpack(f.payload)
        for r in log.records()
        if r.direction == "rx"
        for f in decode_frames(r.data)
        if f.cmd == Reply.ACK and len(f.payload) == StatusBlock.size()
    ]
    return blocks[-1]


def treating(unit: Unit) -> tuple[EpatDriver, threading.Event]:
    """The console that treats: it armed and started a long delivery; the event says it lost
    its link."""
    driver = unit.driver()
    lost = threading.Event()
    driver.add_listener(lambda m: lost.set() if isinstance(m, LinkDown) else None)
    driver.load_parameters(epat())
    driver.arm()
    driver.start()
    time.sleep(0.05)
    assert unit.sim.snapshot().state is State.FIRING
    return driver, lost


def newcomer(unit: Unit, url: str | None = None, **kw: object) -> EpatDriver:
    return EpatDriver(url or unit.url, heartbeat_interval_s=0.1 / SPEED, **kw)  # type: ignore[arg-type]


# --- a second host ----------------------------------------------------------------------------
@pytest.mark.req("EPAT-HOST-1", "EPAT-HB-2", "EPAT-SIM-3")
def test_second_host_connecting_mid_delivery_is_refused_and_unit_stops(
    make_unit: UnitFactory,
) -> None:
    """The defect: a second console's Connect (or `device info`) replaced the treating host and
    its heartbeats kept the unit firing unsupervised (recorded 96, delivered 424)."""
    unit = make_unit(speed=SPEED)
    first, first_lost = treating(unit)
    log = CommLog()
    beats = unit.sim.stats().heartbeats_received
    with pytest.raises(UnitInTreatment) as refused:
        newcomer(unit, commlog=log)
    message = str(refused.value)
    assert message.startswith("this unit is in another console's treatment (state FIRING): ")
    assert "\n" not in message and "watchdog stops it within 500 ms" in message
    assert refused.value.state is UnitState.DELIVERING
    assert sent(log) == [Command.HELLO, Command.GET_STATUS]  # read the state; nothing else
    assert first_lost.wait(1.0)  # one host at a time: the newcomer replaced the treating host

    tripped = unit.wait_for(lambda s: s.state is State.FAULT, timeout=2.0)
    assert tripped.faults == Fault.COMM_LOSS
    # the newcomer's GET_STATUS was the last frame the unit heard (it fed the watchdog once
    # more, as any valid frame does); the unit stopped one watchdog period later: at 21 Hz at
    # most 11 pulses after the count that GET_STATUS read. Nothing kept it alive.
    seen = status_read(log)
    assert seen.state == State.FIRING
    assert 0 <= tripped.delivered - seen.delivered <= HZ * WATCHDOG_MS // 1000 + 1
    assert unit.sim.stats().heartbeats_received == beats  # none since the treating host's
    time.sleep(0.1)  # half a simulated second more: nothing fires in FAULT
    truth = unit.sim.stats().pulses_fired_total
    assert truth == tripped.delivered == unit.sim.snapshot().delivered

    # the treating console reconnects (takeover: it is its own session) and reads the count
    with pytest.raises(LinkLost):
        first.status()
    again = unit.driver(takeover=True)
    status = again.status()
    assert (status.state, status.faults, status.delivered) == (
        UnitState.FAULT,
        ("COMM_LOSS",),
        truth,
    )


@pytest.mark.req("EPAT-HOST-1")
@pytest.mark.parametrize(
    ("state", "reported"),
    [
        (State.ARMED, UnitState.ARMED),
        (State.FIRING, UnitState.DELIVERING),
        (State.PAUSED, UnitState.PAUSED),
    ],
)
def test_opening_a_unit_armed_firing_or_paused_is_refused_without_changing_it(
    make_unit: UnitFactory, state: State, reported: UnitState
) -> None:
    unit = make_unit(speed=SPEED)
    unit.raw().bring_to(state, params(250, 210, 5000))  # a treating host that then went quiet
    events = len(unit.sim.event_records())
    executed = unit.sim.stats().commands_executed
    with pytest.raises(UnitInTreatment, match=f"state {state.name}") as refused:
        newcomer(unit)
    assert refused.value.state is reported
    assert unit.sim.stats().commands_executed == executed + 2  # HELLO and GET_STATUS only
    # not stopped, not disarmed (not its treatment): the silent raw host's watchdog ends it
    tripped = unit.wait_for(lambda s: s.state is State.FAULT, timeout=1.0)
    assert tripped.faults == Fault.COMM_LOSS
    changes = [
        (e.code, e.data) for e in unit.sim.event_records()[events:] if e.code != EventCode.FAULT
    ]
    assert changes == [(EventCode.STATE_CHANGE, State.FAULT)]


@pytest.mark.req("EPAT-HOST-2", "EPAT-HB-2")
def test_treating_console_reconnecting_with_takeover_stops_the_unit_and_reads_the_count(
    make_unit: UnitFactory,
) -> None:
    unit = make_unit(speed=SPEED)
    treating(unit)
    log = CommLog()
    again = unit.driver(takeover=True, commlog=log)  # the treating console, after a lost link
    assert again.status().state is UnitState.DELIVERING
    count = again.stop()
    snap = unit.sim.snapshot()
    assert (snap.state, snap.delivered) == (State.IDLE, count)
    assert count == unit.sim.stats().pulses_fired_total > 0
    assert Command.HEARTBEAT not in sent(log)


@pytest.mark.req("EPAT-HB-2")
def test_a_driver_that_did_not_arm_never_heartbeats(make_unit: UnitFactory) -> None:
    """A taken-over delivery is watched (the STATUS stream is the unit's own traffic) but not
    kept alive: the unit's watchdog stops it."""
    unit = make_unit(speed=SPEED)
    treating(unit)
    log = CommLog()
    watcher = unit.driver(takeover=True, commlog=log)
    beats = unit.sim.stats().heartbeats_received
    statuses: list[DeviceStatus] = []
    watcher.add_listener(lambda m: statuses.append(m) if isinstance(m, DeviceStatus) else None)
    watcher.start_status_stream(0.02)
    tripped = unit.wait_for(lambda s: s.state is State.FAULT, timeout=1.0)
    assert tripped.faults == Fault.COMM_LOSS
    time.sleep(0.1)
    assert Command.HEARTBEAT not in sent(log)
    assert unit.sim.stats().heartbeats_received == beats
    assert statuses and statuses[-1].state is UnitState.FAULT  # it saw the trip happen
    assert watcher.unit_state_seen is UnitState.FAULT


@pytest.mark.req("EPAT-CLOSE-2")
def test_closing_a_taken_over_driver_leaves_the_unit_to_its_watchdog(
    make_unit: UnitFactory,
) -> None:
    """close() used to stop whatever it found: a driver may only make safe what it armed."""
    unit = make_unit(speed=SPEED)
    treating(unit)
    log = CommLog()
    unit.driver(takeover=True, commlog=log).close()
    assert sent(log) == [Command.HELLO, Command.GET_STATUS]  # no HEARTBEAT, STOP or DISARM
    tripped = unit.wait_for(lambda s: s.state is State.FAULT, timeout=1.0)
    assert tripped.faults == Fault.COMM_LOSS


@pytest.mark.req("EPAT-CLOSE-2")
def test_closing_a_driver_that_only_looked_leaves_a_loaded_unit_loaded(
    make_unit: UnitFactory,
) -> None:
    unit = make_unit(speed=SPEED)
    host = unit.raw()
    host.ack(Command.SET_PARAMS, params())
    log = CommLog()
    newcomer(unit, commlog=log).close()  # READY is nobody's treatment: opened, not refused
    assert unit.sim.snapshot().state is State.READY
    assert Command.DISARM not in sent(log)


# --- serial ports -----------------------------------------------------------------------------
@pytest.mark.req("EPAT-LINK-3", "EPAT-LINK-2")
def test_a_second_program_opening_the_serial_port_mid_delivery_is_refused(
    make_unit: UnitFactory,
) -> None:
    unit = make_unit(speed=SPEED, pty=True)
    assert unit.pty is not None
    first = unit.driver(unit.pty.path)
    first.load_parameters(epat())
    first.arm()
    first.start()
    with pytest.raises(LinkLost) as refused:
        newcomer(unit, unit.pty.path)
    message = str(refused.value)
    assert "\n" not in message
    assert message == (
        f"serial port {unit.pty.path!r} is in use by another program (another console or a "
        "service tool has it open); close that program first"
    )
    time.sleep(0.3)  # three watchdog periods: the owner's link and heartbeats are untouched
    assert first.status().state is UnitState.DELIVERING
    assert unit.sim.snapshot().state is State.FIRING
    first.close()
    assert newcomer(unit, unit.pty.path).status().state is UnitState.IDLE  # free once closed


# --- a lost START reply -----------------------------------------------------------------------
@pytest.mark.req("EPAT-SIM-4", "EPAT-HB-2", "EPAT-RETRY-2")
def test_lost_start_reply_times_out_while_the_unit_fires_and_the_driver_keeps_supervising(
    make_unit: UnitFactory,
) -> None:
    """The defect: a lost START reply left the workflow "armed" while the unit delivered the
    whole dose. The driver's part: START times out, the unit fires (once), the driver that
    armed it keeps it supervised, and pause and stop work.

    Real time: while START is retried (3 × 80 ms, wall) only its retries feed the watchdog;
    at speed 5 the watchdog (100 ms wall) would leave no margin on a loaded machine."""
    unit = make_unit(speed=1)
    log = CommLog()
    driver = unit.driver(commlog=log)
    driver.load_parameters(epat())
    driver.arm()
    unit.sim.drop_reply_to("START", times=driver._channel.retries + 1)  # every attempt
    with pytest.raises(LinkTimeout, match="no reply to START"):
        driver.start()
    assert unit.sim.snapshot().state is State.FIRING
    assert driver.status().state is UnitState.DELIVERING
    starts = [
        f.seq
        for r in log.records()
        if r.direction == "tx"
        for f in decode_frames(r.data)
        if f.cmd == Command.START
    ]
    assert len(starts) == 3 and len(set(starts)) == 1  # retried with the same SEQ only
    assert unit.sim.stats().replies_dropped == 3
    assert unit.sim.stats().retries_from_cache == 2  # executed once
    time.sleep(1.5)  # three watchdog periods without a command: the heartbeats carry it
    assert unit.sim.snapshot().state is State.FIRING
    assert sent(log).count(Command.HEARTBEAT) >= 5
    paused = driver.pause()
    assert unit.sim.snapshot().state is State.PAUSED
    count = driver.stop()
    assert count == paused == unit.sim.stats().pulses_fired_total > 0
    assert unit.sim.snapshot().state is State.IDLE


@pytest.mark.req("EPAT-SIM-4")
def test_drop_reply_to_loses_exactly_the_replies_to_that_command(make_unit: UnitFactory) -> None:
    unit = make_unit(speed=1)  # real time: the raw host's retries alone feed the watchdog
    host = unit.raw()
    host.ack(Command.SET_PARAMS, params(250, 210, 5000))
    host.ack(Command.ARM)
    unit.sim.drop_reply_to("start", times=2)
    assert host.ack(Command.HEARTBEAT) == bytes([State.ARMED])  # other commands: answered
    seq = host.send(Command.START)
    for _ in range(2):  # the first reply and the first retry's are lost …
        with pytest.raises(AssertionError, match="no reply"):
            host.wait_reply(seq, timeout=0.06)
        host.send(Command.START, seq=seq)
    assert host.wait_reply(seq).reply.cmd == Reply.ACK  # … the second retry's is not
    stats = unit.sim.stats()
    assert (stats.replies_dropped, stats.retries_from_cache) == (2, 2)
    assert unit.sim.snapshot().state is State.FIRING
    assert host.state() == State.FIRING  # and the next command is answered as usual
    with pytest.raises(ValueError, match="unknown EPAT command 'FIRE'"):
        unit.sim.drop_reply_to("FIRE")


# --- ground truth across power cycles ---------------------------------------------------------
@pytest.mark.req("EPAT-SIM-3", "EPAT-SIM-2")
def test_pulses_fired_total_and_the_applicator_counter_survive_a_power_cycle_mid_delivery(
    make_unit: UnitFactory,
) -> None:
    unit = make_unit(speed=SPEED, applicator_shots_used=1000)
    driver = unit.driver()
    driver.load_parameters(epat())
    driver.arm()
    driver.start()
    time.sleep(0.1)
    unit.sim.power_cycle()  # a reset mid-delivery: the unit forgets its count …
    after = unit.sim.snapshot()
    assert (after.state, after.delivered, after.events_logged) == (State.IDLE, 0, 0)
    assert after.uptime_s < 0.1
    fired = unit.sim.stats().pulses_fired_total
    assert fired > 0  # … the ground truth and the applicator do not
    assert after.shots_used == 1000 + fired
    assert driver.applicator().shots_used == 1000 + fired
    time.sleep(0.05)
    assert unit.sim.stats().pulses_fired_total == fired  # nothing fires after the reset
    driver.load_parameters(epat(20))
    driver.arm()
    driver.start()
    unit.wait_for(lambda s: s.state is State.COMPLETE, timeout=2.0)
    assert unit.sim.stats().pulses_fired_total == fired + 20
    assert driver.applicator().shots_used == 1000 + fired + 20
