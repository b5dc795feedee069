"""Which unit is on which link, per treatment room: a small JSON file in the data folder.

    {"version": 1, "rooms": [{"name": "Room 1", "units": [
        {"name": "EPAT", "modality": "epat", "link": "/dev/ttyUSB0"},
        {"name": "EMTT", "modality": "emtt", "link": "TCPIP0::10.0.4.21::5025::SOCKET"}]}]}

An EPAT unit is on a serial port (a device path, or a pyserial URL such as ``socket://`` for a
serial-over-TCP adapter); an EMTT unit on a VISA resource named in full. Discovery lists the
local serial ports (pyserial's ``comports``, which only reads the operating system's device list)
and the VISA resources named in this file. It never asks VISA to list resources: that probes the
network with broadcasts, which a clinic network must not see from a treatment console.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SETTINGS_VERSION = 1
MODALITIES = ("epat", "emtt")
_NAME = re.compile(r"^[^\x00-\x1f]{1,64}$")
_SERIAL_URL = re.compile(r"^(socket|rfc2217|loop|spy|hwgrep|alt|cp2110)://\S*$")
_DEVICE_PATH = re.compile(r"^(/dev/\S+|COM\d{1,3}|\\\\\.\\COM\d{1,3})$")
#: the VISA resource forms an EMTT unit is reached by (explicitly named, never discovered)
_VISA = re.compile(
    r"^(TCPIP\d*::[A-Za-z0-9.\-]+::\d{1,5}::SOCKET"
    r"|TCPIP\d*::[A-Za-z0-9.\-]+(::[A-Za-z0-9_]+)?::INSTR"
    r"|ASRL(\d+|/dev/\S+)::INSTR"
    r"|USB\d*::0x[0-9A-Fa-f]{4}::0x[0-9A-Fa-f]{4}::\S+::INSTR)$"
)


class RoomSettingsError(ValueError):
    """The settings (file or edit) are not usable; the message says where and what to fix."""


@dataclass(frozen=True, slots=True)
class UnitLink:
    """One unit of a room: its name, modality and link."""

    room: str
    name: str
    modality: str
    link: str

    @property
    def label(self) -> str:
        return f"{self.room} / {self.name} ({self.modality.upper()})"

    def open_arguments(self) -> dict[str, str]:
        """Keyword arguments for ``console.devices.open_device``."""
        return {"epat_url": self.link} if self.modality == "epat" else {"emtt_resource": self.link}


@dataclass(frozen=True, slots=True)
class Room:
    name: str
    units: tuple[UnitLink, ...]


@dataclass(frozen=True, slots=True)
class RoomSettings:
    rooms: tuple[Room, ...]

    @property
    def units(self) -> tuple[UnitLink, ...]:
        return tuple(u for room in self.rooms for u in room.units)

    def unit(self, room: str, name: str) -> UnitLink:
        for unit in self.units:
            if (unit.room, unit.name) == (room, name):
                return unit
        raise RoomSettingsError(f"there is no unit {name!r} in room {room!r}")

    def unit_for(self, room: str, modality: str) -> UnitLink | None:
        """The room's unit of ``modality`` (what a therapist's console in that room uses)."""
        return next((u for u in self.units if u.room == room and u.modality == modality), None)

    def visa_resources(self) -> tuple[str, ...]:
        return tuple(sorted({u.link for u in self.units if u.modality == "emtt"}))

    def to_json(self) -> dict[str, Any]:
        return {
            "version": SETTINGS_VERSION,
            "rooms": [
                {
                    "name": room.name,
                    "units": [
                        {"name": u.name, "modality": u.modality, "link": u.link} for u in room.units
                    ],
                }
                for room in self.rooms
            ],
        }


def link_problem(modality: str, link: str) -> str | None:
    """Why ``link`` cannot reach a unit of ``modality``, or None."""
    if modality not in MODALITIES:
        return f"modality {modality!r} is not one of {', '.join(MODALITIES)}"
    if not link or link != link.strip():
        return "the link is empty or starts/ends with spaces"
    if modality == "epat":
        if _SERIAL_URL.match(link) or _DEVICE_PATH.match(link):
            return None
        return (
            f"{link!r} is not a serial port: give a device path (/dev/ttyUSB0, COM3) or a "
            "pyserial URL (socket://HOST:PORT for a serial-over-TCP adapter)"
        )
    if _VISA.match(link):
        return None
    return (
        f"{link!r} is not a VISA resource an EMTT unit is on: name it in full, e.g. "
        "TCPIP0::10.0.4.21::5025::SOCKET or ASRL/dev/ttyUSB1::INSTR"
    )


def parse_settings(data: Any, source: str) -> RoomSettings:
    """Settings from decoded JSON; ``RoomSettingsError`` names the room, unit and problem."""
    if not isinstance(data, dict) or data.get("version") != SETTINGS_VERSION:
        raise RoomSettingsError(f"{source}: not room settings of version {SETTINGS_VERSION}")
    rooms_data = data.get("rooms")
    if not isinstance(rooms_data, list):
        raise RoomSettingsError(f"{source}: 'rooms' must be a list")
    rooms: list[Room] = []
    for r, room_data in enumerate(rooms_data, start=1):
        if not isinstance(room_data, dict):
            raise RoomSettingsError(f"{source}: room {r} must be an object")
        name = room_data.get("name")
        if not isinstance(name, str) or not _NAME.match(name) or name != name.strip():
            raise RoomSettingsError(f"{source}: room {r} needs a name of 1–64 characters")
        if any(existing.name == name for existing in rooms):
            raise RoomSettingsError(f"{source}: two rooms are called {name!r}")
        units: list[UnitLink] = []
        for u, unit_data in enumerate(room_data.get("units") or [], start=1):
            where = f"{source}: room {name!r}, unit {u}"
            if not isinstance(unit_data, dict):
                raise RoomSettingsError(f"{where} must be an object")
            unit_name, modality, link = (
                unit_data.get("name"),
                unit_data.get("modality"),
                unit_data.get("link"),
            )
            if not isinstance(unit_name, str) or not _NAME.match(unit_name):
                raise RoomSettingsError(f"{where} needs a name of 1–64 characters")
            if any(existing.name == unit_name for existing in units):
                raise RoomSettingsError(f"{where}: the room has two units called {unit_name!r}")
            problem = link_problem(str(modality), link if isinstance(link, str) else "")
            if problem:
                raise RoomSettingsError(f"{where} ({unit_name}): {problem}")
            units.append(UnitLink(name, unit_name, str(modality), str(link)))
        rooms.append(Room(name, tuple(units)))
    return RoomSettings(tuple(rooms))


def load_settings(path: Path) -> RoomSettings:
    """The settings at ``path``; no file yet means no rooms."""
    path = Path(path)
    if not path.exists():
        return RoomSettings(())
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RoomSettingsError(f"{path}: cannot read the room settings ({exc})") from None
    return parse_settings(data, str(path))


def save_settings(path: Path, settings: RoomSettings) -> None:
    """Write atomically (a crash never leaves half a file)."""
    parse_settings(settings.to_json(), "the new settings")  # the same checks as on loading
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(settings.to_json(), handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def with_unit(settings: RoomSettings, unit: UnitLink) -> RoomSettings:
    """The settings with ``unit`` added to (or replacing the same-named unit of) its room."""
    problem = link_problem(unit.modality, unit.link)
    if problem:
        raise RoomSettingsError(f"{unit.room} / {unit.name}: {problem}")
    rooms = list(settings.rooms)
    for i, room in enumerate(rooms):
        if room.name == unit.room:
            units = [u for u in room.units if u.name != unit.name] + [unit]
            rooms[i] = Room(room.name, tuple(units))
            break
    else:
        rooms.append(Room(unit.room, (unit,)))
    return RoomSettings(tuple(rooms))


def without_unit(settings: RoomSettings, room: str, name: str) -> RoomSettings:
    rooms = []
    for r in settings.rooms:
        units = tuple(u for u in r.units if not (r.name == room and u.name == name))
        if units or r.name != room:
            rooms.append(Room(r.name, units))
    return RoomSettings(tuple(rooms))


@dataclass(frozen=True, slots=True)
class PortInfo:
    """A place a unit may be attached: a local serial port, or a VISA resource named here."""

    kind: str  # "serial" or "visa"
    name: str
    description: str


def discover(settings: RoomSettings) -> list[PortInfo]:
    """Local serial ports (the OS's list) and the VISA resources named in the settings. No
    network traffic; pyvisa's ``list_resources`` is deliberately never called."""
    from serial.tools import list_ports

    found = [
        PortInfo("serial", port.device, port.description or "")
        for port in sorted(list_ports.comports(), key=lambda p: p.device)
    ]
    found += [
        PortInfo("visa", resource, "named in the room settings")
        for resource in settings.visa_resources()
    ]
    return found
