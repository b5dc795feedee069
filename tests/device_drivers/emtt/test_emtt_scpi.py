"""The SCPI grammar as pure functions: headers, the path rule, parameters and numbers."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_drivers.emtt import constants as c
from device_drivers.emtt.scpi import (
    Command,
    ScpiError,
    format_number,
    format_tenths,
    is_abort,
    line_has_query,
    parse_number,
    resolve,
    split_line,
)


def resolve_line(line: str) -> list[Command]:
    path: tuple[str, ...] = ()
    out = []
    for segment in split_line(line):
        command, path = resolve(segment, path)
        out.append(command)
    return out


def error_of(segment: str, path: tuple[str, ...] = ()) -> int:
    with pytest.raises(ScpiError) as info:
        resolve(segment, path)
    return info.value.code


@pytest.mark.req("EMTT-SCPI-1")
@pytest.mark.parametrize(
    "header",
    ["SOUR:FIEL", "SOURCE:FIELD", "source:field", "SoUrCe:FiEl", "sour:field", ":SOUR:FIEL"],
)
def test_short_and_long_forms_in_any_case(header: str) -> None:
    assert resolve(f"{header} 25", ())[0] == Command("SOUR:FIEL", False, Decimal(25))


@pytest.mark.req("EMTT-SCPI-1")
@pytest.mark.parametrize(
    "header", ["SOURC:FIEL", "SOU:FIEL", "SOUR:FIELDS", "SOUR", "SESS", "FOO", "SOUR:FIEL25"]
)
def test_partial_or_unknown_mnemonics_are_undefined_headers(header: str) -> None:
    assert error_of(f"{header} 25") == c.UNDEFINED_HEADER


@pytest.mark.req("EMTT-SCPI-1")
@pytest.mark.parametrize(
    ("segment", "key"),
    [
        ("*IDN?", "*IDN"),
        ("*rst", "*RST"),
        ("*CLS", "*CLS"),
        ("*esr?", "*ESR"),
        ("*OPC?", "*OPC"),
        ("*TST?", "*TST"),
        ("SYSTem:ERRor?", "SYST:ERR"),
        ("SYSTEM:FAULT:CLEAR", "SYST:FAUL:CLE"),
        ("syst:hear", "SYST:HEAR"),
        ("SYSTem:HEARtbeat", "SYST:HEAR"),
        ("SYST:APPL?", "SYST:APPL"),
        ("MEASure:TEMPerature?", "MEAS:TEMP"),
        ("MEAS:FIEL?", "MEAS:FIEL"),
        ("DIAGnostic:COIL?", "DIAG:COIL"),
        ("SESSion:STATe?", "SESS:STAT"),
        ("SESS:ARM", "SESS:ARM"),
        ("session:start", "SESS:STAR"),
        ("SESS:PAUSE", "SESS:PAUS"),
        ("SESS:RESUME", "SESS:RES"),
        ("SESS:STOP", "SESS:STOP"),
        ("ABORT", "ABOR"),
        ("abor", "ABOR"),
    ],
)
def test_every_header_of_the_icd_resolves(segment: str, key: str) -> None:
    assert resolve(segment, ())[0].key == key


@pytest.mark.req("EMTT-SCPI-1")
@pytest.mark.parametrize(
    "segment",
    [
        "*IDN",  # query-only common command without ?
        "*OPC",
        "*RST?",  # command without a query form
        "*CLS?",
        "*SRE 1",  # IEEE 488.2 commands the ICD does not list
        "*WAI",
        "*SAV 1",
        "SESS:ARM?",
        "SESS:STAT",
        "SYST:ERR",
        "SYST:HEAR?",
        "ABOR?",
        "MEAS:TEMP",
        "DIAG:LOG 0",
        "SYST:FAUL?",  # a path node, not a command
    ],
)
def test_wrong_form_or_unlisted_common_command_is_minus_113(segment: str) -> None:
    assert error_of(segment) == c.UNDEFINED_HEADER


@pytest.mark.req("EMTT-SCPI-2")
def test_path_rule_makes_following_headers_relative() -> None:
    assert resolve_line("SOUR:FIEL 25;FREQ 3;PULS 100") == [
        Command("SOUR:FIEL", False, Decimal(25)),
        Command("SOUR:FREQ", False, Decimal(3)),
        Command("SOUR:PULS", False, Decimal(100)),
    ]
    # after SYST:FAUL:CLE the path is SYST:FAUL, so HEAR is not found there
    with pytest.raises(ScpiError) as info:
        resolve_line("SYST:FAUL:CLE;HEAR")
    assert info.value.code == c.UNDEFINED_HEADER
    # a leading colon restarts from the root
    assert [cmd.key for cmd in resolve_line("SOUR:FIEL 25;:SESS:STAT?;STAT?")] == [
        "SOUR:FIEL",
        "SESS:STAT",
        "SESS:STAT",
    ]


@pytest.mark.req("EMTT-SCPI-2")
def test_common_commands_are_absolute_and_leave_the_path_alone() -> None:
    keys = [cmd.key for cmd in resolve_line("SOUR:FIEL 25;*CLS;FREQ 3;*OPC?;PULS?")]
    assert keys == ["SOUR:FIEL", "*CLS", "SOUR:FREQ", "*OPC", "SOUR:PULS"]


@pytest.mark.req("EMTT-ABORT-1")
@pytest.mark.parametrize(
    "line", ["SESS:STAR;ABOR", "SOUR:FIEL 25;ABORT", "SYST:FAUL:CLE;abor", "SESS:ABOR", "ABOR"]
)
def test_abort_is_recognised_at_every_path_level(line: str) -> None:
    assert resolve_line(line)[-1] == Command("ABOR", False)
    assert is_abort(split_line(line)[-1])


@pytest.mark.req("EMTT-ABORT-1")
@pytest.mark.parametrize("segment", ["ABOR?", "ABOR 1", "*ABOR", "ABORX", "SESS:STAT?", ""])
def test_is_abort_only_for_a_plain_abort(segment: str) -> None:
    assert not is_abort(segment)


@pytest.mark.req("EMTT-SCPI-3")
@pytest.mark.parametrize(
    ("token", "value"),
    [
        ("25", "25"),
        (".5", "0.5"),
        ("5.", "5"),
        ("+7.5", "7.5"),
        ("-1", "-1"),
        ("2.5e1", "25"),
        ("25E-1", "2.5"),
        ("1e+3", "1000"),
    ],
)
def test_numbers_sign_point_exponent(token: str, value: str) -> None:
    assert parse_number(token) == Decimal(value)


@pytest.mark.req("EMTT-SCPI-3")
@pytest.mark.parametrize(
    "token", ["25mT", "5 Hz", ".", "e3", "1e", "--1", "0x10", "inf", "NaN", "MIN", "1.2.3"]
)
def test_malformed_numbers_or_suffixes_are_syntax_errors(token: str) -> None:
    assert error_of(f"SOUR:FIEL {token}") == c.SYNTAX_ERROR


@pytest.mark.req("EMTT-SCPI-3")
def test_min_max_only_in_limit_queries() -> None:
    assert resolve("SOUR:FIEL? MIN", ())[0] == Command("SOUR:FIEL", True, limit="MIN")
    assert resolve("sour:puls? max", ())[0] == Command("SOUR:PULS", True, limit="MAX")
    assert resolve("SOUR:FREQ? MAXimum", ())[0] == Command("SOUR:FREQ", True, limit="MAX")
    for segment in (
        "SOUR:FIEL MIN",
        "SOUR:PULS MAX",
        "MEAS:TEMP? MIN",
        "SESS:ARM MAX",
        "DIAG:LOG? MIN",
        "SESS:STAT? MAX",
        "SOUR:FIEL? 5",
        "SOUR:FIEL? LOW",
    ):
        assert error_of(segment) == c.SYNTAX_ERROR, segment


@pytest.mark.req("EMTT-SCPI-3")
def test_parameter_count_errors() -> None:
    assert error_of("SOUR:FIEL") == c.MISSING_PARAMETER
    assert error_of("DIAG:LOG?") == c.MISSING_PARAMETER
    assert error_of("SOUR:FIEL 25,30") == c.PARAMETER_NOT_ALLOWED
    assert error_of("SOUR:FIEL? MIN,MAX") == c.PARAMETER_NOT_ALLOWED
    assert error_of("SESS:ARM 1") == c.PARAMETER_NOT_ALLOWED
    assert error_of("*IDN? 1") == c.PARAMETER_NOT_ALLOWED
    assert error_of("ABOR 1") == c.PARAMETER_NOT_ALLOWED
    assert error_of("SOUR:FIEL 25,") == c.SYNTAX_ERROR


@pytest.mark.req("EMTT-SCPI-2")
def test_lines_and_units() -> None:
    assert split_line("") == []
    assert split_line("  \r\n") == []
    assert split_line("*IDN?\r\n") == ["*IDN?"]
    assert split_line("A;B") == ["A", "B"]
    assert error_of("") == c.SYNTAX_ERROR  # an empty unit inside a line
    assert error_of("SOUR::FIEL 1") == c.SYNTAX_ERROR
    assert error_of("SOUR:FIEL: 1") == c.SYNTAX_ERROR
    assert error_of("\x00") == c.SYNTAX_ERROR
    assert line_has_query("SOUR:FIEL 5;FREQ?")
    assert not line_has_query("SOUR:FIEL 5;FREQ 3")


def test_response_and_command_number_formats() -> None:
    assert format_tenths(Decimal(40)) == "40.0"
    assert format_tenths(44.95) == "45.0"  # half up, as the unit shows it
    assert format_tenths(44.9499) == "44.9"
    assert format_number(Decimal("40.50")) == "40.50"
    assert format_number(Decimal("4E+1")) == "40"
    assert format_number(4000) == "4000"
    with pytest.raises(TypeError):
        format_number(True)
    with pytest.raises(ValueError, match="finite"):
        format_number(Decimal("NaN"))


@pytest.mark.req("EMTT-SCPI-3")
@given(st.decimals(allow_nan=False, allow_infinity=False, places=3, min_value=-1e6, max_value=1e6))
def test_every_host_number_parses_back_exactly(value: Decimal) -> None:
    assert parse_number(format_number(value)) == value
