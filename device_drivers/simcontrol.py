"""Fault injection by text command, shared by both simulators.

The ``simulate`` command reads these from its standard input so a service engineer or a
rehearsal can break a running simulated unit on purpose; tests call the simulator methods
directly. Both simulators expose the same method names (see :data:`COMMANDS`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ControlCommand:
    name: str
    method: str
    argument: Callable[[str], Any] | None
    help: str


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"a fraction must be between 0 and 1, got {text}")
    return value


def _seconds_from_ms(text: str) -> float:
    value = float(text)
    if value < 0:
        raise ValueError(f"a delay cannot be negative, got {text}")
    return value / 1000.0


COMMANDS: tuple[ControlCommand, ...] = (
    ControlCommand(
        "drop", "set_drop_fraction", _fraction, "drop FRACTION of the unit's replies (0..1)"
    ),
    ControlCommand(
        "corrupt",
        "set_corrupt_fraction",
        _fraction,
        "corrupt FRACTION of what the unit sends (0..1)",
    ),
    ControlCommand("delay", "set_reply_delay", _seconds_from_ms, "delay every reply by MS ms"),
    ControlCommand(
        "lose",
        "drop_reply_to",
        str,
        "lose the reply to the next NAME command (EPAT: START, ...; EMTT: SESS:STAR, ...)",
    ),
    ControlCommand("cut", "cut_link", None, "cut the host's link (the unit keeps running)"),
    ControlCommand("reset", "power_cycle", None, "power-cycle the unit"),
    ControlCommand("overtemp", "force_overtemp", None, "heat the handpiece/coil to cut-out"),
    ControlCommand("pull", "remove_applicator", None, "pull the applicator out"),
    ControlCommand(
        "fit", "fit_applicator", str, "fit an applicator of TYPE (EPAT: R15, D20-S; EMTT: EMT-A1)"
    ),
    ControlCommand("wear", "wear_out_applicator", int, "leave N shots of applicator life"),
    ControlCommand(
        "deviation",
        "set_pressure_deviation",
        float,
        "measured pressure (EPAT) or field (EMTT) off by PERCENT",
    ),
)


def help_text() -> str:
    lines = ["fault-injection commands:"]
    for cmd in COMMANDS:
        usage = cmd.name if cmd.argument is None else f"{cmd.name} VALUE"
        lines.append(f"  {usage:<16}{cmd.help}")
    lines.append(f"  {'help':<16}this list")
    return "\n".join(lines)


def apply_command(simulator: object, line: str) -> str:
    """Run one text command on ``simulator``; returns a one-line answer (never raises)."""
    words = line.split()
    if not words:
        return ""
    if words[0] == "help":
        return help_text()
    command = next((c for c in COMMANDS if c.name == words[0]), None)
    if command is None:
        return f"unknown command {words[0]!r}; type 'help'"
    method = getattr(simulator, command.method, None)
    if method is None and command.name == "deviation":
        method = getattr(simulator, "set_field_deviation", None)
    if method is None:
        return f"this simulator does not support {command.name!r}"
    try:
        if command.argument is None:
            if len(words) != 1:
                return f"{command.name} takes no value"
            method()
        else:
            if len(words) != 2:
                return f"usage: {command.name} VALUE ({command.help})"
            method(command.argument(words[1]))
    except (ValueError, TypeError) as exc:
        return f"{command.name}: {exc}"
    return f"ok: {line.strip()}"
