"""The service engineer's application layer: rooms and links, units opened for service,
diagnostics, the raw console, communication logs and their replay.

Every operation starts with ``AuthService.require`` and is audited. Until the role table has
actions of their own, reading communication logs and editing room links are checked as
``device_diagnostics`` (the service role's action); raw commands as ``raw_device_command``.
A unit opened for service is owned by one ``DeviceWorker`` thread (as in a treatment), so no
two threads ever drive it, and its emergency stop never waits behind a command. The service
layer never reads patient data: sessions appear by id only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit.events import Subject
from audit.sessions import SessionBook
from audit.trail import AuditTrail
from console import paths
from console.alarms import AlarmBoard, AlarmPriority
from console.auth import AuthService, SignedInUser
from console.devices import open_device
from console.service.commlog_view import CommLogFile, CommLogView, decode_commlog, list_commlogs
from console.service.diagnostics import UnitDiagnostics, collect
from console.service.occupancy import UnitInOpenSession, refuse_unit_in_session
from console.service.raw import RawExchange, parse_raw
from console.service.replay import ReplayResult, replay_file
from console.service.rooms import (
    PortInfo,
    RoomSettings,
    RoomSettingsError,
    UnitLink,
    discover,
    load_settings,
    save_settings,
    with_unit,
    without_unit,
)
from console.session.device_worker import DeviceWorker, WorkerMessage
from device_drivers.errors import CommandRefused, DeviceError, DeviceRejected, UnitInTreatment
from device_drivers.interface import DeviceIdentity, TherapyDevice

ROOMS_FILE = "rooms.json"
CALL_TIMEOUT_S = 30.0
OPEN_TIMEOUT_S = 15.0
MAX_REPLY_CHARS = 4000
ROOMS_SUBJECT = Subject("settings", "rooms")


class ServiceError(Exception):
    """A service operation could not be done; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class ConnectionCheck:
    unit: UnitLink
    ok: bool
    identity: DeviceIdentity | None
    message: str
    elapsed_ms: int


