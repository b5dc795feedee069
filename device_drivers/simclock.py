"""Simulated time for the device simulators: the speed factor in one place.

A simulator multiplies every duration of the simulated unit (pulse period, watchdog, thermal time
constants, uptimes) by 1/speed; wall-time rules of the ICDs (reply deadline, inter-byte timeout,
stream period) do not use this clock.
"""

from __future__ import annotations

import time


class SimClock:
    """Monotonic simulated seconds since the unit powered up, running ``speed`` times faster."""

    def __init__(self, speed: float = 1.0) -> None:
        if not speed > 0:
            raise ValueError(f"speed factor must be > 0, got {speed!r}")
        self.speed = float(speed)
        self._start = time.monotonic()

    def now(self) -> float:
        """Simulated seconds since power-up."""
        return (time.monotonic() - self._start) * self.speed

    def wall_seconds(self, simulated_seconds: float) -> float:
        """How long ``simulated_seconds`` of unit time take on the wall clock."""
        return simulated_seconds / self.speed

    def reset(self) -> None:
        """Power-up: simulated time starts again at zero."""
        self._start = time.monotonic()
