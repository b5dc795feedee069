"""Benchmark: GET_STATUS through ``EpatDriver.status()`` vs a raw pyserial write/read.

Two identical simulated units run in separate processes (a real unit is a separate box, and the
simulator must not share the host's GIL), on TCP loopback with TCP_NODELAY. In each round the raw
client holds one unit and the driver the other (they swap every round, so neither side always
talks to the same process), and the samples are interleaved one by one, alternating which side
goes first, so load changes on a shared machine hit both alike; then the same again for the
driver's bare frame exchange (no decoding), for the breakdown. Both units are kept equally busy
(a unit asked more often answers faster). The raw
client writes the same frames (GET_STATUS, a new SEQ each time, so the unit executes every one)
and reads the 36-byte reply; the driver does the same plus reply matching, decoding into a
``DeviceStatus`` and its bookkeeping, with its reader thread running. Prints the load average,
median and p99 round trips, the driver/raw ratios of the pooled medians and p99s (targets
≤ 1.15 and ≤ 1.3) and the spread of the per-round ratios.

    .venv/bin/python bench/epat_roundtrip.py [--rounds 6] [--per-round 2000]
"""

from __future__ import annotations

import argparse
import itertools
import os
import socket
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import serial

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.epat_common import SimulatorProcess  # noqa: E402
from device_drivers.epat.codec import encode_frame  # noqa: E402
from device_drivers.epat.constants import Command  # noqa: E402
from device_drivers.epat.driver import EpatDriver  # noqa: E402

REPLY_LEN = 1 + 1 + 2 + 30 + 2  # SOF, LEN, SEQ, CMD, status block, CRC
WARM_UP = 100


def one_round(raw_url: str, driver_url: str, count: int) -> tuple[list[float], ...]:
    """(raw, driver status()) then (raw, driver bare exchange) round trips, each pair
    interleaved sample by sample."""
    port = serial.serial_for_url(raw_url, timeout=1.0)
    port._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # type: ignore[attr-defined]
    frames = [encode_frame(seq, Command.GET_STATUS) for seq in range(1, 256)]
    clock = time.perf_counter
    counter = itertools.count()

    def raw_exchange() -> None:
        frame = frames[next(counter) % 255]
        port.write(frame)
        reply = port.read(REPLY_LEN)
        if len(reply) != REPLY_LEN or reply[2] != frame[2]:
            raise RuntimeError(f"raw client got {reply.hex()} for {frame.hex()}")

    def interleave(driver_step: Callable[[], object], n: int) -> tuple[list[float], list[float]]:
        samples: tuple[list[float], list[float]] = ([], [])
        steps = (raw_exchange, driver_step)
        for i in range(n + WARM_UP):
            for k in range(2):
                which = (i + k) % 2
                started = clock()
                steps[which]()
                elapsed = clock() - started
                if i >= WARM_UP:
                    samples[which].append(elapsed)
        return samples

    try:
        with EpatDriver(driver_url) as driver:
            channel = driver._channel  # the same path minus the DeviceStatus decoding
            raw, status = interleave(driver.status, count)
            _, bare = interleave(lambda: channel.exchange(Command.GET_STATUS), count // 4)
    finally:
        port.close()
    return raw, status, bare


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--per-round", type=int, default=2000)
    args = parser.parse_args()
    raw: list[float] = []
    drv: list[float] = []
    bare: list[float] = []
    ratios: list[float] = []
    p99_ratios: list[float] = []
    print(f"{load()} (start)")
    with SimulatorProcess() as unit_a, SimulatorProcess() as unit_b:
        print(f"EPAT units (simulators, separate processes) at {unit_a} and {unit_b}")
        for n in range(args.rounds):
            urls = (unit_a, unit_b) if n % 2 == 0 else (unit_b, unit_a)
            raw_times, times, exchanges = one_round(*urls, args.per_round)
            raw += raw_times
            drv += times
            bare += exchanges
            ratios.append(statistics.median(times) / statistics.median(raw_times))
            p99_ratios.append(p99(times) / p99(raw_times))
    print(f"{load()} (end)")
    raw_med, drv_med = statistics.median(raw), statistics.median(drv)
    print(f"GET_STATUS round trip over TCP loopback, {len(raw)} samples each:")
    print(f"  raw pyserial   median {raw_med * 1e6:7.1f} µs   p99 {p99(raw) * 1e6:7.1f} µs")
    print(f"  EpatDriver     median {drv_med * 1e6:7.1f} µs   p99 {p99(drv) * 1e6:7.1f} µs")
    print(
        f"  (driver frame exchange without decoding: median "
        f"{statistics.median(bare) * 1e6:7.1f} µs, {statistics.median(bare) / raw_med:.2f}× raw)"
    )
    ratio, p99_ratio = drv_med / raw_med, p99(drv) / p99(raw)
    print(
        f"  ratio driver/raw: median {ratio:.3f} (rounds {min(ratios):.3f}..{max(ratios):.3f}); "
        f"p99 {p99_ratio:.3f} (rounds {min(p99_ratios):.3f}..{max(p99_ratios):.3f})"
    )
    met = ratio <= 1.15 and p99_ratio <= 1.3
    print(f"  target median ≤ 1.15, p99 ≤ 1.30: {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
