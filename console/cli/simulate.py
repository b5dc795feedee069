"""``therapy-console simulate epat|emtt``: serve a simulated unit on a real link.

The simulators are the firmware side of the ICDs, so a clinic can rehearse and a service
engineer can reproduce incidents without hardware. Fault-injection commands are read from
standard input while the simulator runs (``help`` lists them).
"""

from __future__ import annotations

import argparse
import sys
import threading

from console.cli import SPEED, CommandError, number, whole
from device_drivers import simcontrol


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="serve a simulated EPAT or EMTT unit on a TCP port or pseudo-terminal",
        description=(
            "Serve a simulated therapy unit that follows its interface control document. "
            "While it runs, type fault-injection commands on standard input ('help' lists them)."
        ),
    )
    kinds = parser.add_subparsers(dest="unit", metavar="UNIT", required=True)

    epat = kinds.add_parser(
        "epat",
        help="radial shockwave unit (serial protocol over TCP or a pty)",
        description="Serve the EPAT unit; reach it with socket://HOST:PORT or the printed pty.",
    )
    link = epat.add_mutually_exclusive_group(required=True)
    link.add_argument(
        "--port", type=whole(0, 65535), help="TCP port to listen on (0 = any free port)"
    )
    link.add_argument("--pty", action="store_true", help="serve on a pseudo-terminal")
    epat.add_argument(
        "--applicator",
        default="R15",
        help="applicator fitted at power-up: R15, D20-S or none (default R15)",
    )
    _common_options(epat)
    epat.set_defaults(handler=_run_epat)

    emtt = kinds.add_parser(
        "emtt",
        help="EMTT unit (SCPI over a raw TCP socket)",
        description=(
            "Serve the EMTT unit; reach it with TCPIP0::HOST::PORT::SOCKET, or with the printed "
            "ASRL resource when serving on a pseudo-terminal."
        ),
    )
    emtt_link = emtt.add_mutually_exclusive_group(required=True)
    emtt_link.add_argument(
        "--port", type=whole(0, 65535), help="TCP port to listen on (0 = any free port)"
    )
    emtt_link.add_argument(
        "--pty", action="store_true", help="serve on a pseudo-terminal (ASRL…::INSTR resource)"
    )
    emtt.add_argument(
        "--no-applicator", action="store_true", help="start with no applicator fitted"
    )
    _common_options(emtt)
    emtt.set_defaults(handler=_run_emtt)


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--speed",
        type=SPEED,
        default=1.0,
        help="run simulated time X times faster (pulses, watchdog, temperature; default 1)",
    )
    parser.add_argument("--serial", help="the unit's serial number (default: the reference unit's)")
    parser.add_argument(
        "--drop", type=number(0, 1), default=0.0, help="drop this fraction of replies"
    )
    parser.add_argument(
        "--corrupt", type=number(0, 1), default=0.0, help="corrupt this fraction of replies"
    )
    parser.add_argument(
        "--delay-ms",
        type=number(0, 60_000),
        default=0.0,
        help="delay every reply by this many ms (0-60000)",
    )


def _apply_startup_faults(simulator: object, args: argparse.Namespace) -> None:
    simulator.set_drop_fraction(args.drop)  # type: ignore[attr-defined]
    simulator.set_corrupt_fraction(args.corrupt)  # type: ignore[attr-defined]
    simulator.set_reply_delay(args.delay_ms / 1000.0)  # type: ignore[attr-defined]


def _run_epat(args: argparse.Namespace) -> int:
    from device_drivers.epat.server import EpatPtyServer, EpatTcpServer
    from device_drivers.epat.simulator import EpatSimulator

    applicator = None if args.applicator.lower() == "none" else args.applicator
    kwargs = {"speed": args.speed, "applicator": applicator}
    if args.serial:
        kwargs["serial"] = args.serial
    try:
        simulator = EpatSimulator(**kwargs)
    except ValueError as exc:
        raise CommandError(str(exc), 2) from exc
    _apply_startup_faults(simulator, args)
    server: EpatPtyServer | EpatTcpServer
    if args.pty:
        server = EpatPtyServer(simulator)
    else:
        server = EpatTcpServer(simulator, host=args.host, port=args.port)
    try:
        server.start()
    except OSError as exc:
        raise CommandError(f"cannot serve the EPAT simulator: {exc}") from exc
    where = server.path if isinstance(server, EpatPtyServer) else server.url
    return _serve(server, simulator, f"EPAT simulator serving on {where} (speed {args.speed:g})")


def _run_emtt(args: argparse.Namespace) -> int:
    from device_drivers.emtt.server import EmttPtyServer, EmttTcpServer
    from device_drivers.emtt.simulator import EmttSimulator

    kwargs = {"speed": args.speed, "applicator_present": not args.no_applicator}
    if args.serial:
        kwargs["serial"] = args.serial
    simulator = EmttSimulator(**kwargs)
    _apply_startup_faults(simulator, args)
    if args.pty:
        server: EmttPtyServer | EmttTcpServer = EmttPtyServer(simulator)
    else:
        server = EmttTcpServer(simulator, host=args.host, port=args.port)
    try:
        server.start()
    except OSError as exc:
        raise CommandError(f"cannot serve the EMTT simulator: {exc}") from exc
    return _serve(
        server, simulator, f"EMTT simulator serving on {server.resource} (speed {args.speed:g})"
    )


def _serve(server: object, simulator: object, banner: str) -> int:
    print(banner, flush=True)
    print("Type 'help' for fault-injection commands; Ctrl-C to stop.", flush=True)
    stopped = threading.Event()
    try:
        for line in sys.stdin:
            answer = simcontrol.apply_command(simulator, line)
            if answer:
                print(answer, flush=True)
        # Standard input closed (e.g. started by a script): keep serving until interrupted.
        stopped.wait()
    except (KeyboardInterrupt, BrokenPipeError):
        pass  # Ctrl-C, or whoever read our output has gone: stop serving
    finally:
        server.stop()  # type: ignore[attr-defined]
    return 0
