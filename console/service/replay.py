"""Replay a recorded session's host → unit traffic against a fresh simulated unit.

To reproduce an incident, the frames (EPAT) or lines (EMTT) the console sent are sent again, in
order and at the recorded pacing (or ``speed`` times faster, with the simulator's clock sped up
by the same factor so that pulse timing, the watchdog and heating keep their proportions), to a
new in-process simulator served on a loopback TCP port and reached through the real transport.
Each command's reply from the simulator is set beside the reply the real unit gave, and every
difference is flagged. Differences are expected where the real unit's history differs (it had
worn applicators, a warm handpiece, a latched fault); the first difference is where to look.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from console.service.commlog_view import (
    describe_command,
    describe_reply,
    modality_of,
    read_records,
)
from device_drivers.commlog import CommRecord

REPLY_WAIT_S = 0.5
MAX_SPEED = 100.0


class ReplayError(ValueError):
    """The log cannot be replayed; the message says why."""


@dataclass(frozen=True, slots=True)
class ReplayRow:
    """One host command with the recorded and the replayed answer."""

    t_ms: int  # recorded time since the first command
    command: str
    recorded: str
    replayed: str
    same: bool
    note: str = ""


@dataclass(frozen=True, slots=True)
class ReplayResult:
    modality: str
    speed: float
    rows: tuple[ReplayRow, ...]
    elapsed_s: float

    @property
    def differences(self) -> int:
        return sum(1 for row in self.rows if not row.same)

    @property
    def first_difference(self) -> ReplayRow | None:
        return next((row for row in self.rows if not row.same), None)


def replay_file(
    path: Path, *, speed: float = 10.0, progress: Callable[[int, int], None] | None = None
) -> ReplayResult:
    records = read_records(path)
    return replay_records(records, modality_of(path, records), speed=speed, progress=progress)


def replay_records(
    records: Iterable[CommRecord],
    modality: str,
    *,
    speed: float = 10.0,
    progress: Callable[[int, int], None] | None = None,
) -> ReplayResult:
    if not 0.1 <= speed <= MAX_SPEED:
        raise ReplayError(f"the replay speed is 0.1 to {MAX_SPEED:g} times real time, not {speed}")
    records = list(records)
    if not any(r.direction == "tx" for r in records):
        raise ReplayError("the log holds no host → unit traffic to replay")
    started = time.perf_counter()
    if modality == "epat":
        rows = _replay_epat(records, speed, progress)
    elif modality == "emtt":
        rows = _replay_scpi(records, speed, progress)
    else:
        raise ReplayError(f"unknown modality {modality!r}")
    return ReplayResult(modality, speed, tuple(rows), time.perf_counter() - started)


def _pace(t0_wall: float, t_rec_s: float, speed: float) -> None:
    wait = t0_wall + t_rec_s / speed - time.perf_counter()
    if wait > 0:
        time.sleep(wait)


# ---------------------------------------------------------------------------- EPAT
def _epat_recorded(records: list[CommRecord]) -> tuple[list[tuple[int, object]], dict]:
    """(t_ns, frame) of every host frame, and for each, the unit's recorded reply: the first
    ACK/NAK with the same SEQ after it."""
    from device_drivers.epat.codec import FrameDecoder

    tx_decoder, rx_decoder = FrameDecoder(), FrameDecoder()
    commands: list[tuple[int, object]] = []
    replies: list[tuple[int, object]] = []
    for record in records:
        decoder = tx_decoder if record.direction == "tx" else rx_decoder
        for frame in decoder.feed(record.data):
            (commands if record.direction == "tx" else replies).append((record.t_ns, frame))
    answer: dict[int, object] = {}
    used: set[int] = set()
    for i, (t_ns, frame) in enumerate(commands):
        for j, (r_ns, reply) in enumerate(replies):
            if j in used or r_ns < t_ns:
                continue
            if reply.cmd in (0x06, 0x15) and reply.seq == frame.seq:  # type: ignore[attr-defined]
                answer[i] = reply
                used.add(j)
                break
    return commands, answer


def _replay_epat(
    records: list[CommRecord], speed: float, progress: Callable[[int, int], None] | None
) -> list[ReplayRow]:
    import serial

    from device_drivers.epat.codec import FrameDecoder
    from device_drivers.epat.server import EpatTcpServer
    from device_drivers.epat.simulator import EpatSimulator

    commands, recorded = _epat_recorded(records)
    replies: queue.Queue[object] = queue.Queue()
    stop = threading.Event()
    simulator = EpatSimulator(speed=speed)
    rows: list[ReplayRow] = []
    try:
        with EpatTcpServer(simulator).start() as server:
            link = serial.serial_for_url(server.url, timeout=0.02)
            decoder = FrameDecoder()

            def read() -> None:
                while not stop.is_set():
                    try:
                        data = link.read(512)
                    except Exception:
                        return
                    for frame in decoder.feed(data, time.monotonic()) if data else ():
                        if frame.cmd in (0x06, 0x15):
                            replies.put(frame)

            reader = threading.Thread(target=read, name="replay-reader", daemon=True)
            reader.start()
            t0_rec = commands[0][0] if commands else 0
            t0_wall = time.perf_counter()
            for i, (t_ns, frame) in enumerate(commands):
                _pace(t0_wall, (t_ns - t0_rec) / 1e9, speed)
                link.write(frame.encode())  # type: ignore[attr-defined]
                got = None
                deadline = time.monotonic() + REPLY_WAIT_S
                while got is None and time.monotonic() < deadline:
                    with contextlib.suppress(queue.Empty):
                        candidate = replies.get(timeout=0.05)
                        if candidate.seq == frame.seq:  # type: ignore[attr-defined]
                            got = candidate
                rows.append(_epat_row(t_ns - t0_rec, frame, recorded.get(i), got))
                if progress is not None:
                    progress(i + 1, len(commands))
            stop.set()
            link.close()
            reader.join(2.0)
    finally:
        simulator.close()
    return rows


def _epat_row(
    t_ns: int, frame: object, recorded: object | None, replayed: object | None
) -> ReplayRow:

    cmd, seq, payload = frame.cmd, frame.seq, frame.payload  # type: ignore[attr-defined]
    command = f"[SEQ {seq}] {describe_command(cmd, payload)}"

    def text(reply: object | None) -> str:
        if reply is None:
            return "(no reply)"
        return describe_reply(cmd, reply.cmd, reply.seq, reply.payload)  # type: ignore[attr-defined]

    same = (
        recorded is not None
        and replayed is not None
        and (
            recorded.cmd,
            recorded.payload,  # type: ignore[attr-defined]
        )
        == (replayed.cmd, replayed.payload)
    )  # type: ignore[attr-defined]
    note = ""
    if not same and recorded is not None and replayed is not None:
        same, note = _same_apart_from_time(cmd, recorded, replayed)
    if recorded is None:
        note = "the real unit did not answer"
    return ReplayRow(t_ns // 1_000_000, command, text(recorded), text(replayed), same, note)


def _same_apart_from_time(cmd: int, recorded: object, replayed: object) -> tuple[bool, str]:
    """Replies that differ only in what time changes (uptime, temperature, counters) are the
    same answer; anything else is a difference."""
    from device_drivers.epat.constants import Command
    from device_drivers.epat.payloads import StatusBlock, unpack_events

    a_cmd, a_payload = recorded.cmd, recorded.payload  # type: ignore[attr-defined]
    b_cmd, b_payload = replayed.cmd, replayed.payload  # type: ignore[attr-defined]
    if a_cmd != b_cmd or a_cmd != 0x06:
        return False, ""
    try:
        if cmd == Command.GET_STATUS:
            a, b = StatusBlock.unpack(a_payload), StatusBlock.unpack(b_payload)
            if (a.state, a.faults, a.delivered, a.target) == (
                b.state,
                b.faults,
                b.delivered,
                b.target,
            ):
                return True, "same state and count; time, temperature or counters differ"
        if cmd == Command.READ_EVENTS:
            ea, eb = unpack_events(a_payload), unpack_events(b_payload)
            if [(e.index, e.code, e.data) for e in ea] == [(e.index, e.code, e.data) for e in eb]:
                return True, "same events; their uptimes differ"
    except Exception:  # an undecodable reply is a difference
        return False, "undecodable"
    return False, ""


# ---------------------------------------------------------------------------- SCPI
def _scpi_recorded(records: list[CommRecord]) -> list[tuple[int, str, str | None]]:
    """(t_ns, line sent, recorded answer or None) for every host line, in order. Answers are
    matched in order to the lines that ask (queries), as the instrument answers in order."""
    from device_drivers.emtt.scpi import line_has_query

    tx: list[tuple[int, str]] = []
    rx: list[str] = []
    buffers = {"tx": bytearray(), "rx": bytearray()}
    for record in records:
        buffer = buffers[record.direction]
        buffer.extend(record.data)
        while (end := buffer.find(b"\n")) >= 0:
            line = bytes(buffer[:end]).rstrip(b"\r").decode("ascii", errors="replace")
            del buffer[: end + 1]
            if record.direction == "tx":
                tx.append((record.t_ns, line))
            else:
                rx.append(line)
    answers = iter(rx)
    return [(t, line, next(answers, None) if line_has_query(line) else None) for t, line in tx]


def _replay_scpi(
    records: list[CommRecord], speed: float, progress: Callable[[int, int], None] | None
) -> list[ReplayRow]:
    from device_drivers.emtt.scpi import line_has_query
    from device_drivers.emtt.server import EmttTcpServer
    from device_drivers.emtt.simulator import EmttSimulator

    lines = _scpi_recorded(records)
    simulator = EmttSimulator(speed=speed)
    server = EmttTcpServer(simulator).start()
    rows: list[ReplayRow] = []
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=REPLY_WAIT_S) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buffer = bytearray()
            t0_rec = lines[0][0]
            t0_wall = time.perf_counter()
            for i, (t_ns, line, recorded) in enumerate(lines):
                _pace(t0_wall, (t_ns - t0_rec) / 1e9, speed)
                sock.sendall(line.encode("ascii", errors="replace") + b"\n")
                replayed = None
                if line_has_query(line):
                    replayed = _read_line(sock, buffer)
                same = recorded == replayed
                note = ""
                if (
                    not same
                    and recorded is not None
                    and replayed is not None
                    and recorded.split(",", 1)[0] == replayed.split(",", 1)[0]
                ):
                    note = "the first field agrees; measured values differ"
                rows.append(
                    ReplayRow(
                        (t_ns - t0_rec) // 1_000_000,
                        line,
                        "(no response line)" if recorded is None else recorded,
                        "(no response line)" if replayed is None else replayed,
                        same,
                        note,
                    )
                )
                if progress is not None:
                    progress(i + 1, len(lines))
    finally:
        server.stop()
    return rows


def _read_line(sock: socket.socket, buffer: bytearray) -> str | None:
    deadline = time.monotonic() + REPLY_WAIT_S
    while (end := buffer.find(b"\n")) < 0:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        sock.settimeout(remaining)
        try:
            data = sock.recv(4096)
        except TimeoutError:
            return None
        if not data:
            return None
        buffer.extend(data)
    line = bytes(buffer[:end]).rstrip(b"\r").decode("ascii", errors="replace")
    del buffer[: end + 1]
    return line
