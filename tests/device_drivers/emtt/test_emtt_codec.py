"""Host-side codec: strict decoders of every response, and the checked settings encoder."""

from __future__ import annotations

import dataclasses
import time
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_drivers.emtt import codec
from device_drivers.emtt.codec import ParameterRejected
from device_drivers.errors import CommandRefused, ProtocolError
from device_drivers.interface import DeviceParameters, DeviceStatus, EventKind, UnitState

ENVELOPE = codec.parse_envelope("5.0;80.0;1.0;10.0;1;10000")


def params(field: str = "40", freq: str = "5", pulses: int = 4000) -> DeviceParameters:
    return DeviceParameters(frequency_hz=Decimal(freq), pulses=pulses, field_mt=Decimal(field))


def test_status_decodes_exactly_as_printed() -> None:
    status = codec.parse_status("DELIVERING,1520,4000,39.8,31.2,0")
    assert status.state is UnitState.DELIVERING
    assert (status.delivered, status.target) == (1520, 4000)
    assert status.field_measured_mt == Decimal("39.8")
    assert status.temperature_c == Decimal("31.2")
    assert (status.fault_code, status.faults) == (0, ())
    fault = codec.parse_status("FAULT,10,20,0.0,45.0,201")
    assert fault.faults == ("COIL_OVERTEMP",)


def test_status_is_the_same_value_the_dataclass_would_build() -> None:
    """parse_status fills DeviceStatus through its slots (speed); it must be indistinguishable."""
    status = codec.parse_status("FAULT,10,20,0.0,45.0,203")
    built = DeviceStatus(
        state=UnitState.FAULT,
        delivered=10,
        target=20,
        temperature_c=Decimal("45.0"),
        faults=("WATCHDOG_EXPIRED",),
        field_measured_mt=Decimal("0.0"),
        fault_code=203,
        received_ns=status.received_ns,
    )
    assert status == built and hash(status) == hash(built) and repr(status) == repr(built)
    assert abs(status.received_ns - time.monotonic_ns()) < 1_000_000_000
    with pytest.raises(dataclasses.FrozenInstanceError):
        status.delivered = 11  # type: ignore[misc]


def test_a_repeated_status_answer_decodes_alike_each_time_with_its_own_timestamp() -> None:
    """Decoded fields are remembered per answer (speed); each reading stays its own value."""
    reply = "PAUSED,77,300,12.5,33.0,0"
    first = codec.parse_status(reply)
    time.sleep(0.001)
    second = codec.parse_status(reply)
    assert first is not second and second.received_ns > first.received_ns
    assert dataclasses.replace(first, received_ns=0) == dataclasses.replace(second, received_ns=0)
    assert (second.state, second.delivered, second.field_measured_mt) == (
        UnitState.PAUSED,
        77,
        Decimal("12.5"),
    )
    for n in range(codec._DECODED_STATUS_MAX + 5):  # the memory stays bounded
        codec.parse_status(f"DELIVERING,{n},99999,40.0,30.0,0")
    assert len(codec._DECODED_STATUS) <= codec._DECODED_STATUS_MAX
    again = codec.parse_status(reply)  # decoded afresh after the memory was cleared
    assert again == dataclasses.replace(first, received_ns=again.received_ns)


@pytest.mark.parametrize(
    "reply",
    [
        "DELIVERING,1520,4000,39.8,31.2",
        "DELIVERING,1520,4000,39.8,31.2,0,1",
        "FIRING,1,1,0.0,25.0,0",
        "IDLE,-1,0,0.0,25.0,0",
        "IDLE,0,0,0.00,25.0,0",
        "IDLE,0,0,0.0,25,0",
        "IDLE,0,0,0.0,25.0,205",
        "idle,0,0,0.0,25.0,0",
        "IDLE,0,0,0.0,25.0,0 ",
        "1;1;1",
        "",
    ],
)
def test_status_rejects_anything_else(reply: str) -> None:
    with pytest.raises(ProtocolError, match="SESS:STAT"):
        codec.parse_status(reply)


@given(st.integers(0, 30), st.sampled_from("#@%^~"))
def test_a_corrupted_status_is_never_taken_for_a_status(position: int, garbage: str) -> None:
    good = "DELIVERING,1520,4000,39.8,31.2,0"
    bad = good[: position % len(good)] + garbage + good[position % len(good) + 1 :]
    with pytest.raises(ProtocolError):
        codec.parse_status(bad)


def test_error_identity_applicator_self_test() -> None:
    assert codec.parse_error('-113,"Undefined header"') == codec.ErrorEntry(
        -113, "Undefined header"
    )
    assert str(codec.parse_error('0,"No error"')) == '0,"No error"'
    with pytest.raises(ProtocolError):
        codec.parse_error("-113,Undefined header")
    identity = codec.parse_identity("STORM-LABS,EMT-100,E100-24-0117,1.0.0")
    assert (identity.model, identity.serial, identity.firmware) == (
        "EMT-100",
        "E100-24-0117",
        "1.0.0",
    )
    assert identity.protocol_version == 1
    for other in ("KEYSIGHT,34465A,MY1,A.03", "STORM-LABS,EPAT-2,1,1", "STORM-LABS,EMT-100,1"):
        with pytest.raises(ProtocolError, match="identified as"):
            codec.parse_identity(other)
    applicator = codec.parse_applicator("1,EMT-A1,A1-20417,4500000,5000000")
    assert applicator.present and applicator.wear_percent == Decimal("90.0")
    assert applicator.shots_remaining == 500_000
    assert not codec.parse_applicator("0,NONE,NONE,0,0").present
    assert codec.parse_coil("47.0,118") == codec.CoilDiagnostics(Decimal("47.0"), 118)
    for bad in ("47,118", "47.0;118", "47.0,-1"):
        with pytest.raises(ProtocolError, match="DIAG:COIL"):
            codec.parse_coil(bad)
    result = codec.parse_self_test("9")
    assert (result.passed, result.failed_checks) == (False, ("COIL_DRIVER", "APPLICATOR_LINK"))
    assert codec.parse_self_test("0").passed
    with pytest.raises(ProtocolError):
        codec.parse_self_test("16")


