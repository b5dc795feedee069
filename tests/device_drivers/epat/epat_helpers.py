"""Test helpers for the EPAT area: a bare host that writes and reads exact frames on a real link,
and a bench that starts simulated units on TCP and cleans them up."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from device_drivers.epat.codec import Frame, FrameDecoder, encode_frame
from device_drivers.epat.constants import Command, EventCode, Reply, State, Unsolicited
from device_drivers.epat.driver import EpatDriver
from device_drivers.epat.payloads import (
    EventNotice,
    NakReply,
    SetParams,
    StatusBlock,
    pack_uint,
    unpack_uint,
)
from device_drivers.epat.server import EpatPtyServer, EpatTcpServer
from device_drivers.epat.simulator import EpatSimulator
from device_drivers.transports.serial_link import SerialLink

REPLY_CODES = (Reply.ACK, Reply.NAK)
#: Speed factor of the driver tests: simulated time 5× faster keeps them short while the
#: watchdog (100 ms wall) stays far above any scheduling hiccup of a loaded 2-core machine.
SPEED = 5


class Exchange(NamedTuple):
    reply: Frame
    before: list[Frame]  # frames that arrived between sending and the reply

    @property
    def events(self) -> list[tuple[int, int]]:
        return events_of(self.before)


def events_of(frames: list[Frame]) -> list[tuple[int, int]]:
    """(code, data) of the EVENT frames among ``frames``, in order."""
    out = []
    for f in frames:
        if f.cmd == Unsolicited.EVENT:
            notice = EventNotice.unpack(f.payload)
            out.append((notice.code, notice.data))
    return out


def state_event(state: int) -> tuple[int, int]:
    return (EventCode.STATE_CHANGE, int(state))


def params(pressure_cbar: int = 250, freq_dhz: int = 80, pulses: int = 100) -> bytes:
    return SetParams(pressure_cbar, freq_dhz, pulses).pack()


class RawHost:
    """A host with no driver logic: exact frames out, every received frame recorded."""

    def __init__(self, url: str) -> None:
        self.link = SerialLink(url, read_timeout_s=0.002)
        self.decoder = FrameDecoder()
        self.received: list[tuple[float, Frame]] = []
        self._pending: list[Frame] = []
        self._seq = 0

    def next_seq(self) -> int:
        self._seq = self._seq % 255 + 1
        return self._seq

    def send(self, cmd: int, payload: bytes = b"", seq: int | None = None) -> int:
        seq = self.next_seq() if seq is None else seq
        self.link.write(encode_frame(seq, cmd, payload))
        return seq

    def send_raw(self, data: bytes) -> None:
        self.link.write(data)

    def _pump_once(self) -> None:
        data = self.link.read_some()
        now = time.monotonic()
        for frame in self.decoder.feed(data, now):
            self.received.append((now, frame))
            self._pending.append(frame)

    def exchange(
        self, cmd: int, payload: bytes = b"", seq: int | None = None, timeout: float = 0.5
    ) -> Exchange:
        seq = self.send(cmd, payload, seq)
        return self.wait_reply(seq, timeout)

    def wait_reply(self, seq: int, timeout: float = 0.5) -> Exchange:
        end = time.monotonic() + timeout
        while True:
            for i, frame in enumerate(self._pending):
                if frame.cmd in REPLY_CODES and frame.seq == seq:
                    before, self._pending = self._pending[:i], self._pending[i + 1 :]
                    return Exchange(frame, before)
            if time.monotonic() > end:
                raise AssertionError(f"no reply with SEQ {seq} within {timeout} s")
            self._pump_once()

    def ack(self, cmd: int, payload: bytes = b"", **kw: Any) -> bytes:
        ex = self.exchange(cmd, payload, **kw)
        assert ex.reply.cmd == Reply.ACK, f"{Command(cmd).name} answered {ex.reply}"
        return ex.reply.payload

    def nak(self, cmd: int, payload: bytes = b"", **kw: Any) -> tuple[int, int]:
        ex = self.exchange(cmd, payload, **kw)
        assert ex.reply.cmd == Reply.NAK, f"{cmd:#04x} answered {ex.reply}, expected a NAK"
        nak = NakReply.unpack(ex.reply.payload)
        return nak.code, nak.detail

    def status(self) -> StatusBlock:
        return StatusBlock.unpack(self.ack(Command.GET_STATUS))

    def state(self) -> int:
        return unpack_uint(self.ack(Command.HEARTBEAT), 1, "state")

    def take(self) -> list[Frame]:
        """Frames received and not yet consumed by an exchange."""
        out, self._pending = self._pending, []
        return out

    def listen(self, seconds: float, heartbeat_every: float | None = None) -> list[Frame]:
        """Read for ``seconds`` (optionally heartbeating); returns every frame not consumed."""
        end = time.monotonic() + seconds
        next_beat = time.monotonic()
        while time.monotonic() < end:
            if heartbeat_every is not None and time.monotonic() >= next_beat:
                self.send(Command.HEARTBEAT)
                next_beat += heartbeat_every
            self._pump_once()
        return self.take()

    def bring_to(self, state: State, settings: bytes) -> None:
        """SET_PARAMS ``settings``, ARM, then START and PAUSE as far as ``state`` (ARMED,
        FIRING or PAUSED), asserting each ACK."""
        self.ack(Command.SET_PARAMS, settings)
        self.ack(Command.ARM)
        if state is not State.ARMED:
            self.ack(Command.START)
        if state is State.PAUSED:
            self.ack(Command.PAUSE)

    def fire(self, pressure: int = 250, freq: int = 80, pulses: int = 100) -> None:
        """SET_PARAMS, ARM, START (asserting each ACK)."""
        self.ack(Command.SET_PARAMS, params(pressure, freq, pulses))
        self.ack(Command.ARM)
        self.ack(Command.START)

    def close(self) -> None:
        sock = getattr(self.link._port, "_socket", None)  # socket:// links: hang up now,
        if sock is not None:  # before pyserial's 0.3 s "reconnect" sleep in close()
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.link.close()


@dataclass
class Unit:
    """One simulated unit served on TCP (and optionally a pty), with what tests open on it."""

    sim: EpatSimulator
    server: EpatTcpServer
    pty: EpatPtyServer | None = None
    opened: list[Any] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    def raw(self) -> RawHost:
        """A raw host connected over TCP (returns once the unit has taken the connection)."""
        before = self.sim.stats().connections
        host = RawHost(self.url)
        self.opened.append(host)
        end = time.monotonic() + 2.0
        while self.sim.stats().connections == before and time.monotonic() < end:
            time.sleep(0.001)
        return host

    def driver(self, url: str | None = None, **kw: Any) -> EpatDriver:
        kw.setdefault("heartbeat_interval_s", 0.1 / self.sim.speed)
        driver = EpatDriver(url or self.url, **kw)
        self.opened.append(driver)
        return driver

    def wait_for(self, predicate: Any, timeout: float = 2.0) -> Any:
        """Poll the simulator until ``predicate(snapshot)`` holds; returns that snapshot."""
        end = time.monotonic() + timeout
        while True:
            snap = self.sim.snapshot()
            if predicate(snap):
                return snap
            if time.monotonic() > end:
                raise AssertionError(f"condition not reached within {timeout} s: {snap}")
            time.sleep(0.002)


class UnitFactory:
    def __init__(self) -> None:
        self.units: list[Unit] = []

    def __call__(self, speed: float = 1.0, *, pty: bool = False, **kw: Any) -> Unit:
        kw.setdefault("seed", 7)
        sim = EpatSimulator(speed=speed, **kw)
        unit = Unit(sim, EpatTcpServer(sim).start())
        if pty:
            unit.pty = EpatPtyServer(sim).start()
        self.units.append(unit)
        return unit

    def close(self) -> None:
        # pyserial sleeps 0.3 s when it closes a socket:// port; close everything in parallel.
        closers = [
            threading.Thread(target=thing.close, daemon=True)
            for unit in self.units
            for thing in unit.opened
        ]
        for closer in closers:
            closer.start()
        for closer, thing in zip(closers, [t for u in self.units for t in u.opened], strict=True):
            if not isinstance(thing, RawHost):  # a raw host's socket is shut at once
                closer.join(5.0)
        for unit in self.units:
            unit.server.stop()
            if unit.pty is not None:
                unit.pty.stop()
            unit.sim.close()


def units() -> Iterator[UnitFactory]:
    factory = UnitFactory()
    try:
        yield factory
    finally:
        factory.close()


__all__ = ["pack_uint"]
