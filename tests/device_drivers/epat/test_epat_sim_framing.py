"""The simulated unit's receiver over a real TCP link: silence on bad frames, CRC counting,
resynchronisation, the 20 ms partial-frame rule, the 50 ms reply deadline."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device_drivers.epat.codec import encode_frame
from device_drivers.epat.constants import Command, Reply, Unsolicited
from device_drivers.epat.payloads import StatusBlock
from tests.device_drivers.epat.epat_helpers import REPLY_CODES, UnitFactory


def _bad_crc(seq: int, cmd: int, payload: bytes = b"") -> bytes:
    frame = bytearray(encode_frame(seq, cmd, payload))
    frame[-1] ^= 0x5A
    return bytes(frame)


@pytest.mark.req("EPAT-RX-1")
def test_bad_crc_is_never_answered_and_is_counted(make_unit: UnitFactory) -> None:
    unit = make_unit()
    host = unit.raw()
    host.send_raw(_bad_crc(10, Command.HEARTBEAT))
    assert host.listen(0.1) == []  # silence: the host would time out
    assert host.status().crc_errors == 1
    # a bad CRC on a state-changing command does not execute it either
    host.send_raw(_bad_crc(11, Command.ESTOP))
    assert host.listen(0.1) == []
    status = host.status()
    assert status.crc_errors == 2
    assert status.state == 0


@pytest.mark.req("EPAT-RX-1")
@pytest.mark.parametrize("length", [0, 1, 251, 255])
def test_len_outside_2_to_250_is_silently_skipped_and_not_counted(
    make_unit: UnitFactory, length: int
) -> None:
    unit = make_unit()
    host = unit.raw()
    good = encode_frame(7, Command.HEARTBEAT)
    # a SOF with a bad LEN right before a good frame: only that SOF is discarded
    host.send_raw(bytes((0xA5, length)) + good)
    ex = host.wait_reply(7)
    assert ex.reply.cmd == Reply.ACK
    assert host.status().crc_errors == 0


@pytest.mark.req("EPAT-RX-1")
def test_stray_bytes_between_frames_are_ignored(make_unit: UnitFactory) -> None:
    unit = make_unit()
    host = unit.raw()
    stream = b"\x00\xff garbage " + encode_frame(1, Command.HEARTBEAT) + b"\x13\x37"
    stream += encode_frame(2, Command.GET_APPLICATOR) + b"\xa5"  # a lone SOF at the end
    host.send_raw(stream)
    assert host.wait_reply(1).reply.cmd == Reply.ACK
    assert host.wait_reply(2).reply.cmd == Reply.ACK
    time.sleep(0.03)  # the lone SOF expires (20 ms) without being counted
    assert host.status().crc_errors == 0


@pytest.mark.req("EPAT-RX-1")
def test_a_crc_error_resynchronises_from_the_byte_after_the_sof(make_unit: UnitFactory) -> None:
    unit = make_unit()
    host = unit.raw()
    inner = encode_frame(5, Command.HEARTBEAT)
    # a candidate with LEN 8 whose CRC fails swallows `inner`; the unit must find it anyway
    host.send_raw(b"\xa5\x08" + inner + b"\x00\x00\x00\x00")
    assert host.wait_reply(5).reply.cmd == Reply.ACK
    assert host.status().crc_errors == 1


@pytest.mark.req("EPAT-RX-1")
def test_crc_errors_saturate_at_65535(make_unit: UnitFactory) -> None:
    unit = make_unit()
    host = unit.raw()
    bad = _bad_crc(1, Command.HEARTBEAT)
    chunk = bad * 4096
    for _ in range(17):  # 69,632 bad frames
        host.send_raw(chunk)
    deadline = time.monotonic() + 10
    while unit.sim.snapshot().crc_errors < 65535 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert host.status().crc_errors == 65535


@pytest.mark.req("EPAT-RX-2")
def test_partial_frame_is_dropped_after_20_ms_without_a_reply(make_unit: UnitFactory) -> None:
    unit = make_unit()
    host = unit.raw()
    frame = encode_frame(9, Command.HEARTBEAT)
    host.send_raw(frame[:4])
    time.sleep(0.06)  # well over 20 ms
    host.send_raw(frame[4:])
    assert host.listen(0.1) == []
    assert host.status().crc_errors == 0  # a dropped partial frame is not a CRC error


@pytest.mark.req("EPAT-RX-2")
def test_slow_bytes_within_20_ms_of_each_other_still_make_a_frame(make_unit: UnitFactory) -> None:
    unit = make_unit()
    host = unit.raw()
    frame = encode_frame(9, Command.HEARTBEAT)
    for chunk in (frame[:2], frame[2:4], frame[4:]):  # two gaps of 12 ms: 24 ms in all
        host.send_raw(chunk)
        time.sleep(0.012)
    assert host.wait_reply(9).reply.cmd == Reply.ACK


@pytest.mark.req("EPAT-RX-3")
def test_replies_echo_seq_use_ack_nak_codes_and_come_within_50_ms(make_unit: UnitFactory) -> None:
    unit = make_unit()
    host = unit.raw()
    worst = 0.0
    for seq in (1, 2, 200, 255, 0):
        started = time.monotonic()
        ex = host.exchange(Command.GET_STATUS, seq=seq)
        worst = max(worst, time.monotonic() - started)
        assert ex.reply.seq == seq
        assert ex.reply.cmd == Reply.ACK  # not an echo of 0x03
    ex = host.exchange(0x7E, seq=3)
    assert ex.reply.cmd == Reply.NAK
    assert worst < 0.050


@pytest.mark.req("EPAT-RX-3")
def test_two_frames_in_one_write_get_two_replies_in_order(make_unit: UnitFactory) -> None:
    unit = make_unit()
    host = unit.raw()
    host.send_raw(encode_frame(1, Command.HEARTBEAT) + encode_frame(2, Command.GET_STATUS))
    host.wait_reply(2)
    replies = [f for _, f in host.received if f.cmd in REPLY_CODES]
    assert [f.seq for f in replies] == [1, 2]
    assert len(StatusBlock.unpack(replies[1].payload).pack()) == 30


@pytest.mark.req("EPAT-RX-3")
def test_unsolicited_frames_carry_seq_0(make_unit: UnitFactory) -> None:
    unit = make_unit()
    host = unit.raw()
    host.ack(Command.SET_STREAM, (20).to_bytes(2, "little"))
    frames = host.listen(0.1)
    statuses = [f for f in frames if f.cmd == Unsolicited.STATUS]
    assert statuses
    assert all(f.seq == 0 for f in statuses)
    ex = host.exchange(Command.ESTOP)
    assert [f.seq for f in ex.before if f.cmd == Unsolicited.EVENT] == [0, 0]


@pytest.mark.req("EPAT-RX-1")
def test_pty_link_answers_and_stays_silent_on_bad_crc(make_unit: UnitFactory) -> None:
    unit = make_unit(pty=True)
    assert unit.pty is not None
    from tests.device_drivers.epat.epat_helpers import RawHost

    host = RawHost(unit.pty.path)
    unit.opened.append(host)
    host.send_raw(_bad_crc(3, Command.HEARTBEAT))
    assert host.listen(0.1) == []
    assert host.exchange(Command.HELLO).reply.cmd == Reply.ACK
    assert host.status().crc_errors == 1


@pytest.mark.req("EPAT-RX-1", "EPAT-FRAME-2")
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(garbage=st.lists(st.binary(max_size=12), min_size=3, max_size=3))
def test_the_unit_finds_every_frame_among_random_garbage(
    make_unit: UnitFactory, garbage: list[bytes]
) -> None:
    """Over the wire: junk (SOF bytes included) around frames never costs a frame for long."""
    if not make_unit.units:
        make_unit()
    unit = make_unit.units[0]
    host = unit.opened[0] if unit.opened else unit.raw()
    seqs = [host.next_seq(), host.next_seq()]
    stream = garbage[0] + encode_frame(seqs[0], Command.HEARTBEAT) + garbage[1]
    stream += encode_frame(seqs[1], Command.GET_APPLICATOR) + garbage[2]
    host.send_raw(stream)
    # a fake SOF may hold the frames back until the 20 ms partial-frame timeout frees them
    assert host.wait_reply(seqs[0], timeout=0.3).reply.cmd == Reply.ACK
    assert host.wait_reply(seqs[1], timeout=0.3).reply.cmd == Reply.ACK
    time.sleep(0.025)  # let any trailing fake SOF expire before the next example
