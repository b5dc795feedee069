"""``therapy-console device …``: the service engineer's command line for one unit.

Every subcommand signs a service user in first (``--user``, password as the first line of
standard input, or a prompt at a terminal), then names its unit by link (``--epat URL`` or
``--emtt RESOURCE``), opens it, does one job and closes it again, which leaves the unit stopped
and disarmed. Each command is audited (``device.<job>`` with the user, the unit and the
outcome). A unit the record shows in an open session (connected, armed, delivering, paused) is
refused, as is one the driver finds in another console's treatment (CLI-DEV-4): a service
command must never take a unit from its treating console.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from console.cli import (
    EXIT_REFUSED,
    EXIT_UNIT,
    EXIT_UNIT_BUSY,
    EXIT_UNIT_LINK,
    EXIT_USAGE,
    SPEED,
    CommandError,
    number,
    whole,
)
from console.cli.db import add_db_argument, open_records, sign_in
from console.devices import open_device
from console.jsonable import to_jsonable
from device_drivers.errors import CommandRefused, DeviceError, DeviceRejected, UnitInTreatment
from device_drivers.interface import (
    DeviceEvent,
    DeviceIdentity,
    DeviceMessage,
    DeviceStatus,
    LinkDown,
    TherapyDevice,
    ValueRange,
)

if TYPE_CHECKING:
    from console.auth import SignedInUser
    from console.cli.db import Records

#: job → (the role-table action it needs: console/roles.py, the service role's; its audit action)
_ACTIONS = {
    "info": ("device_diagnostics", "device.info"),
    "selftest": ("device_diagnostics", "device.selftest"),
    "events": ("device_diagnostics", "device.events"),
    "watch": ("device_diagnostics", "device.watch"),
    "raw": ("raw_device_command", "device.raw_command"),  # as the service console records it
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "device",
        help="service diagnostics for one EPAT or EMTT unit (service users; audited)",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    jobs = parser.add_subparsers(dest="job", metavar="JOB", required=True)
    _job(jobs, "info", "identity, firmware, envelope and applicator wear", _info)
    _job(jobs, "selftest", "run the unit's self-test (unit must be idle)", _selftest)
    events = _job(jobs, "events", "read the unit's event log", _events)
    events.add_argument(
        "--from", dest="from_index", type=whole(0, 65535), default=0, help="first index (0-65535)"
    )
    watch = _job(jobs, "watch", "show live status until Ctrl-C", _watch)
    watch.add_argument(
        "--period",
        type=number(0.01, 3600),
        default=0.5,
        help="seconds between readings, 0.01-3600 (default 0.5)",
    )
    watch.add_argument(
        "--count", type=whole(0, 10**9), default=0, help="stop after N readings (0 = never)"
    )
    raw = _job(
        jobs,
        "raw",
        "send one raw command and print the decoded reply (refused while armed or delivering)",
        _raw,
    )
    raw.add_argument(
        "command",
        help="EPAT: command code or name (e.g. 0x03 or GET_STATUS); EMTT: one SCPI line",
    )
    raw.add_argument("payload", nargs="?", default="", help="EPAT only: payload as hex bytes")


def _job(
    jobs: argparse._SubParsersAction, name: str, text: str, handler: Callable[..., int]
) -> argparse.ArgumentParser:
    parser = jobs.add_parser(
        name,
        help=text,
        description=(
            f"{text[0].upper() + text[1:]}. Signs in a service user first (password on the "
            "first line of standard input); audited; refused for a unit in an open session."
        ),
    )
    parser.add_argument("--user", required=True, help="the service user's id")
    add_db_argument(parser)
    unit = parser.add_mutually_exclusive_group(required=True)
    unit.add_argument("--epat", metavar="URL", help="EPAT link: device path, pty or socket://")
    unit.add_argument(
        "--emtt", metavar="RESOURCE", help="EMTT VISA resource, e.g. TCPIP0::HOST::5025::SOCKET"
    )
    parser.add_argument("--visa-backend", default="@py", help="pyvisa backend (default @py)")
    parser.add_argument(
        "--speed", type=SPEED, default=1.0, help="speed factor of a simulated unit (default 1)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(handler=handler)
    return parser


@dataclass
class _Service:
    """One audited service command: who, on which unit, and what came of it."""

    records: Records
    user: SignedInUser
    job: str
    link: str
    identity: DeviceIdentity | None = None
    outcome: dict[str, Any] = field(default_factory=dict)

    def audit(self, action: str, data: dict[str, Any]) -> None:
        from audit.events import Subject

        subject = Subject("device", self.identity.serial if self.identity else self.link[:128])
        self.records.trail.append(
            self.user.actor, action, subject, {"job": self.job, "link": self.link, **data}
        )


@contextmanager
def _opened(args: argparse.Namespace) -> Iterator[tuple[TherapyDevice, _Service]]:
    """Sign in, open the unit, refuse it if it is in a session; audit the command."""
    from audit.errors import AuditError

    records = open_records(args.db)
    try:
        from_stdin = not sys.stdin.isatty()
        user = sign_in(records, args.user, from_stdin, _ACTIONS[args.job][0])
        try:
            service = _Service(records, user, args.job, args.epat or args.emtt)
            with _unit(args, service) as device:
                yield device, service
        finally:
            try:
                records.auth.logout(user)
            except AuditError as exc:  # never hides the command's own outcome
                print(f"could not record the sign-out: {exc}", file=sys.stderr)
    finally:
        records.close()


@contextmanager
def _unit(args: argparse.Namespace, service: _Service) -> Iterator[TherapyDevice]:
    link = service.link
    _refuse_in_session(service, link=link)  # before opening: that alone would cut its link
    try:
        device = open_device(
            epat_url=args.epat,
            emtt_resource=args.emtt,
            visa_backend=args.visa_backend,
            speed=args.speed,
        )
    except DeviceError as exc:
        if isinstance(exc, UnitInTreatment):
            service.audit("device.service_refused", {"reason": str(exc)})
            raise CommandError(f"the unit at {link} refused: {exc}", EXIT_UNIT_BUSY) from exc
        service.audit(_ACTIONS[service.job][1], {"ok": False, "error": str(exc)[:500]})
        raise CommandError(f"cannot reach the unit at {link}: {exc}", EXIT_UNIT_LINK) from exc
    try:
        service.identity = device.identify()
        _refuse_in_session(service, serial=service.identity.serial)
        yield device
        service.audit(_ACTIONS[service.job][1], {"ok": True, **service.outcome})
    except DeviceError as exc:
        failed = {"ok": False, "error": str(exc)[:500], **service.outcome}
        service.audit(_ACTIONS[service.job][1], failed)
        if isinstance(exc, CommandRefused):
            raise CommandError(str(exc), EXIT_REFUSED) from exc
        if isinstance(exc, DeviceRejected):
            raise CommandError(f"the unit refused: {exc}", EXIT_UNIT) from exc
        raise CommandError(f"unit at {link}: {exc}", EXIT_UNIT) from exc
    finally:
        device.close()


def _refuse_in_session(
    service: _Service, *, link: str | None = None, serial: str | None = None
) -> None:
    """CLI-DEV-4: a unit the record shows in an open session belongs to its treating console
    (asked by link before opening, by serial after: ``console.service.occupancy``)."""
    from audit.sessions import SessionBook
    from console.service.occupancy import UnitInOpenSession, refuse_unit_in_session

    try:
        refuse_unit_in_session(
            SessionBook(service.records.trail),
            lambda data: service.audit("device.service_refused", data),
            link=link,
            serial=serial,
        )
    except UnitInOpenSession as exc:
        raise CommandError(str(exc), EXIT_UNIT_BUSY) from exc


def _range(r: ValueRange | None, unit: str, *, show_step: bool = True) -> str:
    if r is None:
        return "-"
    step = f", step {r.step} {unit}" if show_step and r.step is not None else ""
    nonsense = "  (IMPOSSIBLE: minimum above maximum)" if r.minimum > r.maximum else ""
    return f"{r.minimum}–{r.maximum} {unit}{step}{nonsense}"


def _info(args: argparse.Namespace) -> int:
    with _opened(args) as (device, service):
        identity = device.identify()
        envelope = device.envelope()
        applicator = device.applicator()
        service.outcome = {"firmware": identity.firmware, "applicator": applicator.serial}
    if args.json:
        print(
            json.dumps(
                to_jsonable(
                    {
                        "identity": identity,
                        "envelope": envelope,
                        "applicator": applicator,
                        "applicator_wear_percent": applicator.wear_percent,
                    }
                ),
                indent=2,
            )
        )
        return 0
    maker = "" if identity.manufacturer.startswith("unknown") else f"{identity.manufacturer} "
    print(f"Unit:        {maker}{identity.model} ({identity.modality.upper()})")
    print(f"Serial:      {identity.serial}")
    print(f"Firmware:    {identity.firmware}   protocol {identity.protocol_version}")
    if envelope.pressure_bar is not None:
        print(f"Pressure:    {_range(envelope.pressure_bar, 'bar')}")
    if envelope.field_mt is not None:
        print(f"Field:       {_range(envelope.field_mt, 'mT')}")
    print(f"Frequency:   {_range(envelope.frequency_hz, 'Hz')}")
    print(f"Pulses:      {_range(envelope.pulses, 'pulses per load', show_step=False)}")
    if not applicator.present:
        print("Applicator:  none fitted")
        return 0
    limit = (
        f", max {applicator.max_pressure_bar} bar"
        if applicator.max_pressure_bar is not None
        else ""
    )
    print(f"Applicator:  {applicator.type} serial {applicator.serial}{limit}")
    warning = "  (WARNING: plan replacement)" if applicator.wear_percent >= 90 else ""
    print(
        f"Wear:        {applicator.shots_used:,} of {applicator.shots_rated:,} shots "
        f"= {applicator.wear_percent} % of rated life{warning}"
    )
    return 0


def _selftest(args: argparse.Namespace) -> int:
    with _opened(args) as (device, service):
        result = device.self_test()
        service.outcome = {"passed": result.passed, "failed_checks": list(result.failed_checks)}
    if args.json:
        print(json.dumps(to_jsonable(result)))
    elif result.passed:
        print("Self-test passed.")
    else:
        print(f"Self-test FAILED: {', '.join(result.failed_checks)} (code {result.raw:#06x})")
    return 0 if result.passed else 1


def _events(args: argparse.Namespace) -> int:
    with _opened(args) as (device, service):
        events = device.event_log(args.from_index)
        service.outcome = {"from_index": args.from_index, "events": len(events)}
    if args.json:
        print(json.dumps(to_jsonable(events), indent=2))
        return 0
    if not events:
        print(f"No events from index {args.from_index}.")
    for event in events:
        uptime = f"{event.uptime_ms / 1000:10.3f} s" if event.uptime_ms is not None else ""
        print(f"#{event.index:<5} {uptime}  {event.text}")
    return 0


def _watch(args: argparse.Namespace) -> int:
    lost = threading.Event()
    readings = 0

    def show(message: DeviceMessage) -> None:
        if isinstance(message, DeviceEvent):
            print(f"event: {message.text}", flush=True)
        elif isinstance(message, LinkDown):
            print(f"link lost: {message.reason}", flush=True)
            lost.set()

    with _opened(args) as (device, service):
        device.add_listener(show)
        try:
            while not lost.is_set():
                status = device.status()
                readings += 1
                print(_status_line(status, args.json), flush=True)
                if args.count and readings >= args.count:
                    break
                lost.wait(args.period)
        except KeyboardInterrupt:
            pass
        link_lost = lost.is_set()
        device.remove_listener(show)  # closing the link below is not a loss
        service.outcome = {"readings": readings, "link_lost": link_lost}
    return 1 if link_lost else 0


def _status_line(status: DeviceStatus, as_json: bool) -> str:
    if as_json:
        return json.dumps(to_jsonable(status))
    parts = [f"{status.state:<10}", f"delivered {status.delivered}/{status.target}"]
    if status.pressure_measured_bar is not None:
        parts.append(f"pressure {status.pressure_measured_bar} bar")
    if status.field_measured_mt is not None:
        parts.append(f"field {status.field_measured_mt} mT")
    parts.append(f"temp {status.temperature_c} °C")
    if status.faults:
        parts.append("FAULTS " + ",".join(status.faults))
    return "  ".join(parts)


def _raw(args: argparse.Namespace) -> int:
    from console.service.raw import RawCommandError, parse_raw

    if args.emtt and args.payload:
        raise CommandError("an EMTT raw command is one SCPI line; quote it", EXIT_USAGE)
    try:
        command = parse_raw("epat" if args.epat else "emtt", f"{args.command} {args.payload}")
    except RawCommandError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from exc
    with _opened(args) as (device, service):
        service.outcome = {"command": command.text}
        if command.modality == "epat":
            reply = device.raw_command(command.code, command.payload)  # type: ignore[attr-defined]
        else:
            reply = device.raw_command(command.line)  # type: ignore[attr-defined]
        service.outcome["reply"] = _reply_text(reply)[:4000]
    print(json.dumps(to_jsonable(reply)) if args.json else _reply_text(reply))
    return 0


def _reply_text(reply: object) -> str:
    if reply is None:
        return "(no response line: the command was accepted)"
    return str(reply)
