"""The EPAT frame codec and payload layouts: CRC, range checks, resynchronisation (pure code)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_drivers.epat.codec import Frame, FrameDecoder, crc16_ccitt_false, encode_frame
from device_drivers.epat.payloads import (
    ApplicatorBlock,
    EventRecord,
    HelloInfo,
    SetParams,
    StatusBlock,
    pack_events,
    pack_string,
    pack_uint,
    unpack_events,
    unpack_string,
    unpack_uint,
)
from device_drivers.epat.units import (
    ParameterRejected,
    bar_to_cbar,
    cbar_to_bar,
    dhz_to_hz,
    hz_to_dhz,
)
from device_drivers.errors import DeviceError, ProtocolError


def reference_crc(data: bytes) -> int:
    """Bit-by-bit CRC-16/CCITT-FALSE, written from the ICD's parameters, to cross-check."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


frames = st.builds(
    Frame,
    seq=st.integers(0, 255),
    cmd=st.integers(0, 255),
    payload=st.binary(max_size=248),
)


@pytest.mark.req("EPAT-CRC-1")
def test_crc_check_value_is_0x29b1() -> None:
    assert crc16_ccitt_false(b"123456789") == 0x29B1
    assert reference_crc(b"123456789") == 0x29B1


@pytest.mark.req("EPAT-CRC-1")
@given(st.binary(max_size=300))
def test_crc_matches_the_bitwise_definition(data: bytes) -> None:
    assert crc16_ccitt_false(data) == reference_crc(data)


@pytest.mark.req("EPAT-CRC-1")
def test_frame_layout_matches_the_icd_by_hand() -> None:
    frame = encode_frame(0x07, 0x20, bytes.fromhex("fa005000d0070000"))
    assert frame[:4] == bytes((0xA5, 10, 0x07, 0x20))
    assert frame[4:-2] == bytes.fromhex("fa005000d0070000")
    # CRC big-endian over LEN..PAYLOAD
    assert int.from_bytes(frame[-2:], "big") == reference_crc(frame[1:-2])


@pytest.mark.req("EPAT-FRAME-1")
@pytest.mark.parametrize(
    ("seq", "cmd", "payload"),
    [(-1, 1, b""), (256, 1, b""), (1, -1, b""), (1, 256, b""), (1, 1, bytes(249)), (True, 1, b"")],
)
def test_encoder_rejects_fields_that_do_not_fit(seq: int, cmd: int, payload: bytes) -> None:
    with pytest.raises(ValueError, match=r"SEQ|CMD|payload"):
        encode_frame(seq, cmd, payload)


@pytest.mark.req("EPAT-FRAME-1")
@given(frames)
def test_round_trip(frame: Frame) -> None:
    decoder = FrameDecoder()
    assert decoder.feed(frame.encode()) == [frame]
    assert decoder.pending == 0


@pytest.mark.req("EPAT-FRAME-2")
@given(st.lists(st.tuples(st.binary(max_size=40), frames), max_size=6), st.binary(max_size=40))
def test_resynchronises_after_random_garbage(
    chunks: list[tuple[bytes, Frame]], tail: bytes
) -> None:
    """Frames separated by garbage are all found, except where garbage fakes a valid frame.

    Garbage that happens to start a candidate frame may swallow following bytes; the ICD's
    rule is that the SOF is discarded and decoding resumes from the byte after it, so every
    real frame is still found. The garbage is made SOF-free to keep the property exact.
    """
    stream = b"".join(g.replace(b"\xa5", b"\x00") + f.encode() for g, f in chunks)
    stream += tail.replace(b"\xa5", b"\x00")
    assert FrameDecoder().feed(stream) == [f for _, f in chunks]


@pytest.mark.req("EPAT-FRAME-2")
@given(frames, st.binary(min_size=1, max_size=30))
def test_a_fake_sof_with_a_long_length_does_not_hide_the_next_frame(
    frame: Frame, junk: bytes
) -> None:
    # SOF + LEN 250 + junk: a candidate that fails its CRC once enough bytes arrived.
    decoder = FrameDecoder()
    stream = b"\xa5\xfa" + junk + frame.encode() + bytes(260)
    assert frame in decoder.feed(stream)


