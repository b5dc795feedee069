"""Payload layouts of the EPAT ICD, packed and unpacked with length and range checks.

Packing (used by whichever side sends) raises ``ValueError`` naming the field when a value would
not fit it: nothing is truncated, wrapped or clamped. Unpacking (the receiving side) raises
:class:`~device_drivers.errors.ProtocolError` when a payload has the wrong length or a string
field breaks the ASCII/NUL-padding rule, so garbage from the wire never becomes a value.
All integers are little-endian.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, fields
from typing import ClassVar, Self

from device_drivers.epat.constants import (
    APPLICATOR_TYPE_LEN,
    FIRMWARE_LEN,
    MODEL_LEN,
    READ_EVENTS_MAX,
    SERIAL_LEN,
)
from device_drivers.errors import ProtocolError

_RANGES = {
    "B": (0, 0xFF),
    "H": (0, 0xFFFF),
    "h": (-0x8000, 0x7FFF),
    "I": (0, 0xFFFF_FFFF),
}


def pack_string(text: str, size: int, field: str) -> bytes:
    """ASCII, NUL-padded to ``size``; a string that fills its field has no NUL."""
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{field} must be ASCII, got {text!r}") from exc
    if b"\x00" in raw:
        raise ValueError(f"{field} must not contain NUL, got {text!r}")
    if len(raw) > size:
        raise ValueError(f"{field} {text!r} is longer than its {size}-byte field")
    return raw.ljust(size, b"\x00")


def unpack_string(raw: bytes, field: str) -> str:
    """Inverse of :func:`pack_string`; ProtocolError for non-ASCII or non-NUL padding."""
    text, _, padding = raw.partition(b"\x00")
    if padding.strip(b"\x00"):
        raise ProtocolError(f"{field} field {raw!r} has data after its NUL padding")
    try:
        return text.decode("ascii")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"{field} field {raw!r} is not ASCII") from exc


_SPECS: dict[type, tuple[tuple[str, str], ...]] = {}


def _spec(cls: type[_Layout]) -> tuple[tuple[str, str], ...]:
    """(struct code, field name) per field of a layout, computed once per class."""
    spec = _SPECS.get(cls)
    if spec is None:
        codes = [c for c in cls.FORMAT.format.lstrip("<") if not c.isdigit()]
        names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        spec = _SPECS[cls] = tuple(zip(codes, names, strict=True))
    return spec


class _Layout:
    """A fixed-size payload described by a struct format and the dataclass field order."""

    FORMAT: ClassVar[struct.Struct]
    WHAT: ClassVar[str]
    #: For ``s`` fields: the string field's size in bytes.
    STRINGS: ClassVar[dict[str, int]] = {}

    @classmethod
    def size(cls) -> int:
        return cls.FORMAT.size

    def pack(self) -> bytes:
        values: list[object] = []
        for code, name in _spec(type(self)):
            value = getattr(self, name)
            if code == "s":
                values.append(pack_string(value, self.STRINGS[name], name))
                continue
            low, high = _RANGES[code]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{self.WHAT}: {name} must be an int {low}..{high}, not {value!r}")
            values.append(value)
        return self.FORMAT.pack(*values)

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        if len(payload) != cls.FORMAT.size:
            raise ProtocolError(
                f"{cls.WHAT} payload must be {cls.FORMAT.size} bytes, got {len(payload)}"
            )
        if not cls.STRINGS:  # the hot path (status blocks): integers only
            return cls(*cls.FORMAT.unpack(payload))
        values = list(cls.FORMAT.unpack(payload))
        for i, spec in enumerate(fields(cls)):  # type: ignore[arg-type]
            if spec.name in cls.STRINGS:
                values[i] = unpack_string(values[i], spec.name)
        return cls(*values)


@dataclass(frozen=True, slots=True)
class StatusBlock(_Layout):
    """The 30-byte status block (GET_STATUS ACK and STATUS frames)."""

    FORMAT: ClassVar[struct.Struct] = struct.Struct("<BHIIHHHhBIHI")
    WHAT: ClassVar[str] = "status block"

    state: int
    faults: int
    delivered: int
    target: int
    pressure_set_cbar: int
    pressure_meas_cbar: int
    freq_set_dhz: int
    handpiece_temp_dc: int
    applicator_present: int
    shots_used: int
    crc_errors: int
    uptime_s: int


@dataclass(frozen=True, slots=True)
class HelloInfo(_Layout):
    """HELLO ACK: protocol, identity and the unit's own envelope."""

    FORMAT: ClassVar[struct.Struct] = struct.Struct(
        f"<B{MODEL_LEN}s{SERIAL_LEN}s{FIRMWARE_LEN}sHHHHI"
    )
    WHAT: ClassVar[str] = "HELLO reply"
    STRINGS: ClassVar[dict[str, int]] = {
        "model": MODEL_LEN,
        "serial": SERIAL_LEN,
        "firmware": FIRMWARE_LEN,
    }

    protocol: int
    model: str
    serial: str
    firmware: str
    p_min_cbar: int
    p_max_cbar: int
    f_min_dhz: int
    f_max_dhz: int
    max_pulses: int


