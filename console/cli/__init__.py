"""The ``therapy-console`` command line: one program, one subcommand per job.

Subcommands live in their own modules in this package; each module defines
``register(subparsers)`` which adds its parser and sets ``handler`` (a callable taking the
parsed namespace and returning the exit code). Modules are discovered, so adding a command never
means editing a shared list.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from console import __version__

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class CommandError(Exception):
    """A user-facing failure: printed as one line on stderr, exit code attached."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="therapy-console",
        description=(
            "Clinic console for EPAT (radial shockwave) and EMTT units. Without a subcommand it "
            "opens the console; --demo runs it on built-in simulators and a demo database."
        ),
    )
    parser.add_argument("--version", action="version", version=f"therapy-console {__version__}")
    parser.add_argument(
        "--demo",
        action="store_true",
        help="run on built-in device simulators and a demo database in a temporary folder",
    )
    parser.add_argument(
        "--demo-speed",
        type=float,
        default=None,
        metavar="X",
        help="with --demo: run the simulated units X times faster than real time (default 5)",
    )
    parser.add_argument(
        "--exit-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="close the console after this many seconds (smoke tests and start-up timing)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    try:
        if handler is not None:
            return int(handler(args) or EXIT_OK)
        from console.cli._start import start_console

        return start_console(args)
    except CommandError as exc:
        print(f"therapy-console: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("therapy-console: interrupted", file=sys.stderr)
        return 130
