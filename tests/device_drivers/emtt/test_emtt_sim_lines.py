"""The simulated unit at the line level over a raw TCP socket: exact lines out, exact lines back.

Every rule of the ICD that does not need the clock is proven here through the real server;
the time-based rules (watchdog, pulses, coil heat) are in ``test_emtt_unit_time.py``.
"""

from __future__ import annotations

import time

import pytest

from device_drivers.emtt import constants as c
from device_drivers.emtt.server import EmttTcpServer
from device_drivers.emtt.simulator import EmttSimulator
from tests.device_drivers.emtt.emtt_helpers import Wire

READY_LINE = "SOUR:FIEL 40;FREQ 5;PULS 4000"


def bring_to(wire: Wire, state: str) -> None:
    """Drive the unit from power-up to ``state`` with plain lines."""
    if state == "COMPLETE":
        wire.silent("SOUR:FIEL 40;FREQ 10;PULS 1;:SESS:ARM;STAR")
        deadline = time.monotonic() + 2.0
        while wire.state() != "COMPLETE":
            assert time.monotonic() < deadline, "delivery never completed"
            time.sleep(0.02)
        return
    if state == "FAULT":
        wire.silent("ABOR")
        assert wire.errors() == [c.EMERGENCY_STOP]
    steps = ["READY", "ARMED", "DELIVERING", "PAUSED"]
    lines = [READY_LINE, "SESS:ARM", "SESS:STAR", "SESS:PAUS"]
    if state in steps:
        for line in lines[: steps.index(state) + 1]:
            wire.silent(line)
    assert wire.state() == state
    assert wire.errors() == []


@pytest.mark.req("EMTT-SIM-1")
def test_reference_identity_and_power_up_status(wire: Wire) -> None:
    assert wire.query("*IDN?") == "STORM-LABS,EMT-100,E100-24-0117,1.0.0"
    assert wire.query("*OPC?") == "1"
    assert wire.query("SESS:STAT?") == "IDLE,0,0,0.0,25.0,0"
    assert wire.query("SOUR:FIEL?;FREQ?;PULS?") == "0.0;0.0;0"
    assert wire.query("SYST:APPL?") == "1,EMT-A1,A1-20417,0,5000000"
    assert wire.query("DIAG:COIL?") == "47.0,118"
    assert wire.query("MEAS:TEMP?;FIEL?") == "25.0;0.0"
    assert wire.query("*ESR?") == "0"
    assert wire.query("DIAG:LOG? 0") == ""


@pytest.mark.req("EMTT-SIM-1")
@pytest.mark.req("EMTT-DRV-ENV-1")
def test_limit_queries_give_the_reference_envelope(wire: Wire) -> None:
    line = "SOUR:FIEL? MIN;FIEL? MAX;FREQ? MIN;FREQ? MAX;PULS? MIN;PULS? MAX"
    assert wire.query(line) == "5.0;80.0;1.0;10.0;1;10000"
    assert wire.query("source:field? minimum;:SOUR:PULS? maximum") == "5.0;10000"


@pytest.mark.req("EMTT-ERR-1")
def test_error_queue_is_oldest_first_one_entry_per_rejection(wire: Wire) -> None:
    assert wire.query("SYST:ERR?") == '0,"No error"'
    wire.silent("FOO")
    wire.silent("SESS:ARM")  # IDLE: settings conflict
    wire.silent("SOUR:FIEL 100")
    assert wire.query("SYST:ERR?") == '-113,"Undefined header"'
    assert wire.query("system:error?") == '-221,"Settings conflict"'
    assert wire.query("SYSTem:ERRor?") == '-222,"Data out of range"'
    assert wire.query("SYST:ERR?") == '0,"No error"'


