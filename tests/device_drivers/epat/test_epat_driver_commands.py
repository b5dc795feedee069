"""Every TherapyDevice method of the EPAT driver against the simulated unit, every NAK as a typed
error, parameter checks at the encoder, read-back, the service commands."""

from __future__ import annotations

import itertools
import threading
import time
from decimal import Decimal

import pytest

from device_drivers.commlog import CommLog
from device_drivers.epat.codec import decode_frames
from device_drivers.epat.constants import Command, Nak, State
from device_drivers.epat.driver import EpatDriver
from device_drivers.epat.payloads import NakReply
from device_drivers.epat.translate import rejection
from device_drivers.epat.units import ParameterRejected
from device_drivers.errors import (
    CommandRefused,
    DeviceFault,
    DeviceRejected,
    ProtocolError,
)
from device_drivers.interface import (
    ApplicatorInfo,
    DeviceEvent,
    DeviceMessage,
    DeviceParameters,
    DeviceStatus,
    EventKind,
    TherapyDevice,
    UnitState,
    ValueRange,
)
from tests.device_drivers.epat.epat_helpers import SPEED, UnitFactory

D = Decimal


def epat(freq: str = "8.0", pulses: int = 100, bar: str = "2.50") -> DeviceParameters:
    return DeviceParameters(D(freq), pulses, pressure_bar=D(bar))


def tx_commands(log: CommLog) -> list[int]:
    return [f.cmd for r in log.records() if r.direction == "tx" for f in decode_frames(r.data)]


@pytest.mark.req("EPAT-CMD-2")
def test_driver_is_a_therapy_device_with_the_units_envelope(make_unit: UnitFactory) -> None:
    driver = make_unit().driver()
    assert isinstance(driver, TherapyDevice)
    env = driver.envelope()
    assert env.pressure_bar == ValueRange(D("1.00"), D("5.00"), D("0.01"))
    assert env.frequency_hz == ValueRange(D("1.0"), D("21.0"), D("0.1"))
    assert env.pulses == ValueRange(D(1), D(10000), D(1))
    assert env.field_mt is None


@pytest.mark.req("EPAT-CMD-2")
def test_applicator_and_its_wear(make_unit: UnitFactory) -> None:
    unit = make_unit(applicator="D20-S", applicator_shots_used=1_350_000)
    driver = unit.driver()
    appl = driver.applicator()
    assert appl == ApplicatorInfo(True, "D20-S", appl.serial, 1_350_000, 1_500_000, D("5.00"))
    assert appl.wear_percent == D("90.0")
    unit.sim.remove_applicator()
    assert driver.applicator() == ApplicatorInfo(False, "", "", 0, 0, None)


@pytest.mark.req("EPAT-CMD-2", "EPAT-PARAM-1")
def test_whole_treatment_through_the_interface(make_unit: UnitFactory) -> None:
    unit = make_unit(speed=SPEED)
    driver = unit.driver()
    messages: list[DeviceMessage] = []
    driver.add_listener(messages.append)
    held = driver.load_parameters(epat("21.0", 40, "3.00"))
    assert held == epat("21.0", 40, "3.00")
    assert driver.status().state is UnitState.READY
    driver.arm()
    driver.start()
    time.sleep(0.05)
    paused = driver.pause()
    assert 0 < paused < 40
    status = driver.status()
    assert (status.state, status.delivered) == (UnitState.PAUSED, paused)
    assert status.pressure_set_bar == D("3.00") and status.frequency_set_hz == D("21.0")
    driver.resume()
    unit.wait_for(lambda s: s.state is State.COMPLETE)
    assert driver.disarm() == 40
    time.sleep(0.02)
    kinds = [(m.kind, m.data) for m in messages if isinstance(m, DeviceEvent)]
    assert kinds == [
        (EventKind.STATE_CHANGE, State.READY),
        (EventKind.STATE_CHANGE, State.ARMED),
        (EventKind.STATE_CHANGE, State.FIRING),
        (EventKind.STATE_CHANGE, State.PAUSED),
        (EventKind.STATE_CHANGE, State.FIRING),
        (EventKind.STATE_CHANGE, State.COMPLETE),
        (EventKind.COMPLETION, 40),
        (EventKind.STATE_CHANGE, State.IDLE),
    ]
    firing = [m for m in messages if isinstance(m, DeviceEvent) and m.data == State.FIRING]
    assert firing[0].state is UnitState.DELIVERING  # FIRING maps to DELIVERING


