"""Time-based rules of the unit model with explicit simulated time (exact, instant).

The model takes the time of each line as an argument, so watchdog deadlines, pulse counts and
the coil's cut-out can be checked to the millisecond; the same rules run over the socket at a
speed factor in ``test_emtt_sim_faults.py``.
"""

from __future__ import annotations

import math

import pytest

from device_drivers.emtt import constants as c
from device_drivers.emtt.physics import ThermalModel
from device_drivers.emtt.unit import EmttUnit
from tests.device_drivers.emtt.emtt_helpers import fitted_unit


def run(unit: EmttUnit, t: float, line: str) -> str | None:
    return unit.execute_line(line, t)


def status(unit: EmttUnit, t: float) -> list[str]:
    reply = run(unit, t, "SESS:STAT?")
    assert reply is not None
    return reply.split(",")


def errors(unit: EmttUnit, t: float) -> list[int]:
    codes = []
    while (reply := run(unit, t, "SYST:ERR?")) != '0,"No error"':
        assert reply is not None
        codes.append(int(reply.split(",")[0]))
    return codes


def log(unit: EmttUnit, t: float, start: int = 0) -> list[tuple[int, int, int, int]]:
    reply = run(unit, t, f"DIAG:LOG? {start}")
    assert reply is not None
    if not reply:
        return []
    return [tuple(int(x) for x in r.split(",")) for r in reply.split("|")]  # type: ignore[misc]


def armed(field: str = "40", freq: str = "5", pulses: int = 4000) -> EmttUnit:
    unit = fitted_unit()
    assert run(unit, 0.0, f"SOUR:FIEL {field};FREQ {freq};PULS {pulses};:SESS:ARM") is None
    assert status(unit, 0.0)[0] == "ARMED"
    return unit


@pytest.mark.req("EMTT-WDOG-1")
@pytest.mark.parametrize("state_line", ["", "SESS:STAR", "SESS:STAR;PAUS"])
def test_watchdog_trips_after_1000_ms_without_a_line(state_line: str) -> None:
    unit = armed()
    if state_line:
        run(unit, 0.0, state_line)
    watched = status(unit, 0.0)[0]
    run(unit, 0.9, "SYST:HEAR")
    run(unit, 1.85, "")  # an empty line feeds it too
    run(unit, 2.8, "FOO")  # so does a line in error
    assert status(unit, 3.75)[0] == watched  # fed at 2.8, still alive at 3.75
    unit.advance(4.8)  # silent since 3.75: expired at 4.75
    assert status(unit, 4.8)[::5] == ["FAULT", "203"]
    assert errors(unit, 4.8) == [c.UNDEFINED_HEADER, c.WATCHDOG_EXPIRED]
    assert log(unit, 4.8)[-2:] == [
        (len(log(unit, 4.8)) - 2, 4750, c.LOG_ERROR, 203),
        (len(log(unit, 4.8)) - 1, 4750, c.LOG_STATE_CHANGE, 6),
    ]


@pytest.mark.req("EMTT-WDOG-1")
@pytest.mark.parametrize("line", ["SESS:STOP", "SOUR:FIEL 40;FREQ 5", "*RST"])
def test_no_watchdog_outside_armed_delivering_paused(line: str) -> None:
    unit = fitted_unit()
    run(unit, 0.0, line)
    run(unit, 0.0, "SOUR:FIEL 40;FREQ 5;PULS 10")  # READY
    unit.advance(60.0)
    assert status(unit, 60.0)[0] == "READY"
    run(unit, 60.0, "SESS:ARM;STAR")
    for t in (60.5, 61.0, 61.5, 62.0, 62.5):  # 10 pulses at 5 Hz take 2 s
        run(unit, t, "SYST:HEAR")
    unit.advance(70.0)  # no watchdog in COMPLETE
    assert status(unit, 70.0)[:3] == ["COMPLETE", "10", "10"]


@pytest.mark.req("EMTT-WDOG-1")
def test_the_watchdog_starts_on_entering_armed() -> None:
    unit = fitted_unit()
    run(unit, 0.0, "SOUR:FIEL 40;FREQ 5;PULS 10")
    run(unit, 5.0, "SESS:ARM")  # long idle before arming does not count
    assert status(unit, 5.9)[0] == "ARMED"


@pytest.mark.req("EMTT-DELIV-1")
def test_pulses_at_the_set_frequency_and_completion_records() -> None:
    unit = armed(freq="5", pulses=10)
    run(unit, 0.5, "SESS:STAR")
    assert status(unit, 0.69)[1] == "0"  # first pulse one period after the start
    assert status(unit, 0.7)[1] == "1"
    assert status(unit, 1.5)[:4] == ["DELIVERING", "5", "10", "40.0"]
    assert status(unit, 2.5)[:4] == ["COMPLETE", "10", "10", "0.0"]
    assert log(unit, 2.5)[-2:] == [
        (3, 2500, c.LOG_STATE_CHANGE, 5),  # the state change comes first
        (4, 2500, c.LOG_SESSION_COMPLETE, 10),
    ]
    assert run(unit, 2.5, "SYST:APPL?") == "1,EMT-A1,A1-1,10,5000000"


@pytest.mark.req("EMTT-DELIV-1")
@pytest.mark.req("EMTT-STAT-1")
def test_pause_freezes_the_count_and_the_measured_field() -> None:
    unit = armed(field="40", freq="10", pulses=100)
    run(unit, 0.0, "SESS:STAR")
    run(unit, 0.55, "SESS:PAUS")
    assert status(unit, 0.9) == ["PAUSED", "5", "100", "0.0", "25.0", "0"]
    assert run(unit, 0.9, "MEAS:FIEL?") == "0.0"
    run(unit, 1.0, "SESS:RES")
    assert run(unit, 1.0, "MEAS:FIEL?") == "40.0"
    assert status(unit, 1.35)[1] == "8"  # three more pulses since resuming


