"""The unit's retry cache at the raw-frame level: a repeated SEQ+CMD re-sends the previous
reply without executing; any other frame ends the window; HELLO and power-up clear it."""

from __future__ import annotations

import time

import pytest

from device_drivers.epat.constants import Command, Nak, Reply, State
from device_drivers.epat.payloads import StatusBlock
from tests.device_drivers.epat.epat_helpers import UnitFactory, params


@pytest.mark.req("EPAT-RETRY-1")
def test_repeated_start_is_answered_from_the_cache_and_not_executed(
    make_unit: UnitFactory,
) -> None:
    unit = make_unit()
    host = unit.raw()
    host.ack(Command.SET_PARAMS, params())
    host.ack(Command.ARM)
    first = host.exchange(Command.START, seq=40)
    executed = unit.sim.stats().commands_executed
    again = host.exchange(Command.START, seq=40)
    assert again.reply == first.reply
    assert again.before == []  # no second FIRING event: nothing was executed
    stats = unit.sim.stats()
    assert stats.commands_executed == executed
    assert stats.retries_from_cache == 1


@pytest.mark.req("EPAT-RETRY-1")
def test_the_cache_holds_the_previous_reply_verbatim(make_unit: UnitFactory) -> None:
    unit = make_unit(speed=5)
    host = unit.raw()
    first = StatusBlock.unpack(host.exchange(Command.GET_STATUS, seq=9).reply.payload)
    time.sleep(0.25)  # uptime moves on by > 1 s
    again = StatusBlock.unpack(host.exchange(Command.GET_STATUS, seq=9).reply.payload)
    assert again == first  # the same bytes, not a fresh reading
    fresh = host.status()  # a new SEQ executes
    assert fresh.uptime_s > first.uptime_s


@pytest.mark.req("EPAT-RETRY-1")
def test_a_naked_command_counts_as_executed(make_unit: UnitFactory) -> None:
    unit = make_unit()
    host = unit.raw()
    assert host.nak(Command.ARM, seq=17) == (Nak.WRONG_STATE, State.IDLE)
    executed = unit.sim.stats().commands_executed
    assert host.nak(Command.ARM, seq=17) == (Nak.WRONG_STATE, State.IDLE)
    assert unit.sim.stats().commands_executed == executed


@pytest.mark.req("EPAT-RETRY-1")
def test_only_seq_and_cmd_together_hit_the_cache(make_unit: UnitFactory) -> None:
    unit = make_unit()
    host = unit.raw()
    host.ack(Command.SET_PARAMS, params(250, 80, 100), seq=5)
    # same SEQ, other command: executed
    assert host.nak(Command.START, seq=5) == (Nak.WRONG_STATE, State.READY)
    # same command, other SEQ: executed (payload differs and is taken)
    host.ack(Command.SET_PARAMS, params(300, 80, 100), seq=6)
    assert host.status().pressure_set_cbar == 300
    # same SEQ+CMD but a different payload: the cache answers, the payload is ignored
    host.ack(Command.SET_PARAMS, params(200, 80, 100), seq=8)
    host.ack(Command.SET_PARAMS, params(350, 80, 100), seq=8)
    assert host.status().pressure_set_cbar == 200


@pytest.mark.req("EPAT-RETRY-1")
def test_any_other_frame_ends_the_retry_window(make_unit: UnitFactory) -> None:
    unit = make_unit()
    host = unit.raw()
    host.ack(Command.SET_PARAMS, params())
    host.ack(Command.ARM)
    host.ack(Command.START, seq=50)
    host.ack(Command.HEARTBEAT, seq=51)
    # START again with SEQ 50 is now a new command: FIRING does not accept it
    assert host.nak(Command.START, seq=50) == (Nak.WRONG_STATE, State.FIRING)


@pytest.mark.req("EPAT-RETRY-1")
def test_hello_clears_the_cache(make_unit: UnitFactory) -> None:
    unit = make_unit()
    host = unit.raw()
    host.ack(Command.SET_PARAMS, params(), seq=3)
    host.ack(Command.HELLO, seq=4)
    host.ack(Command.DISARM, seq=5)  # READY → IDLE
    host.ack(Command.HELLO, seq=6)
    # DISARM with SEQ 5 again: the cache was cleared, so it executes (and is refused in IDLE)
    assert host.nak(Command.DISARM, seq=5) == (Nak.WRONG_STATE, State.IDLE)


@pytest.mark.req("EPAT-RETRY-1")
def test_power_cycle_clears_the_cache(make_unit: UnitFactory) -> None:
    unit = make_unit()
    host = unit.raw()
    host.ack(Command.SET_PARAMS, params(), seq=12)
    unit.sim.power_cycle()
    host.ack(Command.SET_PARAMS, params(), seq=12)  # executed again after the reset
    assert host.state() == State.READY


@pytest.mark.req("EPAT-RETRY-1")
def test_a_lost_reply_and_its_retry_execute_once(make_unit: UnitFactory) -> None:
    unit = make_unit()
    host = unit.raw()
    host.ack(Command.SET_PARAMS, params())
    host.ack(Command.ARM)
    unit.sim.drop_next_replies(1)
    host.send(Command.START, seq=77)
    frames = host.listen(0.08)
    assert [f.cmd for f in frames] == [0x81]  # the FIRING event came, the ACK was lost
    retry = host.exchange(Command.START, seq=77)
    assert retry.reply.cmd == Reply.ACK
    assert retry.before == []
    assert host.state() == State.FIRING
    assert unit.sim.stats().replies_dropped == 1
    starts = [e for e in unit.sim.event_records() if (e.code, e.data) == (1, State.FIRING)]
    assert len(starts) == 1


@pytest.mark.req("EPAT-RETRY-1", "EPAT-WDOG-1")
def test_retried_frames_feed_the_watchdog(make_unit: UnitFactory) -> None:
    unit = make_unit(speed=5)  # watchdog 100 ms wall
    host = unit.raw()
    host.ack(Command.SET_PARAMS, params())
    host.ack(Command.ARM)
    for _ in range(12):  # 360 ms wall = 1.8 s simulated, always the same SEQ+CMD
        host.exchange(Command.HEARTBEAT, seq=99)
        time.sleep(0.03)
    assert unit.sim.snapshot().state == State.ARMED
    assert unit.sim.stats().retries_from_cache >= 11