@pytest.mark.req("EMTT-ERR-1")
@pytest.mark.req("EMTT-SET-1")
@pytest.mark.parametrize(
    ("line", "idle", "armed"),
    [
        ("SOUR:FIEL", c.MISSING_PARAMETER, c.MISSING_PARAMETER),  # syntax beats state
        ("SOUR:FIEL MIN", c.SYNTAX_ERROR, c.SYNTAX_ERROR),
        ("SOUR:FIEL 40mT", c.SYNTAX_ERROR, c.SYNTAX_ERROR),
        ("SOUR:FIEL 40,50", c.PARAMETER_NOT_ALLOWED, c.PARAMETER_NOT_ALLOWED),
        ("SOUR:FIEL 100", c.DATA_OUT_OF_RANGE, c.SETTINGS_CONFLICT),  # state beats value
        ("SOUR:FIEL 100.25", c.DATA_OUT_OF_RANGE, c.SETTINGS_CONFLICT),  # range beats step
        ("SOUR:FIEL 4.5", c.DATA_OUT_OF_RANGE, c.SETTINGS_CONFLICT),
        ("SOUR:FIEL 40.25", c.ILLEGAL_PARAMETER_VALUE, c.SETTINGS_CONFLICT),
        ("SOUR:FREQ 10.5", c.DATA_OUT_OF_RANGE, c.SETTINGS_CONFLICT),
        ("SOUR:FREQ 0.5", c.DATA_OUT_OF_RANGE, c.SETTINGS_CONFLICT),
        ("SOUR:FREQ .5", c.DATA_OUT_OF_RANGE, c.SETTINGS_CONFLICT),  # .5 is a number
        ("SOUR:FREQ 2.2", c.ILLEGAL_PARAMETER_VALUE, c.SETTINGS_CONFLICT),
        ("SOUR:PULS 0", c.DATA_OUT_OF_RANGE, c.SETTINGS_CONFLICT),
        ("SOUR:PULS 10001", c.DATA_OUT_OF_RANGE, c.SETTINGS_CONFLICT),
        ("SOUR:PULS 0.5", c.DATA_OUT_OF_RANGE, c.SETTINGS_CONFLICT),
        ("SOUR:PULS 100.5", c.ILLEGAL_PARAMETER_VALUE, c.SETTINGS_CONFLICT),
        ("SOUR:PULS 1e5", c.DATA_OUT_OF_RANGE, c.SETTINGS_CONFLICT),
        ("SESS:ARM 1", c.PARAMETER_NOT_ALLOWED, c.PARAMETER_NOT_ALLOWED),
        ("SESS:STAT", c.UNDEFINED_HEADER, c.UNDEFINED_HEADER),
        ("*TST", c.UNDEFINED_HEADER, c.UNDEFINED_HEADER),
    ],
)
def test_error_precedence_syntax_then_state_then_value(
    wire: Wire, line: str, idle: int, armed: int
) -> None:
    wire.silent(line)
    assert wire.errors() == [idle]
    bring_to(wire, "ARMED")
    wire.silent(line)
    assert wire.errors() == [armed]
    assert wire.state() == "ARMED"


@pytest.mark.req("EMTT-SET-1")
@pytest.mark.req("EMTT-SCPI-3")
def test_valid_numbers_are_accepted_exactly(wire: Wire) -> None:
    wire.silent("SOUR:FIEL 5.;FREQ .15e1;PULS 1e3")
    assert wire.query("SOUR:FIEL?;FREQ?;PULS?") == "5.0;1.5;1000"
    wire.silent("SOUR:FIEL +80.00;FREQ 10;PULS 10000.0")
    assert wire.query("SOUR:FIEL?;FREQ?;PULS?") == "80.0;10.0;10000"
    assert wire.errors() == []


@pytest.mark.req("EMTT-ERR-2")
def test_queue_overflow_becomes_minus_350_and_drops_until_read(wire: Wire) -> None:
    for _ in range(17):
        wire.silent("FOO")
    assert wire.query("*ESR?") == str(c.ESR_COMMAND_ERROR | c.ESR_DEVICE_ERROR)
    assert wire.query("SYST:ERR?") == '-113,"Undefined header"'
    wire.silent("SESS:ARM")  # dropped: the -350 has not been read yet
    codes = wire.errors()
    assert codes == [c.UNDEFINED_HEADER] * 14 + [c.QUEUE_OVERFLOW]
    wire.silent("SESS:ARM")  # the overflow was read: errors queue again
    assert wire.errors() == [c.SETTINGS_CONFLICT]