@pytest.mark.req("EPAT-CMD-2")
def test_stop_returns_the_final_count(make_unit: UnitFactory) -> None:
    unit = make_unit(speed=SPEED)
    driver = unit.driver()
    driver.load_parameters(epat("21.0", 1000))
    driver.arm()
    driver.start()
    time.sleep(0.05)
    final = driver.stop()
    time.sleep(0.05)
    snap = unit.sim.snapshot()
    assert (snap.state, snap.delivered) == (State.IDLE, final)
    assert final > 0


@pytest.mark.req("EPAT-PARAM-1")
@pytest.mark.parametrize(
    ("params", "field"),
    [
        (epat(bar="5.01"), "pressure"),
        (epat(bar="0.99"), "pressure"),
        (epat(bar="2.505"), "pressure"),  # finer than the 0.01 bar step: never rounded
        (epat(freq="21.1"), "frequency"),
        (epat(freq="0.9"), "frequency"),
        (epat(freq="8.05"), "frequency"),
        (epat(pulses=0), "pulses"),
        (epat(pulses=10_001), "pulses"),
        (DeviceParameters(D("8.0"), 100, field_mt=D("50")), "field_mt"),
    ],
)
def test_parameters_outside_the_envelope_are_rejected_before_the_wire(
    make_unit: UnitFactory, params: DeviceParameters, field: str
) -> None:
    log = CommLog()
    driver = make_unit().driver(commlog=log)
    with pytest.raises(ParameterRejected) as info:
        driver.load_parameters(params)
    assert info.value.field == field
    assert isinstance(info.value, CommandRefused)
    assert Command.SET_PARAMS not in tx_commands(log)  # nothing was encoded


@pytest.mark.req("EPAT-PARAM-1", "EPAT-NAK-2")
def test_the_unit_judges_the_fitted_applicator(make_unit: UnitFactory) -> None:
    unit = make_unit(applicator_shots_used=1_000_000 - 50)
    driver = unit.driver()
    with pytest.raises(DeviceRejected) as info:
        driver.load_parameters(epat(bar="4.50"))  # in the envelope, above the R15 limit
    assert (info.value.name, info.value.code, info.value.detail) == ("OUT_OF_RANGE", 3, 1)
    assert "pressure" in str(info.value)
    with pytest.raises(DeviceRejected) as info:
        driver.load_parameters(epat(pulses=51))
    assert info.value.name == "APPLICATOR_LIMIT"
    assert "fit a new applicator" in str(info.value)
    unit.sim.remove_applicator()
    with pytest.raises(DeviceRejected) as info:
        driver.load_parameters(epat())
    assert info.value.name == "NO_APPLICATOR"
    assert "fit one" in str(info.value)


@pytest.mark.req("EPAT-PARAM-1")
def test_a_read_back_that_differs_is_a_protocol_error(make_unit: UnitFactory) -> None:
    unit = make_unit()
    model = unit.sim._model  # a unit with a firmware bug: it stores 0.01 bar more than sent
    honest = model._cmd_set_params

    def lying(payload: bytes) -> tuple[int, bytes]:
        answer = honest(payload)
        model.pressure_set_cbar += 1
        return answer

    model._cmd_set_params = lying  # type: ignore[method-assign]
    driver = unit.driver()
    with pytest.raises(ProtocolError, match="read-back mismatch"):
        driver.load_parameters(epat(bar="2.50"))