class ServiceUnit:
    """A unit opened on the service console (see the module docstring)."""

    def __init__(
        self,
        owner: ServiceServices,
        unit: UnitLink,
        worker: DeviceWorker,
        identity: DeviceIdentity,
    ) -> None:
        self.owner = owner
        self.unit = unit
        self.worker = worker
        self.identity = identity
        self.subject = Subject("device", identity.serial)
        self.closed = False

    def _call(self, command: Callable[[TherapyDevice], Any]) -> Any:
        if self.closed:
            raise ServiceError(f"{self.unit.label} is disconnected: connect it again")
        return self.worker.call(command, CALL_TIMEOUT_S)

    def diagnostics(self, user: SignedInUser, *, run_self_test: bool = True) -> UnitDiagnostics:
        self.owner.auth.require(user, "device_diagnostics")
        result: UnitDiagnostics = self._call(lambda d: collect(d, run_self_test=run_self_test))
        self.owner.trail.append(
            user.actor,
            "device.diagnostics",
            self.subject,
            {"unit": self.unit.label, "link": self.unit.link, **result.audit_record()},
        )
        return result

    def raw(self, user: SignedInUser, text: str) -> RawExchange:
        """Send one raw command; refused by the driver (nothing sent) while the unit is armed
        or delivering. Every attempt that reaches the driver is audited with its outcome."""
        self.owner.auth.require(user, "raw_device_command")
        command = parse_raw(self.unit.modality, text)
        try:
            if command.modality == "epat":
                reply = self._call(lambda d: d.raw_command(command.code, command.payload))
            else:
                reply = self._call(lambda d: d.raw_command(command.line))
            exchange = RawExchange(
                command.text,
                "reply",
                "(accepted, no response line)" if reply is None else str(reply),
            )
        except CommandRefused as exc:
            exchange = RawExchange(command.text, "refused", str(exc))
        except DeviceRejected as exc:
            exchange = RawExchange(command.text, "rejected", str(exc))
        except DeviceError as exc:
            exchange = RawExchange(command.text, "failed", f"{type(exc).__name__}: {exc}")
        self.owner.trail.append(
            user.actor,
            "device.raw_command",
            self.subject,
            {
                "unit": self.unit.label,
                "command": command.text,
                "outcome": exchange.outcome,
                "reply": exchange.reply[:MAX_REPLY_CHARS],
            },
        )
        return exchange

    @property
    def estop_alarm_key(self) -> str:
        return f"service.{self.identity.serial}.emergency_stop"

    def emergency_stop(self, user: SignedInUser) -> int:
        """Stop the unit at once (its own thread: never behind a queued command); audited, and
        a high-priority alarm (ALARM-SVC-1) that stays shown while this console holds the
        latched unit (resolved when it is disconnected: nothing here watches it afterwards)."""
        alarms = self.owner.alarms
        try:
            delivered = self.worker.emergency_stop().result(10.0)
        except BaseException as exc:
            if alarms is not None:
                alarms.raise_alarm(
                    self.estop_alarm_key,
                    AlarmPriority.HIGH,
                    f"EMERGENCY STOP NOT CONFIRMED by {self.unit.label} ({exc}): switch the "
                    "unit off at the mains",
                    persists=True,
                )
            raise
        if alarms is not None:
            alarms.raise_alarm(
                self.estop_alarm_key,
                AlarmPriority.HIGH,
                f"EMERGENCY STOP (service console): {self.unit.label} stopped and latched in fault",
                persists=True,
            )
        self.owner.trail.append(
            user.actor,
            "device.emergency_stop",
            self.subject,
            {"unit": self.unit.label, "delivered": delivered, "via": "service_console"},
        )
        return delivered

    def close(self, user: SignedInUser) -> None:
        """Close (the driver leaves the unit stopped and disarmed); idempotent."""
        if self.closed:
            return
        self.closed = True
        self.worker.shutdown()
        if self.owner.alarms is not None:
            self.owner.alarms.resolve(self.estop_alarm_key)
        self.owner._forget(self)
        self.owner.trail.append(
            user.actor, "device.service_closed", self.subject, {"unit": self.unit.label}
        )