@pytest.mark.req("EMTT-ERR-2")
def test_exactly_sixteen_errors_fit(wire: Wire) -> None:
    for _ in range(16):
        wire.silent("FOO")
    assert wire.errors() == [c.UNDEFINED_HEADER] * 16


@pytest.mark.req("EMTT-ERR-2")
def test_esr_bits_and_cls(wire: Wire, simulator: EmttSimulator) -> None:
    wire.silent("FOO")
    assert wire.query("*ESR?") == "32"  # command error
    assert wire.query("*ESR?") == "0"  # read clears it
    wire.silent("SESS:STAR")
    assert wire.query("*ESR?") == "16"  # execution error
    assert wire.errors() == [c.UNDEFINED_HEADER, c.SETTINGS_CONFLICT]  # *ESR? leaves the queue
    simulator.remove_applicator()
    bring_to(wire, "READY")
    wire.silent("SESS:ARM")
    assert wire.query("*ESR?") == "8"  # device error (202)
    assert wire.errors() == [c.APPLICATOR_NOT_CONNECTED]
    wire.silent("FOO;SESS:STAR")
    wire.silent("*CLS")
    assert wire.query("*ESR?;:SYST:ERR?") == '0;0,"No error"'


@pytest.mark.req("EMTT-STATE-1")
def test_ready_once_all_three_settings_are_made_since_idle(wire: Wire) -> None:
    wire.silent("SOUR:FIEL 40")
    assert wire.query("SESS:STAT?") == "IDLE,0,0,0.0,25.0,0"
    wire.silent("SOUR:FREQ 5")
    assert wire.state() == "IDLE"
    wire.silent("SOUR:PULS 4000")
    assert wire.query("SESS:STAT?") == "READY,0,4000,0.0,25.0,0"
    wire.silent("SESS:STOP")  # accepted in READY
    assert wire.query("SESS:STAT?") == "IDLE,0,4000,0.0,25.0,0"
    wire.silent("SOUR:PULS 3000;FIEL 30")  # set again since IDLE: only two of three
    assert wire.state() == "IDLE"
    wire.silent("SOUR:FREQ 4")
    assert (
        wire.query("SESS:STAT?;:SOUR:FIEL?;FREQ?;PULS?") == "READY,0,3000,0.0,25.0,0;30.0;4.0;3000"
    )
    assert wire.errors() == []


@pytest.mark.req("EMTT-STATE-1")
def test_complete_returns_to_ready_on_any_setting_and_resets_delivered(wire: Wire) -> None:
    bring_to(wire, "COMPLETE")
    assert wire.query("SESS:STAT?") == "COMPLETE,1,1,0.0,25.0,0"
    wire.silent("SOUR:PULS 5")
    assert wire.query("SESS:STAT?;:SOUR:FIEL?;FREQ?") == "READY,0,5,0.0,25.0,0;40.0;10.0"
    wire.silent("SESS:ARM;STAR;STOP")  # stop keeps the count readable until the next setting
    status = wire.query("SESS:STAT?").split(",")
    assert status[0] == "IDLE" and status[2] == "5"
    wire.silent("SOUR:FIEL 30")
    assert wire.query("SESS:STAT?").split(",")[1] == "0"
    assert wire.errors() == []