@pytest.mark.req("EPAT-FRAME-2")
@settings(max_examples=300)
@given(st.lists(st.binary(max_size=300), max_size=10))
def test_any_input_raises_nothing_and_stays_bounded(pieces: list[bytes]) -> None:
    decoder = FrameDecoder()
    now = 0.0
    for piece in pieces:
        for frame in decoder.feed(piece, now):
            assert 2 <= len(frame.payload) + 2 <= 250
            assert frame.encode() in b"".join(pieces)
        now += 0.01
        assert decoder.pending <= 254


@pytest.mark.req("EPAT-FRAME-2")
def test_bad_length_discards_only_the_sof_and_is_not_a_crc_error() -> None:
    good = encode_frame(3, 0x02)
    decoder = FrameDecoder()
    assert decoder.feed(b"\xa5\x01" + good + b"\xa5\xfb" + good) == [Frame(3, 2), Frame(3, 2)]
    assert decoder.bad_lengths == 2
    assert decoder.crc_errors == 0


@pytest.mark.req("EPAT-FRAME-2")
def test_crc_error_counts_once_and_resyncs_from_the_next_byte() -> None:
    good = encode_frame(9, 0x03)
    bad = bytearray(good)
    bad[-1] ^= 0x01
    decoder = FrameDecoder()
    assert decoder.feed(bytes(bad) + good) == [Frame(9, 3)]
    assert decoder.crc_errors == 1


@pytest.mark.req("EPAT-FRAME-3")
def test_partial_frame_dropped_after_20_ms_gap() -> None:
    good = encode_frame(1, 0x02)
    decoder = FrameDecoder()
    assert decoder.feed(good[:3], now=0.000) == []
    assert decoder.deadline() == pytest.approx(0.020)
    # the rest arrives 25 ms later: the held SOF was dropped, the tail is just stray bytes
    assert decoder.feed(good[3:], now=0.025) == []
    assert decoder.partial_timeouts == 1
    assert decoder.crc_errors == 0
    assert decoder.feed(good, now=0.030) == [Frame(1, 2)]


@pytest.mark.req("EPAT-FRAME-3")
def test_partial_frame_completed_within_20_ms_is_kept() -> None:
    good = encode_frame(1, 0x02)
    decoder = FrameDecoder()
    t = 0.0
    out: list[Frame] = []
    for byte in good:
        out += decoder.feed(bytes((byte,)), now=t)
        t += 0.015  # each gap under 20 ms, the whole frame over 20 ms
    assert out == [Frame(1, 2)]


@pytest.mark.req("EPAT-FRAME-3")
def test_expiry_exposes_a_frame_hidden_behind_a_stale_sof() -> None:
    good = encode_frame(5, 0x03)
    decoder = FrameDecoder()
    assert decoder.feed(b"\xa5\x30" + good, now=1.0) == []  # waiting for 48 bytes
    assert decoder.expire(1.021) == [Frame(5, 3)]


# --- payloads -----------------------------------------------------------------------------
STATUS = StatusBlock(3, 0x0010, 120, 2000, 250, 248, 80, 312, 1, 500_120, 2, 3600)


@pytest.mark.req("EPAT-FRAME-1")
def test_status_block_is_30_bytes_and_round_trips() -> None:
    raw = STATUS.pack()
    assert len(raw) == 30
    assert StatusBlock.unpack(raw) == STATUS
    # field order and endianness checked on one field by hand: delivered u32 at offset 3
    assert raw[3:7] == (120).to_bytes(4, "little")


@pytest.mark.req("EPAT-FRAME-1")
def test_layouts_have_the_icd_sizes() -> None:
    assert HelloInfo.size() == 49
    assert ApplicatorBlock.size() == 31
    assert EventRecord.size() == 11
    assert SetParams.size() == 8


@pytest.mark.req("EPAT-FRAME-1")
@pytest.mark.parametrize("length", [0, 29, 31])
def test_wrong_payload_length_is_a_protocol_error(length: int) -> None:
    with pytest.raises(ProtocolError, match="30 bytes"):
        StatusBlock.unpack(bytes(length))


@pytest.mark.req("EPAT-FRAME-1")
def test_packing_refuses_values_that_do_not_fit() -> None:
    with pytest.raises(ValueError, match="pulses"):
        SetParams(250, 80, 2**32).pack()
    with pytest.raises(ValueError, match="pressure_cbar"):
        SetParams(-1, 80, 10).pack()
    with pytest.raises(ValueError, match="handpiece_temp_dc"):
        StatusBlock(0, 0, 0, 0, 0, 0, 0, 40000, 0, 0, 0, 0).pack()
    with pytest.raises(ValueError, match="longer than"):
        pack_string("RPW-200-TOO-LONG-MODEL", 16, "model")
    with pytest.raises(ValueError, match="ASCII"):
        pack_string("Stoß", 8, "type")
    with pytest.raises(ValueError, match=r"0\.\.65535"):
        pack_uint(70000, 2, "period_ms")


