"""What the service engineer types on the raw console, checked before anything is sent.

EPAT: a command name or code and an optional payload in hex (``GET_STATUS``, ``0x41 0000``,
``READ_EVENTS 00 00``). EMTT: one SCPI line exactly as typed (``SYST:ERR?``). Nothing here talks
to a unit; the drivers refuse raw commands while the unit is armed or delivering.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class RawCommandError(ValueError):
    """The text is not a raw command for this unit; the message says how to write one."""


@dataclass(frozen=True, slots=True)
class RawCommand:
    modality: str
    text: str  # as it is recorded in the audit trail
    code: int | None = None  # EPAT
    payload: bytes = b""  # EPAT
    line: str | None = None  # EMTT


@dataclass(frozen=True, slots=True)
class RawExchange:
    """A raw command and what came of it (as shown and as audited)."""

    command: str
    outcome: str  # "reply", "refused", "rejected", "failed"
    reply: str


def parse_raw(modality: str, text: str) -> RawCommand:
    stripped = text.strip()
    if not stripped:
        raise RawCommandError("type a command first")
    if modality == "emtt":
        if any(ch in text for ch in "\r\n"):
            raise RawCommandError("an EMTT raw command is exactly one SCPI line")
        if not stripped.isascii():
            raise RawCommandError("SCPI is ASCII: remove the other characters")
        return RawCommand("emtt", stripped, line=stripped)
    from device_drivers.epat.constants import MAX_PAYLOAD, command_code

    head, _, rest = stripped.partition(" ")
    try:
        code = int(head, 0)
    except ValueError:
        found = command_code(head)
        if found is None:
            raise RawCommandError(
                f"unknown EPAT command {head!r}: give a name such as GET_STATUS or a code "
                "such as 0x03"
            ) from None
        code = found
    if not 0 <= code <= 0xFF:
        raise RawCommandError(f"an EPAT command code is 0x00..0xFF, not {head}")
    hex_text = re.sub(r"\s+", "", rest)
    try:
        payload = bytes.fromhex(hex_text)
    except ValueError:
        raise RawCommandError(
            f"the payload {rest!r} is not hex bytes: write e.g. 'e8 03' (little-endian fields)"
        ) from None
    if len(payload) > MAX_PAYLOAD:
        raise RawCommandError(f"a payload holds at most {MAX_PAYLOAD} bytes")
    shown = f"0x{code:02X}" + (f" {payload.hex(' ')}" if payload else "")
    return RawCommand("epat", f"{head.upper()} ({shown})", code=code, payload=payload)