@pytest.mark.req("EMTT-STATE-1")
@pytest.mark.parametrize(
    ("state", "line", "after"),
    [
        ("IDLE", "SESS:ARM", None),
        ("IDLE", "SESS:STAR", None),
        ("IDLE", "SESS:STOP", None),
        ("IDLE", "SYST:FAUL:CLE", None),
        ("READY", "SESS:ARM", "ARMED"),
        ("READY", "SESS:STAR", None),
        ("READY", "SESS:PAUS", None),
        ("READY", "SESS:STOP", "IDLE"),
        ("ARMED", "SESS:STAR", "DELIVERING"),
        ("ARMED", "SESS:RES", None),
        ("ARMED", "SESS:STOP", "IDLE"),
        ("ARMED", "SESS:ARM", None),
        ("DELIVERING", "SESS:PAUS", "PAUSED"),
        ("DELIVERING", "SESS:STAR", None),
        ("DELIVERING", "SESS:RES", None),
        ("DELIVERING", "SESS:STOP", "IDLE"),
        ("DELIVERING", "*RST", None),
        ("DELIVERING", "*TST?", None),
        ("PAUSED", "SESS:RES", "DELIVERING"),
        ("PAUSED", "SESS:STAR", None),
        ("PAUSED", "SESS:STOP", "IDLE"),
        ("PAUSED", "*RST", None),
        ("ARMED", "*RST", None),
        ("COMPLETE", "SESS:STOP", "IDLE"),
        ("COMPLETE", "SESS:STAR", None),
        ("COMPLETE", "*RST", "IDLE"),
        ("READY", "*RST", "IDLE"),
        ("FAULT", "SESS:STOP", None),
        ("FAULT", "*RST", None),
        ("FAULT", "SOUR:FIEL 40", None),
        ("FAULT", "SYST:FAUL:CLE", "IDLE"),
    ],
)
def test_state_transitions(wire: Wire, state: str, line: str, after: str | None) -> None:
    """Each listed transition happens; every other command answers -221 and changes nothing."""
    bring_to(wire, state)
    wire.silent(line)
    if after is None:
        assert wire.errors() == [c.SETTINGS_CONFLICT]
        assert wire.state() == state
    else:
        assert wire.errors() == []
        assert wire.state() == after


@pytest.mark.req("EMTT-STATE-1")
def test_rst_unsets_settings_and_keeps_errors_and_esr(wire: Wire) -> None:
    bring_to(wire, "READY")
    wire.silent("FOO")
    wire.silent("*RST")
    assert wire.query("SESS:STAT?;:SOUR:FIEL?;FREQ?;PULS?") == "IDLE,0,0,0.0,25.0,0;0.0;0.0;0"
    assert wire.query("*ESR?") == "32"
    assert wire.errors() == [c.UNDEFINED_HEADER]


@pytest.mark.req("EMTT-ABORT-1")
@pytest.mark.parametrize(
    "state", ["IDLE", "READY", "ARMED", "DELIVERING", "PAUSED", "COMPLETE", "FAULT"]
)
def test_abort_from_every_state_latches_fault_204(wire: Wire, state: str) -> None:
    bring_to(wire, state)
    wire.silent("ABORt")
    status = wire.query("SESS:STAT?").split(",")
    assert status[0] == "FAULT"
    assert status[3] == "0.0"  # no field while not delivering
    assert status[5] == "204"
    # ABORt in FAULT is accepted and queues nothing new
    assert wire.errors() == ([] if state == "FAULT" else [c.EMERGENCY_STOP])
    wire.silent("SYST:FAUL:CLE")
    assert wire.state() == "IDLE"
    assert wire.query("SESS:STAT?").split(",")[5] == "0"


@pytest.mark.req("EMTT-ABORT-1")
@pytest.mark.req("EMTT-SCPI-2")
def test_abort_on_a_line_always_runs(wire: Wire) -> None:
    bring_to(wire, "ARMED")
    wire.silent("SESS:STAR;ABOR")  # the path is SESS, ABOR is still found
    assert wire.query("SESS:STAT?").split(",")[::5] == ["FAULT", "204"]
    assert wire.errors() == [c.EMERGENCY_STOP]

    wire.silent("SYST:FAUL:CLE")
    bring_to(wire, "READY")
    wire.silent("FOO;SESS:ARM;ABOR")  # a header error stops the line, but not the ABORt
    assert wire.state() == "FAULT"
    assert wire.errors() == [c.UNDEFINED_HEADER, c.EMERGENCY_STOP]

    wire.silent("SYST:FAUL:CLE")
    bring_to(wire, "READY")
    wire.silent("SESS:STAR;ARM;ABOR")  # an execution error too; ARM after it never runs
    assert wire.errors() == [c.SETTINGS_CONFLICT, c.EMERGENCY_STOP]
    assert wire.query("DIAG:LOG? 0").split("|")[-1].split(",")[2:] == ["1", "6"]