@pytest.mark.req("EPAT-FRAME-1")
def test_strings_are_nul_padded_and_a_full_field_has_no_nul() -> None:
    assert pack_string("R15", 8, "type") == b"R15\x00\x00\x00\x00\x00"
    assert pack_string("RPW200-00001", 12, "serial") == b"RPW200-00001"
    assert unpack_string(b"RPW200-00001", "serial") == "RPW200-00001"
    with pytest.raises(ProtocolError, match="after its NUL"):
        unpack_string(b"R1\x005\x00\x00\x00\x00", "type")
    with pytest.raises(ProtocolError, match="ASCII"):
        unpack_string(b"\xff" * 8, "type")


@pytest.mark.req("EPAT-FRAME-1")
def test_events_payload_round_trip_and_length_checks() -> None:
    records = [EventRecord(i, 1000 * i, 1 + i % 3, i) for i in range(16)]
    raw = pack_events(records)
    assert len(raw) == 1 + 16 * 11
    assert unpack_events(raw) == records
    assert unpack_events(b"\x00") == []
    with pytest.raises(ValueError):
        pack_events([*records, records[0]])
    with pytest.raises(ProtocolError):
        unpack_events(raw[:-1])
    with pytest.raises(ProtocolError):
        unpack_events(bytes((17,)) + bytes(17 * 11))
    with pytest.raises(ProtocolError):
        unpack_uint(b"\x01", 2, "delivered")


@pytest.mark.req("EPAT-FRAME-2")
@given(st.binary(max_size=200))
def test_unpacking_garbage_raises_only_protocol_errors(data: bytes) -> None:
    for unpack in (
        StatusBlock.unpack,
        HelloInfo.unpack,
        ApplicatorBlock.unpack,
        unpack_events,
        lambda d: unpack_uint(d, 4, "delivered"),
    ):
        try:
            unpack(data)
        except DeviceError as exc:
            assert isinstance(exc, ProtocolError)


@pytest.mark.req("EPAT-PARAM-1")
@given(st.integers(0, 0xFFFF))
def test_unit_conversions_are_exact_both_ways(raw: int) -> None:
    assert bar_to_cbar(cbar_to_bar(raw)) == raw
    assert hz_to_dhz(dhz_to_hz(raw)) == raw


@pytest.mark.req("EPAT-PARAM-1")
@pytest.mark.parametrize(
    "value", [Decimal("2.505"), Decimal("-0.01"), Decimal("655.36"), Decimal("NaN"), 2.5]
)
def test_unrepresentable_pressure_is_rejected_not_rounded(value: object) -> None:
    with pytest.raises(ParameterRejected) as info:
        bar_to_cbar(value)  # type: ignore[arg-type]
    assert info.value.field == "pressure"
    assert isinstance(info.value, ValueError)


def test_a_status_reading_is_the_value_the_dataclass_would_build_also_when_remembered() -> None:
    """device_status fills DeviceStatus through its slots and remembers decoded blocks (speed);
    each reading must be indistinguishable from the generated constructor's, with its own
    timestamp, and a bad block is refused every time."""
    from device_drivers.epat.translate import device_status
    from device_drivers.interface import DeviceStatus, UnitState

    payload = StatusBlock(3, 0b100, 10, 100, 250, 240, 80, 431, 1, 5, 2, 10).pack()
    for received_ns in (7, 8):  # decoded, then remembered
        status = device_status(payload, received_ns=received_ns)
        built = DeviceStatus(
            state=UnitState.DELIVERING,
            delivered=10,
            target=100,
            temperature_c=Decimal("43.1"),
            faults=("OVERTEMP",),
            pressure_set_bar=Decimal("2.50"),
            pressure_measured_bar=Decimal("2.40"),
            frequency_set_hz=Decimal("8.0"),
            applicator_present=True,
            shots_used=5,
            crc_errors=2,
            uptime_s=10,
            fault_code=0b100,
            received_ns=received_ns,
        )
        assert status == built and hash(status) == hash(built) and repr(status) == repr(built)
    for bad in (payload[:-1], bytes([9]) + payload[1:]):
        for _ in range(2):
            with pytest.raises(ProtocolError):
                device_status(bad)