@pytest.mark.req("EMTT-DRV-ENV-1")
def test_envelope_from_limit_answers_with_icd_steps() -> None:
    assert ENVELOPE.field_mt is not None
    assert (ENVELOPE.field_mt.minimum, ENVELOPE.field_mt.maximum) == (Decimal(5), Decimal(80))
    assert ENVELOPE.field_mt.step == Decimal("0.5")
    assert ENVELOPE.frequency_hz.step == Decimal("0.5")
    assert (ENVELOPE.pulses.minimum, ENVELOPE.pulses.maximum) == (1, 10000)
    assert ENVELOPE.pressure_bar is None
    for bad in ("5.0;80.0;1.0;10.0;1", "80.0;5.0;1.0;10.0;1;10000", "5;80;1;10;1;10000"):
        with pytest.raises(ProtocolError):
            codec.parse_envelope(bad)


def test_settings_and_log_pages() -> None:
    assert codec.parse_settings("40.0;5.0;4000") == params()
    assert codec.parse_settings("0.0;0.0;0") is None
    events = codec.parse_log_page("0,0,1,1|1,10,2,203|2,20,1,6|3,30,3,4000")
    assert [e.kind for e in events] == [
        EventKind.STATE_CHANGE,
        EventKind.FAULT,
        EventKind.STATE_CHANGE,
        EventKind.COMPLETION,
    ]
    assert events[0].state is UnitState.READY and events[2].state is UnitState.FAULT
    assert (events[1].data, events[1].uptime_ms, events[1].index) == (203, 10, 1)
    assert "WATCHDOG_EXPIRED" in events[1].text
    assert events[3].data == 4000
    assert codec.parse_log_page("") == []
    for bad in ("0,0,1,9", "0,0,2,-113", "0,0,4,1", "0,0,1,1|", "0,0,1"):
        with pytest.raises(ProtocolError):
            codec.parse_log_page(bad)


@pytest.mark.req("EMTT-DRV-LOAD-1")
def test_settings_line_sends_values_exactly() -> None:
    assert codec.settings_line(params(), ENVELOPE) == "SOUR:FIEL 40;FREQ 5;PULS 4000"
    line = codec.settings_line(params("80.0", "10.0", 10000), ENVELOPE)
    assert line == "SOUR:FIEL 80.0;FREQ 10.0;PULS 10000"
    assert codec.settings_line(params("5", "1", 1), ENVELOPE) == "SOUR:FIEL 5;FREQ 1;PULS 1"


@pytest.mark.req("EMTT-DRV-LOAD-1")
@pytest.mark.parametrize(
    ("p", "message"),
    [
        (params(field="80.5"), "field 80.5 mT is outside the unit's envelope 5.0–80.0 mT"),
        (params(field="4.5"), "field 4.5 mT is outside"),
        (params(field="40.25"), "field 40.25 mT is not on the unit's 0.5 mT step; choose 40.0 or"),
        (params(freq="10.5"), "frequency 10.5 Hz is outside"),
        (params(freq="2.2"), "frequency 2.2 Hz is not on the unit's 0.5 Hz step; choose 2.0 or"),
        (params(pulses=0), "pulse count 0 pulses is outside"),
        (params(pulses=10001), "pulse count 10001 pulses is outside"),
    ],
)
def test_settings_line_rejects_and_never_rounds(p: DeviceParameters, message: str) -> None:
    with pytest.raises(ParameterRejected, match=message) as info:
        codec.settings_line(p, ENVELOPE)
    assert isinstance(info.value, CommandRefused) and isinstance(info.value, ValueError)


@pytest.mark.req("EMTT-DRV-LOAD-1")
def test_settings_line_rejects_a_pressure_setting() -> None:
    epat = DeviceParameters(frequency_hz=Decimal(5), pulses=2000, pressure_bar=Decimal(2))
    with pytest.raises(ParameterRejected, match="field intensity"):
        codec.settings_line(epat, ENVELOPE)


@pytest.mark.req("EMTT-DRV-LOAD-1")
@given(
    st.decimals(min_value=0, max_value=100, places=2),
    st.decimals(min_value=0, max_value=12, places=2),
    st.integers(-5, 12000),
)
def test_settings_line_sends_exactly_the_envelope(field: Decimal, freq: Decimal, n: int) -> None:
    p = DeviceParameters(frequency_hz=freq, pulses=n, field_mt=field)
    inside = ENVELOPE.field_mt.contains(field) and ENVELOPE.frequency_hz.contains(freq)  # type: ignore[union-attr]
    inside = inside and 1 <= n <= 10000
    if inside:
        line = codec.settings_line(p, ENVELOPE)
        f, q, count = (part.split()[1] for part in line.split(";"))
        assert (Decimal(f), Decimal(q), int(count)) == (field, freq, n)
    else:
        with pytest.raises(ParameterRejected):
            codec.settings_line(p, ENVELOPE)
