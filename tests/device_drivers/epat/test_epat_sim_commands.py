"""Every command of the ICD against the simulated unit at the raw-frame level: replies, state
transitions and every NAK path with its precedence."""

from __future__ import annotations

import pytest

from device_drivers.epat.constants import (
    ACCEPTED_STATES,
    REQUEST_PAYLOAD_LENGTH,
    Command,
    Fault,
    Nak,
    State,
)
from device_drivers.epat.payloads import (
    ApplicatorBlock,
    HelloInfo,
    StatusBlock,
    pack_uint,
    unpack_uint,
)
from tests.device_drivers.epat.epat_helpers import RawHost, UnitFactory, params

WRONG_STATE = Nak.WRONG_STATE


def bring_to(host: RawHost, unit_sim: object, state: State) -> None:
    """Drive a fresh unit to ``state`` with real commands."""
    if state is State.IDLE:
        return
    host.ack(Command.SET_PARAMS, params(250, 10, 10_000))  # 1 Hz: FIRING lasts long
    if state is State.READY:
        return
    if state is State.COMPLETE:
        host.ack(Command.SET_PARAMS, params(250, 210, 1))
        host.ack(Command.ARM)
        host.ack(Command.START)
        host.listen(0.15, heartbeat_every=0.05)  # one pulse at 21 Hz
        assert host.state() == State.COMPLETE
        return
    if state is State.FAULT:
        host.ack(Command.ESTOP)
        return
    host.ack(Command.ARM)
    if state is State.ARMED:
        return
    host.ack(Command.START)
    if state is State.PAUSED:
        host.ack(Command.PAUSE)


@pytest.mark.req("EPAT-CMD-1")
def test_hello_reports_the_reference_unit(make_unit: UnitFactory) -> None:
    host = make_unit().raw()
    hello = HelloInfo.unpack(host.ack(Command.HELLO))
    assert hello == HelloInfo(1, "RPW-200", "RPW200-00001", "1.2.0", 100, 500, 10, 210, 10_000)


@pytest.mark.req("EPAT-CMD-1")
def test_get_applicator_present_and_absent(make_unit: UnitFactory) -> None:
    unit = make_unit(applicator="D20-S", applicator_shots_used=1234)
    host = unit.raw()
    block = ApplicatorBlock.unpack(host.ack(Command.GET_APPLICATOR))
    assert block == ApplicatorBlock(1, "D20-S", block.serial, 1234, 1_500_000, 500)
    assert block.serial.startswith("D20-S-")
    unit.sim.remove_applicator()
    assert ApplicatorBlock.unpack(host.ack(Command.GET_APPLICATOR)) == ApplicatorBlock(
        0, "", "", 0, 0, 0
    )


@pytest.mark.req("EPAT-CMD-1")
def test_status_block_after_power_up(make_unit: UnitFactory) -> None:
    host = make_unit().raw()
    status = host.status()
    assert status == StatusBlock(0, 0, 0, 0, 0, 0, 0, 250, 1, 0, 0, status.uptime_s)


@pytest.mark.req("EPAT-CMD-1", "EPAT-STATE-1")
def test_a_whole_treatment_with_every_transition(make_unit: UnitFactory) -> None:
    unit = make_unit(speed=10)
    host = unit.raw()
    assert unpack_uint(host.ack(Command.HEARTBEAT), 1, "state") == State.IDLE
    host.ack(Command.SET_PARAMS, params(300, 210, 30))
    assert host.state() == State.READY
    host.ack(Command.SET_PARAMS, params(300, 210, 30))  # READY → READY is allowed
    host.ack(Command.ARM)
    assert host.state() == State.ARMED
    host.ack(Command.START)
    host.listen(0.03, heartbeat_every=0.01)
    paused_at = unpack_uint(host.ack(Command.PAUSE), 4, "delivered")
    assert 0 < paused_at < 30
    host.listen(0.05, heartbeat_every=0.01)
    assert host.status().delivered == paused_at  # no pulse while paused
    host.ack(Command.RESUME)
    host.listen(0.25, heartbeat_every=0.01)
    status = host.status()
    assert (status.state, status.delivered, status.target) == (State.COMPLETE, 30, 30)
    assert unpack_uint(host.ack(Command.DISARM), 4, "delivered") == 30
    after = host.status()
    assert after.state == State.IDLE
    # IDLE keeps showing the last parameters and count until the next SET_PARAMS
    assert (after.delivered, after.target, after.pressure_set_cbar, after.freq_set_dhz) == (
        30,
        30,
        300,
        210,
    )
    host.ack(Command.SET_PARAMS, params(200, 50, 5))
    assert host.status().delivered == 0


