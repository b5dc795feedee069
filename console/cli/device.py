"""``therapy-console device …``: the service engineer's command line for one unit.

Every subcommand names its unit by link (``--epat URL`` or ``--emtt RESOURCE``), opens it,
does one job and closes it again, which leaves the unit stopped and disarmed.
"""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from console.cli import CommandError
from console.devices import open_device
from console.jsonable import to_jsonable
from device_drivers.errors import CommandRefused, DeviceError, DeviceRejected
from device_drivers.interface import (
    DeviceEvent,
    DeviceMessage,
    DeviceStatus,
    LinkDown,
    TherapyDevice,
    ValueRange,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "device",
        help="service diagnostics for one EPAT or EMTT unit",
        description="Service diagnostics for one unit, named by --epat URL or --emtt RESOURCE.",
    )
    jobs = parser.add_subparsers(dest="job", metavar="JOB", required=True)
    _job(jobs, "info", "identity, firmware, envelope and applicator wear", _info)
    _job(jobs, "selftest", "run the unit's self-test (unit must be idle)", _selftest)
    events = _job(jobs, "events", "read the unit's event log", _events)
    events.add_argument("--from", dest="from_index", type=int, default=0, help="first index")
    watch = _job(jobs, "watch", "show live status until Ctrl-C", _watch)
    watch.add_argument(
        "--period", type=float, default=0.5, help="seconds between readings (default 0.5)"
    )
    watch.add_argument("--count", type=int, default=0, help="stop after N readings (0 = never)")
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
    parser = jobs.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
    unit = parser.add_mutually_exclusive_group(required=True)
    unit.add_argument("--epat", metavar="URL", help="EPAT link: device path, pty or socket://")
    unit.add_argument(
        "--emtt", metavar="RESOURCE", help="EMTT VISA resource, e.g. TCPIP0::HOST::5025::SOCKET"
    )
    parser.add_argument("--visa-backend", default="@py", help="pyvisa backend (default @py)")
    parser.add_argument(
        "--speed", type=float, default=1.0, help="speed factor of a simulated unit (default 1)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(handler=handler)
    return parser


@contextmanager
def _opened(args: argparse.Namespace) -> Iterator[TherapyDevice]:
    link = args.epat or args.emtt
    try:
        device = open_device(
            epat_url=args.epat,
            emtt_resource=args.emtt,
            visa_backend=args.visa_backend,
            speed=args.speed,
        )
    except DeviceError as exc:
        raise CommandError(f"cannot reach the unit at {link}: {exc}") from exc
    try:
        yield device
    except CommandRefused as exc:
        raise CommandError(str(exc)) from exc
    except DeviceRejected as exc:
        raise CommandError(f"the unit refused: {exc}") from exc
    except DeviceError as exc:
        raise CommandError(f"unit at {link}: {exc}") from exc
    finally:
        device.close()


def _range(r: ValueRange | None, unit: str, *, show_step: bool = True) -> str:
    if r is None:
        return "-"
    step = f", step {r.step} {unit}" if show_step and r.step is not None else ""
    return f"{r.minimum}–{r.maximum} {unit}{step}"


def _info(args: argparse.Namespace) -> int:
    with _opened(args) as device:
        identity = device.identify()
        envelope = device.envelope()
        applicator = device.applicator()
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
    with _opened(args) as device:
        result = device.self_test()
    if args.json:
        print(json.dumps(to_jsonable(result)))
    elif result.passed:
        print("Self-test passed.")
    else:
        print(f"Self-test FAILED: {', '.join(result.failed_checks)} (code {result.raw:#06x})")
    return 0 if result.passed else 1


def _events(args: argparse.Namespace) -> int:
    with _opened(args) as device:
        events = device.event_log(args.from_index)
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
    if args.period <= 0:
        raise CommandError("--period must be greater than 0", 2)
    lost = threading.Event()
    readings = 0

    def show(message: DeviceMessage) -> None:
        if isinstance(message, DeviceEvent):
            print(f"event: {message.text}", flush=True)
        elif isinstance(message, LinkDown):
            print(f"link lost: {message.reason}", flush=True)
            lost.set()

    with _opened(args) as device:
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
    with _opened(args) as device:
        if args.epat:
            code = _epat_command_code(args.command)
            try:
                payload = bytes.fromhex(args.payload)
            except ValueError as exc:
                raise CommandError(f"payload must be hex bytes, e.g. 'e803': {exc}", 2) from exc
            reply = device.raw_command(code, payload)  # type: ignore[attr-defined]
        else:
            if args.payload:
                raise CommandError("an EMTT raw command is one SCPI line; quote it", 2)
            reply = device.raw_command(args.command)  # type: ignore[attr-defined]
    print(json.dumps(to_jsonable(reply)) if args.json else _reply_text(reply))
    return 0


def _reply_text(reply: object) -> str:
    if reply is None:
        return "(no response line: the command was accepted)"
    return str(reply)


def _epat_command_code(text: str) -> int:
    from device_drivers.epat import constants

    try:
        return int(text, 0)
    except ValueError:
        pass
    code = constants.command_code(text)
    if code is None:
        raise CommandError(f"unknown EPAT command {text!r}; give a code like 0x03 or a name", 2)
    return code