class ServiceServices:
    def __init__(
        self,
        auth: AuthService,
        trail: AuditTrail,
        *,
        rooms_path: Path,
        commlog_dir: Path | None,
        visa_backend: str = "@py",
        device_speed: float = 1.0,
        alarms: AlarmBoard | None = None,
    ) -> None:
        self.auth = auth
        self.alarms = alarms  # the console's board: the service console's stops raise alarms
        self.trail = trail
        self.rooms_path = Path(rooms_path)
        self.commlog_dir = commlog_dir
        self.visa_backend = visa_backend
        self.device_speed = device_speed
        self._open: dict[str, ServiceUnit] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_console(cls, services: Any, rooms_path: Path | None = None) -> ServiceServices:
        config = services.config
        return cls(
            services.auth,
            services.trail,
            rooms_path=rooms_path or paths.data_dir() / ROOMS_FILE,
            commlog_dir=config.commlog_dir,
            visa_backend=config.visa_backend,
            device_speed=config.device_speed,
            alarms=getattr(services, "alarms", None),
        )

    # ------------------------------------------------------------------ rooms and links
    def rooms(self, user: SignedInUser) -> RoomSettings:
        self.auth.require(user, "device_diagnostics")
        return load_settings(self.rooms_path)

    def save_unit(self, user: SignedInUser, unit: UnitLink) -> RoomSettings:
        """Add or change one unit's link (audited ``rooms.changed``)."""
        self.auth.require(user, "device_diagnostics")
        current = load_settings(self.rooms_path)
        new = with_unit(current, unit)
        self._store(user, new, {"change": "set", "unit": unit.label, "link": unit.link})
        return new

    def remove_unit(self, user: SignedInUser, room: str, name: str) -> RoomSettings:
        self.auth.require(user, "device_diagnostics")
        current = load_settings(self.rooms_path)
        current.unit(room, name)  # RoomSettingsError when there is no such unit
        new = without_unit(current, room, name)
        self._store(user, new, {"change": "remove", "unit": f"{room} / {name}"})
        return new

    def _store(self, user: SignedInUser, settings: RoomSettings, what: dict[str, str]) -> None:
        text = json.dumps(settings.to_json(), sort_keys=True)
        save_settings(self.rooms_path, settings)
        self.trail.append(
            user.actor,
            "rooms.changed",
            ROOMS_SUBJECT,
            {**what, "settings_sha256": hashlib.sha256(text.encode()).hexdigest()},
        )

    def discover(self, user: SignedInUser) -> list[PortInfo]:
        """Local serial ports and the VISA resources named in the settings (no broadcast)."""
        self.auth.require(user, "device_diagnostics")
        return discover(load_settings(self.rooms_path))

    def _refuse_in_session(
        self, user: SignedInUser, unit: UnitLink, serial: str | None = None
    ) -> None:
        """SVC-SESS-1: a unit the record shows in an open session belongs to its treating
        console; asked by link before anything is opened, by serial once it has answered.
        Raises ``ServiceError`` (the refusal audited ``device.service_refused``)."""
        try:
            refuse_unit_in_session(
                SessionBook(self.trail),
                lambda data: self._audit_refusal(user, unit, serial, data),
                link=None if serial else unit.link,
                serial=serial,
            )
        except UnitInOpenSession as exc:
            raise ServiceError(str(exc)) from None

    def _audit_refusal(
        self, user: SignedInUser, unit: UnitLink, serial: str | None, data: dict[str, Any]
    ) -> None:
        self.trail.append(
            user.actor,
            "device.service_refused",
            Subject("device", serial or unit.link[:128]),
            {"unit": unit.label, "link": unit.link, **data},
        )

    def _open_unit(self, unit: UnitLink) -> TherapyDevice:
        return open_device(
            **unit.open_arguments(), visa_backend=self.visa_backend, speed=self.device_speed
        )

    def check_connection(self, user: SignedInUser, unit: UnitLink) -> ConnectionCheck:
        """Open the unit, read its identity, close it again (audited). A unit already open on
        this console is asked through its own connection (a second one would replace it)."""
        self.auth.require(user, "device_diagnostics")
        started = time.perf_counter()
        identity: DeviceIdentity | None = None
        try:
            opened = self._open.get(unit.link)
            if opened is not None and not opened.closed:
                identity = opened.worker.call(lambda d: d.identify(), CALL_TIMEOUT_S)
            else:
                self._refuse_in_session(user, unit)
                device = self._open_unit(unit)
                try:
                    identity = device.identify()
                finally:
                    device.close()
                self._refuse_in_session(user, unit, identity.serial)
            ok = identity.modality.value == unit.modality
            message = (
                f"{identity.model} serial {identity.serial}, firmware {identity.firmware}"
                if ok
                else f"an {identity.modality.value.upper()} unit answered on this link, "
                f"not an {unit.modality.upper()} unit: correct the settings"
            )
        except UnitInTreatment as exc:
            ok, message = False, f"{unit.label} at {unit.link} refused: {exc}"
        except (DeviceError, ValueError, OSError, ServiceError) as exc:
            ok, message = False, str(exc) or type(exc).__name__
        elapsed = int((time.perf_counter() - started) * 1000)
        self.trail.append(
            user.actor,
            "device.connection_checked",
            Subject("device", identity.serial if identity else unit.link[:128]),
            {"unit": unit.label, "link": unit.link, "ok": ok, "message": message[:500]},
        )
        return ConnectionCheck(unit, ok, identity, message, elapsed)

    # ------------------------------------------------------------------ units opened for service
    def connect(
        self,
        user: SignedInUser,
        unit: UnitLink,
        outbox: Callable[[WorkerMessage], None] | None = None,
    ) -> ServiceUnit:
        """Open ``unit`` on its own worker thread (call from a worker, never the GUI thread)."""
        self.auth.require(user, "device_diagnostics")
        with self._lock:
            if unit.link in self._open:
                raise ServiceError(f"{unit.label} is already connected on this console")
        self._refuse_in_session(user, unit)  # before opening: that alone would cut its link
        worker = DeviceWorker(
            lambda: self._open_unit(unit),
            outbox or (lambda _message: None),
            name=f"service-{unit.modality}",
            link=unit.link,
        )
        try:
            worker.start().result(OPEN_TIMEOUT_S)
            identity = worker.call(lambda d: d.identify(), CALL_TIMEOUT_S)
        except UnitInTreatment as exc:
            worker.shutdown()  # the driver sent nothing that keeps the unit armed
            self._audit_refusal(user, unit, None, {"reason": str(exc)[:500]})
            raise ServiceError(f"{unit.label} at {unit.link} refused: {exc}") from None
        except BaseException as exc:
            worker.shutdown()
            raise ServiceError(f"cannot connect to {unit.label} at {unit.link}: {exc}") from exc
        try:
            self._refuse_in_session(user, unit, identity.serial)
        except ServiceError:
            worker.shutdown()  # it only looked: closing leaves the unit as found
            raise
        if identity.modality.value != unit.modality:
            worker.shutdown()
            raise ServiceError(
                f"the unit on {unit.link} is {identity.model}, not an {unit.modality.upper()} "
                "unit: correct the room settings"
            )
        opened = ServiceUnit(self, unit, worker, identity)
        with self._lock:
            self._open[unit.link] = opened
        self.trail.append(
            user.actor,
            "device.service_opened",
            opened.subject,
            {"unit": unit.label, "link": unit.link, "firmware": identity.firmware},
        )
        return opened

    def _forget(self, unit: ServiceUnit) -> None:
        with self._lock:
            if self._open.get(unit.unit.link) is unit:
                del self._open[unit.unit.link]

    def close_all(self, user: SignedInUser) -> None:
        with self._lock:
            units = list(self._open.values())
        for unit in units:
            with contextlib.suppress(Exception):
                unit.close(user)

    # ------------------------------------------------------------------ communication logs
    def commlogs(self, user: SignedInUser) -> list[CommLogFile]:
        self.auth.require(user, "device_diagnostics")
        return list_commlogs(self.commlog_dir) if self.commlog_dir is not None else []

    def read_commlog(self, user: SignedInUser, path: Path) -> CommLogView:
        self.auth.require(user, "device_diagnostics")
        view = decode_commlog(Path(path))
        self.trail.append(
            user.actor,
            "device.commlog_viewed",
            Subject("commlog", Path(path).name[:128]),
            {"file": Path(path).name, "records": view.records, "rows": len(view.rows)},
        )
        return view

    def replay(
        self,
        user: SignedInUser,
        path: Path,
        speed: float = 10.0,
        progress: Callable[[int, int], None] | None = None,
    ) -> ReplayResult:
        """Replay a log against a fresh simulator (audited with the number of differences)."""
        self.auth.require(user, "device_diagnostics")
        result = replay_file(Path(path), speed=speed, progress=progress)
        first = result.first_difference
        self.trail.append(
            user.actor,
            "device.commlog_replayed",
            Subject("commlog", Path(path).name[:128]),
            {
                "file": Path(path).name,
                "speed": str(speed),
                "commands": len(result.rows),
                "differences": result.differences,
                "first_difference": first.command if first else None,
            },
        )
        return result


__all__ = ["ConnectionCheck", "RoomSettingsError", "ServiceError", "ServiceServices", "ServiceUnit"]