@pytest.mark.req("EPAT-NAK-2")
def test_wrong_state_is_rejected_with_advice(make_unit: UnitFactory) -> None:
    driver = make_unit().driver()
    with pytest.raises(DeviceRejected) as info:
        driver.arm()
    assert (info.value.code, info.value.name, info.value.detail) == (4, "WRONG_STATE", 0)
    assert "load parameters first" in str(info.value)
    with pytest.raises(DeviceRejected, match="WRONG_STATE"):
        driver.clear_fault()


@pytest.mark.req("EPAT-NAK-2", "EPAT-FAULT-1")
def test_commands_in_fault_raise_device_fault_with_the_causes(make_unit: UnitFactory) -> None:
    unit = make_unit()
    driver = unit.driver()
    driver.load_parameters(epat())
    unit.sim.force_overtemp()
    with pytest.raises(DeviceFault) as info:
        driver.arm()
    assert info.value.faults == ("OVERTEMP",)
    assert info.value.delivered == 0
    with pytest.raises(DeviceRejected) as rejected:
        driver.clear_fault()  # still hot
    assert rejected.value.name == "FAULT_ACTIVE"
    assert rejected.value.detail == 0x04
    assert "cool below 40.0" in str(rejected.value)
    unit.sim.set_handpiece_temperature(30.0)
    driver.clear_fault()
    assert driver.status().state is UnitState.IDLE


@pytest.mark.req("EPAT-NAK-2")
@pytest.mark.parametrize("code", list(Nak))
def test_every_nak_code_becomes_a_typed_rejection_saying_what_to_do(code: Nak) -> None:
    error = rejection(Command.SET_PARAMS, NakReply(int(code), 1))
    assert isinstance(error, DeviceRejected)
    assert (error.code, error.name, error.detail) == (int(code), code.name, 1)
    message = str(error)
    assert "SET_PARAMS" in message and code.name in message
    assert len(message.split(":", 1)[1].strip()) > 20  # advice follows the code


@pytest.mark.req("EPAT-CMD-2")
def test_self_test_pass_and_failure(make_unit: UnitFactory) -> None:
    unit = make_unit()
    driver = unit.driver()
    result = driver.self_test()
    assert (result.passed, result.failed_checks, result.raw) == (True, (), 0)
    unit.sim.set_self_test_failures(0b0001)
    result = driver.self_test()
    assert (result.passed, result.failed_checks, result.raw) == (False, ("HV_SUPPLY",), 1)
    assert driver.status().faults == ("INTERNAL",)


@pytest.mark.req("EPAT-CMD-2", "EPAT-EVENT-2")
def test_event_log_pages_through_the_whole_log(make_unit: UnitFactory) -> None:
    driver = make_unit().driver()
    for _ in range(20):  # 40 events
        driver.load_parameters(epat())
        driver.disarm()
    events = driver.event_log()
    assert [e.index for e in events] == list(range(40))
    assert events[0].kind is EventKind.STATE_CHANGE and events[0].state is UnitState.READY
    assert "READY" in events[0].text
    assert [e.index for e in driver.event_log(from_index=33)] == list(range(33, 40))
    assert driver.event_log(from_index=40) == []


@pytest.mark.req("EPAT-STREAM-1")
def test_status_stream_reaches_listeners(make_unit: UnitFactory) -> None:
    driver = make_unit().driver()
    statuses: list[DeviceStatus] = []
    got = threading.Event()

    def listen(message: DeviceMessage) -> None:
        if isinstance(message, DeviceStatus):
            statuses.append(message)
            if len(statuses) >= 5:
                got.set()

    driver.add_listener(listen)
    driver.start_status_stream(0.05)
    assert got.wait(1.0)
    gaps = [(b.received_ns - a.received_ns) / 1e9 for a, b in itertools.pairwise(statuses)]
    assert all(0.02 < g < 0.09 for g in gaps), gaps
    driver.stop_status_stream()
    time.sleep(0.1)
    count = len(statuses)
    time.sleep(0.15)
    assert len(statuses) == count