@pytest.mark.req("EPAT-STATE-1")
def test_stop_from_firing_and_paused_returns_the_count(make_unit: UnitFactory) -> None:
    unit = make_unit(speed=10)
    host = unit.raw()
    host.fire(250, 100, 1000)
    host.listen(0.05, heartbeat_every=0.01)
    stopped = unpack_uint(host.ack(Command.STOP), 4, "delivered")
    host.listen(0.05)
    status = host.status()
    assert (status.state, status.delivered) == (State.IDLE, stopped)
    assert stopped > 0
    host.fire(250, 100, 1000)
    host.ack(Command.PAUSE)
    assert unpack_uint(host.ack(Command.STOP), 4, "delivered") == host.status().delivered


@pytest.mark.req("EPAT-STATE-1")
def test_disarm_from_ready_armed_and_paused(make_unit: UnitFactory) -> None:
    host = make_unit().raw()
    for target in (State.READY, State.ARMED, State.PAUSED):
        bring_to(host, None, target)
        host.ack(Command.DISARM)
        assert host.state() == State.IDLE
    # READY → IDLE unloads the parameters: ARM is now refused
    assert host.nak(Command.ARM) == (WRONG_STATE, State.IDLE)


@pytest.mark.req("EPAT-NAK-1")
@pytest.mark.parametrize("code", [0x00, 0x04, 0x06, 0x15, 0x80, 0x81, 0xFF])
def test_unknown_commands(make_unit: UnitFactory, code: int) -> None:
    host = make_unit().raw()
    assert host.nak(code) == (Nak.UNKNOWN_CMD, 0)
    # UNKNOWN_CMD wins over BAD_LENGTH
    assert host.nak(code, b"\x01\x02") == (Nak.UNKNOWN_CMD, 0)


@pytest.mark.req("EPAT-NAK-1")
@pytest.mark.parametrize("cmd", list(Command))
def test_bad_length_for_every_command(make_unit: UnitFactory, cmd: Command) -> None:
    host = make_unit().raw()
    right = REQUEST_PAYLOAD_LENGTH[cmd]
    for length in {right + 1, max(0, right - 1), right + 7} - {right}:
        assert host.nak(cmd, bytes(length)) == (Nak.BAD_LENGTH, 0), length


@pytest.mark.req("EPAT-NAK-1")
@pytest.mark.parametrize("state", list(State))
def test_wrong_state_for_every_command_not_accepted(make_unit: UnitFactory, state: State) -> None:
    host = make_unit().raw()
    bring_to(host, None, state)
    checked = 0
    for cmd, accepted in ACCEPTED_STATES.items():
        if accepted is None or state in accepted:
            continue
        payload = bytes(REQUEST_PAYLOAD_LENGTH[cmd])
        assert host.nak(cmd, payload) == (WRONG_STATE, int(state)), cmd.name
        checked += 1
    assert checked >= 5
    assert host.state() == state  # nothing changed


@pytest.mark.req("EPAT-NAK-1")
def test_bad_length_wins_over_wrong_state(make_unit: UnitFactory) -> None:
    host = make_unit().raw()
    assert host.nak(Command.ARM, b"\x00") == (Nak.BAD_LENGTH, 0)  # IDLE: also wrong state


@pytest.mark.req("EPAT-NAK-1")
def test_unknown_and_bad_length_win_over_the_fault_rule(make_unit: UnitFactory) -> None:
    unit = make_unit(applicator=None)
    host = unit.raw()
    # without an applicator: BAD_LENGTH wins over NO_APPLICATOR
    assert host.nak(Command.SET_PARAMS, bytes(7)) == (Nak.BAD_LENGTH, 0)
    host.ack(Command.ESTOP)
    assert host.nak(0x7F) == (Nak.UNKNOWN_CMD, 0)
    assert host.nak(Command.ARM, b"\x01") == (Nak.BAD_LENGTH, 0)
    assert host.nak(Command.ARM) == (WRONG_STATE, State.FAULT)


