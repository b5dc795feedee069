"""EVENT frames, their order and the event log; the STATUS stream; power-up."""

from __future__ import annotations

import itertools
import time

import pytest

from device_drivers.epat.constants import Command, EventCode, Fault, State, Unsolicited
from device_drivers.epat.eventlog import EventLog
from device_drivers.epat.payloads import EventRecord, StatusBlock, pack_uint, unpack_events
from tests.device_drivers.epat.epat_helpers import RawHost, UnitFactory, events_of, params

STATE, FAULT, DONE = EventCode.STATE_CHANGE, EventCode.FAULT, EventCode.COMPLETION


def read_log(host: RawHost, start: int = 0) -> list[EventRecord]:
    out: list[EventRecord] = []
    index = start
    while True:
        page = unpack_events(host.ack(Command.READ_EVENTS, pack_uint(index, 2, "from")))
        out += page
        if len(page) < 16:
            return out
        index = (page[-1].index + 1) & 0xFFFF


@pytest.mark.req("EPAT-EVENT-1", "EPAT-ESTOP-1")
def test_estop_events_come_before_its_ack_fault_first(make_unit: UnitFactory) -> None:
    unit = make_unit(speed=10)
    host = unit.raw()
    host.fire(250, 210, 1000)
    host.listen(0.03, heartbeat_every=0.01)
    ex = host.exchange(Command.ESTOP)
    assert ex.events == [(FAULT, Fault.ESTOP), (STATE, State.FAULT)]
    delivered = int.from_bytes(ex.reply.payload, "little")
    host.listen(0.05)
    status = host.status()
    assert (status.state, status.faults, status.delivered) == (State.FAULT, Fault.ESTOP, delivered)


@pytest.mark.req("EPAT-EVENT-1")
def test_completion_sends_state_change_then_completion(make_unit: UnitFactory) -> None:
    unit = make_unit(speed=10)
    host = unit.raw()
    host.fire(250, 210, 20)
    frames = host.listen(0.2, heartbeat_every=0.01)
    assert events_of(frames) == [(STATE, State.COMPLETE), (DONE, 20)]


@pytest.mark.req("EPAT-EVENT-1", "EPAT-ESTOP-1")
def test_estop_in_fault_raises_no_event_unless_the_bits_change(make_unit: UnitFactory) -> None:
    unit = make_unit(speed=10)
    host = unit.raw()
    host.ack(Command.ESTOP)
    assert host.exchange(Command.ESTOP).events == []  # same bits: acknowledged silently
    host.ack(Command.CLEAR_FAULT)
    host.ack(Command.SET_PARAMS, params())
    host.ack(Command.ARM)
    host.listen(0.1)  # silent host: the watchdog trips (50 ms wall)
    assert host.state() == State.FAULT
    ex = host.exchange(Command.ESTOP)
    assert ex.events == [(FAULT, Fault.COMM_LOSS | Fault.ESTOP)]  # bits changed, state did not


@pytest.mark.req("EPAT-EVENT-1", "EPAT-FAULT-2")
def test_worn_out_on_the_last_pulse_is_a_fault_not_completion(make_unit: UnitFactory) -> None:
    unit = make_unit(speed=10, applicator_shots_used=1_000_000 - 10)
    host = unit.raw()
    host.fire(250, 210, 10)  # exactly the remaining life
    frames = host.listen(0.15, heartbeat_every=0.01)
    assert events_of(frames) == [(FAULT, Fault.APPLICATOR_WORN), (STATE, State.FAULT)]
    status = host.status()
    assert (status.state, status.delivered, status.shots_used) == (State.FAULT, 10, 1_000_000)


@pytest.mark.req("EPAT-EVENT-1", "EPAT-FAULT-2")
def test_wearing_out_mid_treatment_stops_at_that_pulse(make_unit: UnitFactory) -> None:
    unit = make_unit(speed=10)
    host = unit.raw()
    host.fire(250, 210, 1000)
    host.listen(0.02, heartbeat_every=0.01)
    unit.sim.wear_out_applicator(remaining=5)
    at_wear = unit.sim.snapshot().delivered
    frames = host.listen(0.1, heartbeat_every=0.01)
    assert events_of(frames) == [(FAULT, Fault.APPLICATOR_WORN), (STATE, State.FAULT)]
    assert host.status().delivered == at_wear + 5