@pytest.mark.req("EPAT-STREAM-1")
@pytest.mark.parametrize("period", [0.0, 0.019, 1.001, 0.0505])
def test_impossible_stream_periods_are_rejected(make_unit: UnitFactory, period: float) -> None:
    log = CommLog()
    driver = make_unit().driver(commlog=log)
    with pytest.raises(ParameterRejected):
        driver.start_status_stream(period)
    assert Command.SET_STREAM not in tx_commands(log)


@pytest.mark.req("EPAT-RAW-1")
def test_raw_command_decodes_ack_and_nak(make_unit: UnitFactory) -> None:
    driver = make_unit().driver()
    reply = driver.raw_command(Command.GET_STATUS)
    assert reply.ack and "state=IDLE" in str(reply)
    reply = driver.raw_command(Command.ARM)
    assert not reply.ack
    assert (reply.nak_name, reply.nak_detail) == ("WRONG_STATE", 0)
    assert "NAK WRONG_STATE" in str(reply)
    assert driver.raw_command(0x77).nak_name == "UNKNOWN_CMD"
    assert driver.raw_command(Command.HEARTBEAT, b"\x00").nak_name == "BAD_LENGTH"
    assert "RPW-200" in str(driver.raw_command(Command.HELLO))
    with pytest.raises(ValueError):
        driver.raw_command(256)


@pytest.mark.req("EPAT-RAW-1")
@pytest.mark.parametrize("state", ["ARMED", "DELIVERING", "PAUSED"])
def test_raw_command_is_refused_while_armed_or_delivering(
    make_unit: UnitFactory, state: str
) -> None:
    unit = make_unit(speed=SPEED)
    log = CommLog()
    driver = unit.driver(commlog=log)
    driver.load_parameters(epat("1.0", 1000))
    driver.arm()
    if state != "ARMED":
        driver.start()
    if state == "PAUSED":
        driver.pause()
    sent = len(tx_commands(log))
    with pytest.raises(CommandRefused, match=f"while the unit is {state}"):
        driver.raw_command(Command.GET_STATUS)
    assert Command.GET_STATUS not in tx_commands(log)[sent:]
    assert [c for c in tx_commands(log)[sent:] if c != Command.HEARTBEAT] == []


@pytest.mark.req("EPAT-CMD-2")
def test_link_stats_report_round_trips(make_unit: UnitFactory) -> None:
    driver = make_unit().driver()
    for _ in range(20):
        driver.heartbeat()
    stats = driver.link_stats
    assert stats.commands >= 21
    assert stats.retries == 0 and stats.timeouts == 0 and stats.crc_errors == 0
    assert stats.rtt_median_ms is not None and 0 < stats.rtt_median_ms < 50
    assert stats.rtt_p99_ms is not None and stats.rtt_p99_ms >= stats.rtt_median_ms


@pytest.mark.req("EPAT-CMD-2", "EPAT-LINK-2")
def test_main_path_over_a_pty(make_unit: UnitFactory) -> None:
    unit = make_unit(speed=2, pty=True)  # the pty path is the slower one: more watchdog margin
    assert unit.pty is not None
    driver = unit.driver(unit.pty.path)
    assert driver.identify().model == "RPW-200"
    assert driver.load_parameters(epat("21.0", 30)) == epat("21.0", 30)
    driver.arm()
    driver.start()
    unit.wait_for(lambda s: s.state is State.COMPLETE)
    status = driver.status()
    assert (status.state, status.delivered) == (UnitState.COMPLETE, 30)
    assert [e.data for e in driver.event_log()][-1] == 30  # the completion event
    driver.close()
    assert unit.sim.snapshot().state is State.IDLE


@pytest.mark.req("EPAT-CMD-2")
def test_driver_opens_on_a_pty_path_like_a_serial_device(make_unit: UnitFactory) -> None:
    unit = make_unit(pty=True)
    assert unit.pty is not None
    with EpatDriver(unit.pty.path) as driver:
        assert driver.heartbeat() is UnitState.IDLE