@pytest.mark.req("EPAT-NAK-1", "EPAT-APPL-1")
def test_no_applicator_answers_set_params_arm_and_start(make_unit: UnitFactory) -> None:
    unit = make_unit(applicator=None)
    host = unit.raw()
    # NO_APPLICATOR wins over OUT_OF_RANGE and APPLICATOR_LIMIT
    assert host.nak(Command.SET_PARAMS, params(9999, 0, 0)) == (Nak.NO_APPLICATOR, 0)
    # WRONG_STATE wins over NO_APPLICATOR
    assert host.nak(Command.START) == (WRONG_STATE, State.IDLE)
    unit.sim.fit_applicator("R15")
    host.ack(Command.SET_PARAMS, params())
    unit.sim.remove_applicator()  # in READY: no fault, but no arming either
    assert host.nak(Command.ARM) == (Nak.NO_APPLICATOR, 0)
    assert host.state() == State.READY


@pytest.mark.req("EPAT-NAK-1")
@pytest.mark.parametrize(
    ("pressure", "freq", "pulses", "detail"),
    [
        (99, 80, 100, 1),
        (501, 80, 100, 1),
        (401, 80, 100, 1),  # inside the envelope, above the R15's 4.00 bar
        (250, 9, 100, 2),
        (250, 211, 100, 2),
        (250, 80, 0, 3),
        (250, 80, 10_001, 3),
        (50, 300, 0, 1),  # several offend: the first in payload order
        (250, 300, 0, 2),
    ],
)
def test_set_params_out_of_range(
    make_unit: UnitFactory, pressure: int, freq: int, pulses: int, detail: int
) -> None:
    host = make_unit().raw()
    assert host.nak(Command.SET_PARAMS, params(pressure, freq, pulses)) == (
        Nak.OUT_OF_RANGE,
        detail,
    )
    assert host.state() == State.IDLE


@pytest.mark.req("EPAT-NAK-1", "EPAT-APPL-1")
def test_applicator_limit_and_its_precedence(make_unit: UnitFactory) -> None:
    unit = make_unit(applicator_shots_used=1_000_000 - 50)  # R15 with 50 shots left
    host = unit.raw()
    assert host.nak(Command.SET_PARAMS, params(250, 80, 51)) == (Nak.APPLICATOR_LIMIT, 0)
    # OUT_OF_RANGE wins over APPLICATOR_LIMIT
    assert host.nak(Command.SET_PARAMS, params(450, 80, 51)) == (Nak.OUT_OF_RANGE, 1)
    host.ack(Command.SET_PARAMS, params(250, 80, 50))  # exactly the remaining life


@pytest.mark.req("EPAT-APPL-1")
def test_d20s_takes_5_bar_where_r15_stops_at_4(make_unit: UnitFactory) -> None:
    unit = make_unit(applicator="D20-S")
    host = unit.raw()
    host.ack(Command.SET_PARAMS, params(500, 80, 100))
    assert host.status().pressure_set_cbar == 500


@pytest.mark.req("EPAT-APPL-1")
def test_arm_rechecks_pressure_against_a_swapped_applicator(make_unit: UnitFactory) -> None:
    unit = make_unit(applicator="D20-S")
    host = unit.raw()
    host.ack(Command.SET_PARAMS, params(450, 80, 100))
    unit.sim.fit_applicator("R15")
    assert host.nak(Command.ARM) == (Nak.OUT_OF_RANGE, 1)
    assert host.state() == State.READY


@pytest.mark.req("EPAT-APPL-1")
def test_arm_rechecks_pulses_against_a_swapped_applicators_life(make_unit: UnitFactory) -> None:
    unit = make_unit()
    host = unit.raw()
    host.ack(Command.SET_PARAMS, params(250, 80, 1000))
    unit.sim.fit_applicator("R15", shots_used=1_000_000 - 999)
    assert host.nak(Command.ARM) == (Nak.APPLICATOR_LIMIT, 0)
    unit.sim.fit_applicator("R15", shots_used=1_000_000 - 1000)
    host.ack(Command.ARM)


@pytest.mark.req("EPAT-NAK-1", "EPAT-FAULT-1")
def test_fault_answers_wrong_state_6_even_where_another_nak_would_apply(
    make_unit: UnitFactory,
) -> None:
    unit = make_unit()
    host = unit.raw()
    host.ack(Command.ESTOP)
    unit.sim.remove_applicator()
    # WRONG_STATE (6) wins over NO_APPLICATOR and OUT_OF_RANGE
    assert host.nak(Command.SET_PARAMS, params(9999, 80, 10)) == (WRONG_STATE, 6)
    assert host.nak(Command.SELF_TEST) == (WRONG_STATE, 6)
    # commands accepted in any state still answer
    assert host.state() == State.FAULT
    host.ack(Command.GET_APPLICATOR)
    host.ack(Command.READ_EVENTS, pack_uint(0, 2, "from"))
    host.ack(Command.SET_STREAM, pack_uint(0, 2, "period"))


