"""Serve an :class:`~device_drivers.epat.simulator.EpatSimulator` on a real link.

- :class:`EpatTcpServer`: a TCP listener (reach it with ``socket://127.0.0.1:PORT``); one host at
  a time, a new connection replaces the old one and the unit's state survives the change.
- :class:`EpatPtyServer`: a pseudo-terminal; the host opens :attr:`EpatPtyServer.path` like a
  serial port. After :meth:`~EpatSimulator.cut_link` the old pty is hung up and a new one is
  made (a pty cannot be re-opened once hung up), so :attr:`~EpatPtyServer.path` changes.

Both feed received bytes with their arrival time to the simulator, which applies the 20 ms
inter-byte rule, and answer as soon as the unit has (well inside the 50 ms reply deadline,
unless a reply delay is injected).
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import time
import tty
from types import TracebackType
from typing import Self

from device_drivers.epat.hostlink import HostSession
from device_drivers.epat.simulator import EpatSimulator

_IDLE_POLL_S = 0.2  # how often an idle connection thread checks for stop (wall)
_SEND_TIMEOUT_S = 1.0  # a host that does not read for this long is hung up on


class _TcpPort:
    """The unit's end of one TCP connection (implements ``HostPort``)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._lock = threading.Lock()
        self._closed = False

    def send(self, data: bytes) -> None:
        with self._lock:
            if self._closed:
                raise OSError("connection closed")
            self.sock.sendall(data)

    def close(self) -> None:
        """Hang up; the serving thread notices (recv returns b"") and releases the socket."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def release(self) -> None:
        """Close the descriptor (only the serving thread calls this, so it is never reused
        under a select() in progress)."""
        self.close()
        with contextlib.suppress(OSError):
            self.sock.close()

    @property
    def closed(self) -> bool:
        return self._closed


def _wait_s(session: HostSession, ceiling: float = _IDLE_POLL_S) -> float:
    """How long to wait for bytes: until a held partial frame expires, at most ``ceiling``."""
    deadline = session.deadline()
    if deadline is None:
        return ceiling
    return min(ceiling, max(0.0, deadline - time.monotonic()))


class EpatTcpServer:
    """The simulated unit on a TCP port; see the module docstring."""

    def __init__(self, simulator: EpatSimulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self.simulator = simulator
        self.host = host
        self._requested_port = port
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._connections: list[tuple[_TcpPort, threading.Thread]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    @property
    def port(self) -> int:
        if self._listener is None:
            raise RuntimeError("the server is not started")
        return int(self._listener.getsockname()[1])

    @property
    def url(self) -> str:
        """The pyserial URL a host opens."""
        return f"socket://{self.host}:{self.port}"

    def start(self) -> Self:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.host, self._requested_port))
            listener.listen(4)
        except OSError:
            listener.close()
            raise
        self._listener = listener
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"epat-tcp-{self.port}", daemon=True
        )
        self._accept_thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and hang up; the simulator (and the unit's state) lives on."""
        self._stopping.set()
        listener = self._listener
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes accept() on Linux
            listener.close()
        if self._accept_thread is not None:
            self._accept_thread.join(2.0)
        with self._lock:
            connections, self._connections = self._connections, []
        for port, thread in connections:
            port.close()
            thread.join(2.0)

    def __enter__(self) -> Self:
        return self if self._listener is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(_SEND_TIMEOUT_S)
            port = _TcpPort(sock)
            session = self.simulator.attach(port)
            thread = threading.Thread(
                target=self._serve, args=(port, session), name="epat-tcp-conn", daemon=True
            )
            with self._lock:
                self._connections = [(p, t) for p, t in self._connections if t.is_alive()]
                self._connections.append((port, thread))
            thread.start()

    def _serve(self, port: _TcpPort, session: HostSession) -> None:
        try:
            while not self._stopping.is_set() and not port.closed:
                deadline = session.deadline()
                timeout = (
                    _IDLE_POLL_S if deadline is None else max(0.0, deadline - time.monotonic())
                )
                readable, _, _ = select.select([port.sock], [], [], timeout)
                if not readable:
                    session.poll(time.monotonic())
                    continue
                data = port.sock.recv(4096)
                if not data:
                    return
                session.feed(data, time.monotonic())
        except (OSError, ValueError):
            return  # hung up (by the host, a newer host, cut_link or stop)
        finally:
            session.close()
            port.release()


class _PtyPort:
    """The unit's end of a pseudo-terminal (the master side; implements ``HostPort``).

    :meth:`close` (from any thread) only marks the port and wakes the serving thread, which
    then closes the descriptors itself, so no descriptor is closed under a select() in progress.
    """

    def __init__(self) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line editing: bytes pass unchanged
        self.path = os.ttyname(self._slave)
        os.set_blocking(self.master, False)
        self.wake_r, self._wake_w = os.pipe()
        self._lock = threading.Lock()
        self._closed = False
        self.overflow_bytes = 0

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        with self._lock:
            if self._closed:
                raise OSError("pty closed")
            while view:
                try:
                    written = os.write(self.master, view)
                except BlockingIOError:
                    # Nobody reads the terminal: like a serial line, the bytes are lost.
                    self.overflow_bytes += len(view)
                    return
                view = view[written:]

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")

    def release(self) -> None:
        """Hang up the terminal and free the descriptors (serving thread only)."""
        self.close()
        with self._lock:
            for fd in (self.master, self._slave, self.wake_r, self._wake_w):
                with contextlib.suppress(OSError):
                    os.close(fd)

    @property
    def closed(self) -> bool:
        return self._closed


class EpatPtyServer:
    """The simulated unit on a pseudo-terminal; see the module docstring."""

    def __init__(self, simulator: EpatSimulator) -> None:
        self.simulator = simulator
        self._port: _PtyPort | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._ready = threading.Event()

    @property
    def path(self) -> str:
        """The slave device the host opens (e.g. ``/dev/pts/7``)."""
        if self._port is None:
            raise RuntimeError("the server is not started")
        return self._port.path

    def start(self) -> Self:
        self._port = _PtyPort()
        session = self.simulator.attach(self._port)
        self._thread = threading.Thread(
            target=self._serve, args=(session,), name="epat-pty", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        port = self._port
        if port is not None:
            self.simulator.detach(port)
            port.close()  # wakes the serving thread, which releases the terminal
        if self._thread is not None:
            self._thread.join(2.0)

    def __enter__(self) -> Self:
        return self if self._port is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _serve(self, session: HostSession) -> None:
        port = self._port
        assert port is not None
        try:
            while not self._stopping.is_set():
                if port.closed:  # cut_link hung up: offer a fresh terminal
                    port.release()
                    self._port = port = _PtyPort()
                    session = self.simulator.attach(port)
                readable, _, _ = select.select([port.master, port.wake_r], [], [], _wait_s(session))
                if not readable:
                    session.poll(time.monotonic())
                    continue
                if port.master not in readable:
                    continue  # woken by close(); handled at the top of the loop
                try:
                    data = os.read(port.master, 4096)
                except BlockingIOError:
                    continue
                except OSError:
                    port.close()  # the terminal failed: replace it at the top of the loop
                    continue
                if data:
                    session.feed(data, time.monotonic())
        finally:
            self.simulator.detach(port)
            port.release()
