"""Time-driven behaviour of the simulated unit on its simulated clock: pulse rate, watchdog,
pressure deviation, handpiece temperature and OVERTEMP, the speed factor."""

from __future__ import annotations

import time

import pytest

from device_drivers.epat.constants import Command, EventCode, Fault, Nak, State
from device_drivers.epat.handpiece import AMBIENT_C, ThermalModel
from tests.device_drivers.epat.epat_helpers import UnitFactory, events_of, params

STATE, FAULT = EventCode.STATE_CHANGE, EventCode.FAULT


def uptime_of(unit_events: list, code: int, data: int) -> int:
    return next(e.uptime_ms for e in unit_events if (e.code, e.data) == (code, data))


@pytest.mark.req("EPAT-SIM-1")
def test_pulses_follow_the_set_frequency(make_unit: UnitFactory) -> None:
    unit = make_unit(speed=10)
    host = unit.raw()
    host.fire(250, 210, 40)  # 21.0 Hz
    host.listen(0.3, heartbeat_every=0.01)
    log = unit.sim.event_records()
    fired = uptime_of(log, STATE, State.FIRING)
    done = uptime_of(log, STATE, State.COMPLETE)
    assert done - fired == pytest.approx(40 / 21 * 1000, abs=2)


@pytest.mark.req("EPAT-SIM-1")
def test_delivered_count_grows_at_the_set_rate(make_unit: UnitFactory) -> None:
    unit = make_unit(speed=10)
    host = unit.raw()
    host.fire(250, 50, 1000)  # 5.0 Hz
    started = time.monotonic()
    host.listen(0.2, heartbeat_every=0.01)
    status = host.status()
    simulated = (time.monotonic() - started) * 10
    assert status.delivered == pytest.approx(simulated * 5, abs=2)
    assert status.pressure_meas_cbar == 250  # measured equals set without a deviation
    assert status.shots_used == status.delivered


@pytest.mark.req("EPAT-SIM-1")
def test_uptime_runs_at_the_speed_factor(make_unit: UnitFactory) -> None:
    unit = make_unit(speed=20)
    host = unit.raw()
    start = host.status().uptime_s
    time.sleep(0.5)
    assert host.status().uptime_s - start == pytest.approx(10, abs=1)


@pytest.mark.req("EPAT-WDOG-1")
def test_watchdog_trips_500_ms_after_the_last_frame_when_armed(make_unit: UnitFactory) -> None:
    unit = make_unit(speed=10)
    host = unit.raw()
    host.ack(Command.SET_PARAMS, params())
    host.ack(Command.ARM)
    frames = host.listen(0.12)  # silent host
    assert events_of(frames) == [(FAULT, Fault.COMM_LOSS), (STATE, State.FAULT)]
    log = unit.sim.event_records()
    armed = uptime_of(log, STATE, State.ARMED)
    assert uptime_of(log, FAULT, Fault.COMM_LOSS) - armed == pytest.approx(500, abs=2)


@pytest.mark.req("EPAT-WDOG-1")
def test_watchdog_stops_firing_within_one_pulse_and_keeps_the_count(make_unit: UnitFactory) -> None:
    unit = make_unit(speed=10)
    host = unit.raw()
    host.ack(Command.SET_PARAMS, params(250, 210, 1000))
    host.ack(Command.ARM)
    host.ack(Command.START)  # the last frame: the watchdog expires 0.5 s later
    host.listen(0.12)
    status = host.status()
    assert status.state == State.FAULT
    assert status.faults == Fault.COMM_LOSS
    assert status.delivered == 10  # floor(0.5 s × 21 Hz)
    host.listen(0.05)
    assert host.status().delivered == 10


@pytest.mark.req("EPAT-WDOG-1")
@pytest.mark.parametrize("state", [State.ARMED, State.FIRING, State.PAUSED])
def test_heartbeats_keep_the_watchdog_quiet(make_unit: UnitFactory, state: State) -> None:
    unit = make_unit(speed=10)
    host = unit.raw()
    host.bring_to(state, params(250, 10, 1000))
    host.listen(0.25, heartbeat_every=0.015)  # 2.5 s simulated, a frame every 150 ms
    assert host.state() == state


@pytest.mark.req("EPAT-WDOG-1")
def test_no_watchdog_in_idle_ready_or_complete(make_unit: UnitFactory) -> None:
    unit = make_unit(speed=20)
    host = unit.raw()
    host.ack(Command.SET_PARAMS, params())
    host.listen(0.1)  # 2 s simulated of silence in READY
    assert host.state() == State.READY


@pytest.mark.req("EPAT-FAULT-2")
def test_pressure_deviation_faults_after_one_second_of_firing(make_unit: UnitFactory) -> None:
    unit = make_unit(speed=10)
    host = unit.raw()
    unit.sim.set_pressure_deviation(20.0)
    host.fire(250, 100, 1000)
    host.listen(0.03, heartbeat_every=0.01)
    assert host.status().pressure_meas_cbar == 300
    host.listen(0.1, heartbeat_every=0.01)
    status = host.status()
    assert (status.state, status.faults) == (State.FAULT, Fault.PRESSURE_DEVIATION)
    assert status.pressure_meas_cbar == 0  # not firing
    log = unit.sim.event_records()
    firing = uptime_of(log, STATE, State.FIRING)
    assert uptime_of(log, FAULT, Fault.PRESSURE_DEVIATION) - firing == pytest.approx(1000, abs=2)


