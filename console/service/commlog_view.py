"""A session's communication log, decoded for reading: EPAT frames or SCPI lines, with times.

A log holds chunks of bytes as the transport saw them (``device_drivers.commlog``), one file
per session and unit (``<session id>-<modality>.jsonl``). Frames may be split across chunks or
share one, so each direction is decoded as a stream; bytes that form no valid frame are shown as
such (they are what a CRC error or a noisy cable looks like). Replies are matched to their
command by SEQ, so an ACK is decoded as the answer to *that* command. Times are milliseconds
from the first record of the log. The log names the session by id only: nothing in it
identifies a patient.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from device_drivers.commlog import CommRecord, read_commlog

_NAME = re.compile(r"^(?P<session>.+)-(?P<modality>epat|emtt)\.jsonl$")


class CommLogError(ValueError):
    """The file is not a communication log that can be read; the message says why."""


@dataclass(frozen=True, slots=True)
class CommLogFile:
    path: Path
    session_id: str
    modality: str
    size_bytes: int
    modified: str  # UTC, to the second


@dataclass(frozen=True, slots=True)
class CommRow:
    """One frame or line (or a run of bytes that is neither)."""

    t_us: int  # microseconds since the first record
    direction: str  # "tx" host → unit, "rx" unit → host
    kind: str  # command, reply, unsolicited, line, garbage
    text: str
    raw_hex: str
    seq: int | None = None
    cmd: int | None = None

    @property
    def t_ms(self) -> str:
        return f"{self.t_us / 1000:.1f}"


@dataclass(frozen=True, slots=True)
class CommLogView:
    path: Path
    modality: str
    rows: tuple[CommRow, ...]
    records: int
    duration_ms: int


def list_commlogs(folder: Path) -> list[CommLogFile]:
    """The logs in ``folder``, newest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.glob("*.jsonl"):
        match = _NAME.match(path.name)
        if match is None:
            continue
        stat = path.stat()
        modified = datetime.fromtimestamp(stat.st_mtime, UTC).strftime("%Y-%m-%d %H:%M:%S")
        found.append(CommLogFile(path, match["session"], match["modality"], stat.st_size, modified))
    return sorted(found, key=lambda f: (f.modified, f.path.name), reverse=True)


def modality_of(path: Path, records: list[CommRecord]) -> str:
    """From the file name, else from the bytes (EPAT frames start with 0xA5, SCPI is text)."""
    match = _NAME.match(Path(path).name)
    if match:
        return match["modality"]
    first = next((r.data for r in records if r.direction == "tx"), b"")
    if first[:1] == b"\xa5":
        return "epat"
    if first and all(32 <= b < 127 or b in (10, 13) for b in first):
        return "emtt"
    raise CommLogError(f"{path}: cannot tell whether it is an EPAT or an EMTT log")


def read_records(path: Path) -> list[CommRecord]:
    try:
        return list(read_commlog(path))
    except (OSError, ValueError) as exc:
        raise CommLogError(f"{path}: not a readable communication log ({exc})") from None


def decode_records(records: Iterable[CommRecord], modality: str) -> list[CommRow]:
    records = list(records)
    if not records:
        return []
    t0 = records[0].t_ns
    if modality == "epat":
        return _decode_epat(records, t0)
    return _decode_scpi(records, t0)


def decode_commlog(path: Path, modality: str | None = None) -> CommLogView:
    records = read_records(path)
    chosen = modality or modality_of(path, records)
    rows = decode_records(records, chosen)
    duration = (records[-1].t_ns - records[0].t_ns) // 1_000_000 if records else 0
    return CommLogView(Path(path), chosen, tuple(rows), len(records), duration)


# ---------------------------------------------------------------------------- EPAT
def describe_command(cmd: int, payload: bytes) -> str:
    """A host frame in words: the command and its decoded payload."""
    from device_drivers.epat.constants import Command, code_name
    from device_drivers.epat.payloads import SetParams, unpack_uint

    name = code_name(cmd)
    try:
        if cmd == Command.SET_PARAMS:
            params = SetParams.unpack(payload)
            return f"{name} {params}"
        if cmd == Command.READ_EVENTS:
            return f"{name} from {unpack_uint(payload, 2, 'from')}"
        if cmd == Command.SET_STREAM:
            period = unpack_uint(payload, 2, "period_ms")
            return f"{name} {'off' if period == 0 else f'every {period} ms'}"
    except Exception as exc:
        return f"{name} (undecodable payload {payload.hex(' ')}: {exc})"
    return name + (f" {payload.hex(' ')}" if payload else "")