@pytest.mark.req("EMTT-TEMP-1")
def test_normal_session_stays_below_the_cutout() -> None:
    """4,000 pulses at 40 mT / 5 Hz (800 s) complete without reaching 45 °C."""
    unit = armed(field="40", freq="5", pulses=4000)
    run(unit, 0.0, "SESS:STAR")
    hottest = 0.0
    for second in range(1, 802):
        unit.advance(float(second))
        run(unit, float(second), "SYST:HEAR")
        hottest = max(hottest, unit.coil_temp_c)
    assert status(unit, 801.0)[:3] == ["COMPLETE", "4000", "4000"]
    assert 30.0 < hottest < 45.0


@pytest.mark.req("EMTT-TEMP-1")
def test_long_high_field_session_trips_201_at_45_and_clears_below_40() -> None:
    unit = armed(field="80", freq="10", pulses=10000)
    run(unit, 0.0, "SESS:STAR")
    trip_s = ThermalModel().seconds_to_reach(25.0, 65.0, 44.95)
    assert trip_s is not None and 150 < trip_s < 300
    t = 0.0
    while t + 0.5 < trip_s:
        t += 0.5
        run(unit, t, "SYST:HEAR")
    assert status(unit, t)[0] == "DELIVERING"
    t = trip_s + 1e-6
    state, delivered, _target, field, temp, code = status(unit, t)
    assert (state, field, temp, code) == ("FAULT", "0.0", "45.0", "201")
    assert int(delivered) == int(trip_s * 10)  # delivery stopped at the cut-out
    assert errors(unit, t) == [c.COIL_OVERTEMP]
    assert log(unit, t)[-2][2:] == (c.LOG_ERROR, 201)
    # refused (201 again) while at or above 40.0 °C, accepted below
    run(unit, t + 60.0, "SYST:FAUL:CLE")
    assert errors(unit, t + 60.0) == [c.COIL_OVERTEMP]
    cool_s = 300.0 * math.log((44.95 - 25.0) / (39.95 - 25.0))
    run(unit, t + cool_s - 1.0, "SYST:FAUL:CLE")
    assert float(run(unit, t + cool_s - 1.0, "MEAS:TEMP?") or 0) >= 40.0
    assert errors(unit, t + cool_s - 1.0) == [c.COIL_OVERTEMP]
    run(unit, t + cool_s + 1.0, "SYST:FAUL:CLE")
    assert errors(unit, t + cool_s + 1.0) == []
    assert status(unit, t + cool_s + 1.0)[0] == "IDLE"


@pytest.mark.req("EMTT-TEMP-1")
def test_coil_warms_with_field_times_frequency_and_cools_otherwise() -> None:
    gentle, hard = armed(field="20", freq="2"), armed(field="60", freq="8")
    for unit in (gentle, hard):
        run(unit, 0.0, "SESS:STAR")
        for second in range(1, 61):
            run(unit, float(second), "SYST:HEAR")
    assert 25.0 < gentle.coil_temp_c < hard.coil_temp_c
    hot = hard.coil_temp_c
    run(hard, 60.0, "SESS:STOP")
    run(hard, 120.0, "*OPC?")
    assert hard.coil_temp_c < hot
    resistance = hard.electrics.resistance_mohm(hard.coil_temp_c)
    assert resistance > 118
    assert run(hard, 120.0, "DIAG:COIL?") == f"47.0,{resistance}"


@pytest.mark.req("EMTT-STAT-1")
def test_fault_code_is_the_first_latched_error() -> None:
    unit = armed()
    unit.advance(1.5)  # watchdog
    run(unit, 1.5, "ABOR")  # nothing new in FAULT
    unit.remove_applicator(1.6)  # not watched any more: nothing latched
    assert status(unit, 1.6)[5] == "203"
    assert errors(unit, 1.6) == [c.WATCHDOG_EXPIRED]


@pytest.mark.req("EMTT-LOG-1")
def test_event_log_keeps_the_last_256_records_with_running_indexes() -> None:
    unit = fitted_unit()
    for i in range(150):  # two state changes each: 300 records
        run(unit, i * 0.01, "SOUR:FIEL 40;FREQ 5;PULS 10")
        run(unit, i * 0.01, "SESS:STOP")
    first = log(unit, 2.0)
    assert first[0][0] == 300 - 256 and len(first) == 16
    assert log(unit, 2.0, 299) == [(299, 1490, c.LOG_STATE_CHANGE, 0)]
    assert log(unit, 2.0, 300) == []


@pytest.mark.req("EMTT-LOG-1")
def test_event_log_records_only_device_errors() -> None:
    unit = armed()
    run(unit, 0.1, "FOO;SESS:ARM")
    run(unit, 0.2, "ABOR")
    codes = [(r[2], r[3]) for r in log(unit, 0.2)]
    assert codes == [(1, 1), (1, 2), (2, 204), (1, 6)]


@pytest.mark.req("EMTT-SIM-1")
def test_power_up_resets_all_but_the_physical_things() -> None:
    unit = armed(pulses=20)
    run(unit, 0.0, "SESS:STAR;FOO")
    unit.advance(0.9)
    unit.force_overtemp(0.9)
    unit.power_up()
    assert status(unit, 0.0) == ["IDLE", "0", "0", "0.0", "45.5", "0"]
    assert errors(unit, 0.0) == []
    assert log(unit, 0.0) == []
    assert run(unit, 0.0, "*ESR?") == "0"
    assert run(unit, 0.0, "SYST:APPL?") == "1,EMT-A1,A1-1,4,5000000"
