"""What the bare ``therapy-console`` (and ``--demo``) does."""

from __future__ import annotations

import argparse

from console import __version__


def start_console(args: argparse.Namespace) -> int:
    print(f"therapy-console {__version__}")
    if not args.demo:
        print("The treatment console is not built yet; try --demo or --help.")
        return 0
    from console.demo import run_demo

    return run_demo()