def describe_unsolicited(cmd: int, payload: bytes) -> str:
    from device_drivers.epat.constants import Unsolicited, fault_names, state_name
    from device_drivers.epat.payloads import EventNotice, StatusBlock
    from device_drivers.epat.translate import event_text

    try:
        if cmd == Unsolicited.STATUS:
            block = StatusBlock.unpack(payload)
            return (
                f"STATUS {state_name(block.state)} delivered {block.delivered}/{block.target} "
                f"temp {Decimal(block.handpiece_temp_dc) / 10} °C faults "
                f"{','.join(fault_names(block.faults)) or 'none'} crc_errors {block.crc_errors}"
            )
        if cmd == Unsolicited.EVENT:
            notice = EventNotice.unpack(payload)
            return f"EVENT {event_text(notice.code, notice.data)}"
    except Exception as exc:
        return f"0x{cmd:02X} (undecodable payload {payload.hex(' ')}: {exc})"
    return f"0x{cmd:02X} {payload.hex(' ')}"


def describe_reply(command: int | None, frame_cmd: int, seq: int, payload: bytes) -> str:
    from device_drivers.epat.codec import Frame
    from device_drivers.epat.translate import raw_reply

    if command is None:
        kind = "ACK" if frame_cmd == 0x06 else "NAK" if frame_cmd == 0x15 else f"0x{frame_cmd:02X}"
        return f"{kind} to an unknown command (SEQ {seq}) {payload.hex(' ')}"
    return str(raw_reply(command, Frame(seq, frame_cmd, payload)))


def _decode_epat(records: list[CommRecord], t0: int) -> list[CommRow]:
    from device_drivers.epat.codec import FrameDecoder

    decoders = {"tx": FrameDecoder(), "rx": FrameDecoder()}
    pending: dict[int, int] = {}  # SEQ → command code of the host frame awaiting its reply
    rows: list[CommRow] = []
    for record in records:
        decoder = decoders[record.direction]
        skipped_before = decoder.skipped_bytes + decoder.crc_errors + decoder.bad_lengths
        t_us = (record.t_ns - t0) // 1000
        for frame in decoder.feed(record.data):
            raw = frame.encode().hex(" ")
            if record.direction == "tx":
                pending[frame.seq] = frame.cmd
                rows.append(
                    CommRow(t_us, "tx", "command", f"[SEQ {frame.seq}] "
                            + describe_command(frame.cmd, frame.payload), raw, frame.seq, frame.cmd)
                )  # fmt: skip
            elif frame.cmd in (0x06, 0x15):
                command = pending.get(frame.seq)
                rows.append(
                    CommRow(t_us, "rx", "reply", describe_reply(command, frame.cmd, frame.seq,
                            frame.payload), raw, frame.seq, frame.cmd)
                )  # fmt: skip
            else:
                rows.append(
                    CommRow(t_us, "rx", "unsolicited", describe_unsolicited(frame.cmd,
                            frame.payload), raw, frame.seq, frame.cmd)
                )  # fmt: skip
        skipped = decoder.skipped_bytes + decoder.crc_errors + decoder.bad_lengths - skipped_before
        if skipped:
            rows.append(
                CommRow(
                    t_us,
                    record.direction,
                    "garbage",
                    f"{skipped} byte(s) that form no valid frame (noise, a CRC error, a cut frame)",
                    record.data.hex(" "),
                )
            )
    for direction, decoder in decoders.items():
        if decoder.pending:
            rows.append(
                CommRow(
                    (records[-1].t_ns - t0) // 1000,
                    direction,
                    "garbage",
                    f"{decoder.pending} byte(s) of a frame that never finished (end of the log)",
                    "",
                )
            )
    return rows


# ---------------------------------------------------------------------------- SCPI
def _decode_scpi(records: list[CommRecord], t0: int) -> list[CommRow]:
    buffers = {"tx": bytearray(), "rx": bytearray()}
    rows: list[CommRow] = []
    for record in records:
        buffer = buffers[record.direction]
        buffer.extend(record.data)
        t_us = (record.t_ns - t0) // 1000
        while (end := buffer.find(b"\n")) >= 0:
            raw = bytes(buffer[: end + 1])
            del buffer[: end + 1]
            text = raw.rstrip(b"\r\n").decode("ascii", errors="replace")
            kind = "command" if record.direction == "tx" else "reply"
            rows.append(CommRow(t_us, record.direction, kind, text or "(empty line)", raw.hex(" ")))
    for direction, buffer in buffers.items():
        if buffer:
            rows.append(
                CommRow(
                    (records[-1].t_ns - t0) // 1000,
                    direction,
                    "garbage",
                    f"{len(buffer)} byte(s) without a line end at the end of the log",
                    bytes(buffer).hex(" "),
                )
            )
    return rows