@pytest.mark.req("EPAT-FAULT-1")
def test_clear_fault_returns_to_idle(make_unit: UnitFactory) -> None:
    host = make_unit().raw()
    bring_to(host, None, State.ARMED)
    host.ack(Command.ESTOP)
    assert host.status().faults == Fault.ESTOP
    ex = host.exchange(Command.CLEAR_FAULT)
    assert ex.events == [(1, State.IDLE)]
    status = host.status()
    assert (status.state, status.faults) == (State.IDLE, 0)


@pytest.mark.req("EPAT-FAULT-1")
def test_clear_fault_active_while_no_applicator_whatever_the_cause(make_unit: UnitFactory) -> None:
    unit = make_unit()
    host = unit.raw()
    host.ack(Command.ESTOP)
    unit.sim.remove_applicator()  # in FAULT: the ESTOP is the cause, yet clearing must wait
    assert host.nak(Command.CLEAR_FAULT) == (Nak.FAULT_ACTIVE, Fault.ESTOP)
    unit.sim.fit_applicator()
    host.ack(Command.CLEAR_FAULT)


@pytest.mark.req("EPAT-FAULT-1", "EPAT-APPL-1")
def test_applicator_removed_while_armed_faults_and_blocks_clearing(make_unit: UnitFactory) -> None:
    unit = make_unit()
    host = unit.raw()
    bring_to(host, None, State.ARMED)
    unit.sim.remove_applicator()
    frames = host.listen(0.05)
    from tests.device_drivers.epat.epat_helpers import events_of

    assert events_of(frames) == [(2, Fault.APPLICATOR_REMOVED), (1, State.FAULT)]
    assert host.nak(Command.CLEAR_FAULT) == (Nak.FAULT_ACTIVE, Fault.APPLICATOR_REMOVED)
    unit.sim.fit_applicator()
    host.ack(Command.CLEAR_FAULT)
    assert host.state() == State.IDLE


@pytest.mark.req("EPAT-FAULT-1")
def test_clear_fault_active_while_worn_out(make_unit: UnitFactory) -> None:
    unit = make_unit()
    host = unit.raw()
    host.ack(Command.ESTOP)
    unit.sim.wear_out_applicator(0)
    assert host.nak(Command.CLEAR_FAULT) == (Nak.FAULT_ACTIVE, Fault.ESTOP)
    unit.sim.fit_applicator("D20-S")
    host.ack(Command.CLEAR_FAULT)


@pytest.mark.req("EPAT-CMD-1", "EPAT-FAULT-1")
def test_self_test_pass_and_failures(make_unit: UnitFactory) -> None:
    unit = make_unit()
    host = unit.raw()
    assert unpack_uint(host.ack(Command.SELF_TEST), 2, "result") == 0
    assert host.state() == State.IDLE
    unit.sim.set_self_test_failures(0b0110)  # pressure and temperature sensors
    ex = host.exchange(Command.SELF_TEST)
    assert unpack_uint(ex.reply.payload, 2, "result") == 0b0110
    assert ex.events == [(2, Fault.INTERNAL), (1, State.FAULT)]
    unit.sim.set_self_test_failures(0)
    host.ack(Command.CLEAR_FAULT)
    unit.sim.remove_applicator()  # the applicator-link check fails without an applicator
    assert unpack_uint(host.ack(Command.SELF_TEST), 2, "result") == 0b1000
    assert host.state() == State.FAULT


@pytest.mark.req("EPAT-CMD-1", "EPAT-STREAM-1")
@pytest.mark.parametrize(
    ("period", "ok"),
    [(0, True), (1, False), (19, False), (20, True), (1000, True), (1001, False), (65535, False)],
)
def test_set_stream_period_range(make_unit: UnitFactory, period: int, ok: bool) -> None:
    host = make_unit().raw()
    payload = pack_uint(period, 2, "period")
    if ok:
        host.ack(Command.SET_STREAM, payload)
    else:
        assert host.nak(Command.SET_STREAM, payload) == (Nak.OUT_OF_RANGE, 1)
