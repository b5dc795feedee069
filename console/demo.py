"""The demo: built-in simulators so the console can be tried without hardware."""

from __future__ import annotations


def run_demo() -> int:
    print("Demo: device simulators are being built (issue 2); nothing to show yet.")
    return 0
