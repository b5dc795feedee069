"""The unit's end of one host connection: what a server needs to plug a link into the unit.

A server (:mod:`device_drivers.epat.server`) implements :class:`HostPort` for its link and
feeds every received byte, with its arrival time, to the :class:`HostSession` that
:meth:`EpatSimulator.attach <device_drivers.epat.simulator.EpatSimulator.attach>` returns. The
session applies the receiving rules of the ICD (resynchronisation, the 20 ms inter-byte rule,
CRC counting) and hands each valid frame to the unit.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from device_drivers.epat.codec import Frame, FrameDecoder

if TYPE_CHECKING:
    from device_drivers.epat.simulator import EpatSimulator


class HostPort(Protocol):
    """The unit's end of one host connection, provided by a server."""

    def send(self, data: bytes) -> None:
        """Transmit bytes; raise ``OSError`` if the host is gone."""

    def close(self) -> None:
        """Hang up (idempotent)."""


class HostSession:
    """Receiving side of one host connection: framing rules, then frames to the unit."""

    def __init__(self, simulator: EpatSimulator, port: HostPort) -> None:
        self._sim = simulator
        self._port = port
        self._decoder = FrameDecoder()

    def feed(self, data: bytes, now: float | None = None) -> None:
        """Bytes received at wall time ``now`` (``time.monotonic()`` if None)."""
        now = time.monotonic() if now is None else now
        self._run(self._decoder.feed_iter(data, now))

    def poll(self, now: float | None = None) -> None:
        """Apply the 20 ms inter-byte timeout when no byte has arrived."""
        now = time.monotonic() if now is None else now
        self._run(self._decoder.expire_iter(now))

    def deadline(self) -> float | None:
        """Wall time at which a held partial frame expires (call :meth:`poll` then)."""
        return self._decoder.deadline()

    def close(self) -> None:
        self._sim.detach(self._port)

    def _run(self, frames: Iterator[Frame]) -> None:
        seen = self._decoder.crc_errors
        for frame in frames:
            self._sim.count_crc_errors(self._decoder.crc_errors - seen)
            seen = self._decoder.crc_errors
            self._sim.receive_frame(frame, self._port)
        self._sim.count_crc_errors(self._decoder.crc_errors - seen)
