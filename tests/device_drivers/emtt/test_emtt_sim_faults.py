"""The simulator's speed factor and fault injection, over its real links (TCP and a pty)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import pytest
import pyvisa
from pyvisa.resources import MessageBasedResource

from device_drivers import simcontrol
from device_drivers.emtt import constants as c
from device_drivers.emtt.server import EmttPtyServer, EmttTcpServer
from device_drivers.emtt.simulator import EmttSimulator
from tests.device_drivers.emtt.emtt_helpers import Wire


@pytest.fixture
def fast() -> Iterator[tuple[EmttSimulator, Wire]]:
    simulator = EmttSimulator(speed=20.0, seed=3)
    with EmttTcpServer(simulator) as server:
        wire = Wire(server.port)
        yield simulator, wire
        wire.close()


def wait_for(predicate, timeout: float = 2.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.005)


@pytest.mark.req("EMTT-SIM-1")
@pytest.mark.req("EMTT-DELIV-1")
def test_speed_factor_scales_pulse_timing() -> None:
    simulator = EmttSimulator(speed=20.0)  # 10 Hz simulated = 200 pulses per wall second
    with EmttTcpServer(simulator) as server:
        wire = Wire(server.port)
        wire.silent("SOUR:FIEL 40;FREQ 10;PULS 10000;:SESS:ARM;STAR")
        first = wire.query("SESS:STAT?").split(",")
        started = time.monotonic()
        while time.monotonic() - started < 0.3:  # the 1 s watchdog is 50 ms of wall time
            wire.send("SYST:HEAR")
            time.sleep(0.005)
        last = wire.query("SESS:STAT?").split(",")
        elapsed = time.monotonic() - started
        wire.close()
    assert first[0] == last[0] == "DELIVERING"
    assert int(last[1]) - int(first[1]) == pytest.approx(200 * elapsed, abs=12)
    applicator = simulator.snapshot().applicator
    assert applicator is not None and applicator.pulses_used >= int(last[1])


@pytest.mark.req("EMTT-SIM-1")
def test_drop_and_corrupt_fractions(fast: tuple[EmttSimulator, Wire]) -> None:
    simulator, wire = fast
    simulator.set_drop_fraction(1.0)
    wire.send("*IDN?")
    with pytest.raises(TimeoutError):
        wire.read(timeout=0.2)
    simulator.set_drop_fraction(0.0)
    simulator.set_corrupt_fraction(1.0)
    garbled = wire.query("*IDN?")
    assert garbled != "STORM-LABS,EMT-100,E100-24-0117,1.0.0"
    assert len(garbled) == len("STORM-LABS,EMT-100,E100-24-0117,1.0.0")
    assert set(garbled) & set("#@%^~")
    simulator.set_corrupt_fraction(0.5)
    replies = [wire.query("*OPC?") for _ in range(200)]
    assert 50 < replies.count("1") < 150
    with pytest.raises(ValueError, match="between 0 and 1"):
        simulator.set_drop_fraction(1.5)


@pytest.mark.req("EMTT-SIM-1")
@pytest.mark.req("EMTT-ABORT-1")
def test_reply_delay_delays_answers_but_not_the_abort(fast: tuple[EmttSimulator, Wire]) -> None:
    simulator, wire = fast
    wire.silent("SOUR:FIEL 40;FREQ 5;PULS 4000;:SESS:ARM;STAR")
    simulator.set_reply_delay(0.3)
    started = time.monotonic()
    wire.send("SESS:STAT?")
    wire.send("ABOR")
    time.sleep(0.02)
    snap = simulator.snapshot()  # executed on arrival, behind a late reply
    assert (snap.state, snap.fault_code) == ("FAULT", c.EMERGENCY_STOP)
    assert wire.read(timeout=1.0).startswith("DELIVERING,")
    assert time.monotonic() - started >= 0.3
    simulator.set_reply_delay(0.0)
    assert wire.query("SESS:STAT?").split(",")[::5] == ["FAULT", "204"]


@pytest.mark.req("EMTT-SIM-1")
@pytest.mark.req("EMTT-WDOG-1")
def test_cut_link_leaves_the_unit_running_until_its_watchdog_trips(
    fast: tuple[EmttSimulator, Wire],
) -> None:
    simulator, wire = fast
    wire.silent("SOUR:FIEL 40;FREQ 5;PULS 4000;:SESS:ARM;STAR")
    simulator.cut_link()
    assert simulator.snapshot().state == "DELIVERING"
    with pytest.raises((ConnectionError, OSError)):
        wire.query("*OPC?")
    wait_for(lambda: simulator.snapshot().state == "FAULT", timeout=1.0)  # 1 s / 20
    snap = simulator.snapshot()
    assert snap.fault_code == c.WATCHDOG_EXPIRED
    assert snap.delivered > 0
    assert snap.error_queue == (c.WATCHDOG_EXPIRED,)


@pytest.mark.req("EMTT-SIM-1")
def test_power_cycle_resets_the_unit_and_keeps_applicator_wear(
    fast: tuple[EmttSimulator, Wire],
) -> None:
    simulator, wire = fast
    wire.silent("SOUR:FIEL 40;FREQ 10;PULS 5;:SESS:ARM;STAR")  # done inside one watchdog period
    wait_for(lambda: wire.state() == "COMPLETE")
    wire.silent("FOO")
    simulator.force_overtemp()  # not latched in COMPLETE; the heat is physical
    simulator.power_cycle()
    status, hot = wire.query("SESS:STAT?;:MEAS:TEMP?").split(";")  # same connection
    assert status == f"IDLE,0,0,0.0,{hot},0"
    assert float(hot) >= 45.0  # the coil is still hot
    assert wire.query("SOUR:FIEL?;FREQ?;PULS?") == "0.0;0.0;0"
    assert wire.query("*ESR?") == "0"
    assert wire.errors() == []
    assert wire.query("DIAG:LOG? 0") == ""
    assert wire.query("SYST:APPL?") == "1,EMT-A1,A1-20417,5,5000000"
    assert simulator.snapshot().uptime_s < 5.0


@pytest.mark.req("EMTT-SIM-1")
def test_field_deviation_is_a_measurement_only(fast: tuple[EmttSimulator, Wire]) -> None:
    simulator, wire = fast
    simulator.set_field_deviation(-10.0)
    wire.silent("SOUR:FIEL 40;FREQ 5;PULS 4000;:SESS:ARM;STAR")
    assert wire.query("MEAS:FIEL?") == "36.0"
    assert wire.query("SESS:STAT?").split(",")[3] == "36.0"
    assert wire.state() == "DELIVERING"
    assert wire.errors() == []
    with pytest.raises(ValueError, match="between -100 and"):
        simulator.set_field_deviation(150)


@pytest.mark.req("EMTT-SIM-1")
@pytest.mark.req("EMTT-WEAR-1")
def test_worn_applicator_shows_only_in_syst_appl(fast: tuple[EmttSimulator, Wire]) -> None:
    simulator, wire = fast
    simulator.wear_out_applicator(remaining=3)
    assert wire.query("SYST:APPL?") == "1,EMT-A1,A1-20417,4999997,5000000"
    wire.silent("SOUR:FIEL 40;FREQ 10;PULS 5;:SESS:ARM;STAR")  # the unit does not refuse
    wait_for(lambda: wire.state() == "COMPLETE")
    assert wire.query("SYST:APPL?") == "1,EMT-A1,A1-20417,5000002,5000000"
    assert wire.errors() == []
    simulator.fit_applicator("EMT-A1", pulses_used=1200)
    assert wire.query("SYST:APPL?") == "1,EMT-A1,A1-20418,1200,5000000"
    with pytest.raises(ValueError, match="EMT-A1"):
        simulator.fit_applicator("R15")
    simulator.remove_applicator()
    with pytest.raises(ValueError, match="no applicator"):
        simulator.wear_out_applicator(0)


@pytest.mark.req("EMTT-SIM-1")
def test_fault_injection_by_text_command(fast: tuple[EmttSimulator, Wire]) -> None:
    simulator, wire = fast
    assert simcontrol.apply_command(simulator, "deviation 5") == "ok: deviation 5"
    assert simcontrol.apply_command(simulator, "delay 0") == "ok: delay 0"
    assert simcontrol.apply_command(simulator, "wear 100") == "ok: wear 100"
    assert wire.query("SYST:APPL?").split(",")[3] == "4999900"
    assert simcontrol.apply_command(simulator, "pull") == "ok: pull"
    assert wire.query("SYST:APPL?") == "0,NONE,NONE,0,0"
    assert simcontrol.apply_command(simulator, "fit EMT-A1") == "ok: fit EMT-A1"
    assert "EMT-A1" in simcontrol.apply_command(simulator, "fit R15")
    assert simcontrol.apply_command(simulator, "overtemp") == "ok: overtemp"
    assert wire.query("MEAS:TEMP?") == "45.5"
    assert simcontrol.apply_command(simulator, "reset") == "ok: reset"
    assert simcontrol.apply_command(simulator, "drop 0") == "ok: drop 0"
    assert simcontrol.apply_command(simulator, "corrupt 0") == "ok: corrupt 0"
    assert wire.query("*OPC?") == "1"


@pytest.mark.req("EMTT-SIM-1")
def test_simulator_rejects_a_serial_it_cannot_print() -> None:
    with pytest.raises(ValueError, match="capital letters"):
        EmttSimulator(serial="bad,serial")
    assert EmttSimulator(serial="X-1", applicator_present=False).snapshot().applicator is None


@pytest.mark.req("EMTT-SIM-3")
def test_serial_link_on_a_pty_through_pyvisa_asrl() -> None:
    simulator = EmttSimulator(speed=10.0)
    with EmttPtyServer(simulator) as server:
        assert server.resource.startswith("ASRL/dev/") and server.resource.endswith("::INSTR")
        rm = pyvisa.ResourceManager("@py")
        inst = rm.open_resource(
            server.resource, read_termination="\n", write_termination="\n", timeout=1000
        )
        assert isinstance(inst, MessageBasedResource)
        try:
            assert inst.query("*IDN?") == "STORM-LABS,EMT-100,E100-24-0117,1.0.0"
            inst.write("SOUR:FIEL 40;FREQ 5;PULS 100")
            assert inst.query("SESS:STAT?") == "READY,0,100,0.0,25.0,0"
        finally:
            inst.close()
            rm.close()


@pytest.mark.req("EMTT-SIM-1")
@pytest.mark.req("EMTT-TEMP-1")
def test_speed_factor_scales_the_coil_temperature_too() -> None:
    """At 200× half a wall second is 100 simulated seconds of cooling: 45.5 → about 39.7 °C."""
    simulator = EmttSimulator(speed=200.0)
    simulator.force_overtemp()
    started = time.monotonic()
    time.sleep(0.5)
    elapsed_sim = (time.monotonic() - started) * 200.0
    expected = 25.0 + 20.5 * math.exp(-elapsed_sim / 300.0)
    assert simulator.snapshot().coil_temp_c == pytest.approx(expected, abs=0.3)
    assert simulator.snapshot().coil_temp_c < 40.5
