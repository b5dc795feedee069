"""Line transport over a pyvisa resource (``@py`` = pyvisa-py by default).

The resource string and backend are configurable; no discovery is ever done here
(``list_resources()`` broadcasts on some backends). Every line in either direction goes to the
optional communication log. VISA errors become the device exception family.

pyvisa keeps one resource manager per backend and process, and closing it closes every session
opened through it; so a link closes only its own session, never the manager (closing one
driver — a refused newcomer — must not cut the treating driver's link in the same process).

A serial resource (``ASRL…::INSTR`` on pyvisa-py) is locked exclusively once open, with the
same advisory lock as the EPAT serial link: a second program opening the port is refused with
one line instead of sharing the line with the treatment's host.
"""

from __future__ import annotations

import contextlib
import fcntl
import socket

import pyvisa
from pyvisa import constants as visa_constants
from pyvisa.errors import InvalidSession, VisaIOError
from pyvisa.resources import MessageBasedResource

from device_drivers.commlog import CommLog
from device_drivers.errors import LinkLost, LinkTimeout
from device_drivers.transports.serial_link import port_in_use, port_in_use_error

DEFAULT_BACKEND = "@py"
_TIMEOUT_CODES = {visa_constants.StatusCode.error_timeout}


class VisaLink:
    """An open VISA message-based session with ``\\n`` read and write termination."""

    def __init__(
        self,
        resource: str,
        *,
        backend: str = DEFAULT_BACKEND,
        timeout_ms: int = 500,
        open_timeout_ms: int = 2000,
        commlog: CommLog | None = None,
    ) -> None:
        self.resource_name = resource
        self.commlog = commlog
        try:
            self._rm = pyvisa.ResourceManager(backend)
        except (OSError, ValueError) as exc:
            raise LinkLost(
                f"VISA backend {backend!r} is not available: {exc} (use '@py' for pyvisa-py)"
            ) from exc
        try:
            inst = self._rm.open_resource(
                resource,
                read_termination="\n",
                write_termination="\n",
                timeout=timeout_ms,
                open_timeout=open_timeout_ms,
            )
        except Exception as exc:  # pyvisa-py raises bare Exception on connect failure
            raise LinkLost(
                f"cannot open VISA resource {resource!r}: {exc} "
                "(check the resource string, e.g. TCPIP0::127.0.0.1::5025::SOCKET, and the unit)"
            ) from exc
        if not isinstance(inst, MessageBasedResource):
            with contextlib.suppress(Exception):
                inst.close()
            raise LinkLost(
                f"VISA resource {resource!r} does not carry text lines; use a SOCKET or "
                "ASRL…::INSTR resource"
            )
        try:
            _lock_serial_port(inst)
        except OSError as exc:
            inst.close()
            if port_in_use(exc):
                raise port_in_use_error(resource) from exc
            raise LinkLost(f"cannot lock VISA resource {resource!r}: {exc}") from exc
        self._inst = inst
        _set_tcp_nodelay(inst)

    @property
    def timeout_ms(self) -> int:
        return int(self._inst.timeout)

    @timeout_ms.setter
    def timeout_ms(self, value: int) -> None:
        self._inst.timeout = value

    def write(self, line: str) -> None:
        if self.commlog is not None:
            self.commlog.record("tx", (line + "\n").encode("ascii", "replace"))
        try:
            self._inst.write(line)
        except VisaIOError as exc:
            raise self._translate(exc, "writing") from exc
        except (OSError, InvalidSession) as exc:
            raise LinkLost(f"VISA resource {self.resource_name!r} lost: {exc}") from exc

    def read(self) -> str:
        try:
            line = self._inst.read()
        except VisaIOError as exc:
            raise self._translate(exc, "reading") from exc
        except (OSError, InvalidSession) as exc:
            raise LinkLost(f"VISA resource {self.resource_name!r} lost: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise LinkLost(f"VISA resource {self.resource_name!r} sent non-ASCII data") from exc
        if self.commlog is not None:
            self.commlog.record("rx", (line + "\n").encode("ascii", "replace"))
        return line.rstrip("\r")

    def query(self, line: str) -> str:
        self.write(line)
        return self.read()

    def close(self) -> None:
        """Close this session only (see the module docstring); never raises."""
        with contextlib.suppress(Exception):
            self._inst.close()

    def _translate(self, exc: VisaIOError, doing: str) -> LinkTimeout | LinkLost:
        if exc.error_code in _TIMEOUT_CODES:
            return LinkTimeout(
                f"VISA resource {self.resource_name!r} did not answer in {self.timeout_ms} ms"
            )
        return LinkLost(f"VISA resource {self.resource_name!r} lost while {doing}: {exc}")


def _session_interface(inst: MessageBasedResource) -> object:
    """What pyvisa-py's session talks through (a socket, a pyserial port), or None."""
    session = getattr(inst.visalib, "sessions", {}).get(inst.session)
    return getattr(session, "interface", None)


def _lock_serial_port(inst: MessageBasedResource) -> None:
    """Lock a serial resource's port exclusively (non-blocking; ``OSError`` if held)."""
    fd = getattr(_session_interface(inst), "fd", None)
    if isinstance(fd, int):
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _set_tcp_nodelay(inst: pyvisa.resources.MessageBasedResource) -> None:
    """Disable Nagle on raw-socket sessions (pyvisa-py rejects the VISA attribute for SOCKET)."""
    sock = _session_interface(inst)
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
