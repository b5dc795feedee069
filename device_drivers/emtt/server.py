"""Serve an :class:`EmttSimulator` on real links: a raw SCPI socket, or a pseudo-terminal.

``EmttTcpServer`` is the instrument's raw socket (``TCPIP0::HOST::PORT::SOCKET``): one host at a
time; a new connection replaces the old one and the unit's state survives. ``EmttPtyServer``
serves the same unit on a pseudo-terminal for ``ASRL/dev/pts/N::INSTR`` serial resources.

Lines are executed the moment they arrive (so ``ABORt`` never waits behind a slow reply); the
response lines go out in order, each after the simulator's reply delay (0 unless a fault is
injected), so every query is answered well within the ICD's 50 ms.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Self

from device_drivers.emtt.simulator import EmttSimulator

#: A line longer than this is not SCPI from any sane host; it is executed as a syntax error.
MAX_LINE_BYTES = 4096


class _LineEngine:
    """Bytes in → lines → simulator → response lines out, in order and after the delay."""

    def __init__(self, simulator: EmttSimulator, send: Callable[[bytes], None]) -> None:
        self._simulator = simulator
        self._send = send
        self._buffer = bytearray()
        self._overlong = False
        self._pending: deque[tuple[float, bytes]] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._writer = threading.Thread(
            target=self._write_loop, name="emtt-sim-writer", daemon=True
        )
        self._writer.start()

    def feed(self, data: bytes) -> None:
        self._buffer.extend(data)
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                break
            raw = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            if self._overlong or len(raw) > MAX_LINE_BYTES:
                raw, self._overlong = b"\x00", False  # malformed: -102 from the grammar
            self._line(raw)
        if len(self._buffer) > MAX_LINE_BYTES:
            self._buffer.clear()
            self._overlong = True

    def _line(self, raw: bytes) -> None:
        text = raw.decode("ascii", errors="replace").replace("\ufffd", "\x00")
        response = self._simulator.handle_line(text)
        if response is None:
            return
        data = (response + "\n").encode("ascii")
        delay = self._simulator.reply_delay_s
        with self._cond:
            if delay <= 0 and not self._pending:
                self._send_quietly(data)  # the fast path: no thread hop
                return
            self._pending.append((time.monotonic() + delay, data))
            self._cond.notify()

    def _write_loop(self) -> None:
        with self._cond:
            while not self._closed:
                if not self._pending:
                    self._cond.wait()
                    continue
                due, data = self._pending[0]
                wait = due - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                self._pending.popleft()
                self._send_quietly(data)

    def _send_quietly(self, data: bytes) -> None:
        with contextlib.suppress(OSError):
            self._send(data)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._pending.clear()
            self._cond.notify()
        if self._writer is not threading.current_thread():
            self._writer.join(1.0)


class EmttTcpServer:
    """The simulated unit's raw SCPI socket; see the module docstring."""

    def __init__(self, simulator: EmttSimulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self.simulator = simulator
        self.host = host
        self._requested_port = port
        self._listener: socket.socket | None = None
        self._conn: socket.socket | None = None
        self._conn_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.port = 0
        self.connections = 0

    @property
    def resource(self) -> str:
        """The VISA resource string a host opens: ``TCPIP0::HOST::PORT::SOCKET``."""
        return f"TCPIP0::{self.host}::{self.port}::SOCKET"

    def start(self) -> Self:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.host, self._requested_port))
            listener.listen(4)
        except OSError:
            listener.close()
            raise
        self._listener = listener
        self.port = listener.getsockname()[1]
        self.simulator.add_link_cut_listener(self.drop_connection)
        thread = threading.Thread(target=self._accept_loop, name="emtt-sim-accept", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                readable, _, _ = select.select([self._listener], [], [], 0.1)
                if not readable:
                    continue
                conn, _addr = self._listener.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.drop_connection()  # one host at a time: the newest wins
            with self._conn_lock:
                self._conn = conn
                self.connections += 1
            thread = threading.Thread(
                target=self._serve, args=(conn,), name="emtt-sim-conn", daemon=True
            )
            thread.start()
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]

    def _serve(self, conn: socket.socket) -> None:
        engine = _LineEngine(self.simulator, conn.sendall)
        try:
            while not self._stop.is_set():
                try:
                    data = conn.recv(4096)
                except OSError:
                    return
                if not data:
                    return
                engine.feed(data)
        finally:
            engine.close()
            with self._conn_lock:
                if self._conn is conn:
                    self._conn = None
            with contextlib.suppress(OSError):
                conn.close()

    def drop_connection(self) -> None:
        """Cut the current host's connection abruptly (RST), as a pulled cable would."""
        with self._conn_lock:
            conn, self._conn = self._conn, None
        if conn is None:
            return
        with contextlib.suppress(OSError):
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self.simulator.remove_link_cut_listener(self.drop_connection)
        self.drop_connection()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept loop at once
            with contextlib.suppress(OSError):
                self._listener.close()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(2.0)
        self._threads.clear()

    def __enter__(self) -> Self:
        return self.start() if self._listener is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class EmttPtyServer:
    """The simulated unit on a pseudo-terminal (the ICD's ``ASRLn::INSTR`` serial link).

    ``path`` is the terminal a host opens (``resource`` gives ``ASRL/dev/pts/N::INSTR``);
    ``cut_link()`` on the simulator is a no-op here: a serial line has no connection to drop.
    """

    def __init__(self, simulator: EmttSimulator) -> None:
        self.simulator = simulator
        self.path = ""
        self._master = -1
        self._slave = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def resource(self) -> str:
        return f"ASRL{self.path}::INSTR"

    def start(self) -> Self:
        import tty

        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self._thread = threading.Thread(target=self._serve, name="emtt-sim-pty", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        engine = _LineEngine(self.simulator, self._write)
        try:
            while not self._stop.is_set():
                readable, _, _ = select.select([self._master], [], [], 0.1)
                if not readable:
                    continue
                try:
                    data = os.read(self._master, 4096)
                except OSError:
                    return
                if data:
                    engine.feed(data)
        finally:
            engine.close()

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._master, view)
            view = view[written:]

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        for fd in (self._master, self._slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = -1

    def __enter__(self) -> Self:
        return self.start() if self._thread is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
