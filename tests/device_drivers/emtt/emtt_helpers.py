"""Helpers for the EMTT tests: a raw SCPI line client on a plain socket, and a unit model."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import TypeVar

from device_drivers.commlog import CommLog
from device_drivers.emtt.unit import Applicator, EmttUnit
from device_drivers.interface import DeviceMessage, DeviceParameters

T = TypeVar("T")


class Wire:
    """A raw SCPI client on a plain socket: exact lines out, exact lines back."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=2.0)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = b""

    def send(self, line: str | bytes) -> None:
        data = line if isinstance(line, bytes) else line.encode("ascii")
        self.sock.sendall(data + b"\n")

    def read(self, timeout: float = 1.0) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no response line")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(4096)
            except TimeoutError:
                continue
            if not chunk:
                raise ConnectionError("the unit closed the connection")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode("ascii")

    def query(self, line: str, timeout: float = 1.0) -> str:
        self.send(line)
        return self.read(timeout)

    def silent(self, line: str, wait: float = 0.1) -> None:
        """Send ``line`` and prove that no response line comes back."""
        self.send(line)
        # *OPC? is answered in order, so anything before its "1" belongs to ``line``
        self.send("*OPC?")
        assert self.read(wait + 1.0) == "1", f"{line!r} produced a response"

    def errors(self) -> list[int]:
        """Drain the error queue: the codes, oldest first."""
        codes: list[int] = []
        for _ in range(20):
            reply = self.query("SYST:ERR?")
            code = int(reply.split(",", 1)[0])
            if code == 0:
                assert reply == '0,"No error"'
                return codes
            codes.append(code)
        raise AssertionError("the error queue never emptied")

    def state(self) -> str:
        return self.query("SESS:STAT?").split(",")[0]

    def close(self) -> None:
        self.sock.close()


def fitted_unit() -> EmttUnit:
    return EmttUnit(applicator=Applicator("EMT-A1", "A1-1", 0))


def sent_lines(log: CommLog) -> list[str]:
    """The lines the host wrote, in order, from its communication log."""
    return [r.data.decode("ascii").rstrip("\n") for r in log.records() if r.direction == "tx"]


def wait_for(predicate: Callable[[], bool], timeout: float = 3.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.005)


def session_params(field: str = "40", freq: str = "5", pulses: int = 4000) -> DeviceParameters:
    return DeviceParameters(frequency_hz=Decimal(freq), pulses=pulses, field_mt=Decimal(field))


class Inbox:
    """A listener that keeps every message, thread-safely."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.messages: list[DeviceMessage] = []

    def __call__(self, message: DeviceMessage) -> None:
        with self._lock:
            self.messages.append(message)

    def of(self, kind: type[T]) -> list[T]:
        with self._lock:
            return [m for m in self.messages if isinstance(m, kind)]
