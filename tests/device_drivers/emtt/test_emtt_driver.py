"""EmttDriver over a real link (pyvisa-py TCPIP SOCKET → the simulator): every command, the
unit's errors as typed exceptions, parameter loading, self-test, event log and raw commands."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest

from device_drivers.commlog import CommLog
from device_drivers.emtt import constants as c
from device_drivers.emtt.codec import ParameterRejected
from device_drivers.emtt.driver import EmttDriver
from device_drivers.emtt.server import EmttTcpServer
from device_drivers.emtt.simulator import EmttSimulator
from device_drivers.errors import (
    CommandRefused,
    DeviceFault,
    DeviceRejected,
    LinkLost,
    LinkTimeout,
    ProtocolError,
)
from device_drivers.interface import EventKind, Modality, TherapyDevice, UnitState
from tests.device_drivers.emtt.conftest import SPEED
from tests.device_drivers.emtt.emtt_helpers import sent_lines, session_params, wait_for


def to_state(driver: EmttDriver, sim: EmttSimulator, state: UnitState) -> None:
    if state is UnitState.FAULT:
        driver.emergency_stop()
        return
    if state is UnitState.IDLE:
        return
    pulses = 1 if state is UnitState.COMPLETE else 4000
    driver.load_parameters(session_params(freq="10", pulses=pulses))
    if state is UnitState.READY:
        return
    driver.arm()
    if state is UnitState.ARMED:
        return
    driver.start()
    if state is UnitState.COMPLETE:
        wait_for(lambda: driver.status().state is UnitState.COMPLETE)
        return
    if state is UnitState.PAUSED:
        driver.pause()
    assert driver.status().state is state


# --- opening ------------------------------------------------------------------------------
@pytest.mark.req("EMTT-DRV-OPEN-1")
def test_open_identifies_the_unit_and_clears_its_queue(
    fast_server: EmttTcpServer, fast_simulator: EmttSimulator, commlog: CommLog
) -> None:
    fast_simulator.execute_line("FOO")
    with EmttDriver(fast_server.resource, heartbeat_interval_s=0.01, commlog=commlog) as driver:
        assert isinstance(driver, TherapyDevice)
        assert driver.modality is Modality.EMTT
        assert driver.identity == driver.identify()
        assert (driver.identity.manufacturer, driver.identity.model) == ("STORM-LABS", "EMT-100")
        assert (driver.identity.serial, driver.identity.firmware) == ("E100-24-0117", "1.0.0")
        assert driver.status().state is UnitState.IDLE
    # the state is read before anything that changes the unit (*CLS): see EMTT-HOST-1
    assert sent_lines(commlog)[:3] == ["*IDN?", "SESS:STAT?", "*CLS"]
    assert fast_simulator.snapshot().error_queue == ()


@pytest.mark.req("EMTT-DRV-OPEN-1")
def test_open_a_port_where_nothing_listens_is_link_lost() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(LinkLost, match=f"TCPIP0::127.0.0.1::{port}::SOCKET"):
        EmttDriver(f"TCPIP0::127.0.0.1::{port}::SOCKET")
    with pytest.raises(LinkLost, match="resource"):
        EmttDriver("NOT-A-RESOURCE")


class _FakeInstrument:
    """A TCP peer that answers every line with ``reply`` (None: never answers)."""

    def __init__(self, reply: bytes | None) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.reply = reply
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            while data := conn.recv(4096):
                if self.reply is not None:  # like any SCPI instrument, it answers queries only
                    conn.sendall(self.reply * data.count(b"?\n"))

    @property
    def resource(self) -> str:
        return f"TCPIP0::127.0.0.1::{self.port}::SOCKET"


@pytest.fixture
def instrument(request: pytest.FixtureRequest) -> Iterator[_FakeInstrument]:
    peer = _FakeInstrument(request.param)
    yield peer
    peer.listener.close()


@pytest.mark.req("EMTT-DRV-OPEN-1")
@pytest.mark.parametrize(
    ("instrument", "error", "words"),
    [
        (None, LinkTimeout, "no EMTT unit answered at TCPIP0"),
        (b"KEYSIGHT,34465A,MY123,A.03\n", ProtocolError, "another kind of device"),
        (b"\xa5\x02\x81\x00\xff\n", ProtocolError, "non-ASCII"),
    ],
    indirect=["instrument"],
)
def test_open_something_that_is_not_an_emtt_unit(
    instrument: _FakeInstrument, error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        EmttDriver(instrument.resource, timeout_ms=100)


def test_heartbeat_interval_must_fit_the_watchdog() -> None:
    with pytest.raises(ValueError, match="watchdog"):
        EmttDriver("TCPIP0::127.0.0.1::1::SOCKET", heartbeat_interval_s=1.5)


# --- limits, applicator, parameters -------------------------------------------------------
@pytest.mark.req("EMTT-DRV-ENV-1")
def test_envelope_is_read_with_min_max_queries(driver: EmttDriver, commlog: CommLog) -> None:
    envelope = driver.envelope()
    assert envelope.modality is Modality.EMTT
    assert envelope.field_mt is not None
    assert (envelope.field_mt.minimum, envelope.field_mt.maximum) == (Decimal(5), Decimal(80))
    assert (envelope.frequency_hz.minimum, envelope.frequency_hz.maximum) == (1, 10)
    assert (envelope.pulses.minimum, envelope.pulses.maximum) == (1, 10000)
    assert envelope.field_mt.step == envelope.frequency_hz.step == Decimal("0.5")
    assert "SOUR:FIEL? MIN;FIEL? MAX;FREQ? MIN;FREQ? MAX;PULS? MIN;PULS? MAX" in sent_lines(commlog)


def test_applicator_and_wear(driver: EmttDriver, fast_simulator: EmttSimulator) -> None:
    applicator = driver.applicator()
    assert (applicator.present, applicator.type, applicator.serial) == (True, "EMT-A1", "A1-20417")
    assert (applicator.shots_used, applicator.shots_rated) == (0, 5_000_000)
    fast_simulator.wear_out_applicator(remaining=500_000)
    assert driver.applicator().wear_percent == Decimal("90.0")
    fast_simulator.remove_applicator()
    assert not driver.applicator().present


@pytest.mark.req("EMTT-DRV-LOAD-1")
def test_load_parameters_sends_reads_back_and_returns_what_the_unit_holds(
    driver: EmttDriver, commlog: CommLog
) -> None:
    assert driver.settings() is None
    held = driver.load_parameters(session_params("40", "5", 4000))
    assert held == session_params("40.0", "5.0", 4000)
    assert str(held.field_mt) == "40.0"  # exactly as the unit printed it
    assert driver.status().state is UnitState.READY
    lines = sent_lines(commlog)
    assert "SOUR:FIEL 40;FREQ 5;PULS 4000" in lines
    assert lines[lines.index("SOUR:FIEL 40;FREQ 5;PULS 4000") + 1] == "SYST:ERR?"
    assert "SOUR:FIEL?;FREQ?;PULS?" in lines


@pytest.mark.req("EMTT-DRV-LOAD-1")
def test_load_parameters_rejects_locally_and_sends_nothing(
    driver: EmttDriver, commlog: CommLog
) -> None:
    driver.envelope()
    before = len(sent_lines(commlog))
    with pytest.raises(ParameterRejected, match=r"not on the unit's 0\.5 mT step"):
        driver.load_parameters(session_params(field="40.2"))
    with pytest.raises(ParameterRejected, match="outside the unit's envelope"):
        driver.load_parameters(session_params(freq="12"))
    assert len(sent_lines(commlog)) == before


class _MisstoringSimulator(EmttSimulator):
    """A unit whose firmware stores the field 0.5 mT lower than it was told."""

    def handle_line(self, line: str) -> str | None:
        reply = super().handle_line(line)
        if line == "SOUR:FIEL?;FREQ?;PULS?" and reply is not None:
            field, rest = reply.split(";", 1)
            reply = f"{Decimal(field) - Decimal('0.5')};{rest}"
        return reply


@pytest.mark.req("EMTT-DRV-LOAD-1")
def test_read_back_mismatch_is_a_protocol_error() -> None:
    with (
        EmttTcpServer(_MisstoringSimulator(speed=SPEED)) as server,
        EmttDriver(server.resource, heartbeat_interval_s=0.3 / SPEED) as driver,
        pytest.raises(ProtocolError, match="read-back mismatch"),
    ):
        driver.load_parameters(session_params())


# --- the unit's errors as typed exceptions --------------------------------------------------
@pytest.mark.req("EMTT-DRV-ERR-1")
def test_a_setting_in_the_wrong_state_raises_the_units_error(
    driver: EmttDriver, fast_simulator: EmttSimulator
) -> None:
    to_state(driver, fast_simulator, UnitState.ARMED)
    with pytest.raises(DeviceRejected) as info:
        driver.load_parameters(session_params(field="30"))
    assert (info.value.code, info.value.name) == (c.SETTINGS_CONFLICT, "Settings conflict")
    assert info.value.detail == "SOUR:FIEL 30;FREQ 5;PULS 4000"
    assert "not allowed while the unit is ARMED" in str(info.value)
    assert fast_simulator.snapshot().error_queue == ()  # the whole queue was drained


@pytest.mark.req("EMTT-DRV-ERR-1")
def test_a_stale_error_never_blames_the_next_command(
    driver: EmttDriver, fast_simulator: EmttSimulator
) -> None:
    driver.load_parameters(session_params())
    for _ in range(3):
        fast_simulator.execute_line("FOO")  # errors from someone else, earlier
    driver.arm()  # succeeds: the stale entries were drained first
    assert driver.status().state is UnitState.ARMED
    with pytest.raises(DeviceRejected) as info:
        driver.load_parameters(session_params())
    assert info.value.code == c.SETTINGS_CONFLICT
    assert fast_simulator.snapshot().error_queue == ()


@pytest.mark.req("EMTT-DRV-ERR-1")
@pytest.mark.req("EMTT-APPL-1")
def test_arm_refusals_are_rejections_not_faults(
    driver: EmttDriver, fast_simulator: EmttSimulator
) -> None:
    driver.load_parameters(session_params())
    fast_simulator.remove_applicator()
    with pytest.raises(DeviceRejected) as info:
        driver.arm()
    assert (info.value.code, info.value.name) == (202, "Applicator not connected")
    assert "fit the applicator" in str(info.value)
    fast_simulator.fit_applicator()
    fast_simulator.force_overtemp()
    with pytest.raises(DeviceRejected) as info:
        driver.arm()
    assert info.value.code == c.COIL_OVERTEMP
    assert driver.status().state is UnitState.READY


@pytest.mark.req("EMTT-DRV-ERR-1")
@pytest.mark.req("EMTT-TEMP-1")
def test_a_latched_fault_is_a_device_fault(
    driver: EmttDriver, fast_simulator: EmttSimulator
) -> None:
    to_state(driver, fast_simulator, UnitState.DELIVERING)
    fast_simulator.force_overtemp()
    status = driver.status()
    assert (status.state, status.fault_code, status.faults) == (
        UnitState.FAULT,
        201,
        ("COIL_OVERTEMP",),
    )
    with pytest.raises(DeviceFault) as info:
        driver.clear_fault()  # still hot: the unit queues 201 again
    assert info.value.faults == ("COIL_OVERTEMP",)
    assert info.value.delivered == status.delivered
    with pytest.raises(DeviceFault, match="COIL_OVERTEMP"):
        driver.disarm()
    with pytest.raises(DeviceFault, match="Settings conflict") as info:
        driver.start()  # refused because the unit is latched: the fault says why
    assert info.value.faults == ("COIL_OVERTEMP",)


@pytest.mark.req("EMTT-DRV-ERR-1")
def test_clear_fault_outside_fault_is_rejected(driver: EmttDriver) -> None:
    with pytest.raises(DeviceRejected) as info:
        driver.clear_fault()
    assert info.value.code == c.SETTINGS_CONFLICT


# --- session commands ---------------------------------------------------------------------
@pytest.mark.req("EMTT-DELIV-1")
def test_a_whole_session_through_the_driver(
    driver: EmttDriver, fast_simulator: EmttSimulator
) -> None:
    driver.load_parameters(session_params(freq="10", pulses=50))
    driver.arm()
    assert driver.heartbeat() is UnitState.ARMED
    driver.start()
    time.sleep(2 / SPEED)  # 2 s simulated: ~20 pulses
    paused_at = driver.pause()
    assert 0 < paused_at < 50
    time.sleep(0.1)
    assert driver.status().delivered == paused_at
    assert driver.status().field_measured_mt == Decimal("0.0")
    driver.resume()
    assert driver.status().field_measured_mt == Decimal("40.0")
    wait_for(lambda: driver.status().state is UnitState.COMPLETE, timeout=5.0)
    assert driver.status().delivered == 50
    assert driver.disarm() == 50
    assert driver.status().state is UnitState.IDLE
    assert driver.applicator().shots_used == 50
    events = driver.event_log()
    assert [e.state for e in events if e.kind is EventKind.STATE_CHANGE] == [
        UnitState.READY,
        UnitState.ARMED,
        UnitState.DELIVERING,
        UnitState.PAUSED,
        UnitState.DELIVERING,
        UnitState.COMPLETE,
        UnitState.IDLE,
    ]
    completion = [e for e in events if e.kind is EventKind.COMPLETION]
    assert [e.data for e in completion] == [50]


@pytest.mark.req("EMTT-DELIV-1")
def test_stop_returns_the_final_count_and_is_harmless_when_idle(
    driver: EmttDriver, fast_simulator: EmttSimulator
) -> None:
    to_state(driver, fast_simulator, UnitState.DELIVERING)
    time.sleep(0.05)
    final = driver.stop()
    assert final > 0
    assert fast_simulator.snapshot().state == "IDLE"
    assert fast_simulator.snapshot().delivered == final
    assert driver.stop() == final  # already IDLE: nothing sent, count kept


def test_field_deviation_shows_in_status_only(
    driver: EmttDriver, fast_simulator: EmttSimulator
) -> None:
    fast_simulator.set_field_deviation(5.0)
    to_state(driver, fast_simulator, UnitState.DELIVERING)
    status = driver.status()
    assert (status.state, status.field_measured_mt) == (UnitState.DELIVERING, Decimal("42.0"))


@pytest.mark.req("EMTT-WEAR-1")
def test_arm_refused_when_the_applicator_cannot_last_the_session(
    driver: EmttDriver, fast_simulator: EmttSimulator, commlog: CommLog
) -> None:
    driver.load_parameters(session_params(pulses=4000))
    fast_simulator.wear_out_applicator(remaining=3999)
    with pytest.raises(CommandRefused, match="3,999 pulses of rated life left"):
        driver.arm()
    assert "SESS:ARM" not in sent_lines(commlog)
    assert driver.status().state is UnitState.READY
    fast_simulator.wear_out_applicator(remaining=4000)
    driver.arm()
    assert driver.status().state is UnitState.ARMED


# --- service ------------------------------------------------------------------------------
def test_self_test_and_coil_diagnostics(driver: EmttDriver, fast_simulator: EmttSimulator) -> None:
    result = driver.self_test()
    assert (result.passed, result.failed_checks, result.raw) == (True, (), 0)
    fast_simulator.set_self_test_failures(0b0110)
    result = driver.self_test()
    assert result.failed_checks == ("FIELD_SENSOR", "TEMPERATURE_SENSOR")
    coil = driver.coil_diagnostics()
    assert (coil.inductance_uh, coil.resistance_mohm) == (Decimal("47.0"), 118)
    driver.load_parameters(session_params())
    started = time.monotonic()
    with pytest.raises(DeviceRejected) as info:
        driver.self_test()
    assert info.value.code == c.SETTINGS_CONFLICT
    assert time.monotonic() - started < 0.15  # known at once, not after a timeout
    fast_simulator.remove_applicator()
    with pytest.raises(DeviceRejected, match="DIAG:COIL"):
        driver.coil_diagnostics()


@pytest.mark.req("EMTT-LOG-1")
def test_event_log_pages_through_more_than_16_records(driver: EmttDriver) -> None:
    for _ in range(12):
        driver.load_parameters(session_params())
        driver.stop()
    events = driver.event_log()
    assert [e.index for e in events] == list(range(24))
    assert [e.state for e in events[:2]] == [UnitState.READY, UnitState.IDLE]
    assert [e.index for e in driver.event_log(20)] == [20, 21, 22, 23]
    assert driver.event_log(24) == []
    with pytest.raises(ValueError, match="start at 0"):
        driver.event_log(-1)


@pytest.mark.req("EMTT-RAW-1")
def test_raw_commands_for_service(driver: EmttDriver, fast_simulator: EmttSimulator) -> None:
    assert driver.raw_command("*IDN?") == "STORM-LABS,EMT-100,E100-24-0117,1.0.0"
    assert driver.raw_command("SOUR:FIEL 40") is None
    assert driver.raw_command("sour:fiel?;freq?") == "40.0;0.0"
    with pytest.raises(DeviceRejected) as info:
        driver.raw_command("SOUR:FIEL 100")
    assert info.value.code == c.DATA_OUT_OF_RANGE
    with pytest.raises(DeviceRejected) as info:
        driver.raw_command("FOO?")  # a refused query: no answer, then the queue says why
    assert info.value.code == c.UNDEFINED_HEADER
    with pytest.raises(ValueError, match="one non-empty SCPI line"):
        driver.raw_command("*IDN?\n*IDN?")
    assert driver.raw_command("ABOR") is None  # its 204 is the intended effect, not an error
    assert fast_simulator.snapshot().state == "FAULT"
    with pytest.raises(DeviceFault, match="EMERGENCY_STOP"):
        driver.raw_command("SESS:STOP")  # refused because the unit is latched


@pytest.mark.req("EMTT-RAW-1")
@pytest.mark.parametrize("state", [UnitState.ARMED, UnitState.DELIVERING, UnitState.PAUSED])
def test_raw_commands_are_refused_while_armed_or_delivering(
    driver: EmttDriver, fast_simulator: EmttSimulator, commlog: CommLog, state: UnitState
) -> None:
    to_state(driver, fast_simulator, state)
    before = len(sent_lines(commlog))
    with pytest.raises(CommandRefused, match=f"while the unit is {state}"):
        driver.raw_command("SYST:ERR?")
    with pytest.raises(CommandRefused):
        driver.raw_command("*RST")
    new = [line for line in sent_lines(commlog)[before:] if line != "SYST:HEAR"]
    assert new == ["SESS:STAT?", "SESS:STAT?"]  # only the state reads that refused them
    assert fast_simulator.snapshot().state == state


@pytest.mark.req("EMTT-RAW-1")
@pytest.mark.req("EMTT-WDOG-1")
def test_a_raw_arm_starts_the_heartbeats(driver: EmttDriver, fast_simulator: EmttSimulator) -> None:
    assert driver.raw_command("SOUR:FIEL 40;FREQ 5;PULS 10;:SESS:ARM") is None
    time.sleep(3 / SPEED)  # three watchdog periods
    assert driver.status().state is UnitState.ARMED