@pytest.mark.req("EPAT-FAULT-2")
def test_deviation_of_15_percent_or_pauses_do_not_fault(make_unit: UnitFactory) -> None:
    unit = make_unit(speed=10)
    host = unit.raw()
    unit.sim.set_pressure_deviation(-15.0)
    host.fire(200, 100, 1000)
    host.listen(0.15, heartbeat_every=0.01)  # 1.5 s simulated at exactly 15 %
    assert host.state() == State.FIRING
    unit.sim.set_pressure_deviation(30.0)
    host.listen(0.06, heartbeat_every=0.01)  # 0.6 s deviating …
    host.ack(Command.PAUSE)
    host.ack(Command.RESUME)  # … the timer restarts with firing
    host.listen(0.06, heartbeat_every=0.01)
    assert host.state() == State.FIRING
    host.listen(0.06, heartbeat_every=0.01)
    assert host.state() == State.FAULT


@pytest.mark.req("EPAT-FAULT-1", "EPAT-SIM-1")
def test_firing_heats_to_overtemp_which_latches_until_below_40(make_unit: UnitFactory) -> None:
    unit = make_unit(speed=10, applicator="D20-S")
    host = unit.raw()
    unit.sim.set_handpiece_temperature(42.0)
    host.fire(500, 210, 10_000)  # 105 bar·Hz: 42.0 → 43.0 °C in about 6.6 s simulated
    host.listen(0.6, heartbeat_every=0.01)
    assert host.state() == State.FIRING
    frames = host.listen(0.25, heartbeat_every=0.01)
    assert events_of(frames) == [(FAULT, Fault.OVERTEMP), (STATE, State.FAULT)]
    log = unit.sim.event_records()
    heated_ms = uptime_of(log, FAULT, Fault.OVERTEMP) - uptime_of(log, STATE, State.FIRING)
    assert heated_ms == pytest.approx(300 * 1000 * 0.02198, abs=40)  # τ·ln(46/45)
    status = host.status()
    assert 400 <= status.handpiece_temp_dc < 430  # cooling since the cut-out, still hot
    assert host.nak(Command.CLEAR_FAULT) == (Nak.FAULT_ACTIVE, Fault.OVERTEMP)
    unit.sim.set_handpiece_temperature(40.2)  # still at/above 40.0: the fault stays
    assert host.nak(Command.CLEAR_FAULT) == (Nak.FAULT_ACTIVE, Fault.OVERTEMP)
    host.listen(0.5)  # cools 40.2 → below 40.0 in about 4 s simulated
    assert host.status().handpiece_temp_dc < 400
    host.ack(Command.CLEAR_FAULT)
    assert host.state() == State.IDLE


@pytest.mark.req("EPAT-FAULT-1")
def test_force_overtemp_latches_fault_in_any_state(make_unit: UnitFactory) -> None:
    unit = make_unit()
    host = unit.raw()
    unit.sim.force_overtemp()
    frames = host.listen(0.05)
    assert events_of(frames) == [(FAULT, Fault.OVERTEMP), (STATE, State.FAULT)]
    assert host.status().handpiece_temp_dc >= 430


@pytest.mark.req("EPAT-SIM-1")
def test_handpiece_warms_with_firing_and_cools_when_idle(make_unit: UnitFactory) -> None:
    unit = make_unit(speed=10)
    host = unit.raw()
    host.fire(400, 210, 10_000)
    host.listen(0.3, heartbeat_every=0.01)  # about 3 s simulated at 84 bar·Hz: +0.5 °C
    assert host.status().handpiece_temp_dc >= 253
    host.ack(Command.STOP)
    stopped = unit.sim.snapshot().temperature_c
    host.listen(0.2)  # 2 s simulated idle
    assert 25.0 < unit.sim.snapshot().temperature_c < stopped


@pytest.mark.req("EPAT-SIM-1")
def test_thermal_model_is_plausible() -> None:
    """A normal session stays cool; a long one near the top of the envelope reaches 43 °C."""
    normal = ThermalModel()
    normal.advance(2000 / 8, 2.5 * 8)  # 2,000 pulses at 8 Hz / 2.5 bar
    assert normal.temperature_c < 35
    assert normal.seconds_until(43.0, 2.5 * 8) is None  # never, however long
    hard = ThermalModel()
    seconds = hard.seconds_until(43.0, 4.0 * 21)  # 21 Hz / 4.0 bar (R15 maximum)
    assert seconds is not None
    assert seconds * 21 < 10_000  # within one maximal load
    hard.advance(seconds, 4.0 * 21)
    assert hard.decidegrees == 430
    hard.advance(600, 0)  # ten minutes idle
    assert hard.temperature_c < 32
    assert hard.temperature_c > AMBIENT_C