@dataclass(frozen=True, slots=True)
class ApplicatorBlock(_Layout):
    """GET_APPLICATOR ACK; with none fitted: present 0, empty strings, zero counts."""

    FORMAT: ClassVar[struct.Struct] = struct.Struct(f"<B{APPLICATOR_TYPE_LEN}s{SERIAL_LEN}sIIH")
    WHAT: ClassVar[str] = "applicator reply"
    STRINGS: ClassVar[dict[str, int]] = {"type": APPLICATOR_TYPE_LEN, "serial": SERIAL_LEN}

    present: int
    type: str
    serial: str
    shots_used: int
    shots_rated: int
    p_max_cbar: int


@dataclass(frozen=True, slots=True)
class SetParams(_Layout):
    """SET_PARAMS request; field indexes for OUT_OF_RANGE detail are 1, 2, 3 in this order."""

    FORMAT: ClassVar[struct.Struct] = struct.Struct("<HHI")
    WHAT: ClassVar[str] = "SET_PARAMS"

    pressure_cbar: int
    freq_dhz: int
    pulses: int


@dataclass(frozen=True, slots=True)
class EventNotice(_Layout):
    """Payload of an unsolicited EVENT frame."""

    FORMAT: ClassVar[struct.Struct] = struct.Struct("<BI")
    WHAT: ClassVar[str] = "EVENT"

    code: int
    data: int


@dataclass(frozen=True, slots=True)
class EventRecord(_Layout):
    """One entry of a READ_EVENTS reply."""

    FORMAT: ClassVar[struct.Struct] = struct.Struct("<HIBI")
    WHAT: ClassVar[str] = "event record"

    index: int
    uptime_ms: int
    code: int
    data: int


@dataclass(frozen=True, slots=True)
class NakReply(_Layout):
    FORMAT: ClassVar[struct.Struct] = struct.Struct("<BB")
    WHAT: ClassVar[str] = "NAK"

    code: int
    detail: int


def pack_events(records: list[EventRecord]) -> bytes:
    if len(records) > READ_EVENTS_MAX:
        raise ValueError(f"a READ_EVENTS reply holds at most {READ_EVENTS_MAX} events")
    return bytes((len(records),)) + b"".join(r.pack() for r in records)


def unpack_events(payload: bytes) -> list[EventRecord]:
    if not payload:
        raise ProtocolError("READ_EVENTS reply is empty (expected a count byte)")
    count = payload[0]
    size = EventRecord.size()
    if count > READ_EVENTS_MAX:
        raise ProtocolError(f"READ_EVENTS reply claims {count} events (at most 16)")
    if len(payload) != 1 + count * size:
        raise ProtocolError(
            f"READ_EVENTS reply with {count} events must be {1 + count * size} bytes, "
            f"got {len(payload)}"
        )
    return [EventRecord.unpack(payload[1 + i * size : 1 + (i + 1) * size]) for i in range(count)]


_INT_FORMATS = {1: "<B", 2: "<H", 4: "<I"}


def pack_uint(value: int, size: int, field: str) -> bytes:
    """One little-endian unsigned field of ``size`` bytes (1, 2 or 4)."""
    high = (1 << (8 * size)) - 1
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
        raise ValueError(f"{field} must be an int 0..{high}, not {value!r}")
    return struct.pack(_INT_FORMATS[size], value)


def unpack_uint(payload: bytes, size: int, field: str) -> int:
    if len(payload) != size:
        raise ProtocolError(f"{field} must be {size} bytes, got {len(payload)}")
    return int(struct.unpack(_INT_FORMATS[size], payload)[0])