@pytest.mark.req("EMTT-SCPI-2")
def test_answers_before_an_error_are_still_sent(wire: Wire) -> None:
    assert wire.query("*IDN?;FOO;*OPC?") == "STORM-LABS,EMT-100,E100-24-0117,1.0.0"
    assert wire.errors() == [c.UNDEFINED_HEADER]
    assert wire.query("*OPC?;*TST?;:SESS:STAT?") == "1;0;IDLE,0,0,0.0,25.0,0"
    bring_to(wire, "READY")
    assert wire.query("*OPC?;*TST?;:SESS:STAT?") == "1"  # *TST? only in IDLE
    assert wire.errors() == [c.SETTINGS_CONFLICT]
    wire.silent("*TST?")  # a rejected query produces no response line
    assert wire.errors() == [c.SETTINGS_CONFLICT]


@pytest.mark.req("EMTT-SCPI-1")
def test_lines_carriage_returns_empty_lines_and_garbage(server: EmttTcpServer) -> None:
    wire = Wire(server.port)
    wire.sock.sendall(b"*OPC?\r\n\n   \n*IDN?;*OPC?\r\n")
    assert wire.read() == "1"
    assert wire.read() == "STORM-LABS,EMT-100,E100-24-0117,1.0.0;1"
    wire.send(b"*IDN\xff?")
    wire.send(b"A" * 5000)
    assert wire.errors() == [c.SYNTAX_ERROR, c.SYNTAX_ERROR]
    wire.close()


@pytest.mark.req("EMTT-FAULT-1")
def test_clear_fault_refusals_and_applicator_first(wire: Wire, simulator: EmttSimulator) -> None:
    bring_to(wire, "ARMED")
    simulator.remove_applicator()
    assert wire.query("SESS:STAT?").split(",")[::5] == ["FAULT", "202"]
    simulator.force_overtemp()  # both causes now: the applicator is checked first
    wire.silent("SYST:FAUL:CLE")
    assert wire.errors() == [c.APPLICATOR_NOT_CONNECTED, c.APPLICATOR_NOT_CONNECTED]
    simulator.fit_applicator()
    wire.silent("SYST:FAUL:CLE")
    assert wire.errors() == [c.COIL_OVERTEMP]
    assert wire.query("SESS:STAT?").split(",")[::5] == ["FAULT", "202"]  # first latched error


@pytest.mark.req("EMTT-APPL-1")
def test_arm_refused_without_applicator_or_when_hot(wire: Wire, simulator: EmttSimulator) -> None:
    simulator.remove_applicator()
    simulator.force_overtemp()
    bring_to(wire, "READY")
    wire.silent("SESS:ARM")
    assert wire.errors() == [c.APPLICATOR_NOT_CONNECTED]  # the applicator is checked first
    assert wire.state() == "READY"
    simulator.fit_applicator()
    wire.silent("SESS:ARM")
    assert wire.errors() == [c.COIL_OVERTEMP]
    assert wire.state() == "READY"
    log = [r.split(",") for r in wire.query("DIAG:LOG? 0").split("|")]
    assert [(r[2], r[3]) for r in log] == [("1", "1"), ("2", "202"), ("2", "201")]


