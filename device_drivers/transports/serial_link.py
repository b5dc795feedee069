"""Byte transport over anything ``serial.serial_for_url`` opens.

A device path (``/dev/ttyUSB0``), a pty path, ``socket://HOST:PORT`` and ``loop://`` all work,
because the framing above does not care what carries the bytes. Every byte in either direction
goes to the optional communication log. pyserial errors become the device exception family.

A device path is opened exclusively (an advisory ``flock``, pyserial's ``exclusive=True``): a
second program opening the same port — a second console, a service tool — is refused with a
one-line ``LinkLost`` instead of sharing the line and interleaving its frames with the
treatment's. URLs (``socket://``, ``loop://``) carry no lock; the unit's end decides there.
"""

from __future__ import annotations

import contextlib
import errno
import select
import socket

import serial

from device_drivers.commlog import CommLog
from device_drivers.errors import LinkLost

EPAT_BAUDRATE = 115200


class SerialLink:
    """An open serial-style byte link (8N1, no flow control)."""

    def __init__(
        self,
        url: str,
        *,
        baudrate: int = EPAT_BAUDRATE,
        read_timeout_s: float = 0.05,
        commlog: CommLog | None = None,
    ) -> None:
        self.url = url
        self.commlog = commlog
        self._read_timeout_s = read_timeout_s
        device_path = "://" not in url
        try:
            self._port = serial.serial_for_url(
                url,
                baudrate=baudrate,
                bytesize=serial.EIGHTBITS,
                parity=serial.PARITY_NONE,
                stopbits=serial.STOPBITS_ONE,
                xonxoff=False,
                rtscts=False,
                timeout=read_timeout_s,
                write_timeout=1.0,
                **({"exclusive": True} if device_path else {}),
            )
        except (serial.SerialException, ValueError, OSError) as exc:
            raise _open_error(url, exc, locked=device_path) from exc
        self._socket = _tcp_socket_of(self._port)
        if self._socket is not None:
            # Small frames must not wait for delayed ACKs (Nagle) on socket:// links.
            self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def is_open(self) -> bool:
        return bool(self._port.is_open)

    def write(self, data: bytes) -> None:
        if self.commlog is not None:
            self.commlog.record("tx", data)
        try:
            if self._socket is not None:
                self._socket.sendall(data)
            else:
                self._port.write(data)
                self._port.flush()
        except (serial.SerialException, OSError) as exc:
            raise LinkLost(f"link {self.url!r} lost while writing: {exc}") from exc

    def read_some(self, max_bytes: int = 4096, timeout_s: float | None = None) -> bytes:
        """Whatever has arrived, waiting up to ``timeout_s`` (socket links; default and other
        links: the read timeout) for the first byte.

        Returns ``b""`` on timeout; raises LinkLost when the other end is gone.
        """
        try:
            if self._socket is not None:
                data = self._read_socket(max_bytes, timeout_s)
            else:
                first = self._port.read(1)
                if not first:
                    return b""
                data = first + self._read_pending(max_bytes - 1)
        except (serial.SerialException, OSError) as exc:
            raise LinkLost(f"link {self.url!r} lost while reading: {exc}") from exc
        if data and self.commlog is not None:
            self.commlog.record("rx", data)
        return data

    def _read_socket(self, max_bytes: int, timeout_s: float | None) -> bytes:
        """One select and one recv: pyserial's socket read loops until its timeout expires."""
        assert self._socket is not None
        if timeout_s is None:
            timeout_s = self._read_timeout_s
        readable, _, _ = select.select([self._socket], [], [], timeout_s)
        if not readable:
            return b""
        chunk = self._socket.recv(max_bytes)
        if chunk == b"":
            raise LinkLost(f"link {self.url!r} closed by the other end")
        return chunk

    def _read_pending(self, max_bytes: int) -> bytes:
        if max_bytes <= 0:
            return b""
        if self._socket is not None:
            # pyserial's socket in_waiting only says "readable"; take what the kernel holds at once.
            try:
                chunk = self._socket.recv(max_bytes, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return b""
            if chunk == b"":
                raise LinkLost(f"link {self.url!r} closed by the other end")
            return chunk
        waiting = self._port.in_waiting
        return self._port.read(min(waiting, max_bytes)) if waiting else b""

    def reset_input(self) -> None:
        try:
            self._port.reset_input_buffer()
        except (serial.SerialException, OSError) as exc:
            raise LinkLost(f"link {self.url!r} lost: {exc}") from exc

    def close(self) -> None:
        with contextlib.suppress(serial.SerialException, OSError):
            self._port.close()


def port_in_use(exc: Exception) -> bool:
    """True if opening failed because another program holds the port's exclusive lock."""
    return getattr(exc, "errno", None) in (errno.EAGAIN, errno.EWOULDBLOCK)


def port_in_use_error(port: str) -> LinkLost:
    return LinkLost(
        f"serial port {port!r} is in use by another program (another console or a service "
        "tool has it open); close that program first"
    )


def _open_error(url: str, exc: Exception, *, locked: bool) -> LinkLost:
    """One line saying why ``url`` did not open; a port another program holds is named as such."""
    if locked and port_in_use(exc):
        return port_in_use_error(url)
    return LinkLost(
        f"cannot open serial link {url!r}: {exc} "
        "(check the port name or URL, the cable and that no other program holds the port)"
    )


def _tcp_socket_of(port: serial.SerialBase) -> socket.socket | None:
    """The TCP socket behind a ``socket://`` port (pyserial keeps it private), else None."""
    sock = getattr(port, "_socket", None)
    return sock if isinstance(sock, socket.socket) else None
