"""What the bare ``therapy-console`` (and ``--demo``) does: open the console window."""

from __future__ import annotations

import argparse

from console.cli import CommandError


def start_console(args: argparse.Namespace) -> int:
    if args.demo:
        from console.demo import DEFAULT_DEMO_SPEED, run_demo

        speed = args.demo_speed if args.demo_speed is not None else DEFAULT_DEMO_SPEED
        return run_demo(speed, exit_after_s=args.exit_after)
    if args.demo_speed is not None:
        raise CommandError("--demo-speed goes with --demo", 2)
    from console.clinic import run_clinic_console

    return run_clinic_console(exit_after_s=args.exit_after)
