"""EPAT frame codec: CRC-16/CCITT-FALSE, range-checked encoding, resynchronising decoding.

Frame: ``SOF 0xA5 | LEN | SEQ | CMD | PAYLOAD | CRC16 (big-endian)``; LEN counts SEQ + CMD +
PAYLOAD and is 2..250; the CRC covers LEN through PAYLOAD. Both sides receive the same way:
skip to SOF, a bad LEN or CRC discards that SOF byte only and resynchronises from the byte after
it, and a frame whose next byte is more than 20 ms late is dropped the same way (the caller
supplies the timestamps, so the rule is testable without waiting). Pure code: no I/O, no clock.

The payload layouts live in :mod:`device_drivers.epat.payloads`.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterator
from dataclasses import dataclass

from device_drivers.epat.constants import (
    INTER_BYTE_TIMEOUT_S,
    LEN_MAX,
    LEN_MIN,
    MAX_PAYLOAD,
    SOF,
    code_name,
)

__all__ = [
    "Frame",
    "FrameDecoder",
    "crc16_ccitt_false",
    "decode_frames",
    "encode_frame",
]


def crc16_ccitt_false(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, xorout 0 (check 0x29B1).

    ``binascii.crc_hqx`` is exactly this polynomial without reflection, seeded with the init.
    """
    return binascii.crc_hqx(data, 0xFFFF)


@dataclass(frozen=True, slots=True)
class Frame:
    """One valid frame (CRC already checked)."""

    seq: int
    cmd: int
    payload: bytes = b""

    def encode(self) -> bytes:
        return encode_frame(self.seq, self.cmd, self.payload)

    def __str__(self) -> str:
        return f"[seq {self.seq} {code_name(self.cmd)} {self.payload.hex() or '-'}]"


def encode_frame(seq: int, cmd: int, payload: bytes = b"") -> bytes:
    """The bytes of one frame; raises ``ValueError`` for a field that would not fit.

    Nothing is truncated or wrapped: a SEQ or CMD outside 0..255 or a payload longer than
    248 bytes is a bug in the caller, reported as such.
    """
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= 0xFF:
        raise ValueError(f"SEQ must be an int 0..255, got {seq!r}")
    if isinstance(cmd, bool) or not isinstance(cmd, int) or not 0 <= cmd <= 0xFF:
        raise ValueError(f"CMD must be an int 0..255, got {cmd!r}")
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise ValueError(f"payload must be bytes, got {type(payload).__name__}")
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds the maximum of {MAX_PAYLOAD}")
    body = bytes((len(payload) + 2, seq, cmd)) + bytes(payload)
    return b"\xa5" + body + crc16_ccitt_false(body).to_bytes(2, "big")


class FrameDecoder:
    """Streaming receiver: feed bytes (with their arrival time), get complete valid frames.

    Counters for diagnostics: ``crc_errors`` (candidates with a valid LEN whose CRC failed, the
    ICD's definition), ``bad_lengths``, ``partial_timeouts`` and ``skipped_bytes``. The buffer
    never holds more than one maximal frame, so any input is handled in bounded memory, and
    no input makes it raise.
    """

    def __init__(self, inter_byte_timeout_s: float = INTER_BYTE_TIMEOUT_S) -> None:
        self.inter_byte_timeout_s = inter_byte_timeout_s
        self._buf = bytearray()
        self._last_rx: float | None = None
        self.crc_errors = 0
        self.bad_lengths = 0
        self.partial_timeouts = 0
        self.skipped_bytes = 0

    @property
    def pending(self) -> int:
        """Bytes of an incomplete candidate frame held back."""
        return len(self._buf)

    def deadline(self) -> float | None:
        """When the partial frame now held expires (same clock as ``now``), or None."""
        if not self._buf or self._last_rx is None:
            return None
        return self._last_rx + self.inter_byte_timeout_s

    def feed(self, data: bytes | bytearray, now: float | None = None) -> list[Frame]:
        """Add received bytes; ``now`` (seconds, any monotonic clock) enables the 20 ms rule."""
        if not self._buf and len(data) >= 6 and data[0] == SOF:
            # The usual chunk: exactly one valid frame and nothing held back, decoded in one
            # step with the outcome of the general path (nothing held, nothing to expire).
            length = data[1]
            if (
                LEN_MIN <= length <= LEN_MAX
                and len(data) == length + 4
                and crc16_ccitt_false(data[1 : length + 2])
                == (data[length + 2] << 8) | data[length + 3]
            ):
                self._last_rx = now
                return [Frame(data[2], data[3], bytes(data[4 : length + 2]))]
        return list(self.feed_iter(data, now))

    def feed_iter(self, data: bytes | bytearray, now: float | None = None) -> Iterator[Frame]:
        """Like :meth:`feed`, lazily: counters are up to date when each frame is yielded."""
        if now is not None:
            yield from self.expire_iter(now)
        if data:
            self._buf += data
            self._last_rx = now
            yield from self._parse()

    def expire(self, now: float) -> list[Frame]:
        """Apply the inter-byte timeout at time ``now``; may expose frames held behind a SOF."""
        return list(self.expire_iter(now))

    def expire_iter(self, now: float) -> Iterator[Frame]:
        while (
            self._buf
            and self._last_rx is not None
            and now - self._last_rx > self.inter_byte_timeout_s
        ):
            # After _parse the buffer starts with the SOF of an incomplete candidate.
            del self._buf[0]
            self.partial_timeouts += 1
            yield from self._parse()

    def reset(self) -> None:
        """Forget any partial frame (counters are kept)."""
        self._buf.clear()
        self._last_rx = None

    def _parse(self) -> Iterator[Frame]:
        buf = self._buf
        while buf:
            start = buf.find(SOF)
            if start < 0:
                self.skipped_bytes += len(buf)
                buf.clear()
                return
            if start:
                self.skipped_bytes += start
                del buf[:start]
            if len(buf) < 2:
                return
            length = buf[1]
            if not LEN_MIN <= length <= LEN_MAX:
                self.bad_lengths += 1
                del buf[0]
                continue
            total = length + 4
            if len(buf) < total:
                return
            received_crc = (buf[length + 2] << 8) | buf[length + 3]
            if crc16_ccitt_false(buf[1 : length + 2]) != received_crc:
                self.crc_errors += 1
                del buf[0]
                continue
            frame = Frame(buf[2], buf[3], bytes(buf[4 : length + 2]))
            del buf[:total]
            yield frame


def decode_frames(data: bytes) -> list[Frame]:
    """Every valid frame in ``data`` (no timing rule); convenient for logs and tests."""
    return FrameDecoder().feed(data)