@pytest.mark.req("EMTT-APPL-1")
@pytest.mark.parametrize("state", ["ARMED", "DELIVERING", "PAUSED"])
def test_removing_the_applicator_while_active_latches_202(
    wire: Wire, simulator: EmttSimulator, state: str
) -> None:
    bring_to(wire, state)
    simulator.remove_applicator()
    assert wire.query("SESS:STAT?").split(",")[::5] == ["FAULT", "202"]
    assert wire.errors() == [c.APPLICATOR_NOT_CONNECTED]
    assert wire.query("SYST:APPL?") == "0,NONE,NONE,0,0"
    wire.silent("DIAG:COIL?")  # no coil to measure
    assert wire.errors() == [c.SETTINGS_CONFLICT]


@pytest.mark.req("EMTT-APPL-1")
@pytest.mark.parametrize("state", ["IDLE", "READY", "COMPLETE"])
def test_removing_the_applicator_while_not_active_latches_nothing(
    wire: Wire, simulator: EmttSimulator, state: str
) -> None:
    bring_to(wire, state)
    simulator.remove_applicator()
    assert wire.state() == state
    assert wire.errors() == []
    assert wire.query("*TST?" if state == "IDLE" else "*OPC?") == ("8" if state == "IDLE" else "1")


@pytest.mark.req("EMTT-LOG-1")
def test_event_log_format_paging_and_errors(wire: Wire) -> None:
    assert wire.query("DIAG:LOG? 0") == ""
    for _ in range(10):
        wire.silent(READY_LINE)
        wire.silent("SESS:STOP")
    page = wire.query("DIAG:LOG? 0").split("|")
    assert len(page) == 16
    records = [tuple(int(x) for x in r.split(",")) for r in page]
    assert [r[0] for r in records] == list(range(16))
    assert [(r[2], r[3]) for r in records[:4]] == [(1, 1), (1, 0), (1, 1), (1, 0)]
    assert all(r[1] >= 0 for r in records)
    assert [int(r.split(",")[0]) for r in wire.query("DIAG:LOG? 16").split("|")] == [16, 17, 18, 19]
    assert wire.query("DIAG:LOG? 20") == ""
    assert wire.query("DIAG:LOG? 1e6") == ""
    wire.silent("DIAG:LOG?")
    wire.silent("DIAG:LOG? -1")
    wire.silent("DIAG:LOG? 1.5")
    wire.silent("DIAG:LOG? MIN")
    assert wire.errors() == [
        c.MISSING_PARAMETER,
        c.DATA_OUT_OF_RANGE,
        c.ILLEGAL_PARAMETER_VALUE,
        c.SYNTAX_ERROR,
    ]


@pytest.mark.req("EMTT-SIM-1")
def test_self_test_bits(wire: Wire, simulator: EmttSimulator) -> None:
    assert wire.query("*TST?") == "0"
    simulator.set_self_test_failures(0b0011)
    assert wire.query("*TST?") == "3"
    simulator.remove_applicator()
    assert wire.query("*TST?") == "11"


@pytest.mark.req("EMTT-SIM-2")
def test_every_query_is_answered_within_50_ms(wire: Wire) -> None:
    bring_to(wire, "DELIVERING")
    queries = [
        "*IDN?",
        "SESS:STAT?",
        "SYST:ERR?",
        "MEAS:TEMP?",
        "MEAS:FIEL?",
        "SYST:APPL?",
        "DIAG:COIL?",
        "DIAG:LOG? 0",
        "SOUR:FIEL? MAX",
        "*ESR?",
        "*OPC?",
    ]
    worst = 0.0
    for _ in range(20):
        for query in queries:
            started = time.perf_counter()
            wire.query(query)
            worst = max(worst, time.perf_counter() - started)
    assert worst < c.QUERY_DEADLINE_S


@pytest.mark.req("EMTT-SIM-1")
def test_a_new_connection_replaces_the_old_and_the_state_survives(
    server: EmttTcpServer, wire: Wire
) -> None:
    bring_to(wire, "READY")
    second = Wire(server.port)
    assert second.state() == "READY"
    with pytest.raises((ConnectionError, OSError)):
        wire.query("*OPC?")
    second.close()