@pytest.mark.req("EPAT-EVENT-2")
def test_event_log_holds_exactly_the_event_frames_and_pages_by_16(make_unit: UnitFactory) -> None:
    unit = make_unit()
    host = unit.raw()
    sent = []
    for _ in range(12):  # 24 state changes
        sent += host.exchange(Command.SET_PARAMS, params()).events
        sent += host.exchange(Command.DISARM).events
    log = read_log(host)
    assert [r.index for r in log] == list(range(24))
    assert [(r.code, r.data) for r in log] == sent
    assert all(a.uptime_ms <= b.uptime_ms for a, b in itertools.pairwise(log))
    first_page = unpack_events(host.ack(Command.READ_EVENTS, pack_uint(0, 2, "from")))
    assert len(first_page) == 16
    rest = unpack_events(host.ack(Command.READ_EVENTS, pack_uint(16, 2, "from")))
    assert [r.index for r in rest] == list(range(16, 24))  # fewer than 16: the end
    assert unpack_events(host.ack(Command.READ_EVENTS, pack_uint(24, 2, "from"))) == []


@pytest.mark.req("EPAT-EVENT-2")
def test_event_log_keeps_the_last_256(make_unit: UnitFactory) -> None:
    unit = make_unit()
    host = unit.raw()
    for _ in range(150):  # 300 events
        host.ack(Command.SET_PARAMS, params())
        host.ack(Command.DISARM)
    log = read_log(host)
    assert [r.index for r in log] == list(range(44, 300))


@pytest.mark.req("EPAT-EVENT-2")
def test_event_index_wraps_after_65535_without_skipping_or_repeating() -> None:
    log = EventLog()
    for i in range(65536 + 20):
        log.append(i, 1, i % 7)
    held = log.records()
    assert len(held) == 256
    assert held[-1].index == 19
    assert held[0].index == (65536 + 20 - 256) % 65536
    # paging with "last index + 1" crosses the wrap and ends after index 19
    pages, index = [], held[0].index
    while True:
        page = log.read(index)
        pages += page
        if len(page) < 16:
            break
        index = (page[-1].index + 1) & 0xFFFF
    assert pages == held
    assert log.read(20) == []  # the next index to be written: nothing yet
    assert [r.index for r in log.read(0)] == list(range(16))
    # before any wrap, "index >= from" is literal
    fresh = EventLog()
    for i in range(5):
        fresh.append(i, 1, 0)
    assert fresh.read(40000) == []
    assert [r.index for r in fresh.read(3)] == [3, 4]


@pytest.mark.req("EPAT-STREAM-1")
def test_status_stream_first_frame_one_period_after_set_stream(make_unit: UnitFactory) -> None:
    unit = make_unit()
    host = unit.raw()
    sent_at = time.monotonic()
    host.ack(Command.SET_STREAM, pack_uint(100, 2, "period"))
    host.listen(0.55)
    times = [t for t, f in host.received if f.cmd == Unsolicited.STATUS]
    assert 4 <= len(times) <= 6
    # the unit keeps an absolute schedule: frame k is due k+1 periods after SET_STREAM; a busy
    # host may read it late, never early
    for k, t in enumerate(times):
        assert -0.005 < t - (sent_at + 0.100 * (k + 1)) < 0.060, (k, t - sent_at)
    for _, frame in host.received:
        if frame.cmd == Unsolicited.STATUS:
            assert StatusBlock.unpack(frame.payload).state == State.IDLE
    host.ack(Command.SET_STREAM, pack_uint(0, 2, "period"))
    host.received.clear()
    host.listen(0.25)
    assert not [f for _, f in host.received if f.cmd == Unsolicited.STATUS]


@pytest.mark.req("EPAT-STREAM-1")
def test_stream_setting_survives_a_new_host_but_not_a_power_cycle(make_unit: UnitFactory) -> None:
    unit = make_unit()
    first = unit.raw()
    first.ack(Command.SET_STREAM, pack_uint(20, 2, "period"))
    second = unit.raw()  # replaces the first host
    assert [f for f in second.listen(0.1) if f.cmd == Unsolicited.STATUS]
    unit.sim.power_cycle()
    second.listen(0.05)
    assert [f for f in second.listen(0.15) if f.cmd == Unsolicited.STATUS] == []


@pytest.mark.req("EPAT-SIM-2")
def test_power_cycle_resets_the_unit_but_not_the_applicator_wear(make_unit: UnitFactory) -> None:
    unit = make_unit(speed=20)
    host = unit.raw()
    host.fire(250, 210, 30)
    host.listen(0.15, heartbeat_every=0.005)
    host.send_raw(b"\xa5\x02\x01\x02\x00\x00")  # valid LEN, wrong CRC
    host.listen(0.02)
    before = host.status()
    assert before.shots_used == 30 and before.crc_errors == 1 and before.uptime_s >= 2
    unit.sim.power_cycle()
    after = host.status()
    assert (after.state, after.delivered, after.target, after.crc_errors) == (State.IDLE, 0, 0, 0)
    assert after.uptime_s == 0
    assert after.shots_used == 30
    assert read_log(host) == []
    # the same host connection keeps working
    host.ack(Command.SET_PARAMS, params())
    assert [r.index for r in read_log(host)] == [0]
