"""The ``therapy-console`` command line: one program, one subcommand per job.

Subcommands live in their own modules in this package; each module defines
``register(subparsers)`` which adds its parser and sets ``handler`` (a callable taking the
parsed namespace and returning the exit code). Modules are discovered, so adding a command never
means editing a shared list.

Every error reaches the user as one line on standard error that says what is wrong and what to
do, with the exit code of its class (``EXIT_CODES``, printed in ``--help``; CLI-ERR-1). An
exception no command anticipated is still one line (class ``EXIT_INTERNAL``); its traceback goes
to the log file only.
"""

from __future__ import annotations

import argparse
import importlib
import math
import pkgutil
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from console import __version__

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_UNIT_LINK = 4
EXIT_UNIT = 5
EXIT_REFUSED = 6
EXIT_DATABASE = 7
EXIT_UNIT_BUSY = 8
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130

#: code → what it means; the one table ``--help`` and docs/requirements/cli.md show.
EXIT_CODES: dict[int, str] = {
    EXIT_OK: "done",
    EXIT_FAILURE: "done, but the result is negative (session not completed, self-test failed, "
    "schema old, trail not verified)",
    EXIT_USAGE: "the command line or an input file is wrong; nothing was done",
    EXIT_AUTH: "sign-in failed, or the user's role may not do this",
    EXIT_UNIT_LINK: "the unit cannot be reached, or does not speak its protocol on that link",
    EXIT_UNIT: "the unit reported an error or impossible values, or failed during the job",
    EXIT_REFUSED: "a safety check refused it (screening, parameters, interlocks, unit state); "
    "nothing was fired",
    EXIT_DATABASE: "the database is unavailable or locked",
    EXIT_UNIT_BUSY: "the unit is in a treatment session: use the treating console",
    EXIT_INTERNAL: "internal error (a defect): the traceback is in the log file",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C); a unit in delivery was emergency-stopped",
}


def exit_codes_text() -> str:
    return "exit codes:\n" + "\n".join(f"  {code:>3}  {text}" for code, text in EXIT_CODES.items())


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors as one line (CLI-ERR-1); subcommands inherit it."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"therapy-console: error: {message} (see `{self.prog} --help`)\n")


def number(
    minimum: float | None = None, maximum: float | None = None, *, above: float | None = None
) -> Callable[[str], float]:
    """An argparse type: a finite number in bounds (``above``: strictly greater)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or (
            (above is not None and value <= above)
            or (minimum is not None and value < minimum)
            or (maximum is not None and value > maximum)
        ):
            low = f"above {above:g}" if above is not None else f"at least {minimum:g}"
            high = f" and at most {maximum:g}" if maximum is not None else ""
            raise argparse.ArgumentTypeError(f"{text!r}: give a number {low}{high}")
        return value

    return parse


def whole(minimum: int, maximum: int) -> Callable[[str], int]:
    """An argparse type: a whole number from ``minimum`` to ``maximum``."""

    def parse(text: str) -> int:
        if not text.strip().lstrip("-").isdigit() or not minimum <= int(text) <= maximum:
            raise argparse.ArgumentTypeError(
                f"{text!r}: give a whole number from {minimum:,} to {maximum:,}"
            )
        return int(text)

    return parse


#: ``--speed`` of a simulated unit: the simulators' clock factor (1 for real units)
SPEED = number(above=0, maximum=1000)


class CommandError(Exception):
    """A user-facing failure: printed as one line on stderr, exit code attached."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
        type=number(above=0, maximum=1000),
        default=None,
        metavar="X",
        help="with --demo: run the simulated units X times faster than real time (default 5)",
    )
    parser.add_argument(
        "--exit-after",
        type=number(above=0),
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
    _add_exit_codes(parser)
    return parser


def _add_exit_codes(parser: argparse.ArgumentParser) -> None:
    """Every (sub)command's ``--help`` ends with the exit-code table (CLI-ERR-1)."""
    if parser.epilog is None:
        parser.epilog = exit_codes_text()
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _add_exit_codes(child)


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
        return _fail(exc)
    except KeyboardInterrupt:
        print("therapy-console: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # CLI-ERR-1: never a traceback for the user
        from console.cli._errors import classify

        return _fail(classify(exc))


def _fail(exc: CommandError) -> int:
    text = " ".join(str(exc).split()) or "failed (no message)"
    print(f"therapy-console: error: {text}", file=sys.stderr)
    return exc.exit_code
